package selfstat

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// userHZ is the unit of the CPU times in /proc/<pid>/stat. The kernel exports
// them in USER_HZ, which is 100 on every architecture Go supports.
const userHZ = 100

type osSampler struct {
	statPath string
	bootUnix int64
	total    uint64
	pageSize uint64
}

func newOSSampler(pid int, o Options) osSampler {
	root := o.ProcRoot
	if root == "" {
		root = "/proc"
	}
	s := osSampler{
		statPath: filepath.Join(root, strconv.Itoa(pid), "stat"),
		pageSize: uint64(os.Getpagesize()),
	}
	// Boot time and total memory do not change; read them once. Failures
	// leave zeros (start time relative to boot, no memory %).
	s.bootUnix, _ = readKey(filepath.Join(root, "stat"), "btime", 1)
	if kb, err := readKey(filepath.Join(root, "meminfo"), "MemTotal:", 1); err == nil {
		s.total = uint64(kb) * 1024
	}
	return s
}

func (s osSampler) totalMemory() uint64 { return s.total }

func (s osSampler) read() (procStat, error) {
	b, err := os.ReadFile(s.statPath)
	if err != nil {
		return procStat{}, err
	}
	return parseStat(b, s.bootUnix, s.pageSize)
}

// parseStat reads /proc/<pid>/stat. The command name (field 2) is in
// parentheses and may hold spaces and parentheses, so fields are counted
// from the last ')'.
func parseStat(b []byte, bootUnix int64, pageSize uint64) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("stat: no command name")
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state); we need up to field 24 (rss).
	if len(f) < 22 {
		return procStat{}, fmt.Errorf("stat: %d fields, want at least 24", len(f)+2)
	}
	num := func(field int) (uint64, error) {
		v, err := strconv.ParseUint(string(f[field-3]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("stat field %d: %w", field, err)
		}
		return v, nil
	}
	var v [5]uint64
	for k, field := range []int{14, 15, 20, 22, 24} { // utime stime threads starttime rss
		var err error
		if v[k], err = num(field); err != nil {
			return procStat{}, err
		}
	}
	return procStat{
		cpu:       time.Duration(v[0]+v[1]) * (time.Second / userHZ),
		threads:   int(v[2]),
		startUnix: bootUnix + int64(v[3]/userHZ),
		rss:       v[4] * pageSize,
	}, nil
}

// readKey returns the numeric field idx of the line starting with key.
func readKey(path, key string, idx int) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := bytes.Fields(sc.Bytes())
		if len(fields) > idx && string(fields[0]) == key {
			return strconv.ParseInt(string(fields[idx]), 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s: no %s line", path, key)
}
