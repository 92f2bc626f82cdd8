// Package layout reads orchestration archives ("layouts", layout.md): a
// tar, optionally gzipped, holding main.yaml or main.json and the files its
// steps push. [Parse] validates everything it can before anything runs;
// its errors name the step ("step 2 \"add site\": ...") and wrap
// [ErrInvalid].
//
// Decisions beyond the spec:
//   - Only regular files and directories are taken from the tar. Symlinks
//     and hard links are ignored; a step whose src names one fails
//     validation ("is a link in the archive (links are ignored)").
//   - Entry names are cleaned; an entry that is absolute or climbs out of
//     the archive ("../x") makes the whole archive invalid.
//   - Limits (Limits): the archive's unpacked size, each file, the number
//     of entries, the main file's size and the number of steps.
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
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ErrInvalid is wrapped by every validation error.
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

	// Files are the archive's regular files by cleaned relative path.
	Files map[string][]byte `yaml:"-" json:"-"`
	links map[string]bool
	dirs  map[string]bool
}

// Builtins are the variables every step sees.
var Builtins = []string{"ID", "IDX", "EVEN", "ODD", "DEADLINE"}

// Parse reads an archive and validates it.
func Parse(r io.Reader, lim Limits) (*Layout, error) {
	lim.defaults()
	br := bufio.NewReader(r)
	var src io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%w: file: not a gzip stream: %v", ErrInvalid, err)
		}
		defer zr.Close()
		src = zr
	}
	l := &Layout{Files: map[string][]byte{}, links: map[string]bool{}, dirs: map[string]bool{}}
	tr := tar.NewReader(src)
	var total int64
	for n := 0; ; n++ {
		h, err := tr.Next()
		if err == io.EOF {
			if n == 0 {
				return nil, fmt.Errorf("%w: file: empty archive", ErrInvalid)
			}
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: file: not a tar archive: %v", ErrInvalid, err)
		}
		if n >= lim.Entries {
			return nil, fmt.Errorf("%w: file: more than %d entries", ErrInvalid, lim.Entries)
		}
		name, err := entryName(h.Name)
		if err != nil {
			return nil, err
		}
		switch h.Typeflag {
		case tar.TypeReg: // the reader turns old TypeRegA entries into TypeReg
			if h.Size > lim.FileBytes {
				return nil, fmt.Errorf("%w: file: %s is over the %d-byte file limit", ErrInvalid, name, lim.FileBytes)
			}
			total += h.Size
			if total > lim.ArchiveBytes {
				return nil, fmt.Errorf("%w: file: the archive unpacks to over %d bytes", ErrInvalid, lim.ArchiveBytes)
			}
			b, err := io.ReadAll(io.LimitReader(tr, h.Size))
			if err != nil || int64(len(b)) != h.Size {
				return nil, fmt.Errorf("%w: file: %s is truncated: %v", ErrInvalid, name, err)
			}
			if _, dup := l.Files[name]; dup {
				return nil, fmt.Errorf("%w: file: %s appears twice", ErrInvalid, name)
			}
			l.Files[name] = b
		case tar.TypeSymlink, tar.TypeLink:
			l.links[name] = true
		case tar.TypeDir:
			l.dirs[name] = true
		default: // devices, fifos, pax/gnu headers the reader did not fold in
		}
	}
	if err := l.readMain(lim); err != nil {
		return nil, err
	}
	if err := l.validate(lim); err != nil {
		return nil, err
	}
	return l, nil
}

// entryName cleans a tar entry name; absolute or escaping names are errors.
func entryName(raw string) (string, error) {
	n := strings.ReplaceAll(raw, `\`, "/")
	if strings.HasPrefix(n, "/") || len(n) > 1 && n[1] == ':' {
		return "", fmt.Errorf("%w: file: entry %q is an absolute path", ErrInvalid, raw)
	}
	c := path.Clean(n)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%w: file: entry %q escapes the archive", ErrInvalid, raw)
	}
	if strings.ContainsRune(c, 0) {
		return "", fmt.Errorf("%w: file: entry %q has a NUL byte", ErrInvalid, raw)
	}
	return c, nil
}

func (l *Layout) readMain(lim Limits) error {
	y, hasY := l.Files["main.yaml"]
	j, hasJ := l.Files["main.json"]
	var err error
	switch {
	case hasY && hasJ:
		return fmt.Errorf("%w: file: both main.yaml and main.json (keep one)", ErrInvalid)
	case hasY:
		if int64(len(y)) > lim.MainBytes {
			return fmt.Errorf("%w: main.yaml: over %d bytes", ErrInvalid, lim.MainBytes)
		}
		dec := yaml.NewDecoder(bytes.NewReader(y))
		dec.KnownFields(true)
		if err = dec.Decode(l); err != nil && err != io.EOF {
			return fmt.Errorf("%w: main.yaml: %s", ErrInvalid, strings.TrimPrefix(err.Error(), "yaml: "))
		}
		if err == io.EOF {
			return fmt.Errorf("%w: main.yaml: empty", ErrInvalid)
		}
	case hasJ:
		if int64(len(j)) > lim.MainBytes {
			return fmt.Errorf("%w: main.json: over %d bytes", ErrInvalid, lim.MainBytes)
		}
		dec := json.NewDecoder(bytes.NewReader(j))
		dec.DisallowUnknownFields()
		if err = dec.Decode(l); err != nil {
			return fmt.Errorf("%w: main.json: %v", ErrInvalid, err)
		}
	default:
		if l.links["main.yaml"] || l.links["main.json"] {
			return fmt.Errorf("%w: file: main.yaml is a link in the archive (links are ignored)", ErrInvalid)
		}
		return fmt.Errorf("%w: file: the archive has no main.yaml or main.json", ErrInvalid)
	}
	return nil
}

func (l *Layout) validate(lim Limits) error {
	switch {
	case len(l.Steps) == 0:
		return fmt.Errorf("%w: main: no tasks", ErrInvalid)
	case len(l.Steps) > lim.Steps:
		return fmt.Errorf("%w: main: more than %d tasks", ErrInvalid, lim.Steps)
	case l.Timeout < 0:
		return fmt.Errorf("%w: main: negative timeout", ErrInvalid)
	}
	known := map[string]bool{}
	for _, b := range Builtins {
		known[b] = true
	}
	for i := range l.Steps {
		s := &l.Steps[i]
		if err := l.validateStep(s, known); err != nil {
			return fmt.Errorf("%w: step %d %q: %v", ErrInvalid, i+1, s.Name, err)
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

// File returns the archive file a push src names.
func (l *Layout) File(src string) ([]byte, error) {
	if err := l.CheckSrc(src); err != nil {
		return nil, err
	}
	return l.Files[path.Clean(strings.ReplaceAll(src, `\`, "/"))], nil
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
