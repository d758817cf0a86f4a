package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	badgerstore "github.com/synclayer/synclayer/core/store/badger"
	"github.com/synclayer/synclayer/core/store/postgres"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/synclayer/synclayer/core/api"
	"github.com/synclayer/synclayer/core/config"
	"github.com/synclayer/synclayer/core/engine"
	"github.com/synclayer/synclayer/core/internal/redact"
	"github.com/synclayer/synclayer/core/notify"
	"github.com/synclayer/synclayer/core/plugin"
	"github.com/synclayer/synclayer/core/store"
	"github.com/synclayer/synclayer/core/ui"
)

func loadConfig(path string) (*config.Config, error) {
	cfg, diags := config.Load(path)
	if diags.HasErrors() {
		return nil, exitError{code: 1, msg: stripNewline(config.FormatDiagnostics(diags))}
	}
	if len(diags) > 0 {
		fmt.Fprint(os.Stderr, config.FormatDiagnostics(diags))
	}
	return cfg, nil
}

func stripNewline(s string) string {
	for len(s) > 0 && s[len(s)-1] == '\n' {
		s = s[:len(s)-1]
	}
	return s
}

// newLogger is the host's logger; everything it writes, plugin output
// included, passes through the redactor.
func newLogger(svc config.Service, secrets *redact.Redactor) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "synclayer",
		Level:      hclog.LevelFromString(svc.LogLevel),
		JSONFormat: svc.LogFormat == "json",
		Output:     secrets.Writer(os.Stderr),
		TimeFormat: time.RFC3339Nano,
	})
}

// configSecrets registers the secrets a configuration holds itself (the
// connectors' sensitive values are added as sources are described).
func configSecrets(cfg *config.Config, secrets *redact.Redactor) {
	secrets.Add(cfg.Service.Secrets()...)
	for _, l := range cfg.Layers {
		for _, n := range l.Notify {
			secrets.Add(n.Secrets()...)
		}
	}
}

func pluginManager(cfg *config.Config, log hclog.Logger) *plugin.Manager {
	return plugin.NewManager(plugin.Options{Logger: log, Declared: cfg.Plugins, MutualTLS: os.Getenv(pluginMTLSEnv) == "1"})
}

// pluginMTLSEnv, set to 1, puts mutual TLS on the plugin connections on
// top of their private socket directory (core/plugin/sockets.go says why
// it is off by default).
const pluginMTLSEnv = "SYNCLAYER_PLUGIN_MTLS"

// preflight checks what needs no plugin process: that every source's
// plugin is installed, and that the env() and file() calls of config
// blocks succeed. Its diagnostics carry file:line:col.
func preflight(cfg *config.Config, pm *plugin.Manager) error {
	var available []string
	for _, f := range pm.List() {
		available = append(available, f.Name)
	}
	diags := config.CheckPlugins(cfg, func(name string) error { _, err := pm.Find(name); return err }, available)
	for _, l := range cfg.Layers {
		for _, s := range l.Sources {
			diags = append(diags, config.CheckConfigFunctions(s)...)
		}
	}
	if diags.HasErrors() {
		return exitError{code: 1, msg: stripNewline(config.FormatDiagnostics(diags))}
	}
	return nil
}

// sourceCount is the number of sources of a configuration.
func sourceCount(cfg *config.Config) int {
	n := 0
	for _, l := range cfg.Layers {
		n += len(l.Sources)
	}
	return n
}

