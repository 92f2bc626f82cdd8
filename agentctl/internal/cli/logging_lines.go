package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/agentfleet/jkframe/backoff"
	"github.com/spf13/cobra"

	"github.com/agentfleet/agentctl/internal/client"
)

// Line formats of query and tail.
const (
	fmtText = "text"
	fmtRaw  = "raw"
)

// lineFlags are the filters query and tail share.
type lineFlags struct {
	hosts        []string
	source, grep string
	since, until string
}

func (lf *lineFlags) add(a *App, c *cobra.Command, times bool) {
	f := c.Flags()
	f.StringArrayVar(&lf.hosts, "host", nil, "only the lines of this agent (repeatable)")
	f.StringVar(&lf.source, "source", "", "only sources whose name matches this pattern (path.Match: /var/log/*.log), or a source id")
	f.StringVar(&lf.grep, "grep", "", "only lines matching this RE2 regex")
	if times {
		f.StringVar(&lf.since, "since", "", "lines from this time: RFC 3339, unix seconds, or a duration back from now (1h, 30m)")
		f.StringVar(&lf.until, "until", "", "lines before this time (same forms)")
	}
	_ = c.RegisterFlagCompletionFunc("host", a.completeAgentIDs(true, "log-agent"))
}

// filter checks the flags and returns the API's filter.
func (lf *lineFlags) filter(c *cobra.Command, pid string, now time.Time) (client.LogFilter, error) {
	f := client.LogFilter{PID: pid, Hosts: lf.hosts, Source: lf.source, Grep: lf.grep}
	var err error
	if f.Since, err = relTime(lf.since, now); err != nil {
		return f, usagef(c, "--since: %v", err)
	}
	if f.Until, err = relTime(lf.until, now); err != nil {
		return f, usagef(c, "--until: %v", err)
	}
	return f, nil
}

// relTime reads a time flag: a duration back from now, or what the server
// reads itself (RFC 3339, unix seconds), which is checked here first.
func relTime(s string, now time.Time) (string, error) {
	if s == "" {
		return "", nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return "", fmt.Errorf("%q: a duration back from now must not be negative", s)
		}
		return now.Add(-d).UTC().Format(time.RFC3339Nano), nil
	}
	if _, err := client.ParseTime(s); err != nil {
		return "", fmt.Errorf("%q: want RFC 3339, unix seconds or a duration (1h)", s)
	}
	return s, nil
}

// linePrinter writes lines in one of the line formats.
type linePrinter struct {
	w      *bufio.Writer
	format string
	pal    palette
}

func (a *App) newLinePrinter(format string) *linePrinter {
	return &linePrinter{w: bufio.NewWriterSize(a.Out, 64<<10), format: format, pal: a.palette(a.Out)}
}

func (p *linePrinter) print(l client.LogLine) {
	switch p.format {
	case fmtRaw:
		_, _ = p.w.Write(l.Bytes())
	case fmtWide:
		fmt.Fprintf(p.w, "%s %s %s:%d %s| %s", p.pal.dim(l.Time.Local().Format("2006-01-02T15:04:05.000")), l.Host, l.Source, l.Offset,
			flagsText(l.Flags), l.Line)
	case fmtJSON:
		b, _ := jsonLine(l)
		_, _ = p.w.Write(b)
	default:
		fmt.Fprintf(p.w, "%s | %s", p.pal.bold(l.Host), l.Line)
	}
	_ = p.w.WriteByte('\n')
}

func flagsText(f []string) string {
	if len(f) == 0 {
		return ""
	}
	return "[" + strings.Join(f, ",") + "] "
}

func (p *linePrinter) flush() error { return p.w.Flush() }

