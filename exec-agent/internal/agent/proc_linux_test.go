package agent

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Fields of /proc/<pid>/stat after the command name, from 0: state, ppid,
// pgrp, session, …
const (
	statPgrp    = 2
	statSession = 3
)

// liveProcs returns the processes ("pid (comm)") whose stat field (statPgrp,
// statSession) is id, but for zombies: a killed orphan stays a zombie until
// init reaps it.
func liveProcs(t *testing.T, field, id int) []string {
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
		f := strings.Fields(s[i+1:])
		if len(f) <= field || f[0] == "Z" || f[field] != strconv.Itoa(id) {
			continue
		}
		live = append(live, s[:i+1])
	}
	return live
}

// liveGroupMembers returns the live processes of process group pgid.
func liveGroupMembers(t *testing.T, pgid int) []string { return liveProcs(t, statPgrp, pgid) }
