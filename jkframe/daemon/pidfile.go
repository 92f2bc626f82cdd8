package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// takePidFile writes the supervisor's pid to path, refusing when the file
// names another live process; a stale file (dead process) is replaced. The
// file is written to a temporary name and linked into place, so readers never
// see a partial file and two supervisors starting together cannot both win.
// A pid reused by an unrelated process makes Run refuse too; the operator
// then removes the file. release removes the file if it still holds our pid.
func takePidFile(path string) (release func() error, err error) {
	self := os.Getpid()
	content := []byte(strconv.Itoa(self) + "\n")
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("daemon: pid file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(content); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("daemon: pid file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("daemon: pid file: %w", err)
	}
	for attempt := 0; ; attempt++ {
		err := os.Link(tmp.Name(), path)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || attempt > 0 {
			return nil, fmt.Errorf("daemon: pid file %s: %w", path, err)
		}
		old, rerr := os.ReadFile(path)
		if rerr != nil {
			return nil, fmt.Errorf("daemon: pid file %s: %w", path, rerr)
		}
		pid, perr := strconv.Atoi(string(bytes.TrimSpace(old)))
		if perr != nil || pid <= 0 {
			return nil, fmt.Errorf("daemon: pid file %s holds %q, not a pid: remove it if no supervisor runs", path, bytes.TrimSpace(old))
		}
		if pid != self && alive(pid) {
			return nil, fmt.Errorf("%w: pid file %s names live process %d", ErrAlreadyRunning, path, pid)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("daemon: remove stale pid file %s: %w", path, err)
		}
	}
	return func() error {
		cur, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(cur, content) {
			return nil // replaced or removed by someone else: not ours any more
		}
		return os.Remove(path)
	}, nil
}
