package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/agentfleet/agentctl/internal/client"
)

// Output formats of -o.
const (
	fmtTable = "table"
	fmtWide  = "wide"
	fmtJSON  = "json"
	fmtYAML  = "yaml"
)

// outputFlag adds -o with the given formats (the first is the default).
func outputFlag(c *cobra.Command, dst *string, formats ...string) {
	c.Flags().StringVarP(dst, "output", "o", formats[0], "output format: "+strings.Join(formats, ", "))
	_ = c.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return formats, cobra.ShellCompDirectiveNoFileComp
	})
	prev := c.PreRunE
	c.PreRunE = func(cmd *cobra.Command, args []string) error {
		if !slices.Contains(formats, *dst) {
			return usagef(cmd, "-o %s: want one of %s", *dst, strings.Join(formats, ", "))
		}
		if prev != nil {
			return prev(cmd, args)
		}
		return nil
	}
}

// printData writes v as JSON or YAML; ok is false for the other formats.
func printData(w io.Writer, format string, v any) (bool, error) {
	switch format {
	case fmtJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return true, enc.Encode(v)
	case fmtYAML:
		// Through JSON, so that YAML keys are the JSON names and custom
		// encodings (times) apply.
		b, err := json.Marshal(v)
		if err != nil {
			return true, err
		}
		var x any
		if err := yaml.Unmarshal(b, &x); err != nil {
			return true, err
		}
		out, err := yaml.Marshal(x)
		if err != nil {
			return true, err
		}
		_, err = w.Write(out)
		return true, err
	}
	return false, nil
}

// table writes aligned columns.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t *table) row(cols ...string) {
	for i, c := range cols {
		cols[i] = strings.NewReplacer("\t", " ", "\n", " ", "\r", "").Replace(c)
	}
	fmt.Fprintln(t.tw, strings.Join(cols, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// ago renders a past time relative to now ("3m", "2h", "5d"), "-" for
// none.
func ago(t client.Time, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return shortDuration(now.Sub(t.Time))
}

// shortDuration renders d with one or two units: 45s, 3m12s, 5h3m, 12d.
func shortDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// stamp renders a time for tables: local, to the second.
func stamp(t client.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// bytesIEC renders a byte count in binary units (the project's
// convention: K = 1024).
func bytesIEC(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// labelsText renders labels sorted, k=v comma-separated.
func labelsText(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

// palette colours text on a terminal, never with NO_COLOR or TERM=dumb.
type palette struct{ on bool }

func (a *App) palette(w io.Writer) palette {
	if _, set := lookupEnv(a.Getenv, "NO_COLOR"); set || a.Getenv("TERM") == "dumb" {
		return palette{}
	}
	return palette{on: a.IsTerminal(w)}
}

// lookupEnv tells a variable set to "" from one not set: NO_COLOR counts
// when present with any value but the empty string (no-color.org).
func lookupEnv(getenv func(string) string, k string) (string, bool) {
	v := getenv(k)
	return v, v != ""
}

func (p palette) wrap(code, s string) string {
	if !p.on || s == "" {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

func (p palette) red(s string) string    { return p.wrap("31", s) }
func (p palette) green(s string) string  { return p.wrap("32", s) }
func (p palette) yellow(s string) string { return p.wrap("33", s) }
func (p palette) dim(s string) string    { return p.wrap("2", s) }
func (p palette) bold(s string) string   { return p.wrap("1", s) }

// hostColor gives each host of a fleet run its own colour.
func (p palette) hostColor(i int, s string) string {
	codes := []string{"36", "35", "34", "33", "32", "96", "95", "94", "93", "92"}
	return p.wrap(codes[i%len(codes)], s)
}

// state colours a task or result state.
func (p palette) state(s string) string {
	switch s {
	case "ok", "done", "online":
		return p.green(s)
	case "failed", "timed_out", "lost", "cancelled", "offline":
		return p.red(s)
	case "running", "pending", "skipped":
		return p.yellow(s)
	}
	return s
}
