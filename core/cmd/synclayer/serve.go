package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/synclayer/synclayer/core/api"
	"github.com/synclayer/synclayer/core/config"
	"github.com/synclayer/synclayer/core/engine"
	"github.com/synclayer/synclayer/core/plugin"
	"github.com/synclayer/synclayer/core/store"
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

func newLogger(svc config.Service) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "synclayer",
		Level:      hclog.LevelFromString(svc.LogLevel),
		JSONFormat: svc.LogFormat == "json",
		Output:     os.Stderr,
		TimeFormat: time.RFC3339Nano,
	})
}

func pluginManager(cfg *config.Config, log hclog.Logger) *plugin.Manager {
	return plugin.NewManager(plugin.Options{Logger: log, Declared: cfg.Plugins})
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
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the layers of a configuration",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cfgPath)
			if err != nil {
				return err
			}
			if listen != "" {
				cfg.Service.Listen = listen
			}
			if dataDir != "" {
				cfg.Service.DataDir = dataDir
			}
			return serve(cfg)
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "a layer file, or a folder of *.hcl files (required)")
	cmd.Flags().StringVar(&listen, "listen", "", "address to listen on (overrides service.listen)")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "where Badger keeps the data (overrides service.data_dir)")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}

func serve(cfg *config.Config) error {
	log := newLogger(cfg.Service)
	if cfg.Service.AdminToken == "" && !isLoopback(cfg.Service.Listen) {
		return exitError{code: 1, msg: fmt.Sprintf("refusing to listen on %s without an admin token: set service { admin_token = ... } or listen on a loopback address", cfg.Service.Listen)}
	}
	var key []byte
	if k := cfg.Service.EncryptionKey; k != "" {
		key = []byte(k)
		if n := len(key); n != 16 && n != 24 && n != 32 {
			return exitError{code: 1, msg: "service.encryption_key must be 16, 24 or 32 bytes (AES-128, -192 or -256)"}
		}
	}
	st, err := store.Open(store.Options{Dir: cfg.Service.DataDir, EncryptionKey: key, Logger: log.Named("store")})
	if err != nil {
		return err
	}
	defer st.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := engine.NewMetrics()
	if err := metrics.Register(reg); err != nil {
		return err
	}
	plugins := pluginManager(cfg, log)
	defer plugins.Shutdown()
	eng, err := engine.New(engine.Options{Config: cfg, Store: st, Plugins: plugins, Logger: log.Named("engine"), Metrics: metrics})
	if err != nil {
		return err
	}
	handler, err := api.New(api.Options{Engine: eng, Plugins: plugins, Logger: log.Named("api"), Registry: reg, AdminToken: cfg.Service.AdminToken})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Service.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Service.Listen, err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "data_dir", cfg.Service.DataDir)

	startCtx, cancelStart := context.WithTimeout(context.Background(), 2*time.Minute)
	err = eng.Start(startCtx)
	cancelStart()
	if err != nil {
		srv.Close()
		eng.Stop(context.Background())
		return exitError{code: 1, msg: err.Error()}
	}
	log.Info("ready", "layers", len(cfg.Layers))

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	for {
		select {
		case err := <-serveErr:
			eng.Stop(context.Background())
			return err
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				log.Warn("SIGHUP: reloading the configuration is not supported yet; restart to apply changes")
				continue
			}
			log.Info("shutting down", "signal", sig.String())
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_ = srv.Shutdown(ctx)
			eng.Stop(ctx)
			cancel()
			return nil
		}
	}
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
			if !noPlugins {
				log := newLogger(config.Service{LogLevel: "warn", LogFormat: cfg.Service.LogFormat})
				eng, err := engine.New(engine.Options{Config: cfg, Plugins: pluginManager(cfg, log), Logger: log})
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				if err := eng.Validate(ctx); err != nil {
					return exitError{code: 1, msg: err.Error()}
				}
			}
			fmt.Printf("%d file(s), %d layer(s): valid\n", len(cfg.Files), len(cfg.Layers))
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "a layer file, or a folder of *.hcl files (required)")
	cmd.Flags().BoolVar(&noPlugins, "no-plugins", false, "check the HCL only; do not start plugins to check config blocks")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}
