package install

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/agentfleet/exec-agent/internal/runner"
)

// Installers configure how packages are installed. The zero value uses the
// usual programs from PATH.
type Installers struct {
	// DpkgArgs go before dpkg's -i (tests: --root=…, --admindir=…,
	// --force-not-root, --force-script-chrootless).
	DpkgArgs []string
	// RPMArgs go after rpm's -U (tests: --dbpath=…, --root=…, --nodeps).
	RPMArgs []string
	// ExeFlags are an exe installer's silent flags; nil: ["/S"] (NSIS;
	// Inno Setup wants /VERYSILENT /SUPPRESSMSGBOXES /NORESTART).
	ExeFlags []string
	// ExeDirFlag prefixes the target directory for an exe installer when
	// the request has a dir; "": "/D=" (NSIS).
	ExeDirFlag string
	// LookPath finds dnf and yum; nil: exec.LookPath.
	LookPath func(string) (string, error)
}

// command is a program and its arguments, run through the exec runner.
type command struct {
	prog string
	args []string
	// env is a shell prefix of variable assignments (Unix), so it survives
	// sudo's environment reset.
	env string
	// log is the msiexec log file.
	log string
}

// installCommand says how a package of that kind is installed.
func (in Installers) installCommand(kind Kind, file, dir string, deps bool) (command, error) {
	switch kind {
	case KindDeb:
		if deps {
			// apt-get takes a package file when its name holds a '/' and
			// ends in .deb; file is absolute and does.
			return command{prog: "apt-get", args: []string{"install", "-y", file}, env: "DEBIAN_FRONTEND=noninteractive"}, nil
		}
		args := append(append([]string{}, in.DpkgArgs...), "-i", file)
		return command{prog: "dpkg", args: args, env: "DEBIAN_FRONTEND=noninteractive"}, nil
	case KindRPM:
		if deps {
			look := in.LookPath
			if look == nil {
				look = exec.LookPath
			}
			for _, p := range []string{"dnf", "yum"} {
				if _, err := look(p); err == nil {
					return command{prog: p, args: []string{"install", "-y", file}}, nil
				}
			}
			return command{}, errors.New("deps: neither dnf nor yum found to resolve the rpm's dependencies")
		}
		args := append(append([]string{"-U", "--replacepkgs"}, in.RPMArgs...), file)
		return command{prog: "rpm", args: args}, nil
	case KindMSI:
		log := file + ".log"
		args := []string{"/i", file, "/qn", "/norestart", "/l*v", log}
		if dir != "" {
			args = append(args, "TARGETDIR="+dir)
		}
		return command{prog: "msiexec", args: args, log: log}, nil
	case KindExe:
		flags := in.ExeFlags
		if flags == nil {
			flags = []string{"/S"}
		}
		args := append([]string{}, flags...)
		if dir != "" {
			pre := in.ExeDirFlag
			if pre == "" {
				pre = "/D="
			}
			args = append(args, pre+dir)
		}
		return command{prog: file, args: args}, nil
	}
	return command{}, fmt.Errorf("%w: %s is not installed by a program", ErrKind, kind)
}

// spec turns a command into the runner's Spec.
func (c command) spec(id string, timeout time.Duration, auth, user, pass string) runner.Spec {
	cmd := quoteProg(c.prog)
	if c.env != "" {
		cmd = envPrefix(c.env) + cmd
	}
	return runner.Spec{
		TaskID: "install-" + id, Cmd: cmd, Args: c.args, Timeout: timeout,
		Auth: auth, User: user, Pass: pass, Pipe: true,
	}
}

// tailLen is how much of an installer's output a failed install action
// quotes (its end, where the error is).
const tailLen = 2 << 10

// outputTail keeps the end of a task's output, at most limit bytes; it is
// the runner's Output.
type outputTail struct {
	limit int
	mu    sync.Mutex
	buf   []byte
	cut   bool
	done  chan runner.Result
}

func newOutputTail(limit int) *outputTail {
	return &outputTail{limit: limit, done: make(chan runner.Result, 1)}
}

func (o *outputTail) Chunk(p []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf = append(o.buf, p...)
	if n := len(o.buf) - o.limit; n > 0 {
		o.buf = append(o.buf[:0], o.buf[n:]...)
		o.cut = true
	}
	return nil
}

func (o *outputTail) Done(r runner.Result) { o.done <- r }

func (o *outputTail) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := strings.TrimSpace(string(o.buf))
	if o.cut {
		s = "…" + s
	}
	return s
}

// run runs the command and returns nil when it exited with code 0, else an
// error with the exit code and the end of its output.
func run(ctx context.Context, r *runner.Runner, spec runner.Spec) error {
	out := newOutputTail(tailLen)
	if _, err := r.Start(ctx, spec, out); err != nil {
		return err
	}
	res := <-out.done
	if res.Reason == runner.Exited && res.Code == 0 {
		return nil
	}
	msg := fmt.Sprintf("exit code %d", res.Code)
	if res.Reason != runner.Exited {
		msg = fmt.Sprintf("%s (%s)", res.Reason, msg)
	}
	if tail := out.String(); tail != "" {
		msg += ": " + tail
	}
	return errors.New(msg)
}