// isLoopback tells whether a listen address only accepts local connections.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func serveCmd() *cobra.Command {
	var cfgPath, listen, dataDir string
	var limits api.Limits
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the layers of a configuration",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cfgPath)
			if err != nil {
				return err
			}
			fileService := cfg.Service
			if listen != "" {
				cfg.Service.Listen = listen
			}
			if dataDir != "" {
				cfg.Service.DataDir = dataDir
			}
			return serve(cfg, cfgPath, fileService, limits)
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "a layer file, or a folder of *.hcl files (required)")
	cmd.Flags().StringVar(&listen, "listen", "", "address to listen on (overrides service.listen)")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "where Badger keeps the data (overrides service.data_dir)")
	cmd.Flags().IntVar(&limits.MaxConnections, "max-connections", api.DefaultMaxConnections, "HTTP connections served at once; past it, a reserve answers only health checks and metrics")
	cmd.Flags().IntVar(&limits.ReserveConnections, "reserve-connections", api.DefaultReserveConnections, "connections past --max-connections kept for /healthz, /readyz and /metrics")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}

// serve runs the host until a signal stops it. fileService is the service
// block as the files say it, before flags override it: a reload compares
// against it.
func serve(cfg *config.Config, cfgPath string, fileService config.Service, limits api.Limits) error {
	if os.Getenv("GOGC") == "" {
		// Badger's memtables live on the Go heap: collecting at 1.5× the
		// live heap rather than 2× keeps the host's memory flat for a
		// little more GC work. GOGC and GOMEMLIMIT still override.
		debug.SetGCPercent(50)
	}
	secrets := redact.New()
	configSecrets(cfg, secrets)
	log := newLogger(cfg.Service, secrets)
	systemd := newSDNotifier(log)
	if cfg.Service.AdminToken == "" && !isLoopback(cfg.Service.Listen) {
		return exitError{code: 1, msg: fmt.Sprintf("refusing to listen on %s without an admin token: set service { admin_token = ... } or listen on a loopback address", cfg.Service.Listen)}
	}
	key, err := encryptionKey(cfg.Service)
	if err != nil {
		return err
	}
	plugins := pluginManager(cfg, log)
	if err := preflight(cfg, plugins); err != nil {
		return err // before anything opens or listens: a missing plugin ends serve at once
	}
	st, err := openStore(cfg.Service, key, log.Named("store"))
	if err != nil {
		// A driver's error may quote its dsn.
		return errors.New(secrets.Replace(err.Error()))
	}
	rep, err := openReplicas(cfg, log)
	if err != nil {
		st.Close()
		return errors.New(secrets.Replace(err.Error()))
	}
	defer rep.close()
	defer st.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := engine.NewMetrics()
	if err := metrics.Register(reg); err != nil {
		return err
	}
	deliveryMetrics := notify.NewMetrics()
	if err := deliveryMetrics.Register(reg); err != nil {
		return err
	}
	eng, err := engine.New(engine.Options{Config: cfg, Store: st, Plugins: plugins, Logger: log.Named("engine"), Metrics: metrics, Redactor: secrets, Cluster: rep.clusterOptions()})
	if err != nil {
		return err
	}
	dashboard, err := ui.New(ui.Options{Logger: log.Named("ui")})
	if err != nil {
		return err
	}
	handler, err := api.New(api.Options{Engine: eng, Plugins: plugins, Logger: log.Named("api"), Registry: reg, AdminToken: cfg.Service.AdminToken, Store: st, Limits: limits, Dashboard: dashboard})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Service.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Service.Listen, err)
	}
	srv := handler.HTTPServer()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(handler.Listener(ln)) }()
	log.Info("listening", "addr", ln.Addr().String(), "data_dir", cfg.Service.DataDir)
	if addr := os.Getenv("SYNCLAYER_PPROF"); addr != "" {
		// Profiling for benchmarks and support, on its own listener; never
		// on by default.
		if !isLoopback(addr) {
			return exitError{code: 1, msg: "SYNCLAYER_PPROF must be a loopback address"}
		}
		go func() {
			mux := http.NewServeMux()
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
			if err := http.ListenAndServe(addr, mux); err != nil {
				log.Warn("pprof listener", "error", err)
			}
		}()
	}

	startCtx, cancelStart := context.WithTimeout(context.Background(), 2*time.Minute)
	err = eng.Start(startCtx)
	cancelStart()
	if err != nil {
		srv.Close()
		eng.Stop(context.Background())
		return exitError{code: 1, msg: err.Error()}
	}
	// Outbound events: after the engine has started (and recovered its
	// runs); stopped after it, before the store closes.
	notifier, err := startDeliverer(cfg, st, rep, log, deliveryMetrics)
	if err != nil {
		srv.Close()
		eng.Stop(context.Background())
		return exitError{code: 1, msg: err.Error()}
	}
	log.Info("ready", "layers", len(cfg.Layers))
	systemd.ready(fmt.Sprintf("serving %d layer(s) on %s", len(cfg.Layers), ln.Addr()))
	watchdogStop := make(chan struct{})
	defer close(watchdogStop)
	systemd.startWatchdog(watchdogStop)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	for {
		select {
		case err := <-serveErr:
			systemd.stopping()
			eng.Stop(context.Background())
			notifier.Stop(context.Background())
			return err
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				systemd.reloading()
				if next := reload(cfgPath, cfg, fileService, st, rep, metrics, log, secrets); next != nil {
					eng.Stop(context.Background())
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
					err := next.eng.Start(ctx)
					cancel()
					if err != nil {
						// The new configuration passed its checks but would
						// not start: go back to the old one.
						log.Error("reload: the new configuration did not start; keeping the running one", "error", err)
						next.eng.Stop(context.Background())
						pm := pluginManager(cfg, log)
						old, oerr := engine.New(engine.Options{Config: cfg, Store: st, Plugins: pm, Logger: log.Named("engine"), Metrics: metrics, Redactor: secrets, Cluster: rep.clusterOptions()})
						if oerr == nil {
							oerr = old.Start(context.Background())
						}
						if oerr != nil {
							return fmt.Errorf("reload failed and the previous configuration could not be restarted: %w", oerr)
						}
						next = &loaded{cfg: cfg, eng: old, plugins: pm}
					} else {
						log.Info("reloaded the configuration", "layers", len(next.cfg.Layers))
					}
					cfg, eng = next.cfg, next.eng
					handler.SetEngine(next.eng, next.plugins)
					handler.SetAdminToken(cfg.Service.AdminToken)
					notifier.Reload(cfg)
				}
				systemd.ready(fmt.Sprintf("serving %d layer(s) on %s", len(cfg.Layers), ln.Addr()))
				continue
			}
			log.Info("shutting down", "signal", sig.String())
			systemd.stopping()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if srv.Shutdown(ctx) != nil {
				// Answers still streaming after the drain (a long backup,
				// a slow reader) are cut: the store closes next.
				srv.Close()
			}
			eng.Stop(ctx)
			notifier.Stop(ctx)
			cancel()
			return nil
		}
	}
}

