package local

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Binaries holds absolute paths of the external programs a local site needs.
type Binaries struct {
	MariaDBD      string // Debian package mariadb-server
	MariaDBInstal string // mariadb-install-db, package mariadb-server
	App           string // the demo application (built by make)
}

// FindBinary locates an external program on PATH or in the sbin directories
// that a non-login root shell may lack, and otherwise returns one clear error
// that names the Debian package to install.
func FindBinary(name, debianPackage string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return filepath.Abs(p)
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin", "/usr/local/bin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found: install the Debian package %q (apt-get install -y %s) or run `make deps`", name, debianPackage, debianPackage)
}

// FindBinaries locates mariadbd and mariadb-install-db, and checks that the
// demo application binary exists at appPath.
func FindBinaries(appPath string) (Binaries, error) {
	var b Binaries
	var err error
	if b.MariaDBD, err = FindBinary("mariadbd", "mariadb-server"); err != nil {
		return b, err
	}
	if b.MariaDBInstal, err = FindBinary("mariadb-install-db", "mariadb-server"); err != nil {
		return b, err
	}
	if appPath != "" {
		abs, err := filepath.Abs(appPath)
		if err != nil {
			return b, err
		}
		if _, err := os.Stat(abs); err != nil {
			return b, fmt.Errorf("demo application binary %s: %w (run `make build`)", abs, err)
		}
		b.App = abs
	}
	return b, nil
}
