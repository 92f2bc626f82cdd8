package main

//go:generate go test -run ^TestConfigReference$ -update .

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/agentfleet/libagent/manifest"
)

// titled is one manifest with the heading its table gets.
type titled struct {
	title string
	m     *manifest.Manifest
}

// writeMarkdown prints one "## title" section with a table per manifest:
// key, type, default, allowed values, enabled-when, and the name and
// description in English and Chinese. The output depends only on the
// manifests, so a committed copy can be compared with a fresh one.
func writeMarkdown(w io.Writer, ms []titled) error {
	var b strings.Builder
	for i, t := range ms {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "## %s\n\n", t.title)
		if len(t.m.Items) == 0 {
			b.WriteString("No keys.\n")
			continue
		}
		b.WriteString("| key | type | default | allowed | enabled when | description |\n")
		b.WriteString("|---|---|---|---|---|---|\n")
		for _, it := range t.m.Items {
			key := code(it.Key)
			if it.Required {
				key += " (required)"
			}
			def := "—"
			if it.Default != nil {
				def = code(*it.Default)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n",
				key, it.Type, def, allowed(&it), enabledWhen(it.When), describe(&it))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// allowed describes the values an item accepts beyond its type.
func allowed(it *manifest.Item) string {
	var parts []string
	switch it.Type {
	case "enum":
		parts = append(parts, "one of "+codeList(it.EnumValid))
	case "csv":
		if len(it.CSVValid) > 0 {
			parts = append(parts, "any of "+codeList(it.CSVValid))
		}
	case "string":
		if it.StrValid != "" {
			parts = append(parts, "matches "+code(it.StrValid))
		}
	case "path":
		if it.AllowRelative {
			parts = append(parts, "absolute or relative path")
		} else {
			parts = append(parts, "absolute path")
		}
	case "naddr":
		parts = append(parts, "host:port")
	case "bool":
		parts = append(parts, code("true")+" or "+code("false"))
	}
	switch {
	case it.Min != nil && it.Max != nil:
		parts = append(parts, code(*it.Min)+" to "+code(*it.Max))
	case it.Min != nil:
		parts = append(parts, "≥ "+code(*it.Min))
	case it.Max != nil:
		parts = append(parts, "≤ "+code(*it.Max))
	}
	if it.Len != nil {
		parts = append(parts, "at most "+strconv.Itoa(*it.Len)+" characters")
	}
	if len(parts) == 0 {
		return "—"
	}
	return strings.Join(parts, "; ")
}

func enabledWhen(w *manifest.When) string {
	switch {
	case w == nil:
		return "always"
	case w.Contain != nil:
		return code(w.Target) + " contains " + code(*w.Contain)
	case w.Equal != nil:
		return code(w.Target) + " = " + code(strconv.FormatBool(*w.Equal))
	}
	return code(w.Target)
}

// describe gives the English and the Chinese name and description, the
// Chinese on a second line of the cell; a missing English text is left out.
func describe(it *manifest.Item) string {
	line := func(name, desc string) string {
		switch {
		case name != "" && desc != "":
			return "**" + cell(name) + "**: " + cell(desc)
		case name != "":
			return "**" + cell(name) + "**"
		}
		return cell(desc)
	}
	var out []string
	if s := line(it.Name.En, it.Desc.En); s != "" {
		out = append(out, s)
	}
	if s := line(it.Name.Zh, it.Desc.Zh); s != "" {
		out = append(out, s)
	}
	return strings.Join(out, "<br>")
}

// cell makes text safe inside a table cell: one line, pipes escaped, and
// emphasis and HTML-looking text kept literal.
func cell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return strings.NewReplacer(`|`, `\|`, `*`, `\*`, "`", "\\`", `<`, `&lt;`, `>`, `&gt;`).Replace(s)
}

// code is s as a code span inside a table cell. GFM splits cells on "|"
// even inside code spans, so it is escaped there too; backticks in s get a
// longer fence.
func code(s string) string {
	s = strings.ReplaceAll(strings.Join(strings.Fields(s), " "), "|", `\|`)
	if s == "" {
		return `""`
	}
	fence := "`"
	for strings.Contains(s, fence) {
		fence += "`"
	}
	if len(fence) > 1 || strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		return fence + " " + s + " " + fence
	}
	return fence + s + fence
}

func codeList(vs []string) string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = code(v)
	}
	return strings.Join(out, ", ")
}
