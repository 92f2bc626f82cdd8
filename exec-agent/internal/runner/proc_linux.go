package runner

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// canList: members finds every process of a task.
const canList = true

type procStat struct {
	pid, ppid, pgrp, sid int
	zombie               bool
}

// members returns the live (non-zombie) processes of the task, found in
// ProcRoot: those in its process group or session, the descendants of its
// main process and of those, and any process whose environment carries the
// task's marker (a grandchild that called setsid and whose parent died is
// reparented to init, but keeps the environment it inherited).
func (pr *proc) members() []int {
	ents, err := os.ReadDir(pr.procRoot)
	if err != nil {
		return nil
	}
	all := make([]procStat, 0, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == pr.self {
			continue
		}
		if st, ok := readStat(pr.procRoot, pid); ok {
			all = append(all, st)
		}
	}
	in := map[int]bool{}
	children := map[int][]int{}
	for _, st := range all {
		children[st.ppid] = append(children[st.ppid], st.pid)
		if !pr.markerOnly && (st.pgrp == pr.pgid || st.sid == pr.pgid || st.pid == pr.pgid) {
			in[st.pid] = true
		}
	}
	needle := []byte(markerEnv + "=" + pr.marker + "\x00")
	for _, st := range all {
		if !in[st.pid] && !st.zombie && hasEnv(pr.procRoot, st.pid, needle) {
			in[st.pid] = true
		}
	}
	queue := make([]int, 0, len(in))
	for pid := range in {
		queue = append(queue, pid)
	}
	for len(queue) > 0 {
		pid := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		for _, c := range children[pid] {
			if !in[c] {
				in[c] = true
				queue = append(queue, c)
			}
		}
	}
	var live []int
	for _, st := range all {
		if in[st.pid] && !st.zombie {
			live = append(live, st.pid)
		}
	}
	return live
}

// readStat parses /proc/<pid>/stat: "pid (comm) state ppid pgrp session …",
// where comm may hold spaces and parentheses.
func readStat(root string, pid int) (procStat, bool) {
	b, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 4 {
		return procStat{}, false
	}
	st := procStat{pid: pid, zombie: f[0][0] == 'Z' || f[0][0] == 'X'}
	var e1, e2, e3 error
	st.ppid, e1 = strconv.Atoi(string(f[1]))
	st.pgrp, e2 = strconv.Atoi(string(f[2]))
	st.sid, e3 = strconv.Atoi(string(f[3]))
	return st, e1 == nil && e2 == nil && e3 == nil
}

func hasEnv(root string, pid int, needle []byte) bool {
	b, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "environ"))
	if err != nil {
		return false
	}
	return bytes.HasPrefix(b, needle) || bytes.Contains(b, append([]byte{0}, needle...))
}

// pending returns how many output bytes wait unread in the pipe or pty
// (FIONREAD), 0 when that cannot be told.
func (pr *proc) pending() int {
	rc, err := pr.out.SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	_ = rc.Control(func(fd uintptr) {
		if v, err := unix.IoctlGetInt(int(fd), unix.TIOCINQ); err == nil {
			n = v
		}
	})
	return n
}
