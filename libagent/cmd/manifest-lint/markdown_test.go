package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/agentfleet/libagent/manifest"
)

func TestCode(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `""`},
		{"10M", "`10M`"},
		{"a|b", "`a\\|b`"},
		{"a`b", "`` a`b ``"},
		{"`", "`` ` ``"},
		{"a\n  b", "`a b`"},
	} {
		if got := code(tc.in); got != tc.want {
			t.Errorf("code(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestMarkdownCells(t *testing.T) {
	yaml := `- key: a.mode
  type: enum
  name: {zh: 模式, en: Mode}
  desc: {zh: "选 | 择", en: "pick *one* <of>"}
  default: x
  enum_valid: [x, y]
  required: true
- key: a.dir
  type: path
  name: {zh: 目录}
  desc: {zh: 目录}
  len: 64
  enabled:
    when: {target: a.on, equal: false}
- key: a.on
  type: bool
  name: {zh: 开}
  desc: {zh: 开}
- key: a.addr
  type: naddr
  name: {zh: 地址}
  desc: {zh: 地址}
  enabled:
    when: {target: a.kinds, contain: tcp}
- key: a.kinds
  type: csv
  name: {zh: 类}
  desc: {zh: 类}
- key: a.wait
  type: duration
  name: {zh: 等}
  desc: {zh: 等}
  min: 1s
`
	m, err := manifest.Parse(strings.NewReader(yaml), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if ps := m.Validate(); len(ps) > 0 {
		t.Fatal(ps)
	}
	var b bytes.Buffer
	if err := writeMarkdown(&b, []titled{{"T", m}, {"Empty", &manifest.Manifest{}}}); err != nil {
		t.Fatal(err)
	}
	want := "## T\n\n" +
		"| key | type | default | allowed | enabled when | description |\n" +
		"|---|---|---|---|---|---|\n" +
		"| `a.mode` (required) | enum | `x` | one of `x`, `y` | always | **Mode**: pick \\*one\\* &lt;of&gt;<br>**模式**: 选 \\| 择 |\n" +
		"| `a.dir` | path | — | absolute path; at most 64 characters | `a.on` = `false` | **目录**: 目录 |\n" +
		"| `a.on` | bool | — | `true` or `false` | always | **开**: 开 |\n" +
		"| `a.addr` | naddr | — | host:port | `a.kinds` contains `tcp` | **地址**: 地址 |\n" +
		"| `a.kinds` | csv | — | — | always | **类**: 类 |\n" +
		"| `a.wait` | duration | — | ≥ `1s` | always | **等**: 等 |\n" +
		"\n## Empty\n\nNo keys.\n"
	if got := b.String(); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}
