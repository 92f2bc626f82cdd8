// Package yaml reads YAML files that may include other files.
//
// A line whose first non-blank text is
//
//	#include <path or glob>
//
// is replaced by the contents of the named file, every line of the included
// text prefixed with the indentation of the include line, so an include can
// fill in a nested mapping or sequence:
//
//	server:
//	  #include server.d/*.yaml
//
// The path may be written bare, in angle brackets or in double quotes. It is
// relative to the directory of the including file (on the OS file system an
// absolute path is also accepted). A path containing glob metacharacters
// (`*`, `?`, `[`) includes every match in lexical order and may match nothing;
// a plain path that does not exist is an error naming the including file and
// line. Includes nest; a cycle is an error that shows the chain
// (`a.yaml:3 -> b.yaml:1 -> a.yaml`). Since the line is a YAML comment, a file
// with includes is still valid YAML on its own.
//
// Include lines are recognised textually, wherever they appear (also inside
// block scalars). Expansion is bounded: nesting depth (default 16), number of
// files included (default 10000) and size of the result (default 64 MiB), so
// a hostile or mistaken set of files cannot make it run away.
//
// Decode errors from the YAML parser name the original file and line, not the
// line of the expanded text.
package yaml

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	yamlv3 "gopkg.in/yaml.v3"
)

// Sentinel errors, for errors.Is.
var (
	// ErrCycle: a file includes itself, directly or through others.
	ErrCycle = errors.New("include cycle")
	// ErrDepth: includes are nested deeper than the limit.
	ErrDepth = errors.New("include depth limit exceeded")
	// ErrTooLarge: the expanded text or the number of included files is over
	// the limit.
	ErrTooLarge = errors.New("expanded text too large")
	// ErrSyntax: an include line without a path.
	ErrSyntax = errors.New("bad include line")
)

// Defaults of the expansion limits.
const (
	DefaultMaxDepth    = 16
	DefaultMaxIncludes = 10000
	DefaultMaxSize     = 64 << 20
)

// Option changes how files are expanded and decoded.
type Option func(*config)

type config struct {
	maxDepth    int
	maxIncludes int
	maxSize     int
	lax         bool
}

// WithMaxDepth sets how deep includes may nest (the top file is depth 0).
func WithMaxDepth(n int) Option { return func(c *config) { c.maxDepth = n } }

// WithMaxIncludes sets how many files may be included in total.
func WithMaxIncludes(n int) Option { return func(c *config) { c.maxIncludes = n } }

// WithMaxSize sets the largest expanded text, in bytes.
func WithMaxSize(n int) Option { return func(c *config) { c.maxSize = n } }

// AllowUnknownFields makes Decode ignore mapping keys that have no matching
// struct field; by default they are an error.
func AllowUnknownFields() Option { return func(c *config) { c.lax = true } }

func newConfig(opts []Option) config {
	c := config{maxDepth: DefaultMaxDepth, maxIncludes: DefaultMaxIncludes, maxSize: DefaultMaxSize}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// Expand returns the contents of the file at path on the OS file system with
// every include expanded.
func Expand(path string, opts ...Option) ([]byte, error) {
	out, _, err := expand(osSource{}, filepath.Clean(path), newConfig(opts))
	return out, err
}

// ExpandFS is Expand on fsys; name and include paths are slash-separated and
// must stay inside fsys.
func ExpandFS(fsys fs.FS, name string, opts ...Option) ([]byte, error) {
	out, _, err := expand(fsSource{fsys}, name, newConfig(opts))
	return out, err
}

// Decode expands the file at path and decodes the result into v with
// gopkg.in/yaml.v3. Unknown fields are an error unless AllowUnknownFields is
// given. An empty document leaves v untouched.
func Decode(path string, v any, opts ...Option) error {
	return decode(osSource{}, filepath.Clean(path), v, newConfig(opts))
}

// DecodeFS is Decode on fsys.
func DecodeFS(fsys fs.FS, name string, v any, opts ...Option) error {
	return decode(fsSource{fsys}, name, v, newConfig(opts))
}

func decode(src source, name string, v any, c config) error {
	text, origins, err := expand(src, name, c)
	if err != nil {
		return err
	}
	dec := yamlv3.NewDecoder(bytes.NewReader(text))
	dec.KnownFields(!c.lax)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		msg := mapLines(err.Error(), origins)
		if msg == err.Error() { // no line to map: at least name the file
			msg = name + ": " + msg
		}
		return &decodeError{msg: msg, err: err}
	}
	return nil
}

// decodeError carries the parser's message rewritten to name source files
// and lines, and keeps the parser's error (e.g. *yaml.TypeError) for errors.As.
type decodeError struct {
	msg string
	err error
}

func (e *decodeError) Error() string { return e.msg }
func (e *decodeError) Unwrap() error { return e.err }

var lineRef = regexp.MustCompile(`\bline (\d+)`)

// mapLines turns yaml.v3's "line N" (N in the expanded text) into "file:line".
func mapLines(msg string, origins []origin) string {
	return lineRef.ReplaceAllStringFunc(msg, func(s string) string {
		n, err := strconv.Atoi(s[len("line "):])
		if err != nil || n < 1 || n > len(origins) {
			return s
		}
		o := origins[n-1]
		return o.file + ":" + strconv.Itoa(o.line)
	})
}

