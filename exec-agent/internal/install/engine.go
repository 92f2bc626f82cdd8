package install

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/agentfleet/exec-agent/internal/runner"
)

// Engine defaults.
const (
	DefaultTimeout        = 300 * time.Second // the seed's default
	MaxTimeout            = 24 * time.Hour
	DefaultMaxFileActions = 64
)

// Request is one install, the seed's /install/run parameters as the host
// sees them.
type Request struct {
	// ID names the install (its journal); letters, digits, '-', '_', '.'.
	ID string
	// Source: URL (downloaded by the host) or Path (a file the caller
	// already holds, such as a package of the server's repository), and the
	// sha256 it must have.
	Source
	// Name is the package's file name when neither the URL's path nor Path
	// ends in the type's extension; Kind overrides both.
	Name string
	Kind Kind
	// Dir is where archives are unpacked (required for them, absolute) and
	// where msi and exe installers install (optional); deb and rpm ignore it.
	Dir string
	// Timeout bounds the whole install; ≤ 0: DefaultTimeout.
	Timeout time.Duration
	// Auth ("", "su", "sudo"), User and Pass run the installer as User,
	// as exec does (password fed to su/sudo, never on a command line, never
	// logged or written). An archive is unpacked by the agent's own
	// executable (Options.Self) run that way (extract_as.go).
	Auth, User, Pass string
	// Deps installs a deb with apt-get, an rpm with dnf or yum, so that
	// their dependencies are installed too.
	Deps bool
	// Progress, when set, is told each action once it is journaled (n: its
	// position in the log, the done action last), from the install's
	// goroutine: the agent streams the log to the server with it.
	Progress func(n int, a Action)
}

// LogValue keeps the password out of logs.
func (r Request) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", r.ID), slog.String("url", r.URL), slog.String("path", r.Path),
		slog.String("sha256", r.SHA256), slog.String("kind", string(r.Kind)), slog.String("dir", r.Dir),
		slog.Duration("timeout", r.Timeout), slog.String("auth", r.Auth), slog.String("user", r.User),
		slog.Bool("pass", r.Pass != ""), slog.Bool("deps", r.Deps))
}

// Options configure an Engine.
type Options struct {
	Store  *Store
	Runner *runner.Runner
	// WorkDir holds packages while they are checked and installed
	// (created 0711: the installer may run as another user, who is given
	// the file).
	WorkDir    string
	Fetcher    Fetcher
	Limits     Limits
	Installers Installers
	// MaxFileActions bounds the file actions of an archive (one per file
	// written; the rest are counted in one more); ≤ 0: DefaultMaxFileActions.
	MaxFileActions int
	// Self is the agent's executable, which unpacks an archive as another
	// user (ExtractCommand) when the request has auth; "": such requests
	// are refused.
	Self   string
	Logger *slog.Logger
}

// Engine runs installs. Run may be called from several goroutines, one per
// install.
type Engine struct {
	opts Options
	log  *slog.Logger
}

