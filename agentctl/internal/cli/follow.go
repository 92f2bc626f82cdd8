package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/agentfleet/agentctl/internal/client"
	"github.com/agentfleet/jkframe/backoff"
)

// followMode is what a follower shows while a task runs.
type followMode int

const (
	showOutput   followMode = iota // each agent's output, line by line with its id in front
	showProgress                   // a progress line (terminal) or a line per finished agent
	showNothing                    // nothing until the end (--summary, -o json)
	// showStates: a line per agent state change, its id in front (tasks
	// without output: upgrades), and the progress line on a terminal.
	showStates
)

// follower follows a fleet task or a layout through its event stream to
// its end. It is used by one goroutine; notes from others (Ctrl-C) go
// through note, which shares the lock of the progress line.
type follower struct {
	cl     *client.Client
	id     string
	layout bool
	mode   followMode
	out    io.Writer // output lines
	errw   io.Writer // notes, progress
	pal    palette
	errTTY bool
	// lineFmt renders output lines (install's action log); nil: as they are.
	lineFmt func([]byte) []byte

	mu       sync.Mutex
	width    int
	order    map[string]int
	agents   map[string]*agentOut
	states   map[string]string // agent → state, for the progress line
	told     map[string]string // agent → the last state shown (showStates)
	total    int
	state    string // the task's, from the done event
	msg      string
	drawn    bool // a progress line is on screen
	lastDraw time.Time
}

type agentOut struct {
	seen  int64  // output bytes shown or deliberately skipped
	fuzzy bool   // the last chunk had replaced bytes: offsets cannot be trusted exactly
	line  []byte // a line not ended yet
}

func newFollower(a *App, cl *client.Client, id string, mode followMode) *follower {
	return &follower{cl: cl, id: id, mode: mode, out: a.Out, errw: a.Err, pal: a.palette(a.Out), errTTY: a.IsTerminal(a.Err),
		order: map[string]int{}, agents: map[string]*agentOut{}, states: map[string]string{}, told: map[string]string{}}
}

// expect names the agents up front (prefix width and colours, progress
// total) with their current states.
func (f *follower) expect(results map[string]string) {
	ids := make([]string, 0, len(results))
	for id := range results {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		f.agent(id)
		f.states[id] = results[id]
	}
	f.total = len(ids)
	if f.mode == showStates {
		for _, id := range ids { // started before the stream is opened; ended ones: finalStates, with their msg
			if results[id] == "running" {
				f.tellState(id, "running", "")
			}
		}
	}
}

func (f *follower) agent(id string) *agentOut {
	ao := f.agents[id]
	if ao == nil {
		ao = &agentOut{}
		f.agents[id] = ao
		f.order[id] = len(f.order)
		f.width = max(f.width, len(id))
	}
	return ao
}

// run follows the events until the done event. A stream that ends early
// (dropped for lagging, connection lost) is opened again.
func (f *follower) run(ctx context.Context) error {
	f.mu.Lock()
	f.drawProgress(true) // the states known before the first event
	f.mu.Unlock()
	failures := 0
	for {
		seq, err := f.cl.Events(ctx, f.id)
		if err != nil {
			var ce *client.ConnError
			if ctx.Err() != nil || !errors.As(err, &ce) || failures >= 5 {
				return err
			}
			failures++
			if err := backoff.Sleep(ctx, nil, time.Duration(failures)*time.Second); err != nil {
				return err
			}
			continue
		}
		done := false
		for ev, err := range seq {
			if err != nil {
				if errors.Is(err, client.ErrEventsDropped) {
					f.note("event stream dropped by the server (this client lagged); reconnecting")
					break
				}
				var ce *client.ConnError
				if errors.As(err, &ce) {
					break
				}
				f.note("warning: " + err.Error())
				continue
			}
			failures = 0
			f.handle(ctx, ev)
			if ev.Type == "done" {
				done = true
			}
		}
		if done {
			f.clearProgress()
			return nil
		}
		if ctx.Err() != nil {
			f.clearProgress()
			return ctx.Err()
		}
		failures++
		if failures > 5 {
			return fmt.Errorf("task %s: the event stream keeps ending before the task does", f.id)
		}
		if err := backoff.Sleep(ctx, nil, time.Duration(failures)*500*time.Millisecond); err != nil {
			return err
		}
	}
}