// source abstracts the OS file system and fs.FS.
type source interface {
	read(name string) ([]byte, error)
	glob(pattern string) ([]string, error)
	// resolve names ref, written in file from, relative to from's directory.
	resolve(from, ref string) string
}

type osSource struct{}

func (osSource) read(name string) ([]byte, error)      { return os.ReadFile(name) }
func (osSource) glob(pattern string) ([]string, error) { return filepath.Glob(pattern) }
func (osSource) resolve(from, ref string) string {
	ref = filepath.FromSlash(ref)
	if filepath.IsAbs(ref) {
		return filepath.Clean(ref)
	}
	return filepath.Join(filepath.Dir(from), ref)
}

type fsSource struct{ fsys fs.FS }

func (s fsSource) read(name string) ([]byte, error) {
	// Checked here because fs.FS implementations differ in how they report it.
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	return fs.ReadFile(s.fsys, name)
}
func (s fsSource) glob(pattern string) ([]string, error) { return fs.Glob(s.fsys, pattern) }
func (fsSource) resolve(from, ref string) string {
	if strings.HasPrefix(ref, "/") {
		return ref // not a valid fs.FS name: read reports it
	}
	return path.Join(path.Dir(from), ref)
}

// origin is where one line of the expanded text came from.
type origin struct {
	file string
	line int
}

// frame is one open include on the stack: the file and the line being
// expanded in it.
type frame struct {
	file string
	line int
}

type expander struct {
	src      source
	cfg      config
	out      bytes.Buffer
	origins  []origin
	stack    []frame
	includes int
}

func expand(src source, name string, c config) ([]byte, []origin, error) {
	e := &expander{src: src, cfg: c}
	data, err := src.read(name)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", name, err)
	}
	if err := e.file(name, data, ""); err != nil {
		return nil, nil, err
	}
	return e.out.Bytes(), e.origins, nil
}

var includeLine = regexp.MustCompile(`^([ \t]*)#include(?:[ \t]+(.*?))?[ \t]*\r?$`)

// file writes the expansion of data (the contents of name) with every line
// prefixed by indent.
func (e *expander) file(name string, data []byte, indent string) error {
	e.stack = append(e.stack, frame{file: name})
	defer func() { e.stack = e.stack[:len(e.stack)-1] }()
	top := &e.stack[len(e.stack)-1]

	text := string(data)
	for n := 1; text != ""; n++ {
		line := text
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = ""
		}
		top.line = n
		m := includeLine.FindStringSubmatch(line)
		if m == nil {
			if err := e.emit(indent, line, name, n); err != nil {
				return err
			}
			continue
		}
		if err := e.include(name, n, indent+m[1], unquote(m[2])); err != nil {
			return err
		}
	}
	return nil
}

func unquote(ref string) string {
	if len(ref) >= 2 && (ref[0] == '<' && ref[len(ref)-1] == '>' || ref[0] == '"' && ref[len(ref)-1] == '"') {
		return strings.TrimSpace(ref[1 : len(ref)-1])
	}
	return ref
}

func (e *expander) emit(indent, line, file string, n int) error {
	if line != "" && line != "\r" {
		e.out.WriteString(indent)
	}
	e.out.WriteString(line)
	e.out.WriteByte('\n')
	e.origins = append(e.origins, origin{file: file, line: n})
	if e.out.Len() > e.cfg.maxSize {
		return fmt.Errorf("%s:%d: %w (limit %d bytes)", file, n, ErrTooLarge, e.cfg.maxSize)
	}
	return nil
}

// include expands the files named by ref, written at from:n.
func (e *expander) include(from string, n int, indent, ref string) error {
	if ref == "" {
		return fmt.Errorf("%s:%d: %w: no path", from, n, ErrSyntax)
	}
	target := e.src.resolve(from, ref)
	names := []string{target}
	if strings.ContainsAny(ref, "*?[") {
		var err error
		names, err = e.src.glob(target)
		if err != nil {
			return fmt.Errorf("%s:%d: include %q: %w", from, n, ref, err)
		}
		sort.Strings(names)
	}
	for _, name := range names {
		for _, f := range e.stack {
			if f.file == name {
				return fmt.Errorf("%s:%d: %w: %s", from, n, ErrCycle, e.chain(name))
			}
		}
		if len(e.stack) > e.cfg.maxDepth {
			return fmt.Errorf("%s:%d: %w (%d): %s", from, n, ErrDepth, e.cfg.maxDepth, e.chain(name))
		}
		e.includes++
		if e.includes > e.cfg.maxIncludes {
			return fmt.Errorf("%s:%d: %w: more than %d files included", from, n, ErrTooLarge, e.cfg.maxIncludes)
		}
		data, err := e.src.read(name)
		if err != nil {
			return fmt.Errorf("%s:%d: include %q: %w", from, n, ref, err)
		}
		if err := e.file(name, data, indent); err != nil {
			return err
		}
	}
	return nil
}

// chain renders the include stack followed by next: "a.yaml:3 -> b.yaml:1 -> next".
func (e *expander) chain(next string) string {
	var b strings.Builder
	for _, f := range e.stack {
		fmt.Fprintf(&b, "%s:%d -> ", f.file, f.line)
	}
	b.WriteString(next)
	return b.String()
}
