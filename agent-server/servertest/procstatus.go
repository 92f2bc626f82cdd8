package servertest

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ProcKB returns a field of /proc/<pid>/status that Linux gives in kB
// (VmRSS, VmHWM, VmSize…), in kB; pid 0 is this process. The benchmarks
// and tests that bound a process's memory read it here. Elsewhere than on
// Linux, and for a process gone, it returns an error.
func ProcKB(pid int, field string) (int64, error) {
	path, b, err := readProc(pid, "status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		v, ok := strings.CutPrefix(line, field+":")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %s %q: %w", path, field, strings.TrimSpace(v), err)
		}
		return n, nil
	}
	return 0, fmt.Errorf("%s: no %s", path, field)
}

// readProc reads /proc/<pid>/<name> (pid 0: /proc/self/<name>).
func readProc(pid int, name string) (string, []byte, error) {
	path := "/proc/self/" + name
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/%s", pid, name)
	}
	b, err := os.ReadFile(path)
	return path, b, err
}

// MustProcKB is ProcKB, failing t on an error.
func MustProcKB(t testing.TB, pid int, field string) int64 {
	t.Helper()
	n, err := ProcKB(pid, field)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// userHZ is the unit of the CPU times in /proc/<pid>/stat (USER_HZ, 100
// on every Linux the tests run on).
const userHZ = 100

// ProcCPU returns the CPU time pid has used (user + system, from
// /proc/<pid>/stat); pid 0 is this process. Elsewhere than on Linux, and
// for a process gone, it returns an error.
func ProcCPU(pid int) (time.Duration, error) {
	path, b, err := readProc(pid, "stat")
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses and may
	// hold blanks: state is field 3, utime 14, stime 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("%s: %q", path, b)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("%s: %q", path, b)
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%s: %q", path, b)
	}
	return time.Duration(u+s) * (time.Second / userHZ), nil
}

// MustProcCPU is ProcCPU, failing t on an error.
func MustProcCPU(t testing.TB, pid int) time.Duration {
	t.Helper()
	d, err := ProcCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
