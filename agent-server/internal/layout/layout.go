// Package layout reads orchestration archives ("layouts", layout.md): a
// tar, optionally gzip or bzip2 compressed, holding main.yaml or main.json
// and the files its steps push. [Parse] validates everything it can before anything runs;
// its errors name the step ("step 2 \"add site\": ...") and wrap
// [ErrInvalid].
//
// Decisions beyond the spec:
//   - The archive is read with jkframe/archive: entries that are absolute
//     or climb out ("../x"), symlinks pointing out of the archive, hard
//     links to outside names, devices and fifos make it invalid; so does
//     going over a limit (Limits: the unpacked size, each file, the number
//     of entries, the main file's size, the number of steps), detected at
//     the first byte over it. Files are spooled to disk, never held in
//     memory.
//   - Only regular files and directories are taken from the tar. Symlinks
//     and hard links that stay inside are ignored; a step whose src names
//     one fails validation ("is a link in the archive (links are
//     ignored)").
//   - Variables are $name or ${name} (letters, digits, _ ; not starting
//     with a digit); "$$" is a literal "$", and "$" followed by anything
//     else stays as it is (so awk's $1 works). A variable that is neither
//     a built-in ($ID $IDX $EVEN $ODD $DEADLINE) nor the output of an
//     earlier step is an error at submit time; shell variables must be
//     written $$HOME.
//   - A pull dst must stay inside the task's result area: absolute or
//     climbing ("../x", "a/../../x", "$ID/../../x") dsts are refused when
//     the archive is checked, and the expanded dst again at run time.
//   - A step's timeout defaults to the run's timeout; the run's to
//     DefaultTimeout.
package layout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/agentfleet/jkframe/archive"

	"github.com/agentfleet/agent-server/internal/fault"
)

// ErrInvalid is what every validation error is (a *fault.Error whose
// message names the file or step at fault).
var ErrInvalid = errors.New("invalid layout")

// Plugins and file actions.
const (
	PluginExec = "exec"
	PluginFile = "file"
	ActionPush = "push"
	ActionPull = "pull"
)

// DefaultTimeout is the run's timeout when main.yaml sets none.
const DefaultTimeout = 10 * time.Minute

// Limits bound what Parse accepts. Zero fields take the defaults.
type Limits struct {
	ArchiveBytes int64 // unpacked size of all files; default 256 MiB
	FileBytes    int64 // one file; default 64 MiB
	Entries      int   // tar entries; default 10,000
	MainBytes    int64 // main.yaml / main.json; default 1 MiB
	Steps        int   // default 1,000
}

func (l *Limits) defaults() {
	if l.ArchiveBytes <= 0 {
		l.ArchiveBytes = 256 << 20
	}
	if l.FileBytes <= 0 {
		l.FileBytes = 64 << 20
	}
	if l.Entries <= 0 {
		l.Entries = 10000
	}
	if l.MainBytes <= 0 {
		l.MainBytes = 1 << 20
	}
	if l.Steps <= 0 {
		l.Steps = 1000
	}
}

// Step is one entry of tasks in main.yaml.
type Step struct {
	Name    string `yaml:"name" json:"name"`
	Plugin  string `yaml:"plugin" json:"plugin"`
	Cmd     string `yaml:"cmd" json:"cmd,omitempty"`
	Output  string `yaml:"output" json:"output,omitempty"`
	Auth    string `yaml:"auth" json:"auth,omitempty"`
	User    string `yaml:"user" json:"user,omitempty"`
	Timeout int    `yaml:"timeout" json:"timeout,omitempty"` // seconds
	If      string `yaml:"if" json:"if,omitempty"`
	Action  string `yaml:"action" json:"action,omitempty"`
	Src     string `yaml:"src" json:"src,omitempty"`
	Dst     string `yaml:"dst" json:"dst,omitempty"`
	Mode    string `yaml:"mode" json:"mode,omitempty"` // octal, push only
	Owner   string `yaml:"owner" json:"owner,omitempty"`
	Group   string `yaml:"group" json:"group,omitempty"`

	cond *Cond
}

// Cond returns the parsed if condition, nil when the step has none.
func (s *Step) Cond() *Cond { return s.cond }