// NewEngine checks the options and returns an Engine.
func NewEngine(opts Options) (*Engine, error) {
	if opts.Store == nil || opts.Runner == nil || opts.WorkDir == "" {
		return nil, errors.New("install: Store, Runner and WorkDir are required")
	}
	if err := os.MkdirAll(opts.WorkDir, 0o711); err != nil {
		return nil, fmt.Errorf("install: %w", err)
	}
	if opts.MaxFileActions <= 0 {
		opts.MaxFileActions = DefaultMaxFileActions
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Engine{opts: opts, log: log}, nil
}

// Check validates a request and returns the package's kind and the
// timeout; the error names the parameter.
func (e *Engine) Check(req Request) (Kind, time.Duration, error) {
	if err := validID(req.ID); err != nil {
		return "", 0, fmt.Errorf("%w: id %q: %v", ErrRequest, clip(req.ID, 64), err)
	}
	if err := CheckSource(req.Source); err != nil {
		return "", 0, err
	}
	kind := req.Kind
	var err error
	if kind != "" {
		kind, err = ParseKind(string(kind))
	} else {
		kind, err = KindOf(req.fileName())
	}
	if err != nil {
		return "", 0, fmt.Errorf("%w: %w", ErrRequest, err)
	}
	switch {
	case kind.IsArchive() && req.Dir == "":
		return "", 0, fmt.Errorf("%w: dir: required to unpack a %s archive", ErrRequest, kind)
	case req.Dir != "" && !filepath.IsAbs(req.Dir) && (kind.IsArchive() || kind == KindMSI || kind == KindExe):
		return "", 0, fmt.Errorf("%w: dir %q: not an absolute path", ErrRequest, clip(req.Dir, 256))
	case kind.IsArchive() && req.Auth != "" && e.opts.Self == "":
		return "", 0, fmt.Errorf("%w: auth: this agent cannot unpack an archive as another user (its executable is not known)", ErrRequest)
	case req.Deps && kind != KindDeb && kind != KindRPM:
		return "", 0, fmt.Errorf("%w: deps: only for deb and rpm packages", ErrRequest)
	}
	timeout := req.Timeout
	switch {
	case timeout <= 0:
		timeout = DefaultTimeout
	case timeout > MaxTimeout:
		return "", 0, fmt.Errorf("%w: timeout %v: at most %v", ErrRequest, timeout, MaxTimeout)
	}
	if err := e.opts.Runner.Check(runner.Spec{Cmd: "true", Auth: req.Auth, User: req.User, Pass: req.Pass}); err != nil {
		return "", 0, fmt.Errorf("%w: %w", ErrRequest, err)
	}
	return kind, timeout, nil
}

// fileName is the name the package's type is read from.
func (r Request) fileName() string {
	switch {
	case r.Name != "":
		return r.Name
	case r.Path != "":
		return r.Path
	}
	if u, err := url.Parse(r.URL); err == nil {
		return path.Base(u.Path)
	}
	return r.URL
}

// what names the package in actions: its URL, path, or (opened by the
// caller) its name.
func (r Request) what() string {
	switch {
	case r.URL != "":
		return r.URL
	case r.Path != "":
		return r.Path
	}
	return r.Name
}

// Run runs an install to its end and returns its action log. An invalid
// request (ErrRequest) or an id already used (ErrExists) is refused before
// anything is journaled; after that the outcome is in the log's done
// action, and the error is only about the journal itself.
func (e *Engine) Run(ctx context.Context, req Request) (Status, error) {
	kind, timeout, err := e.Check(req)
	if err != nil {
		return Status{}, err
	}
	j, err := e.opts.Store.Begin(req.ID)
	if err != nil {
		return Status{}, err
	}
	j.progress = req.Progress
	e.log.Info("install: start", "req", req, "kind", kind)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	jerr := e.steps(ctx, j, req, kind)
	st := j.Status()
	if jerr != nil {
		e.log.Error("install: journal", "id", req.ID, "err", jerr)
	} else if done := st.Actions[len(st.Actions)-1]; done.OK {
		e.log.Info("install: done", "id", req.ID)
	} else {
		e.log.Warn("install: failed", "id", req.ID, "msg", done.Msg)
	}
	return st, jerr
}

// steps runs the install, ending the journal with done whatever happens.
func (e *Engine) steps(ctx context.Context, j *Journal, req Request, kind Kind) (jerr error) {
	var failure error
	finish := func() {
		msg := ""
		if failure != nil {
			msg = failure.Error()
		}
		if err := j.Finish(failure == nil, msg); err != nil && jerr == nil {
			jerr = err
		}
	}
	defer finish()
	defer func() {
		if p := recover(); p != nil {
			failure = fmt.Errorf("internal error: %v", p)
			e.log.Error("install: panic", "id", req.ID, "panic", p)
		}
	}()
	record := func(a Action) {
		if err := j.Append(a); err != nil && jerr == nil {
			jerr = err
		}
	}
	act := func(action, name string, err error) error {
		a := Action{Action: action, Name: name, OK: err == nil}
		if err != nil {
			a.Msg = err.Error()
			failure = err
		}
		record(a)
		return err
	}

	note := func(tmp string) error { return j.noteTmp(tmp, req.what()) }
	got, err := e.opts.Fetcher.Fetch(ctx, req.Source, e.opts.WorkDir, "."+string(kind), note)
	if act(ActDownload, req.what(), err) != nil {
		return
	}
	defer os.Remove(got.File)
	if err := CheckMagic(got.File, kind); err != nil {
		act(ActInstall, req.what(), err)
		return
	}
	if kind.IsArchive() {
		var files []string
		var total int
		if req.Auth != "" {
			files, total, err = e.extractAs(ctx, req, got.File, kind)
		} else {
			var out Unpacked
			out, err = Extract(got.File, kind, req.Dir, e.opts.Limits)
			files, total = out.Files, len(out.Files)
		}
		if act(ActInstall, req.what(), err) != nil {
			return
		}
		for i, f := range files {
			if i == e.opts.MaxFileActions {
				break
			}
			act(ActFile, filepath.Join(req.Dir, filepath.FromSlash(f)), nil)
		}
		if listed := min(len(files), e.opts.MaxFileActions); total > listed {
			record(Action{Action: ActFile, Name: req.Dir, OK: true, Msg: fmt.Sprintf("%d more files not listed", total-listed)})
		}
		return
	}
	cmd, err := e.opts.Installers.installCommand(kind, got.File, req.Dir, req.Deps)
	if err == nil && req.Auth != "" {
		err = giveTo(got.File, req.User)
	}
	if err == nil {
		err = run(ctx, e.opts.Runner, cmd.spec(req.ID, timeout(ctx), req.Auth, req.User, req.Pass))
	}
	act(ActInstall, req.what(), err)
	if cmd.log != "" {
		if _, serr := os.Stat(cmd.log); serr == nil {
			act(ActFile, cmd.log, nil)
		}
	}
	return
}

// timeout is what is left of the context's deadline.
func timeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		if left := time.Until(d); left > 0 {
			return left
		}
		return time.Millisecond
	}
	return DefaultTimeout
}