func (a *App) loggingQueryCmd() *cobra.Command {
	var lf lineFlags
	var limit, pageSize int
	var cursor, output string
	c := &cobra.Command{
		Use:   "query PROJECT [flags]",
		Short: "Read a project's stored lines, filtered, page after page",
		Long: `Print the lines a project stored: per host (by id), in the order stored (per source, the
order of the file). Filters: --since/--until on the line's time, --host, --source (a name
pattern or a source id), --grep (RE2). Pages of --page-size are fetched until --limit lines
were printed (0: all of them); when the limit cuts the result, a note on stderr gives the
--cursor that continues it.

-o text: "host | line"; -o wide adds time, source and offset; -o raw: the line's exact bytes
only; -o json: one JSON object per line (JSON Lines, with the next cursor in a last object
{"next": …} when there is more); -o yaml: {lines, next}. GET /api/logging/query.`,
		Example: `  agentctl logging query web --grep 'ERROR|panic' --since 1h
  agentctl logging query web --host web-01 --source '/var/log/app/*.log' --limit 0 -o raw > app.log
  agentctl logging query web -o json --limit 100 | jq -r .line`,
		Args:              args(1, 1),
		ValidArgsFunction: a.completeProjects,
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 0 {
				return usagef(cmd, "--limit must not be negative")
			}
			if pageSize < 1 || pageSize > client.MaxLogPage {
				return usagef(cmd, "--page-size must be between 1 and %d", client.MaxLogPage)
			}
			f, err := lf.filter(cmd, args[0], time.Now())
			if err != nil {
				return err
			}
			cl, ctx, cancel, err := a.clientCtx(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			p := a.newLinePrinter(output)
			defer p.flush()
			var all []client.LogLine // -o yaml
			n := 0
			for {
				size := pageSize
				if limit > 0 {
					size = min(size, limit-n)
				}
				page, err := cl.LogQuery(ctx, f, size, cursor)
				if err != nil {
					return err
				}
				for _, l := range page.Lines {
					if output == fmtYAML {
						all = append(all, l)
					} else {
						p.print(l)
					}
				}
				n += len(page.Lines)
				cursor = page.Next
				if cursor == "" || limit > 0 && n >= limit {
					break
				}
			}
			switch output {
			case fmtYAML:
				if all == nil {
					all = []client.LogLine{}
				}
				_, err := printData(a.Out, fmtYAML, map[string]any{"lines": all, "next": cursor})
				return err
			case fmtJSON:
				if cursor != "" {
					fmt.Fprintf(p.w, "{\"next\":%q}\n", cursor)
				}
			}
			if err := p.flush(); err != nil {
				return err
			}
			if cursor != "" {
				fmt.Fprintf(a.Err, "agentctl: %d line(s) printed, there are more: --cursor %s continues\n", n, cursor)
			}
			return nil
		},
	}
	lf.add(a, c, true)
	c.Flags().IntVar(&limit, "limit", 1000, "lines printed at most (0: all)")
	c.Flags().IntVar(&pageSize, "page-size", 1000, "lines per request")
	c.Flags().StringVar(&cursor, "cursor", "", "continue where a previous query stopped")
	outputFlag(c, &output, fmtText, fmtWide, fmtRaw, fmtJSON, fmtYAML)
	return c
}

