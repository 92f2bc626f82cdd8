package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/agentfleet/agentctl/internal/client"
)

// auditView is an audit entry in agentctl's JSON output.
type auditView struct {
	ID        int64           `json:"id"`
	Time      client.Time     `json:"time"`
	Actor     string          `json:"actor"`
	Action    string          `json:"action"`
	Target    string          `json:"target"`
	RequestID string          `json:"request_id"`
	Result    string          `json:"result"`
	Detail    json.RawMessage `json:"detail"`
}

func (a *App) auditCmd() *cobra.Command {
	var f client.AuditFilter
	var limit int
	var output string
	c := &cobra.Command{
		Use:   "audit",
		Short: "Show the audit log: who changed what, newest first",
		Example: `  agentctl audit --target web-01
  agentctl audit --actor ops --since 2026-01-01T00:00:00Z -o json`,
		Args: args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 {
				return usagef(cmd, "--limit must be at least 1")
			}
			for _, t := range []struct{ flag, v string }{{"since", f.Since}, {"until", f.Until}} {
				if _, err := client.ParseTime(t.v); err != nil {
					return usagef(cmd, "--%s: %v", t.flag, err)
				}
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			list, total, err := cl.Audit(cmd.Context(), f, limit)
			if err != nil {
				return err
			}
			views := make([]auditView, len(list))
			for i, e := range list {
				views[i] = auditView{ID: e.ID, Time: e.Time, Actor: e.Actor, Action: e.Action, Target: e.Target, RequestID: e.RequestID, Result: e.Result, Detail: e.Detail}
			}
			if ok, err := printData(a.Out, output, views); ok {
				return err
			}
			t := newTable(a.Out, "TIME", "ACTOR", "ACTION", "TARGET", "RESULT")
			for _, e := range list {
				t.row(stamp(e.Time), e.Actor, e.Action, orDash(e.Target), e.Result)
			}
			if err := t.flush(); err != nil {
				return err
			}
			if total > len(list) {
				fmt.Fprintf(a.Err, "(%d of %d entries; --limit for more)\n", len(list), total)
			}
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.Actor, "actor", "", "only calls made with this token name")
	fl.StringVar(&f.Action, "action", "", `only this route, e.g. "POST /api/tasks"`)
	fl.StringVar(&f.Target, "target", "", "only calls on this agent or task")
	fl.StringVar(&f.Since, "since", "", "from this time on (RFC 3339 or unix seconds)")
	fl.StringVar(&f.Until, "until", "", "before this time (RFC 3339 or unix seconds)")
	fl.IntVar(&limit, "limit", 50, "at most this many entries")
	outputFlag(c, &output, fmtTable, fmtJSON, fmtYAML)
	return c
}
