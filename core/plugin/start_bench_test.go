package plugin_test

import (
	"context"
	"testing"

	"github.com/synclayer/synclayer/core/plugin"
)

// BenchmarkLaunchDescribe times a plugin start as a source's first use
// waits for it: Launch of the files plugin to its Describe answer (the
// stop after it is outside the timing). make bench's plugin_start_ms is
// the same measure for the generator, against a trivial exec; this one is
// for profiling the host side:
//
//	go test -run '^$' -bench LaunchDescribe -cpuprofile cpu.out ./core/plugin/
//
// (SYNCLAYER_BIN=$PWD/bin after make build, to start the binaries make
// builds rather than plain go build ones.)
func BenchmarkLaunchDescribe(b *testing.B) {
	m := plugin.NewManager(plugin.Options{SearchPaths: []string{binDir}})
	defer m.Shutdown()
	ctx := context.Background()
	dir := b.TempDir()
	for b.Loop() {
		inst, err := m.Launch(ctx, plugin.LaunchSpec{Plugin: "files", Layer: "bench", Source: "files", Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := inst.Describe(ctx, "", "", nil); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		inst.Kill()
		b.StartTimer()
	}
}
