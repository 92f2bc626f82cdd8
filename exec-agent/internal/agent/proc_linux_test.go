package agent

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// liveGroupMembers returns the processes of process group pgid that are
// not zombies (a killed orphan stays a zombie until init reaps it).
func liveGroupMembers(t *testing.T, pgid int) []string {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var live []string
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:]) // state, ppid, pgrp, …
		if len(f) < 3 || f[0] == "Z" || f[2] != strconv.Itoa(pgid) {
			continue
		}
		live = append(live, s[:i+1]+" "+f[0])
	}
	return live
}