// FileMode returns the parsed mode (0644 when none is set).
func (s *Step) FileMode() uint32 {
	if s.Mode == "" {
		return 0o644
	}
	m, _ := strconv.ParseUint(s.Mode, 8, 32)
	return uint32(m)
}

// StepTimeout is the step's timeout (the run's when the step sets none).
func (l *Layout) StepTimeout(s *Step) time.Duration {
	if s.Timeout > 0 {
		return time.Duration(s.Timeout) * time.Second
	}
	return l.RunTimeout()
}

// RunTimeout is the whole run's timeout per agent.
func (l *Layout) RunTimeout() time.Duration {
	if l.Timeout > 0 {
		return time.Duration(l.Timeout) * time.Second
	}
	return DefaultTimeout
}

// Layout is a parsed and validated archive.
type Layout struct {
	Name    string `yaml:"name" json:"name"`
	Timeout int    `yaml:"timeout" json:"timeout,omitempty"` // seconds, whole run per agent
	Steps   []Step `yaml:"tasks" json:"tasks"`

	// Files are the archive's regular files by cleaned relative path, with
	// their sizes; the content is in the spool directory (Open).
	Files map[string]int64 `yaml:"-" json:"-"`
	links map[string]bool
	dirs  map[string]bool
	dir   string // spool directory; "" once closed
}

// Builtins are the variables every step sees.
var Builtins = []string{"ID", "IDX", "EVEN", "ODD", "DEADLINE"}

// Parse reads an archive (tar, tar.gz or tar.bz2) and validates it. Its
// files are spooled to a new directory under spoolDir (the OS temp dir
// when empty), streamed through jkframe/archive: nothing of them is held
// in memory, and the first byte over a limit ends the read. The Layout
// owns that directory: Close removes it. On error nothing is left.
func Parse(r io.Reader, lim Limits, spoolDir string) (*Layout, error) {
	lim.defaults()
	ar, err := archive.NewReader(r, archive.Limits{Entries: lim.Entries, FileBytes: lim.FileBytes, TotalBytes: lim.ArchiveBytes})
	if err != nil {
		return nil, fault.Invalidf(ErrInvalid, "file: %v", err)
	}
	defer ar.Close()
	dir, err := os.MkdirTemp(spoolDir, SpoolPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("layout spool: %w", err)
	}
	l := &Layout{Files: map[string]int64{}, links: map[string]bool{}, dirs: map[string]bool{}, dir: dir}
	ok := false
	defer func() {
		if !ok {
			l.Close()
		}
	}()
	err = archive.Extract(ar, dir, archive.ExtractOptions{Links: archive.LinksSkip, OnEntry: func(e *archive.Entry, _ bool) error {
		switch e.Type {
		case archive.TypeFile:
			l.Files[e.Name] = e.Size
		case archive.TypeDir:
			l.dirs[e.Name] = true
		default:
			l.links[e.Name] = true
		}
		return nil
	}})
	if err != nil {
		var ae *archive.Error
		if errors.As(err, &ae) {
			return nil, fault.Invalidf(ErrInvalid, "file: %v", err)
		}
		return nil, fmt.Errorf("layout spool: %w", err)
	}
	if err := l.readMain(lim); err != nil {
		return nil, err
	}
	if err := l.validate(lim); err != nil {
		return nil, err
	}
	ok = true
	return l, nil
}

// SpoolPrefix starts the name of every spool directory Parse makes, so
// that those a crash left behind can be found (RemoveSpools).
const SpoolPrefix = "layout-"

// RemoveSpools removes the spool directories Parse made in dir (those of
// a previous run of the server: layouts are not resumed).
func RemoveSpools(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	var errs []error
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), SpoolPrefix) {
			errs = append(errs, os.RemoveAll(filepath.Join(dir, e.Name())))
		}
	}
	return errors.Join(errs...)
}

// Close removes the spooled files. The Layout must not be used after.
func (l *Layout) Close() error {
	if l.dir == "" {
		return nil
	}
	err := os.RemoveAll(l.dir)
	l.dir = ""
	return err
}

