// Package config reads and writes agentctl's config file: named contexts
// (server URL, token, CA file) and the current one. The file holds
// tokens, so it is written with mode 0600 in a 0700 directory, replaced
// atomically, and a file others may read is reported.
//
// Location: $AGENTCTL_CONFIG, else <user config dir>/agentctl/config.yaml
// ($XDG_CONFIG_HOME or ~/.config on Linux, ~/Library/Application Support
// on macOS, %AppData% on Windows).
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Context is one server to talk to and how.
type Context struct {
	Name string `yaml:"name"`
	// Server is a base URL; several, comma-separated, are the servers of
	// one cluster, tried in turn.
	Server   string `yaml:"server"`
	Token    string `yaml:"token,omitempty"`
	CAFile   string `yaml:"ca-file,omitempty"`
	Insecure bool   `yaml:"insecure-skip-tls-verify,omitempty"`
}

// Servers splits Server into its URLs.
func (c Context) Servers() []string {
	var out []string
	for s := range strings.SplitSeq(c.Server, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// File is the config file.
type File struct {
	Current  string    `yaml:"current-context"`
	Contexts []Context `yaml:"contexts"`
}

// Get returns the context named name.
func (f *File) Get(name string) (Context, bool) {
	for _, c := range f.Contexts {
		if c.Name == name {
			return c, true
		}
	}
	return Context{}, false
}

// Put adds or replaces a context (kept sorted by name).
func (f *File) Put(c Context) {
	for i := range f.Contexts {
		if f.Contexts[i].Name == c.Name {
			f.Contexts[i] = c
			return
		}
	}
	f.Contexts = append(f.Contexts, c)
	slices.SortFunc(f.Contexts, func(a, b Context) int { return strings.Compare(a.Name, b.Name) })
}

// Delete removes a context; the current one becomes none.
func (f *File) Delete(name string) bool {
	for i, c := range f.Contexts {
		if c.Name == name {
			f.Contexts = slices.Delete(f.Contexts, i, i+1)
			if f.Current == name {
				f.Current = ""
			}
			return true
		}
	}
	return false
}

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$`)

// ValidName checks a context name.
func ValidName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("context name %q: use letters, digits and . _ : @ - (at most 128)", name)
	}
	return nil
}

// Path returns where the config file is: $AGENTCTL_CONFIG or the user
// config dir.
func Path(getenv func(string) string) (string, error) {
	if p := getenv("AGENTCTL_CONFIG"); p != "" {
		return p, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no config dir (set AGENTCTL_CONFIG): %w", err)
	}
	return filepath.Join(dir, "agentctl", "config.yaml"), nil
}

// maxFile bounds the config file.
const maxFile = 1 << 20

// Load reads the file at path; a missing file is an empty config. warn,
// when the file's mode lets others read it, says so.
func Load(path string) (f *File, warn string, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &File{}, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("config %s: %w", path, err)
	}
	if fi, err := os.Stat(path); err == nil {
		warn = permWarning(path, fi.Mode())
	}
	f, err = Parse(b)
	if err != nil {
		return nil, warn, fmt.Errorf("config %s: %w", path, err)
	}
	return f, warn, nil
}

// Parse decodes a config file: unknown keys, duplicate or invalid
// context names are errors.
func Parse(b []byte) (*File, error) {
	if len(b) > maxFile {
		return nil, fmt.Errorf("larger than %d bytes", maxFile)
	}
	f := &File{}
	if len(bytes.TrimSpace(b)) == 0 {
		return f, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(f); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, c := range f.Contexts {
		if err := ValidName(c.Name); err != nil {
			return nil, err
		}
		if seen[c.Name] {
			return nil, fmt.Errorf("context %q appears twice", c.Name)
		}
		seen[c.Name] = true
	}
	if f.Current != "" && !seen[f.Current] {
		return nil, fmt.Errorf("current-context %q is not among the contexts", f.Current)
	}
	return f, nil
}

// Save writes f to path atomically with mode 0600 (directory 0700).
func Save(path string, f *File) error {
	b, err := yaml.Marshal(f)
	if err != nil {
		return err
	}
	b = append([]byte("# agentctl contexts: written by `agentctl login` and `agentctl context`; holds tokens (mode 0600)\n"), b...)
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("config dir: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".config-*.yaml")
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		tmp.Close()
		return fmt.Errorf("config: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("config: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("config: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}
