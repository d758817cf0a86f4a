// Package testbin builds the project's binaries for tests that drive real
// processes (plugins, the host), so that every test package builds them the
// same way.
package testbin

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
)

// Root returns the module's root: the nearest folder above the working
// directory that holds go.mod.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testbin: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Build builds each target into dir: the map goes from the binary's file
// name to its package, relative to the module root ("./plugins/files").
func Build(dir string, targets map[string]string) error {
	root, err := Root()
	if err != nil {
		return err
	}
	names := make([]string, 0, len(targets))
	for name := range targets {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), targets[name])
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", targets[name], err, out)
		}
	}
	return nil
}

// Main builds targets into a temporary folder, points *dir at it (symbolic
// links resolved), runs the package's tests, removes the folder and exits:
// the whole TestMain of a package whose tests launch those binaries.
func Main(m *testing.M, dir *string, targets map[string]string) {
	tmp, err := os.MkdirTemp("", "synclayer-test-bin-")
	if err == nil {
		err = Build(tmp, targets)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(tmp)
		os.Exit(1)
	}
	*dir = tmp
	if real, err := filepath.EvalSymlinks(tmp); err == nil {
		*dir = real
	}
	code := m.Run()
	os.RemoveAll(tmp)
	os.Exit(code)
}
