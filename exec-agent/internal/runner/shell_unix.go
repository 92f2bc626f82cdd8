//go:build unix

package runner

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/creack/pty"
)

// defaultPasswd is the password database read for login shells.
const defaultPasswd = "/etc/passwd"

// startShell builds the session's command line and environment and starts
// it in a pty of the asked size.
func (r *Runner) startShell(spec ShellSpec) (*proc, error) {
	env := r.opts.BaseEnv
	if env == nil {
		env = os.Environ()
	}
	env = slices.Clip(env)
	var mark [8]byte
	_, _ = rand.Read(mark[:])
	marker := hex.EncodeToString(mark[:])

	var argv []string
	argv0 := ""
	dir := "/"
	self, err := user.Current()
	if err != nil {
		return nil, fmt.Errorf("current user: %w", err)
	}
	if spec.User == "" || spec.User == self.Username {
		passwd := spec.Passwd
		if passwd == "" {
			passwd = defaultPasswd
		}
		ent := lookupPasswd(passwd, self.Uid)
		if ent.home == "" {
			ent.home = self.HomeDir
		}
		if ent.shell == "" || !executable(ent.shell) {
			ent.shell = r.opts.Shell
		}
		// What login(1) sets; the agent's own service environment may
		// lack them.
		env = setEnv(env, "HOME", ent.home)
		env = setEnv(env, "USER", self.Username)
		env = setEnv(env, "LOGNAME", self.Username)
		env = setEnv(env, "SHELL", ent.shell)
		if fi, err := os.Stat(ent.home); err == nil && fi.IsDir() {
			dir = ent.home
		}
		if spec.Cmd == "" {
			argv = []string{ent.shell}
			argv0 = "-" + filepath.Base(ent.shell) // a login shell, as login(1) starts it
		} else {
			argv = []string{r.opts.Shell, "-c", spec.Cmd}
		}
	} else {
		if err := validUser(spec.User); err != nil {
			return nil, fmt.Errorf("%w: user %q: %v", ErrSpec, spec.User, err)
		}
		if spec.Cmd == "" {
			argv = []string{r.opts.Su, "-l", spec.User}
		} else {
			argv = []string{r.opts.Su, "-l", "-s", r.opts.Shell, "-c", spec.Cmd, spec.User}
		}
	}
	env = append(append(env, spec.Env...), markerEnv+"="+marker)

	path, err := exec.LookPath(argv[0])
	if err != nil {
		return nil, fmt.Errorf("start %q: %w", argv[0], err)
	}
	cmd := &exec.Cmd{Path: path, Args: slices.Clone(argv), Env: env, Dir: dir}
	if argv0 != "" {
		cmd.Args[0] = argv0
	}
	pr := &proc{cmd: cmd, isPty: true, marker: marker, procRoot: r.opts.ProcRoot, self: os.Getpid()}
	if err := pr.startPtySize(pty.Winsize{Cols: spec.Cols, Rows: spec.Rows}); err != nil {
		return nil, fmt.Errorf("start %q: %w", argv[0], err)
	}
	pr.pgid = cmd.Process.Pid
	return pr, nil
}

// setEnv replaces or adds k in env.
func setEnv(env []string, k, v string) []string {
	prefix := k + "="
	env = slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, prefix) })
	return append(env, prefix+v)
}

func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// passwdEntry is what a session needs of a password database entry.
type passwdEntry struct {
	home, shell string
}

// lookupPasswd returns the entry of uid in the passwd file at path
// ("name:pw:uid:gid:gecos:home:shell" lines); the zero entry when the file
// or the uid is missing.
func lookupPasswd(path, uid string) passwdEntry {
	f, err := os.Open(path)
	if err != nil {
		return passwdEntry{}
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if e, ok := parsePasswdLine(sc.Text(), uid); ok {
			return e
		}
	}
	return passwdEntry{}
}

// parsePasswdLine returns the entry of line when it is uid's.
func parsePasswdLine(line, uid string) (passwdEntry, bool) {
	f := strings.Split(line, ":")
	if len(f) != 7 || f[2] != uid {
		return passwdEntry{}, false
	}
	if _, err := strconv.ParseUint(uid, 10, 32); err != nil {
		return passwdEntry{}, false
	}
	e := passwdEntry{home: f[5], shell: f[6]}
	if !filepath.IsAbs(e.home) {
		e.home = ""
	}
	if !filepath.IsAbs(e.shell) {
		e.shell = ""
	}
	return e, true
}

// hangup sends SIGHUP (and SIGCONT, so stopped jobs see it) to the
// session's process group, as the kernel does when a terminal goes away.
func (pr *proc) hangup(log *slog.Logger) {
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGCONT} {
		if err := syscall.Kill(-pr.pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			log.Warn("shell: signal process group", "pgid", pr.pgid, "signal", sig, "err", err)
		}
	}
}