type loaded struct {
	cfg     *config.Config
	eng     *engine.Engine
	plugins *plugin.Manager
}

// reload loads and checks the configuration again for SIGHUP. It returns
// nil, after logging why, when the new files are invalid: the running
// configuration then stays. The admin token reloads with the rest; the
// other service settings (listen, data_dir, encryption_key, logging) need
// a restart.
func reload(path string, running *config.Config, fileService config.Service, st store.Store, rep *replicas, metrics *engine.Metrics, log hclog.Logger, secrets *redact.Redactor) *loaded {
	log.Info("SIGHUP: reloading the configuration", "path", path)
	cfg, diags := config.Load(path)
	if diags.HasErrors() {
		log.Error("reload refused; the running configuration stays:\n" + stripNewline(config.FormatDiagnostics(diags)))
		return nil
	}
	a, b := cfg.Service, fileService
	a.Range, b.Range = hcl.Range{}, hcl.Range{}
	a.AdminToken, b.AdminToken = "", ""
	if a != b {
		log.Warn("reload: changes to the service block other than admin_token take effect at the next restart")
	}
	token := cfg.Service.AdminToken
	if token == "" && !isLoopback(running.Service.Listen) {
		log.Error("reload refused; the running configuration stays: the new files set no admin_token, and the host listens on " + running.Service.Listen + ", not on a loopback address")
		return nil
	}
	if token != running.Service.AdminToken {
		log.Info("reload: the admin token changed; requests with the old one get 401 once the reload completes")
	}
	cfg.Service = running.Service
	cfg.Service.AdminToken = token
	configSecrets(cfg, secrets)
	if err := preflight(cfg, pluginManager(cfg, log)); err != nil {
		log.Error("reload refused; the running configuration stays:\n" + err.Error())
		return nil
	}
	probe, err := engine.New(engine.Options{Config: cfg, Plugins: pluginManager(cfg, log), Logger: log.Named("engine"), Redactor: secrets})
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err = probe.Validate(ctx)
		cancel()
	}
	if err != nil {
		log.Error("reload refused; the running configuration stays:\n" + err.Error())
		return nil
	}
	plugins := pluginManager(cfg, log)
	eng, err := engine.New(engine.Options{Config: cfg, Store: st, Plugins: plugins, Logger: log.Named("engine"), Metrics: metrics, Redactor: secrets, Cluster: rep.clusterOptions()})
	if err != nil {
		log.Error("reload refused", "error", err)
		return nil
	}
	return &loaded{cfg: cfg, eng: eng, plugins: plugins}
}