func (f *follower) handle(ctx context.Context, ev client.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch ev.Type {
	case "state":
		if ev.Agent == "" {
			return
		}
		ao := f.agent(ev.Agent)
		if _, known := f.states[ev.Agent]; !known {
			f.total = max(f.total, len(f.states)+1)
		}
		f.states[ev.Agent] = ev.State
		if finalResult(ev.State) {
			f.flushLine(ev.Agent, ao)
			if f.mode == showProgress && !f.errTTY {
				fmt.Fprintln(f.errw, resultLine(ev.Agent, ev.State, ev.ExitCode, ev.Msg))
			}
		}
		if f.mode == showStates {
			f.tellState(ev.Agent, ev.State, ev.Msg)
		}
		f.drawProgress(false)
	case "output":
		if f.mode != showOutput || ev.Agent == "" {
			return
		}
		f.output(ctx, ev.Agent, ev.Offset, ev.Data)
	case "done":
		f.state, f.msg = ev.State, ev.Msg
		f.drawProgress(true)
	}
}

// tellState shows an agent's new state as a line of its own (showStates):
// "web-01 | running", "web-01 | failed: <msg>"; a state already shown
// (seen in the task, then in the stream) is not repeated.
func (f *follower) tellState(agent, state, msg string) {
	if f.told[agent] == state {
		return
	}
	f.told[agent] = state
	line := state
	if msg != "" {
		line += ": " + msg
	}
	f.printLine(agent, []byte(line))
}

// finalStates shows (showStates) the outcome of the agents whose final
// state the stream did not carry: they ended before it was opened.
func (f *follower) finalStates(rs []client.AgentResult) {
	if f.mode != showStates {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range rs {
		if finalResult(r.State) && !finalResult(f.told[r.Agent]) {
			f.agent(r.Agent)
			f.tellState(r.Agent, r.State, r.Msg)
		}
	}
}

// resultLine is one agent's outcome in a sentence.
func resultLine(agent, state string, code *int, msg string) string {
	s := agent + ": " + state
	if code != nil && state != "skipped" && state != "lost" {
		s += fmt.Sprintf(" (exit %d)", *code)
	}
	if msg != "" {
		s += ": " + msg
	}
	return s
}

func finalResult(s string) bool {
	switch s {
	case "ok", "failed", "timed_out", "skipped", "lost":
		return true
	}
	return false
}

// output shows an output event, filling a gap (events lost while the
// stream was reconnected) from the stored output.
func (f *follower) output(ctx context.Context, agent string, off *int64, data string) {
	ao := f.agent(agent)
	if off != nil && !ao.fuzzy {
		switch {
		case *off > ao.seen:
			f.fill(ctx, agent, ao, *off)
		case *off < ao.seen: // seen already (a reconnect)
			skip := ao.seen - *off
			if skip >= int64(len(data)) {
				return
			}
			data = data[skip:]
			*off += skip
		}
	}
	f.emit(agent, ao, []byte(data))
	if off != nil {
		ao.seen = *off + int64(len(data))
	} else {
		ao.seen += int64(len(data))
	}
	ao.fuzzy = strings.ContainsRune(data, utf8.RuneError)
}

// fill shows an agent's stored output from what was seen up to to (-1:
// all there is); bytes the server no longer has become a marker line.
func (f *follower) fill(ctx context.Context, agent string, ao *agentOut, to int64) {
	if f.layout {
		if to > ao.seen {
			f.emit(agent, ao, fmt.Appendf(nil, "\n[... %d bytes not shown: the layout's results have the output ...]\n", to-ao.seen))
			ao.seen = to
		}
		return
	}
	rc, err := f.cl.TaskOutput(ctx, f.id, agent, ao.seen)
	if err != nil {
		if to > ao.seen {
			f.emit(agent, ao, fmt.Appendf(nil, "\n[... %d bytes not shown (%v): agentctl tasks output %s %s ...]\n", to-ao.seen, err, f.id, agent))
			ao.seen = to
		}
		return
	}
	defer rc.Close()
	var r io.Reader = rc
	if to >= 0 {
		r = io.LimitReader(rc, to-ao.seen)
	}
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			f.emit(agent, ao, buf[:n])
			ao.seen += int64(n)
		}
		if err != nil {
			break
		}
	}
	if to > ao.seen {
		f.emit(agent, ao, fmt.Appendf(nil, "\n[... %d bytes not kept by the server ...]\n", to-ao.seen))
		ao.seen = to
	}
}

