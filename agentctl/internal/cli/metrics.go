package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/agentfleet/jkframe/backoff"
	"github.com/spf13/cobra"

	"github.com/agentfleet/agentctl/internal/client"
)

func (a *App) metricsCmd() *cobra.Command {
	var interval time.Duration
	var top int
	var once bool
	var output string
	c := &cobra.Command{
		Use:   "metrics ID",
		Short: "A top-like view of a metrics-agent's host, refreshed",
		Long: `Show a metrics-agent's host like top: CPU, load, memory, disks, network rates and the
heaviest processes, refreshed every --interval on a terminal (Ctrl-C quits). When stdout is
not a terminal, or with --once, one snapshot is printed; -o json prints the server's static
and dynamic payloads (the 1.5 field names) once.`,
		Example: `  agentctl metrics db-01
  agentctl metrics db-01 --once --top 5
  agentctl metrics db-01 -o json | jq .dynamic.usage.cpu`,
		Args:              args(1, 1),
		ValidArgsFunction: a.completeMetricsAgents,
		RunE: func(cmd *cobra.Command, args []string) error {
			if interval < 500*time.Millisecond {
				return usagef(cmd, "--interval must be at least 500ms")
			}
			if top < 0 {
				return usagef(cmd, "--top must not be negative")
			}
			cl, ctx, cancel, err := a.clientCtx(cmd)
			if err != nil {
				return err
			}
			defer cancel()
			id := args[0]
			st, rawStatic, err := cl.Static(ctx, id)
			if err != nil {
				return err
			}
			if output != fmtTable {
				_, rawDyn, err := cl.Dynamic(ctx, id, top)
				if err != nil {
					return err
				}
				_, err = printData(a.Out, output, map[string]json.RawMessage{"static": rawStatic, "dynamic": rawDyn})
				return err
			}
			live := !once && a.IsTerminal(a.Out)
			var prev *sample
			if live {
				if f, ok := a.Out.(*os.File); ok {
					defer prepareOutput(f)()
				}
				fmt.Fprint(a.Out, "\x1b[?1049h\x1b[?25l") // alternate screen, no cursor
				defer fmt.Fprint(a.Out, "\x1b[?25h\x1b[?1049l")
			}
			for {
				d, _, err := cl.Dynamic(ctx, id, top)
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				now := time.Now()
				cur := &sample{at: now, dyn: d}
				var b strings.Builder
				renderTop(&b, id, st, cur, prev, top, interval, live)
				if live {
					fmt.Fprint(a.Out, "\x1b[H\x1b[2J"+b.String())
				} else {
					fmt.Fprint(a.Out, b.String())
					return nil
				}
				prev = cur
				if err := backoff.Sleep(ctx, nil, interval); err != nil {
					return nil
				}
			}
		},
	}
	c.Flags().DurationVar(&interval, "interval", 2*time.Second, "refresh every")
	c.Flags().IntVar(&top, "top", 15, "processes shown (0: all)")
	c.Flags().BoolVar(&once, "once", false, "print one snapshot and exit")
	outputFlag(c, &output, fmtTable, fmtJSON, fmtYAML)
	return c
}

func (a *App) completeMetricsAgents(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, noFiles
	}
	return a.agentIDs(cmd, toComplete, "metrics-agent"), noFiles
}

// sample is one dynamic report and when it came.
type sample struct {
	at  time.Time
	dyn client.Dynamic
}

// rate is a counter's growth per second between two samples.
func rate(cur, prev uint64, d time.Duration) string {
	if d <= 0 || cur < prev {
		return "-"
	}
	return bytesIEC(uint64(float64(cur-prev)/d.Seconds())) + "/s"
}

