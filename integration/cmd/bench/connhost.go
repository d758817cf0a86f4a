package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/synclayer/synclayer/core/api"
	"github.com/synclayer/synclayer/core/config"
	"github.com/synclayer/synclayer/core/engine"
	"github.com/synclayer/synclayer/core/plugin"
	"github.com/synclayer/synclayer/core/store"
)

// TEMPORARY (until the connection routes of the API are on main): with
// BENCH_CONNHOST=embedded the connections scenario runs its host as this
// bench binary in host mode: the same store, engine and API as
// `synclayer serve`, plus the two connection routes it needs (POST
// …/sources/{source}/connections and GET …/connections/{id}), mapped onto
// engine.CreateConnection and engine.GetConnection the way the API will.
// Delete this file and the BENCH_CONNHOST lines of connections.go once the
// API serves them.

// connHostEnv switches the bench binary into host mode; it then takes the
// arguments of `synclayer serve --config C --listen L --data-dir D`.
const connHostEnv = "BENCH_CONNHOST_SERVE"

func init() {
	if os.Getenv(connHostEnv) != "" {
		os.Exit(connHostMain(os.Args[1:]))
	}
}

// embeddedHost reports whether the connections scenario should run its
// host in this binary.
func embeddedHost() bool { return os.Getenv("BENCH_CONNHOST") == "embedded" }

// startEmbedded starts h as this binary in host mode: a folder of links
// to the plugins and, as "synclayer", to this binary, stands for the
// binaries' folder while it starts.
func (h *host) startEmbedded() {
	self, err := os.Executable()
	must(err)
	links := filepath.Join(h.dir, "bin")
	must(os.MkdirAll(links, 0o755))
	ents, err := os.ReadDir(binDir)
	must(err)
	for _, e := range ents {
		if e.Name() != "synclayer" {
			must(os.Symlink(filepath.Join(binDir, e.Name()), filepath.Join(links, e.Name())))
		}
	}
	must(os.Symlink(self, filepath.Join(links, "synclayer")))
	real := binDir
	binDir = links
	os.Setenv(connHostEnv, "1")
	h.start()
	os.Unsetenv(connHostEnv)
	binDir = real
}

func connHostMain(args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "")
	listen := fs.String("listen", "", "")
	dataDir := fs.String("data-dir", "", "")
	if len(args) == 0 || args[0] != "serve" || fs.Parse(args[1:]) != nil {
		fmt.Fprintln(os.Stderr, "connhost: want serve --config C --listen L --data-dir D")
		return 2
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50) // as `synclayer serve`
	}
	if os.Getenv("BENCH_CPUPROFILE") != "" {
		// Where the runs wait, for /debug/pprof/block and mutex.
		runtime.SetBlockProfileRate(100_000)
		runtime.SetMutexProfileFraction(10)
	}
	cfg, diags := config.Load(*cfgPath)
	if diags.HasErrors() {
		fmt.Fprintln(os.Stderr, config.FormatDiagnostics(diags))
		return 1
	}
	cfg.Service.Listen, cfg.Service.DataDir = *listen, *dataDir
	log := hclog.New(&hclog.LoggerOptions{Name: "synclayer", Level: hclog.Info, Output: os.Stderr})
	plugins := plugin.NewManager(plugin.Options{Logger: log, Declared: cfg.Plugins})
	st, err := store.Open(store.Options{Dir: *dataDir, Logger: log.Named("store")})
	if err != nil {
		fmt.Fprintln(os.Stderr, "connhost:", err)
		return 1
	}
	defer st.Close()
	reg := prometheus.NewRegistry()
	metrics := engine.NewMetrics()
	if err := metrics.Register(reg); err != nil {
		fmt.Fprintln(os.Stderr, "connhost:", err)
		return 1
	}
	eng, err := engine.New(engine.Options{Config: cfg, Store: st, Plugins: plugins, Logger: log.Named("engine"), Metrics: metrics})
	if err != nil {
		fmt.Fprintln(os.Stderr, "connhost:", err)
		return 1
	}
	handler, err := api.New(api.Options{Engine: eng, Plugins: plugins, Logger: log.Named("api"), Registry: reg, Store: st})
	if err != nil {
		fmt.Fprintln(os.Stderr, "connhost:", err)
		return 1
	}
	mux := http.NewServeMux()
	mux.Handle("/", handler)
	mux.HandleFunc("POST /v1/layers/{layer}/sources/{source}/connections", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			ID     string          `json:"id"`
			Config json.RawMessage `json:"config"`
			Check  *bool           `json:"check"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
			connHostError(w, fmt.Errorf("%w: %v", engine.ErrInvalid, err))
			return
		}
		c, err := eng.CreateConnection(r.Context(), r.PathValue("layer"), r.PathValue("source"),
			engine.ConnectionInput{ID: body.ID, Config: body.Config, NoCheck: body.Check != nil && !*body.Check})
		if err != nil {
			connHostError(w, err)
			return
		}
		connHostJSON(w, http.StatusCreated, c)
	})
	mux.HandleFunc("GET /v1/layers/{layer}/sources/{source}/connections/{id}", func(w http.ResponseWriter, r *http.Request) {
		c, err := eng.GetConnection(r.PathValue("layer"), r.PathValue("source"), r.PathValue("id"))
		if err != nil {
			connHostError(w, err)
			return
		}
		connHostJSON(w, http.StatusOK, c)
	})
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.ListenAndServe()
	if addr := os.Getenv("SYNCLAYER_PPROF"); addr != "" {
		pm := http.NewServeMux()
		pm.HandleFunc("/debug/pprof/", pprof.Index)
		pm.HandleFunc("/debug/pprof/profile", pprof.Profile)
		go http.ListenAndServe(addr, pm)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	err = eng.Start(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "connhost:", err)
		return 1
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	<-sigs
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	eng.Stop(ctx)
	return 0
}

func connHostJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func connHostError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	var ce *engine.CheckError
	switch {
	case errors.Is(err, engine.ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, engine.ErrExists):
		status = http.StatusConflict
	case errors.As(err, &ce):
		status = http.StatusUnprocessableEntity
	case errors.Is(err, engine.ErrUnknownConnection), errors.Is(err, engine.ErrUnknownSource):
		status = http.StatusNotFound
	case errors.Is(err, engine.ErrNotReady):
		status = http.StatusServiceUnavailable
	}
	connHostJSON(w, status, map[string]string{"error": err.Error()})
}
