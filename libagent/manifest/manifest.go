// Package manifest reads and checks manifest.yaml, the description of an
// agent's config keys for deployment tools (see config.md "manifest.yaml"),
// and checks a kvconf config file against it.
//
// A manifest is a YAML list of items:
//
//	# conf/manifest.yaml
//	- key: basic.log.size
//	  type: bytes
//	  name: {zh: 日志文件大小, en: Log file size}
//	  desc: {zh: ..., en: ...}
//	  default: 10M
//	  min: 1M
//	  max: 1G
//	  category: log
//	  enabled:
//	    when: {target: basic.log.target, contain: file}
//
// The dotted spellings of the spec ("name.zh: ...", "enabled.when: {...}")
// are accepted as well. Unknown fields are errors.
//
// Every agent describes the basic.* keys with the manifest embedded here and
// adds its own items:
//
//	m, err := manifest.Parse(ownYAML, "conf/manifest.yaml")
//	m = manifest.Merge(manifest.Basic(), m)
//	problems := m.Validate()
//
// Values are checked by type: int, uint, float (strconv), bool
// (strconv.ParseBool, as kvconf), bytes and duration (jkframe/utils), naddr
// (host:port, port 1–65535), uuid, path (absolute unless allow_relative;
// both Unix and Windows forms count as absolute), string (str_valid is a
// regular expression the whole value must match), enum (one of enum_valid),
// csv (comma-separated, items trimmed, each in csv_valid when given). len is
// the maximum length in characters of a string, path or csv value. An empty
// value means "not set" and is not type-checked.
package manifest

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Types are the value types a manifest item may have.
var Types = []string{"string", "enum", "csv", "int", "uint", "float", "bool", "naddr", "path", "bytes", "duration", "uuid"}

// Text is a name or description in Chinese (required) and English.
type Text struct {
	Zh string `yaml:"zh"`
	En string `yaml:"en"`
}

// When is an enabled.when condition: the item only matters when the target
// key, a csv, contains Contain, or when the target, a bool, equals Equal.
type When struct {
	Target  string  `yaml:"target"`
	Contain *string `yaml:"contain"`
	Equal   *bool   `yaml:"equal"`
}

// Item describes one config key.
type Item struct {
	Key           string   `yaml:"key"`
	Type          string   `yaml:"type"`
	Name          Text     `yaml:"name"`
	Desc          Text     `yaml:"desc"`
	Required      bool     `yaml:"required"`
	Default       *string  `yaml:"default"`
	EnumValid     []string `yaml:"enum_valid"`
	CSVValid      []string `yaml:"csv_valid"`
	StrValid      string   `yaml:"str_valid"`
	Min           *string  `yaml:"min"`
	Max           *string  `yaml:"max"`
	Len           *int     `yaml:"len"`
	AllowRelative bool     `yaml:"allow_relative"`
	Category      string   `yaml:"category"`
	// When is the enabled.when condition, nil when the item always matters.
	When *When `yaml:"-"`

	// File and Line locate the item in its manifest.
	File string `yaml:"-"`
	Line int    `yaml:"-"`
}

// Manifest is a parsed manifest.
type Manifest struct {
	Items []Item
}

// Lookup returns the item of key, or nil.
func (m *Manifest) Lookup(key string) *Item {
	for i := range m.Items {
		if m.Items[i].Key == key {
			return &m.Items[i]
		}
	}
	return nil
}

// Merge returns a manifest with the items of ms in order. Keys defined twice
// are reported by Validate.
func Merge(ms ...*Manifest) *Manifest {
	out := &Manifest{}
	for _, m := range ms {
		if m != nil {
			out.Items = append(out.Items, m.Items...)
		}
	}
	return out
}

// Problem is one finding of Validate or CheckConfig.
type Problem struct {
	File string
	Line int // 0 when no line applies (a missing key)
	Key  string
	Msg  string
}

// String returns "file:line: key: problem" (":line" left out when 0, "key: "
// when there is no key).
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		b.WriteString(":" + strconv.Itoa(p.Line))
	}
	b.WriteString(": ")
	if p.Key != "" {
		b.WriteString(p.Key + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is a list of problems; as an error it prints one per line.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Err returns ps as an error, nil when empty.
func (ps Problems) Err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps
}

func (ps Problems) sorted() Problems {
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].File != ps[j].File {
			return ps[i].File < ps[j].File
		}
		return ps[i].Line < ps[j].Line
	})
	return ps
}

func (it *Item) problem(format string, args ...any) Problem {
	return Problem{File: it.File, Line: it.Line, Key: it.Key, Msg: fmt.Sprintf(format, args...)}
}
