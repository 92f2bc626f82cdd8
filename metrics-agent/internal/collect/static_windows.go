package collect

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// installPaths are the files whose birth time tells when Windows was
// installed: the Windows directory's own files are older than the setup
// logs, which are written at installation.
func installPaths(Roots) []string {
	win := os.Getenv("SystemRoot")
	if win == "" {
		win = `C:\Windows`
	}
	return []string{filepath.Join(win, "Panther", "setupact.log"), filepath.Join(win, "System32", "config", "SYSTEM")}
}

func fileTime(path string) (time.Time, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}, err
	}
	return fi.ModTime().UTC(), nil
}

func (c *Collector) staticNet(_ *Static, w *warns) {
	w.addf("static.nameservers", "resolver list: %w", ErrUnsupported)
	w.addf("static.gateway", "default route: %w", ErrUnsupported)
	w.add("static.user", fmt.Errorf("account list: %w", ErrUnsupported))
}
