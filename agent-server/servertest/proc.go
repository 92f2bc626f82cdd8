package servertest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"
)

// ProcOptions describe a child process.
type ProcOptions struct {
	Name string   // for messages; "" = the binary's path
	Args []string // the binary and its arguments
	Dir  string   // working directory; "" = the test's
	Env  []string // added to (and overriding) the test's environment
	Log  string   // file that receives stdout and stderr (appended)
}

// Proc is a child process (an agent, the server) with its output in a
// log file.
type Proc struct {
	Name string
	Log  string
	Cmd  *exec.Cmd
	done chan struct{} // closed when Cmd has exited
}

// StartProc starts a process; its Wait runs in a goroutine that ends with
// the process.
func StartProc(o ProcOptions) (*Proc, error) {
	if len(o.Args) == 0 || o.Log == "" {
		return nil, errors.New("servertest: ProcOptions.Args and Log are required")
	}
	if o.Name == "" {
		o.Name = o.Args[0]
	}
	f, err := os.OpenFile(o.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(o.Args[0], o.Args[1:]...)
	cmd.Dir = o.Dir
	cmd.Stdout, cmd.Stderr = f, f
	if o.Env != nil {
		cmd.Env = append(os.Environ(), o.Env...)
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", o.Name, err)
	}
	p := &Proc{Name: o.Name, Log: o.Log, Cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// PID is the process id.
func (p *Proc) PID() int { return p.Cmd.Process.Pid }

// Done is closed once the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Running reports whether the process has not exited yet.
func (p *Proc) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Stop sends sig and waits for the exit; after StopTimeout it kills the
// process and says so in its error. An exited process is left as is.
func (p *Proc) Stop(sig os.Signal) error {
	if !p.Running() {
		return nil
	}
	if err := p.Cmd.Process.Signal(sig); err != nil { // Windows has no SIGTERM
		_ = p.Cmd.Process.Kill()
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(StopTimeout):
		_ = p.Cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within %v of %v: killed", p.Name, StopTimeout, sig)
	}
}

// Kill kills the process (SIGKILL) and waits for it.
func (p *Proc) Kill() {
	_ = p.Cmd.Process.Kill()
	<-p.done
}

// Tail returns the last n bytes of the process's log.
func (p *Proc) Tail(n int) string {
	b, _ := os.ReadFile(p.Log)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