// renderTop writes one frame of the metrics view.
func renderTop(w io.Writer, id string, st client.Static, cur, prev *sample, top int, interval time.Duration, live bool) {
	up := "-"
	if st.Host.Uptime > 0 {
		up = shortDuration(time.Duration(st.Host.Uptime)*time.Second + time.Since(st.Time.Time))
		if st.Time.IsZero() {
			up = shortDuration(time.Duration(st.Host.Uptime) * time.Second)
		}
	}
	fmt.Fprintf(w, "%s  %s  %s %s %s  %s %s  up %s  %d cpu  %s\n", id, orDash(st.Host.Name), st.OS.Name, st.OS.PlatformName, st.OS.PlatformVersion,
		st.Kernel.Version, st.Kernel.Arch, up, st.CPU.Logical, cur.at.Format("15:04:05"))
	if live {
		fmt.Fprintf(w, "every %s, Ctrl-C quits\n", interval)
	}
	u := cur.dyn.Usage
	if u == nil {
		fmt.Fprintln(w, "\n(no usage in the report)")
	} else {
		fmt.Fprintf(w, "\ncpu   %5.1f%%   load %.2f %.2f %.2f\n", u.CPU.Usage, u.CPU.Load1, u.CPU.Load5, u.CPU.Load15)
		total := u.Memory.Used + u.Memory.Available
		if st.Memory.Physical > 0 {
			total = st.Memory.Physical
		}
		fmt.Fprintf(w, "mem   %5.1f%%   %s used of %s, %s available   swap %s used of %s\n", u.Memory.Usage,
			bytesIEC(u.Memory.Used), bytesIEC(total), bytesIEC(u.Memory.Available), bytesIEC(u.Memory.SwapUsed), bytesIEC(u.Memory.SwapUsed+u.Memory.SwapFree))
		for _, p := range u.Partitions {
			fmt.Fprintf(w, "disk  %5.1f%%   %-20s %s free   read %s/s  write %s/s\n", p.Usage, p.Name, bytesIEC(p.Free),
				bytesIEC(uint64(p.ReadPerSecond)), bytesIEC(uint64(p.WritePerSecond)))
		}
		for _, n := range u.Interface {
			rx, tx := "-", "-"
			if prev != nil && prev.dyn.Usage != nil {
				for _, pn := range prev.dyn.Usage.Interface {
					if pn.Name == n.Name {
						d := cur.at.Sub(prev.at)
						rx, tx = rate(n.BytesRecv, pn.BytesRecv, d), rate(n.BytesSent, pn.BytesSent, d)
					}
				}
			}
			fmt.Fprintf(w, "net   %-16s rx %-12s tx %-12s (total rx %s, tx %s)\n", n.Name, rx, tx, bytesIEC(n.BytesRecv), bytesIEC(n.BytesSent))
		}
	}
	if len(cur.dyn.Temperatures) > 0 {
		parts := make([]string, 0, len(cur.dyn.Temperatures))
		for _, t := range cur.dyn.Temperatures {
			parts = append(parts, fmt.Sprintf("%s %.0f°C", t.Name, t.Temp))
		}
		fmt.Fprintf(w, "temp  %s\n", strings.Join(parts, "  "))
	}
	procs := slices.Clone(cur.dyn.Process)
	slices.SortStableFunc(procs, func(x, y client.Process) int {
		switch {
		case x.CPUUsage > y.CPUUsage:
			return -1
		case x.CPUUsage < y.CPUUsage:
			return 1
		}
		return int(y.RSS>>10) - int(x.RSS>>10)
	})
	if top > 0 && len(procs) > top {
		procs = procs[:top]
	}
	fmt.Fprintln(w)
	t := newTable(w, "PID", "USER", "CPU%", "MEM%", "RSS", "CONNS", "COMMAND")
	for _, p := range procs {
		t.row(fmt.Sprint(p.ID), orDash(p.User), fmt.Sprintf("%.1f", p.CPUUsage), fmt.Sprintf("%.1f", p.MemoryUsage), bytesIEC(p.RSS),
			fmt.Sprint(p.Conns), firstLine(strings.Join(p.Cmd, " "), 80))
	}
	_ = t.flush()
}