// maxLine is where a line without an end is shown anyway.
const maxLine = 64 << 10

// emit shows output of an agent line by line, its id in front.
func (f *follower) emit(agent string, ao *agentOut, b []byte) {
	ao.line = append(ao.line, b...)
	for {
		i := bytes.IndexByte(ao.line, '\n')
		if i < 0 {
			if len(ao.line) > maxLine {
				f.printLine(agent, ao.line)
				ao.line = ao.line[:0]
			}
			return
		}
		f.printLine(agent, ao.line[:i])
		ao.line = ao.line[i+1:]
	}
}

func (f *follower) flushLine(agent string, ao *agentOut) {
	if len(ao.line) > 0 {
		f.printLine(agent, ao.line)
		ao.line = ao.line[:0]
	}
}

func (f *follower) printLine(agent string, line []byte) {
	f.clearProgressLocked()
	line = bytes.TrimRight(line, "\r")
	if i := bytes.LastIndexByte(line, '\r'); i >= 0 { // a terminal would show what follows the last \r
		line = line[i+1:]
	}
	if f.lineFmt != nil {
		line = f.lineFmt(line)
	}
	prefix := f.pal.hostColor(f.order[agent], fmt.Sprintf("%-*s", f.width, agent))
	fmt.Fprintf(f.out, "%s | %s\n", prefix, line)
}

// finish shows what the stream did not carry: output of agents that ended
// before the stream was opened (or beyond a gap at the end), and lines
// not ended.
func (f *follower) finish(ctx context.Context, results map[string]int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := make([]string, 0, len(results))
	for id := range results {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		ao := f.agent(id)
		if f.mode == showOutput && results[id] > ao.seen && !ao.fuzzy {
			f.fill(ctx, id, ao, results[id])
		}
	}
	all := make([]string, 0, len(f.agents))
	for id := range f.agents {
		all = append(all, id)
	}
	slices.Sort(all)
	for _, id := range all {
		f.flushLine(id, f.agents[id])
	}
}

// note prints a message to stderr, around the progress line.
func (f *follower) note(msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clearProgressLocked()
	fmt.Fprintln(f.errw, msg)
	f.drawProgress(true)
}

// drawProgress redraws the progress line (terminal; showProgress and showStates),
// at most every 100 ms unless forced.
func (f *follower) drawProgress(force bool) {
	if f.mode != showProgress && f.mode != showStates || !f.errTTY {
		return
	}
	now := time.Now()
	if !force && f.drawn && now.Sub(f.lastDraw) < 100*time.Millisecond {
		return
	}
	f.lastDraw = now
	var s client.Summary
	for _, st := range f.states {
		switch st {
		case "ok":
			s.OK++
		case "failed":
			s.Failed++
		case "timed_out":
			s.TimedOut++
		case "skipped":
			s.Skipped++
		case "lost":
			s.Lost++
		case "running":
			s.Running++
		default:
			s.Pending++
		}
	}
	s.Total = max(f.total, len(f.states))
	fmt.Fprintf(f.errw, "\r\x1b[K%s", progressLine(f.id, s, f.state))
	f.drawn = true
}

// progressLine renders a task's counts with a bar.
func progressLine(id string, s client.Summary, state string) string {
	done := s.Finished()
	const width = 24
	fill := 0
	if s.Total > 0 {
		fill = done * width / s.Total
	}
	bar := strings.Repeat("=", fill) + strings.Repeat(" ", width-fill)
	if state == "" {
		state = "running"
	}
	line := fmt.Sprintf("%s %s [%s] %d/%d  ok %d", id, state, bar, done, s.Total, s.OK)
	if bad := s.Failed + s.TimedOut + s.Lost; bad > 0 {
		line += fmt.Sprintf("  failed %d", bad)
	}
	if s.Running > 0 {
		line += fmt.Sprintf("  running %d", s.Running)
	}
	if s.Skipped > 0 {
		line += fmt.Sprintf("  skipped %d", s.Skipped)
	}
	return line
}

func (f *follower) clearProgress() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.drawn {
		fmt.Fprintln(f.errw)
		f.drawn = false
	}
}

func (f *follower) clearProgressLocked() {
	if f.drawn {
		fmt.Fprint(f.errw, "\r\x1b[K")
		f.drawn = false
	}
}
