package sdk

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/synclayer/synclayer/plugin-sdk/internal/wire"
	connectorv1 "github.com/synclayer/synclayer/proto/connector/v1"
)

// LogLevelEnv is the environment variable that sets the plugin's log level
// (trace, debug, info, warn, error); the default is info. The host sets it
// when it launches the plugin.
const LogLevelEnv = "SYNCLAYER_PLUGIN_LOG_LEVEL"

func init() {
	wire.Adapt = func(c any) (wire.Handler, error) {
		conn, ok := c.(Connector)
		if !ok {
			return nil, fmt.Errorf("sdk: %T does not implement sdk.Connector", c)
		}
		return newHandler(conn)
	}
	wire.IsTransient = IsTransient
	wire.IsUnauthorized = IsUnauthorized
}

// Serve runs the connector as a synclayer plugin: it answers the host over
// go-plugin's gRPC protocol (spoken by the SDK itself, see goplugin.go)
// until the host stops it, then exits. Call it
// from main and do nothing else there:
//
//	func main() { sdk.Serve(&MyConnector{}) }
//
// Serve calls Describe once at start-up to validate the description and
// derive the config schema; a panic or an invalid description is logged at
// error level and the process exits with status 1, so the host shows why.
// The plugin exits by itself when its host process is gone. Run by hand
// rather than by the host, it explains so on stderr and exits with status 1.
// Nothing is ever printed to standard output, which belongs to the
// handshake with the host.
func Serve(c Connector) {
	if os.Getenv(connectorv1.MagicCookieKey) != connectorv1.MagicCookieValue {
		fmt.Fprint(os.Stderr, notLaunchedByHost(os.Args[0]))
		os.Exit(1)
	}
	level := logLevel()
	// The stderr logger keeps the real stderr: serveGoPlugin later points
	// os.Stderr at /dev/null, while the host parses fd 2 as hclog JSON.
	log := hclog.New(&hclog.LoggerOptions{Output: os.Stderr, JSONFormat: true, Level: level})

	// Guard the handshake: whatever the connector prints while describing
	// itself goes to stderr, not to stdout where the host expects the
	// handshake line.
	stdout := os.Stdout
	os.Stdout = os.Stderr
	h, err := newHandler(c)
	os.Stdout = stdout
	if err != nil {
		log.Error("the connector failed to start", "error", err.Error())
		os.Exit(1)
	}

	go watchParent(log, os.Getppid(), time.Second)

	tlsConfig, certLine, err := serverTLS()
	if err != nil {
		log.Error("the host's TLS settings are unusable", "error", err.Error())
		os.Exit(1)
	}
	if err := serveGoPlugin(log, tlsConfig, certLine, wire.NewServer(h, log, level), wire.ServerOptions()); err != nil {
		log.Error("serving the host failed", "error", err.Error())
		os.Exit(1)
	}
	os.Exit(0)
}

func logLevel() hclog.Level {
	l := hclog.LevelFromString(os.Getenv(LogLevelEnv))
	if l == hclog.NoLevel {
		return hclog.Info
	}
	return l
}

// watchParent exits the process once its parent changes: the host died
// without stopping the plugin (go-plugin does not notice that by itself).
func watchParent(log hclog.Logger, ppid int, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for range t.C {
		if os.Getppid() != ppid {
			log.Warn("the synclayer host is gone; the plugin stops", "host_pid", ppid)
			os.Exit(1)
		}
	}
}

func notLaunchedByHost(arg0 string) string {
	bin := strings.TrimSuffix(filepath.Base(arg0), ".exe")
	name := strings.TrimPrefix(bin, "synclayer-plugin-")
	return fmt.Sprintf(`%s is a synclayer connector plugin.

It is not meant to be run by hand: the synclayer host starts it and talks to
it over gRPC. To use it, name it in a source of a layer file:

    layer "example" {
      source "example" {
        plugin = %q
        config { ... }
      }
    }

and start the host with: synclayer serve --config <file or folder>
`, bin, name)
}
