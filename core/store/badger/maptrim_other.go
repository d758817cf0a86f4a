//go:build !linux

package badger

// DefaultMappedBudget is the file-backed RSS above which the store pages
// out the layers' mapped Badger files (Options.MappedBudget). Only Linux
// trims; elsewhere the setting has no effect.
const DefaultMappedBudget = 128 << 20

// mapTrimmer does nothing outside Linux: the kernel interface it uses
// (/proc/self/maps, MADV_PAGEOUT) is Linux's.
type mapTrimmer struct{}

func startMapTrimmer(dir string, budget int64) *mapTrimmer { return &mapTrimmer{} }

func (t *mapTrimmer) close() {}