func encryptionKey(svc config.Service) ([]byte, error) {
	k := svc.EncryptionKey
	if k == "" {
		return nil, nil
	}
	if n := len(k); n != 16 && n != 24 && n != 32 {
		return nil, exitError{code: 1, msg: "service.encryption_key must be 16, 24 or 32 bytes (AES-128, -192 or -256)"}
	}
	return []byte(k), nil
}

func validateCmd() *cobra.Command {
	var cfgPath string
	var noPlugins bool
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check a configuration: HCL, and each config block against its connector's schema",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cfgPath)
			if err != nil {
				return err
			}
			secrets := redact.New()
			configSecrets(cfg, secrets)
			log := newLogger(config.Service{LogLevel: "warn", LogFormat: cfg.Service.LogFormat}, secrets)
			pm := pluginManager(cfg, log)
			if err := preflight(cfg, pm); err != nil {
				return err
			}
			if noPlugins {
				// Say plainly what was not checked: only a connector knows
				// its config attributes.
				fmt.Printf("%d file(s), %d layer(s): HCL, plugins installed and env()/file() calls OK; "+
					"not checked without --no-plugins: %d config block(s) against their connectors' schemas\n",
					len(cfg.Files), len(cfg.Layers), sourceCount(cfg))
				return nil
			}
			eng, err := engine.New(engine.Options{Config: cfg, Plugins: pm, Logger: log, Redactor: secrets})
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := eng.Validate(ctx); err != nil {
				return exitError{code: 1, msg: stripNewline(err.Error())}
			}
			fmt.Printf("%d file(s), %d layer(s): valid\n", len(cfg.Files), len(cfg.Layers))
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "a layer file, or a folder of *.hcl files (required)")
	cmd.Flags().BoolVar(&noPlugins, "no-plugins", false, "start no plugin: check the HCL, that plugins are installed and env()/file() calls, not config blocks against their schemas")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}

// openStore opens the store the service block names.
func openStore(svc config.Service, key []byte, log hclog.Logger) (store.Store, error) {
	switch svc.Store.Driver {
	case config.StorePostgres:
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// Hosts share the database: runs, schedules, the inbox and the
		// deliveries are distributed (openReplicas, core/cluster).
		st, err := postgres.Open(ctx, postgres.Options{DSN: svc.Store.DSN, Logger: log})
		if err != nil {
			return nil, err
		}
		return st, nil
	default:
		return badgerstore.Open(badgerstore.Options{Dir: svc.DataDir, EncryptionKey: key, Logger: log, MemoryLimit: true})
	}
}
