// Command synclayer is the synclayer host and its command-line client.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/experimental"

	"github.com/synclayer/synclayer/core/plugin"
)

func init() {
	// The proto codec takes its buffers from gRPC's default pool (see
	// plugin.BufferPool).
	experimental.SetDefaultBufferPool(plugin.BufferPool)
}

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	root := &cobra.Command{
		Use:           "synclayer",
		Short:         "synclayer keeps third-party data in a store you control, fresh and announced",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serveCmd(), validateCmd(), backupCmd(), restoreCmd(), migrateCmd())
	addClientCommands(root)
	if err := root.Execute(); err != nil {
		var ee exitError
		if asExit(err, &ee) {
			if ee.msg != "" {
				fmt.Fprintln(os.Stderr, ee.msg)
			}
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// exitError ends the process with a code after printing msg (if any).
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

func asExit(err error, target *exitError) bool {
	ee, ok := err.(exitError)
	if ok {
		*target = ee
	}
	return ok
}
