package runner

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

// killedCode is the exit code given to the processes of a killed task on
// Windows (no signals there): 128+9, as a SIGKILL on Unix.
const killedCode = 137

// command builds `cmd /C <Cmd> <Args…>`, each of Args quoted by the Windows
// rules (syscall.EscapeArg). su/sudo do not exist on Windows.
func (r *Runner) command(spec Spec, p *prepared) error {
	if spec.Auth != "" {
		return fmt.Errorf("%w: auth %q is not supported on Windows", ErrSpec, spec.Auth)
	}
	line := spec.Cmd
	for _, a := range spec.Args {
		line += " " + syscall.EscapeArg(a)
	}
	comspec := os.Getenv("ComSpec")
	if comspec == "" {
		comspec = "cmd.exe"
	}
	p.argv = []string{comspec, "/C", line}
	return nil
}

// proc is a started process in its own job object: closing or terminating
// the job ends every process in it (KILL_ON_JOB_CLOSE).
type proc struct {
	cmd      *exec.Cmd
	out      *os.File
	job      windows.Handle
	feedPass bool
}

func startProc(p *prepared) (*proc, error) {
	path, err := exec.LookPath(p.argv[0])
	if err != nil {
		return nil, err
	}
	job, err := windows.CreateJobObject(nil, nil)
	if err != nil {
		return nil, fmt.Errorf("create job object: %w", err)
	}
	info := windows.JOBOBJECT_EXTENDED_LIMIT_INFORMATION{
		BasicLimitInformation: windows.JOBOBJECT_BASIC_LIMIT_INFORMATION{LimitFlags: windows.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE},
	}
	if _, err := windows.SetInformationJobObject(job, windows.JobObjectExtendedLimitInformation,
		uintptr(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info))); err != nil {
		windows.CloseHandle(job)
		return nil, fmt.Errorf("set job object limits: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		windows.CloseHandle(job)
		return nil, err
	}
	cmd := &exec.Cmd{
		Path: path, Args: p.argv, Env: p.env, Dir: p.dir, Stdout: w, Stderr: w,
		// The line as built: cmd.exe does its own parsing, Go's quoting
		// of argv would add a layer.
		SysProcAttr: &syscall.SysProcAttr{CmdLine: syscall.EscapeArg(p.argv[0]) + " /C " + p.argv[2], CreationFlags: windows.CREATE_NEW_PROCESS_GROUP},
	}
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		windows.CloseHandle(job)
		return nil, err
	}
	// Children started before the assignment escape the job; cmd.exe
	// starts nothing before it has parsed its command line, which is
	// after this returns in practice.
	h, err := windows.OpenProcess(windows.PROCESS_SET_QUOTA|windows.PROCESS_TERMINATE, false, uint32(cmd.Process.Pid))
	if err == nil {
		err = windows.AssignProcessToJobObject(job, h)
		windows.CloseHandle(h)
	}
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		r.Close()
		windows.CloseHandle(job)
		return nil, fmt.Errorf("assign to job object: %w", err)
	}
	return &proc{cmd: cmd, out: r, job: job}, nil
}

func (pr *proc) pid() int { return pr.cmd.Process.Pid }

func (pr *proc) wait() *os.ProcessState {
	_ = pr.cmd.Wait()
	return pr.cmd.ProcessState
}

// killTree terminates every process of the job.
func (pr *proc) killTree(_ time.Duration, log *slog.Logger) {
	if err := windows.TerminateJobObject(pr.job, killedCode); err != nil {
		log.Warn("exec: terminate job object", "pid", pr.pid(), "err", err)
	}
}

// stopEnds: stopReading ends the processes holding the output.
const stopEnds = true

// stopReading: anonymous pipes have no read deadline on Windows, so the
// processes still holding the pipe are ended instead.
func (pr *proc) stopReading() {
	if err := pr.out.SetReadDeadline(time.Now()); errors.Is(err, os.ErrNoDeadline) {
		_ = windows.TerminateJobObject(pr.job, killedCode)
	}
}

// readBuffered: stopReading ends the processes holding the pipe, so reads
// reach the end of file by themselves; never called.
func (pr *proc) readBuffered([]byte, func([]byte)) bool { return false }

// pending: not known for anonymous pipes (stopReading ends the writers, so
// what they wrote is still read to the end).
func (pr *proc) pending() int { return 0 }

// members: the job object holds the task's processes; they are not listed.
func (pr *proc) members() []int { return nil }

func (pr *proc) close() {
	pr.out.Close()
	windows.CloseHandle(pr.job)
}

func (pr *proc) typePassword(string, <-chan struct{}, *slog.Logger) {}

func isPtyEOF(err error) bool { return errors.Is(err, syscall.ERROR_BROKEN_PIPE) }

func exitCode(ps *os.ProcessState) int {
	if ps == nil {
		return -1
	}
	return ps.ExitCode()
}