// readFile reads a spooled file of at most max bytes.
func (l *Layout) readFile(name string, max int64) ([]byte, error) {
	f, err := os.Open(filepath.Join(l.dir, filepath.FromSlash(name)))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, max))
}

func (l *Layout) readMain(lim Limits) error {
	ySize, hasY := l.Files["main.yaml"]
	jSize, hasJ := l.Files["main.json"]
	switch {
	case hasY && hasJ:
		return fault.Invalidf(ErrInvalid, "file: both main.yaml and main.json (keep one)")
	case hasY:
		if ySize > lim.MainBytes {
			return fault.Invalidf(ErrInvalid, "main.yaml: over %d bytes", lim.MainBytes)
		}
		y, err := l.readFile("main.yaml", lim.MainBytes)
		if err != nil {
			return fmt.Errorf("layout spool: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(y))
		dec.KnownFields(true)
		if err = dec.Decode(l); err != nil && err != io.EOF {
			return fault.Invalidf(ErrInvalid, "main.yaml: %s", strings.TrimPrefix(err.Error(), "yaml: "))
		}
		if err == io.EOF {
			return fault.Invalidf(ErrInvalid, "main.yaml: empty")
		}
	case hasJ:
		if jSize > lim.MainBytes {
			return fault.Invalidf(ErrInvalid, "main.json: over %d bytes", lim.MainBytes)
		}
		j, err := l.readFile("main.json", lim.MainBytes)
		if err != nil {
			return fmt.Errorf("layout spool: %w", err)
		}
		dec := json.NewDecoder(bytes.NewReader(j))
		dec.DisallowUnknownFields()
		if err = dec.Decode(l); err != nil {
			return fault.Invalidf(ErrInvalid, "main.json: %v", err)
		}
	default:
		if l.links["main.yaml"] || l.links["main.json"] {
			return fault.Invalidf(ErrInvalid, "file: main.yaml is a link in the archive (links are ignored)")
		}
		return fault.Invalidf(ErrInvalid, "file: the archive has no main.yaml or main.json")
	}
	return nil
}

func (l *Layout) validate(lim Limits) error {
	switch {
	case len(l.Steps) == 0:
		return fault.Invalidf(ErrInvalid, "main: no tasks")
	case len(l.Steps) > lim.Steps:
		return fault.Invalidf(ErrInvalid, "main: more than %d tasks", lim.Steps)
	case l.Timeout < 0:
		return fault.Invalidf(ErrInvalid, "main: negative timeout")
	}
	known := map[string]bool{}
	for _, b := range Builtins {
		known[b] = true
	}
	for i := range l.Steps {
		s := &l.Steps[i]
		if err := l.validateStep(s, known); err != nil {
			return fault.Invalidf(ErrInvalid, "step %d %q: %v", i+1, s.Name, err)
		}
		if s.Output != "" {
			known[s.Output] = true
		}
	}
	return nil
}

func (l *Layout) validateStep(s *Step, known map[string]bool) error {
	if s.Timeout < 0 {
		return errors.New("negative timeout")
	}
	switch s.Auth {
	case "", "sudo", "su":
	default:
		return fmt.Errorf("unknown auth %q (want sudo or su)", s.Auth)
	}
	if s.Output != "" {
		if !validName(s.Output) {
			return fmt.Errorf("output %q is not a variable name", s.Output)
		}
		if isBuiltin(s.Output) {
			return fmt.Errorf("output %q is a built-in variable", s.Output)
		}
	}
	if s.If != "" {
		c, err := ParseCond(s.If)
		if err != nil {
			return fmt.Errorf("if: %v", err)
		}
		if err := checkVars(c.Left+" "+c.Right, known); err != nil {
			return fmt.Errorf("if: %v", err)
		}
		s.cond = c
	}
	switch s.Plugin {
	case PluginExec:
		if strings.TrimSpace(s.Cmd) == "" {
			return errors.New("missing cmd")
		}
		if err := checkVars(s.Cmd, known); err != nil {
			return fmt.Errorf("cmd: %v", err)
		}
		if s.Action != "" || s.Src != "" || s.Dst != "" {
			return errors.New("action, src and dst belong to the file plugin")
		}
		return nil
	case PluginFile:
	case "":
		return errors.New("missing plugin (want exec or file)")
	default:
		return fmt.Errorf("unknown plugin %q (want exec or file)", s.Plugin)
	}
	if s.Cmd != "" || s.Output != "" {
		return errors.New("cmd and output belong to the exec plugin")
	}
	if s.Src == "" {
		return errors.New("missing src")
	}
	if s.Dst == "" {
		return errors.New("missing dst")
	}
	for _, f := range []struct{ name, v string }{{"src", s.Src}, {"dst", s.Dst}} {
		if err := checkVars(f.v, known); err != nil {
			return fmt.Errorf("%s: %v", f.name, err)
		}
	}
	switch s.Action {
	case ActionPush, "":
		s.Action = ActionPush
		if s.Mode != "" {
			if m, err := strconv.ParseUint(s.Mode, 8, 32); err != nil || m > 0o7777 {
				return fmt.Errorf("invalid mode %q (octal, e.g. \"0644\")", s.Mode)
			}
		}
		if strings.Contains(s.Src, "$") {
			return nil // checked when the variables are known
		}
		return l.CheckSrc(s.Src)
	case ActionPull:
		if !isAbs(s.Src) {
			return fmt.Errorf("src %q must be an absolute path on the agent", s.Src)
		}
		// Checked as written: variables cannot make a dst that climbs out
		// here legal, and the expanded dst is checked again at run time.
		if _, err := ResultPath(s.Dst); err != nil {
			return fmt.Errorf("dst: %v", err)
		}
		if s.Mode != "" || s.Owner != "" || s.Group != "" {
			return errors.New("mode, owner and group apply to push only")
		}
		return nil
	default:
		return fmt.Errorf("unknown action %q (want push or pull)", s.Action)
	}
}

// CheckSrc checks that a push src names a regular file of the archive.
func (l *Layout) CheckSrc(src string) error {
	n := strings.ReplaceAll(src, `\`, "/")
	if isAbs(n) {
		return fmt.Errorf("src %q must be relative to the archive root", src)
	}
	c := path.Clean(n)
	switch {
	case c == ".." || strings.HasPrefix(c, "../"):
		return fmt.Errorf("src %q escapes the archive", src)
	case l.links[c]:
		return fmt.Errorf("src %q is a link in the archive (links are ignored)", src)
	case l.dirs[c] || c == ".":
		return fmt.Errorf("src %q is a directory", src)
	}
	if _, ok := l.Files[c]; !ok {
		return fmt.Errorf("src %q is not in the archive", src)
	}
	return nil
}

// Open opens the spooled archive file a push src names, and tells its
// size.
func (l *Layout) Open(src string) (*os.File, int64, error) {
	if err := l.CheckSrc(src); err != nil {
		return nil, 0, err
	}
	name := path.Clean(strings.ReplaceAll(src, `\`, "/"))
	f, err := os.Open(filepath.Join(l.dir, filepath.FromSlash(name)))
	if err != nil {
		return nil, 0, fmt.Errorf("src %q: %w", src, err)
	}
	return f, l.Files[name], nil
}

// ResultPath cleans a pull dst into a slash-separated path relative to an
// agent's result area; absolute, empty or escaping paths are errors.
func ResultPath(dst string) (string, error) {
	d := strings.ReplaceAll(dst, `\`, "/")
	c := path.Clean(d)
	switch {
	case d == "" || c == ".":
		return "", errors.New("empty path")
	case strings.HasPrefix(c, "/") || len(c) > 1 && c[1] == ':':
		return "", fmt.Errorf("%q must be relative to the task's result area", dst)
	case c == ".." || strings.HasPrefix(c, "../"):
		return "", fmt.Errorf("%q escapes the task's result area", dst)
	case strings.ContainsRune(c, 0):
		return "", fmt.Errorf("%q has a NUL byte", dst)
	}
	return c, nil
}

func isAbs(p string) bool {
	return strings.HasPrefix(p, "/") || strings.HasPrefix(p, `\`) || len(p) > 2 && p[1] == ':' && (p[2] == '\\' || p[2] == '/')
}

func isBuiltin(n string) bool {
	for _, b := range Builtins {
		if b == n {
			return true
		}
	}
	return false
}
