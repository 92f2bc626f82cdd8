package hostmetrics

import (
	"errors"
	"slices"
	"strings"

	"github.com/agentfleet/agent-server/internal/fault"
)

// ErrBadValue is what the errors of ParseKinds and ParseJobs are
// (*fault.Error, the message without the sentinel's text).
var ErrBadValue = errors.New("bad value")

// Connection kinds an agent can be asked for (hm_dynamic_req.aconns), and
// "all".
var connKinds = []string{"tcp", "tcp4", "tcp6", "udp", "udp4", "udp6", "unix"}

// Job names of the metrics-agent (hm_change_status.jobs).
var jobNames = []string{"static", "usage", "process", "conns", "temps"}

// JobNames returns the collection jobs a metrics-agent knows, in order.
func JobNames() []string { return slices.Clone(jobNames) }

// maxListItems bounds the items of a kinds or jobs list.
const maxListItems = 64

// splitList splits every value at commas, trims the items, drops empty
// ones and duplicates (keeping the first), and lowercases them.
func splitList(vals []string) ([]string, error) {
	var out []string
	for _, v := range vals {
		for item := range strings.SplitSeq(v, ",") {
			item = strings.ToLower(strings.TrimSpace(item))
			if item == "" || slices.Contains(out, item) {
				continue
			}
			if len(out) == maxListItems {
				return nil, fault.Invalidf(ErrBadValue, "more than %d items", maxListItems)
			}
			out = append(out, item)
		}
	}
	return out, nil
}

// ParseKinds reads connection kinds ("tcp,udp6", or several values). nil
// (absent) and "all" mean every kind and return nil. Error text:
// `bad value: unknown connection kind "x" (want tcp, tcp4, tcp6, udp, udp4, udp6, unix or all)`.
func ParseKinds(vals []string) ([]string, error) {
	items, err := splitList(vals)
	if err != nil {
		return nil, err
	}
	if slices.Contains(items, "all") {
		return nil, nil
	}
	for _, k := range items {
		if !slices.Contains(connKinds, k) {
			return nil, fault.Invalidf(ErrBadValue, "unknown connection kind %q (want %s or all)", clip(k), strings.Join(connKinds, ", "))
		}
	}
	return items, nil
}

// ParseJobs checks job names ("static", "usage", "process", "conns",
// "temps"); duplicates are dropped. An empty list is valid (stop all).
// Error text: `bad value: unknown job "x" (want static, usage, process, conns, temps)`.
func ParseJobs(vals []string) ([]string, error) {
	items, err := splitList(vals)
	if err != nil {
		return nil, err
	}
	for _, j := range items {
		if !slices.Contains(jobNames, j) {
			return nil, fault.Invalidf(ErrBadValue, "unknown job %q (want %s)", clip(j), strings.Join(jobNames, ", "))
		}
	}
	if items == nil {
		items = []string{}
	}
	return items, nil
}

// clip shortens a bad value quoted back in an error.
func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

// kindMatches reports whether a connection of type typ (tcp4, tcp6, udp4,
// udp6, unix; v1 agents may send tcp, udp) is of one of kinds.
func kindMatches(typ string, kinds []string) bool {
	if len(kinds) == 0 {
		return true
	}
	typ = strings.ToLower(typ)
	for _, k := range kinds {
		switch {
		case k == typ:
			return true
		case (k == "tcp" || k == "udp") && strings.HasPrefix(typ, k):
			return true
		}
	}
	return false
}

// FilterConnections keeps the connections of the given kinds (all when
// kinds is empty).
func FilterConnections(cs []Connection, kinds []string) []Connection {
	if len(kinds) == 0 {
		return cs
	}
	out := make([]Connection, 0, len(cs))
	for _, c := range cs {
		if kindMatches(c.Type, kinds) {
			out = append(out, c)
		}
	}
	return out
}
