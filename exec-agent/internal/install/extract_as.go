package install

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/agentfleet/exec-agent/internal/runner"
)

// Archives with auth: the agent unpacks an archive itself, so to unpack it
// as another user it runs its own executable (Options.Self) through the
// exec runner's su or sudo, exactly as an installer is run, with the
// hidden subcommand ExtractCommand. That process runs the same Extract
// with the user's rights (the files are the user's; a directory the user
// may not write is refused by the kernel) and prints one JSON line, its
// report, as the last line of its output. The archive is given to the user
// first (as a package is for an installer); the arguments reach the
// subcommand as flags with '=' (each quoted for the shell by the runner),
// so no path can be taken for an option.

// ExtractCommand is the hidden subcommand of the agent's executable that
// unpacks an archive as the user it runs as (see ExtractMain).
const ExtractCommand = "_install-extract"

// extractReport is the subcommand's last line of output.
type extractReport struct {
	// Files are the first files written (at most the -files flag), Total
	// how many there are.
	Files []string `json:"files"`
	Total int      `json:"total"`
	// Error is why nothing (or not everything) was unpacked.
	Error string `json:"error,omitempty"`
}

// maxReport bounds the output read back from the subcommand: its report
// (file names are at most a few KiB each) and whatever su or sudo said.
const maxReport = 1 << 20

// ExtractMain runs ExtractCommand with args (the arguments after it) and
// returns the process's exit code: it unpacks the archive with Extract and
// writes its report to stdout, a JSON line.
//
//	_install-extract -kind=tar.gz -dir=/opt/app -files=64 [-max-bytes=N -max-entries=N -max-ratio=N -ratio-floor=N] -archive=/path
func ExtractMain(args []string, stdout io.Writer) int {
	fs := flag.NewFlagSet(ExtractCommand, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	kind := fs.String("kind", "", "archive type")
	dir := fs.String("dir", "", "where to unpack")
	archive := fs.String("archive", "", "the archive")
	files := fs.Int("files", DefaultMaxFileActions, "files listed in the report")
	var lim Limits
	fs.Int64Var(&lim.MaxBytes, "max-bytes", 0, "")
	fs.IntVar(&lim.MaxEntries, "max-entries", 0, "")
	fs.Int64Var(&lim.MaxRatio, "max-ratio", 0, "")
	fs.Int64Var(&lim.RatioFloor, "ratio-floor", 0, "")
	rep := extractReport{Files: []string{}}
	err := fs.Parse(args)
	var k Kind
	if err == nil {
		k, err = ParseKind(*kind)
	}
	switch {
	case err != nil:
	case !k.IsArchive():
		err = fmt.Errorf("%w: %s is not an archive", ErrKind, k)
	case *dir == "" || *archive == "" || fs.NArg() > 0:
		err = errors.New("usage: " + ExtractCommand + " -kind=K -dir=D -archive=A")
	}
	if err == nil {
		var out Unpacked
		out, err = Extract(*archive, k, *dir, lim)
		rep.Total = len(out.Files)
		rep.Files = append(rep.Files, out.Files[:min(len(out.Files), max(*files, 0))]...)
	}
	code := 0
	if err != nil {
		rep.Error, code = err.Error(), 1
	}
	b, _ := json.Marshal(rep)
	if _, err := fmt.Fprintf(stdout, "\n%s\n", b); err != nil {
		return 2
	}
	return code
}

// extractAs unpacks the archive as req.User through su or sudo and returns
// the first files written and how many there are.
func (e *Engine) extractAs(ctx context.Context, req Request, file string, kind Kind) ([]string, int, error) {
	if e.opts.Self == "" {
		return nil, 0, errors.New("auth: the agent's executable is not known, so it cannot unpack as another user")
	}
	if err := giveTo(file, req.User); err != nil {
		return nil, 0, err
	}
	lim := e.opts.Limits
	args := []string{ExtractCommand, "-kind=" + string(kind), "-dir=" + req.Dir, "-files=" + strconv.Itoa(e.opts.MaxFileActions)}
	for _, f := range []struct {
		name string
		v    int64
	}{{"max-bytes", lim.MaxBytes}, {"max-entries", int64(lim.MaxEntries)}, {"max-ratio", lim.MaxRatio}, {"ratio-floor", lim.RatioFloor}} {
		if f.v > 0 {
			args = append(args, fmt.Sprintf("-%s=%d", f.name, f.v))
		}
	}
	args = append(args, "-archive="+file)
	out := newOutputTail(maxReport)
	spec := runner.Spec{TaskID: "install-" + req.ID, Cmd: quoteProg(e.opts.Self), Args: args, Timeout: timeout(ctx),
		Auth: req.Auth, User: req.User, Pass: req.Pass, Pipe: true}
	if _, err := e.opts.Runner.Start(ctx, spec, out); err != nil {
		return nil, 0, err
	}
	res := <-out.done
	text := out.String()
	if rep, ok := lastReport(text); ok {
		if rep.Error != "" {
			return nil, 0, errors.New(rep.Error)
		}
		if res.Reason == runner.Exited && res.Code == 0 {
			return rep.Files, rep.Total, nil
		}
	}
	msg := fmt.Sprintf("unpacking as %s: exit code %d", req.User, res.Code)
	if res.Reason != runner.Exited {
		msg = fmt.Sprintf("unpacking as %s: %s (exit code %d)", req.User, res.Reason, res.Code)
	}
	if t := strings.TrimSpace(text); t != "" {
		if len(t) > tailLen {
			t = "…" + t[len(t)-tailLen:]
		}
		msg += ": " + t
	}
	return nil, 0, errors.New(msg)
}

// lastReport finds the subcommand's report: the output's last line.
func lastReport(out string) (extractReport, bool) {
	out = strings.TrimRight(out, "\r\n")
	line := out[strings.LastIndexByte(out, '\n')+1:]
	var rep extractReport
	d := json.NewDecoder(strings.NewReader(line))
	d.DisallowUnknownFields()
	if !strings.HasPrefix(line, "{") || d.Decode(&rep) != nil || d.InputOffset() != int64(len(line)) || rep.Total < len(rep.Files) {
		return extractReport{}, false
	}
	return rep, true
}
