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
	"strings"
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
//
// When $SYNCLAYER_BIN names a folder of binaries just built from this tree
// (`make test` sets it right after `make build`), the host and the
// first-party plugins are copied from there instead of linked again: each
// link costs seconds, and a test run needs a dozen of them.
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
	prebuilt := os.Getenv("SYNCLAYER_BIN")
	var build []string // names still to build
	for _, name := range names {
		if prebuilt != "" {
			if ok, err := copyPrebuilt(prebuilt, targets[name], filepath.Join(dir, name)); err != nil {
				return err
			} else if ok {
				continue
			}
		}
		build = append(build, name)
	}
	if len(build) > 1 {
		return buildTogether(root, dir, build, targets)
	}
	for _, name := range build {
		if err := goBuild(root, filepath.Join(dir, name), targets[name]); err != nil {
			return err
		}
	}
	return nil
}

func goBuild(root, out string, pkgs ...string) error {
	cmd := exec.Command("go", append([]string{"build", "-o", out}, pkgs...)...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", strings.Join(pkgs, " "), err, b)
	}
	return nil
}

// buildTogether builds several targets with one go command, which links
// them in parallel, then names them; targets whose packages end in the
// same folder name are built one by one.
func buildTogether(root, dir string, names []string, targets map[string]string) error {
	tmp, err := os.MkdirTemp(dir, ".build-")
	if err != nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if tmp, err = os.MkdirTemp(dir, ".build-"); err != nil {
			return err
		}
	}
	defer os.RemoveAll(tmp)
	base := map[string]string{} // package folder name -> binary name
	var pkgs, alone []string
	for _, name := range names {
		b := filepath.Base(targets[name])
		if _, dup := base[b]; dup {
			alone = append(alone, name)
			continue
		}
		base[b] = name
		pkgs = append(pkgs, targets[name])
	}
	if err := goBuild(root, tmp+string(filepath.Separator), pkgs...); err != nil {
		return err
	}
	for b, name := range base {
		if err := os.Rename(filepath.Join(tmp, b), filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	for _, name := range alone {
		if err := goBuild(root, filepath.Join(dir, name), targets[name]); err != nil {
			return err
		}
	}
	return nil
}

// copyPrebuilt copies the binary `make build` makes of pkg (synclayer for
// ./core/cmd/synclayer, synclayer-plugin-<name> for ./plugins/<name>) from
// the folder bin to dst; ok is false when there is none.
func copyPrebuilt(bin, pkg, dst string) (ok bool, err error) {
	var name string
	switch rest, isPlugin := strings.CutPrefix(pkg, "./plugins/"); {
	case pkg == "./core/cmd/synclayer":
		name = "synclayer"
	case isPlugin && !strings.Contains(rest, "/"):
		name = "synclayer-plugin-" + rest
	default:
		return false, nil
	}
	b, err := os.ReadFile(filepath.Join(bin, name))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return false, err
	}
	return true, os.WriteFile(dst, b, 0o755)
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