func (a *App) loggingTailCmd() *cobra.Command {
	var lf lineFlags
	var lines int
	var follow bool
	var output string
	c := &cobra.Command{
		Use:   "tail PROJECT [-f] [flags]",
		Short: "The last lines of a project, and with -f the lines as they arrive",
		Long: `Print the last -n lines the project stored since --since (default 1h back), then with -f
follow the live tail: every line stored from now on that matches --host, --source and --grep,
until Ctrl-C (exit 130). -f subscribes before it reads the stored lines, so nothing falls
between the two, and a line is never printed twice. When the connection is lost, it connects
again and reads what was stored meanwhile. Lines the server had to skip because this client was
too slow are announced on stderr (they stay stored: query reads them).

Output as in query: text, wide, raw or json (JSON Lines). GET /api/logging/query, then
GET /api/logging/tail (server-sent events).`,
		Example: `  agentctl logging tail web -f
  agentctl logging tail web -n 0 -f --grep ERROR -o wide
  agentctl logging tail web -n 100 --host web-01 -o raw`,
		Args:              args(1, 1),
		ValidArgsFunction: a.completeProjects,
		RunE: func(cmd *cobra.Command, args []string) error {
			if lines < 0 {
				return usagef(cmd, "-n must not be negative")
			}
			f, err := lf.filter(cmd, args[0], time.Now())
			if err != nil {
				return err
			}
			cl, ctx, cancel, err := a.clientCtx(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			t := &tailer{a: a, cl: cl, f: f, p: a.newLinePrinter(output), seen: map[string]int64{}}
			defer t.p.flush()
			if !follow {
				return t.backlog(ctx, lines)
			}
			err = t.follow(ctx, lines)
			_ = t.p.flush()
			if ctx.Err() != nil && cmd.Context().Err() == nil {
				return exitCode(ExitInterrupted) // Ctrl-C: the normal end of -f
			}
			return err
		},
	}
	lf.add(a, c, false)
	c.Flags().StringVar(&lf.since, "since", "1h", "the stored lines read first: from this time (RFC 3339, unix seconds, or a duration back)")
	c.Flags().IntVarP(&lines, "lines", "n", 10, "stored lines printed first (the last ones)")
	c.Flags().BoolVarP(&follow, "follow", "f", false, "follow the lines as they are stored, until Ctrl-C")
	outputFlag(c, &output, fmtText, fmtWide, fmtRaw, fmtJSON)
	return c
}

// tailer prints a project's last lines and follows its live tail; seen
// holds the highest offset printed per source id, so that a line is
// printed once whether it came from the store or the stream.
type tailer struct {
	a    *App
	cl   *client.Client
	f    client.LogFilter
	p    *linePrinter
	seen map[string]int64
	last time.Time // time of the newest line printed
}

func (t *tailer) show(l client.LogLine) {
	if off, ok := t.seen[l.SourceID]; ok && l.Offset <= off {
		return
	}
	t.seen[l.SourceID] = l.Offset
	if l.Time.After(t.last) {
		t.last = l.Time.Time
	}
	t.p.print(l)
}

// backlog prints the last n stored lines of the filter (reading every
// page: the store is in storage order, not newest first).
func (t *tailer) backlog(ctx context.Context, n int) error {
	if n == 0 {
		return nil
	}
	ring := make([]client.LogLine, 0, n)
	cursor := ""
	for {
		page, err := t.cl.LogQuery(ctx, t.f, client.MaxLogPage, cursor)
		if err != nil {
			return err
		}
		for _, l := range page.Lines {
			if len(ring) == n {
				copy(ring, ring[1:])
				ring = ring[:n-1]
			}
			ring = append(ring, l)
		}
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	for _, l := range ring {
		t.show(l)
	}
	return t.p.flush()
}

// catchUp prints every stored line from since on not printed yet (after a
// reconnection).
func (t *tailer) catchUp(ctx context.Context, since time.Time) error {
	f := t.f
	f.Since = since.UTC().Format(time.RFC3339Nano)
	cursor := ""
	for {
		page, err := t.cl.LogQuery(ctx, f, client.MaxLogPage, cursor)
		if err != nil {
			return err
		}
		for _, l := range page.Lines {
			t.show(l)
		}
		if cursor = page.Next; cursor == "" {
			return t.p.flush()
		}
	}
}

// follow subscribes, prints the backlog, then the stream; it reconnects
// (with a capped backoff) when the stream ends, until ctx is done.
func (t *tailer) follow(ctx context.Context, n int) error {
	first := true
	fails := 0
	for {
		stream, err := t.cl.LogTail(ctx, t.f)
		if err != nil {
			var ce *client.ConnError
			if ctx.Err() != nil || first || !errors.As(err, &ce) {
				return err
			}
		} else {
			switch {
			case first:
				if err := t.backlog(ctx, n); err != nil {
					return err
				}
			case !t.last.IsZero():
				if err := t.catchUp(ctx, t.last.Add(-time.Second)); err != nil && ctx.Err() == nil {
					fmt.Fprintf(t.a.Err, "agentctl: reading the lines stored while disconnected: %v\n", err)
				}
			}
			first, fails = false, 0
			err = t.stream(stream)
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		fails++
		wait := min(time.Duration(fails)*time.Second, 10*time.Second)
		if err != nil {
			fmt.Fprintf(t.a.Err, "agentctl: live tail interrupted: %v; connecting again in %s\n", err, wait)
		} else {
			fmt.Fprintf(t.a.Err, "agentctl: the server ended the live tail; connecting again in %s\n", wait)
		}
		if err := backoff.Sleep(ctx, nil, wait); err != nil {
			return err
		}
	}
}

func (t *tailer) stream(events func(func(client.LogEvent, error) bool)) error {
	defer t.p.flush()
	for ev, err := range events {
		if err != nil {
			return err
		}
		if ev.Line != nil {
			t.show(*ev.Line)
		} else if ev.Dropped > 0 {
			fmt.Fprintf(t.a.Err, "agentctl: %d line(s) skipped by the server: this client was too slow (they are stored: agentctl logging query reads them)\n", ev.Dropped)
		}
		if err := t.p.flush(); err != nil { // a follower sees each line as it comes
			return err
		}
	}
	return nil
}

// jsonLine encodes one line for JSON Lines output (no HTML escaping, as
// printData).
func jsonLine(l client.LogLine) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(l); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
