//go:build unix

package runner

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// passWindow is how long after the start the agent answers a password
// prompt (see Spec.Pass).
const passWindow = 30 * time.Second

// ptySize is the terminal size commands see: wide, so that tools that cut
// lines at the terminal width (ps, ls) print whole lines.
var ptySize = pty.Winsize{Rows: 50, Cols: 200}

// command builds the argv: sh -c, or sudo / su around it.
func (r *Runner) command(spec Spec, p *prepared) error {
	script := shellScript(spec.Cmd, spec.Args)
	sh := r.opts.Shell
	switch spec.Auth {
	case "":
		p.argv = []string{sh, "-c", script}
		return nil
	case AuthSu, AuthSudo:
	default:
		return fmt.Errorf("%w: auth %q: want \"\", %q or %q", ErrSpec, clip(spec.Auth), AuthSu, AuthSudo)
	}
	user := spec.User
	if user == "" {
		user = "root"
	}
	if err := validUser(user); err != nil {
		return fmt.Errorf("%w: user %q: %v", ErrSpec, clip(user), err)
	}
	if spec.Auth == AuthSudo {
		p.argv = []string{r.opts.Sudo, "-S", "-u", user, "--", sh, "-c", script}
	} else {
		// -s: the user's login shell may be nologin (service accounts); the
		// script is written for sh.
		p.argv = []string{r.opts.Su, "-s", sh, "-c", script, user}
	}
	return nil
}

// proc is a started process with its output end.
type proc struct {
	cmd      *exec.Cmd
	out      *os.File // pty master or the read end of the output pipe
	stdin    *os.File // pipe mode with a password: the write end of stdin
	isPty    bool
	feedPass bool
	pgid     int
	marker   string
	procRoot string
	self     int
	// markerOnly: the tree is only the processes with the marker (and
	// their descendants), never the group or session pgid names — for a
	// task of a previous agent process whose pid now names another process
	// (see Runner.Reap).
	markerOnly bool
}

func startProc(p *prepared) (*proc, error) {
	path, err := exec.LookPath(p.argv[0])
	if err != nil {
		return nil, err
	}
	cmd := &exec.Cmd{Path: path, Args: p.argv, Env: p.env, Dir: p.dir}
	pr := &proc{cmd: cmd, isPty: !p.pipe, feedPass: p.feedPass, marker: p.marker, procRoot: p.procRoot, self: os.Getpid()}
	if p.pipe {
		err = pr.startPipes()
	} else {
		err = pr.startPty()
	}
	if err != nil {
		return nil, err
	}
	pr.pgid = cmd.Process.Pid
	return pr, nil
}

func (pr *proc) startPipes() error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	pr.cmd.Stdout, pr.cmd.Stderr = w, w
	var stdinR *os.File
	if pr.feedPass {
		stdinR, pr.stdin, err = os.Pipe()
		if err != nil {
			r.Close()
			w.Close()
			return err
		}
		pr.cmd.Stdin = stdinR
	}
	pr.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = pr.cmd.Start()
	w.Close()
	if stdinR != nil {
		stdinR.Close()
	}
	if err != nil {
		r.Close()
		if pr.stdin != nil {
			pr.stdin.Close()
		}
		return err
	}
	pr.out = r
	return nil
}

func (pr *proc) startPty() error { return pr.startPtySize(ptySize) }

// startPtySize starts the command in a new session with a pty of that size
// as its controlling terminal.
func (pr *proc) startPtySize(size pty.Winsize) error {
	master, tty, err := pty.Open()
	if err != nil {
		return fmt.Errorf("open pty: %w", err)
	}
	defer tty.Close()
	if err := pty.Setsize(master, &size); err != nil {
		master.Close()
		return fmt.Errorf("pty size: %w", err)
	}
	// pty.Open leaves the master in blocking mode; a non-blocking copy goes
	// through the runtime poller, so read deadlines work and a grandchild
	// that keeps the terminal open cannot hang the reader.
	m, err := pollable(master)
	if err != nil {
		return fmt.Errorf("pty: %w", err)
	}
	pr.cmd.Stdin, pr.cmd.Stdout, pr.cmd.Stderr = tty, tty, tty
	pr.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := pr.cmd.Start(); err != nil {
		m.Close()
		return err
	}
	pr.out = m
	return nil
}

// pollable returns a non-blocking duplicate of f (registered with the
// runtime poller) and closes f.
func pollable(f *os.File) (*os.File, error) {
	defer f.Close()
	fd, err := unix.Dup(int(f.Fd()))
	if err != nil {
		return nil, fmt.Errorf("dup: %w", err)
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("set non-blocking: %w", err)
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

func (pr *proc) pid() int { return pr.cmd.Process.Pid }

func (pr *proc) wait() *os.ProcessState {
	_ = pr.cmd.Wait() // the state is all we need; a non-zero exit is not an error here
	return pr.cmd.ProcessState
}

// stopEnds: stopReading leaves the processes holding the output alone.
const stopEnds = false

// stopReading makes the pending and later output reads return at once.
func (pr *proc) stopReading() { _ = pr.out.SetReadDeadline(time.Now()) }

// readBuffered reads, without waiting, what the output holds after
// stopReading, passing it to fn, and reports whether that reached the end
// of file (every writer had closed it: nothing was cut).
func (pr *proc) readBuffered(buf []byte, fn func([]byte)) (eof bool) {
	if err := pr.out.SetReadDeadline(time.Time{}); err != nil {
		return false
	}
	rc, err := pr.out.SyscallConn()
	if err != nil {
		return false
	}
	for {
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, rerr = unix.Read(int(fd), buf)
			return true // one attempt: never wait
		})
		switch {
		case err != nil:
			return false
		case rerr != nil:
			return errors.Is(rerr, unix.EIO) // pty: every slave closed
		case n == 0:
			return true
		}
		fn(buf[:n])
	}
}

func (pr *proc) close() {
	pr.out.Close()
	if pr.stdin != nil {
		pr.stdin.Close()
	}
}

// isPtyEOF: Linux reports the end of a pty's output as EIO once every slave
// descriptor is closed.
func isPtyEOF(err error) bool { return errors.Is(err, syscall.EIO) }

func exitCode(ps *os.ProcessState) int {
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// typePassword answers su/sudo's password prompt. Pipes: write it to stdin
// and close it. Pty: wait until the terminal's echo is off (the program is
// reading a password, so the password is not echoed into the output), then
// type it once, followed by end-of-file (VEOF): a second prompt after a
// wrong password reads EOF and fails at once instead of waiting for the
// timeout, and the command itself reads EOF from its terminal, as with pipes.
// It gives up passWindow after the start (su as root asks nothing).
func (pr *proc) typePassword(pass string, stop <-chan struct{}, log *slog.Logger) {
	if !pr.isPty {
		if _, err := pr.stdin.Write([]byte(pass + "\n")); err != nil {
			log.Debug("exec: writing password to stdin", "pid", pr.pid(), "err", err)
		}
		pr.stdin.Close()
		return
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	window := time.NewTimer(passWindow)
	defer window.Stop()
	for {
		select {
		case <-stop:
			return
		case <-window.C:
			return
		case <-tick.C:
		}
		off, err := echoOff(pr.out)
		if err != nil {
			return
		}
		if off {
			if _, err := pr.out.Write([]byte(pass + "\n\x04")); err != nil {
				log.Debug("exec: typing password", "pid", pr.pid(), "err", err)
			}
			return
		}
	}
}
