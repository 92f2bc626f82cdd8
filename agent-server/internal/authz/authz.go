// Package authz is agent-server's access model: the scopes an API token may
// hold, the identity a request is made with, and the label selector that
// limits which agents a token reaches (node-label RBAC).
//
// A scope names a right over a group of routes ("exec:run", "files:read").
// Every API route declares the one scope it needs (api.Scope); admin holds
// every scope. A scope may imply others (exec:read-any implies exec:read),
// listed in its row of the table below. Adding a scope is one line there.
//
// A token with a selector reaches only the agents whose labels match it:
// any other agent is "not found", lists leave them out, and fleet actions
// skip them. The fleet-wide scopes (admin, audit:read) cannot be combined
// with a selector: they see every agent by nature.
package authz

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/agentfleet/agent-server/internal/fault"
	"github.com/agentfleet/agent-server/internal/store"
)

// Scope names a right.
type Scope string

// The scopes routes use. Names are part of the API (config files, tokens,
// /api/whoami): never rename one.
const (
	AgentsRead  Scope = "agents:read"
	AgentsWrite Scope = "agents:write"
	// AgentsUpgrade replaces agents' binaries (self-update).
	AgentsUpgrade Scope = "agents:upgrade"
	MetricsRead   Scope = "metrics:read"
	MetricsWrite  Scope = "metrics:write"
	ExecRun       Scope = "exec:run"
	ExecRead      Scope = "exec:read"
	ExecReadAny   Scope = "exec:read-any"
	FilesRead     Scope = "files:read"
	FilesWrite    Scope = "files:write"
	TasksRead     Scope = "tasks:read"
	TasksWrite    Scope = "tasks:write"
	AuditRead     Scope = "audit:read"
	LogsRead      Scope = "logs:read"
	LoggingRead   Scope = "logging:read"
	LoggingWrite  Scope = "logging:write"
	PackagesRead  Scope = "packages:read"
	PackagesWrite Scope = "packages:write"
	// ClusterWrite drains a cluster member.
	ClusterWrite Scope = "cluster:write"
	Admin        Scope = "admin"
)

// Info describes a scope.
type Info struct {
	Name Scope
	// Help is the one-line meaning shown in docs and errors.
	Help string
	// Writes: the scope allows changing something (an agent's state, a
	// host, the server's configuration). A token without any such scope
	// is read-only.
	Writes bool
	// FleetWide: the scope is about the whole fleet and cannot be held
	// by a token limited by a selector.
	FleetWide bool
	// Implies lists the scopes a holder has as well.
	Implies []Scope
}

// table is every scope, in display order. Adding a scope is one line here
// (and a constant above when code refers to it).
var table = []Info{
	{Name: AgentsRead, Help: "list and read agents"},
	{Name: AgentsWrite, Help: "set agents' labels", Writes: true},
	{Name: AgentsUpgrade, Help: "upgrade agents to a new binary (self-update fleet tasks; replaces what runs on many hosts)", Writes: true},
	{Name: MetricsRead, Help: "read host metrics (cached or fresh from the agent)"},
	{Name: MetricsWrite, Help: "change metrics collection (jobs, fleet start/stop)", Writes: true},
	{Name: ExecRun, Help: "run and kill commands and scripts, agent calls, example foo, interactive shells, software installs", Writes: true},
	{Name: ExecRead, Help: "status and process list of commands, output of the token's own"},
	{Name: ExecReadAny, Help: "output of commands and tasks started by other tokens", Implies: []Scope{ExecRead}},
	{Name: FilesRead, Help: "list directories and download files of hosts"},
	{Name: FilesWrite, Help: "upload files to hosts", Writes: true},
	{Name: TasksRead, Help: "read fleet tasks and layouts"},
	{Name: TasksWrite, Help: "create and cancel fleet tasks and layouts (runs commands on many hosts)", Writes: true},
	{Name: AuditRead, Help: "read and export the audit log", FleetWide: true},
	{Name: LogsRead, Help: "list and download the agents' own log files"},
	{Name: LoggingRead, Help: "read log-collection projects and the collected lines (query, live tail)", FleetWide: true},
	{Name: LoggingWrite, Help: "configure, start, stop and remove log-collection projects", Writes: true, FleetWide: true},
	{Name: PackagesRead, Help: "list and download the packages of the server's repository"},
	{Name: PackagesWrite, Help: "upload, replace and delete the packages of the server's repository", Writes: true},
	{Name: ClusterWrite, Help: "drain a cluster member (its agents move to the other members)", Writes: true, FleetWide: true},
	{Name: Admin, Help: "everything, token management included", Writes: true, FleetWide: true},
}

// All returns every scope, in display order.
func All() []Info { return slices.Clone(table) }

// Lookup returns the Info of a scope.
func Lookup(s Scope) (Info, bool) {
	for _, in := range table {
		if in.Name == s {
			return in, true
		}
	}
	return Info{}, false
}

// ReadOnlyScopes are the scopes of a legacy api.read_only_tokens token:
// the read scopes but not files:read, exec:read-any or logs:read, which
// read hosts' files and other users' output.
var ReadOnlyScopes = []Scope{AgentsRead, MetricsRead, ExecRead, TasksRead, AuditRead, PackagesRead}

// ErrInvalid is what the errors of Parse and NewIdentity are: each is a
// *fault.Error naming the parameter at fault (scopes or selector).
var ErrInvalid = errors.New("invalid")

// Parse reads scope names (items trimmed, empty ones dropped, duplicates
// merged) into a sorted set. An unknown name is an error listing the known
// ones.
func Parse(names []string) ([]Scope, error) {
	var out []Scope
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if _, ok := Lookup(Scope(n)); !ok {
			return nil, fault.Invalidf(ErrInvalid, "unknown scope %q (known: %s)", n, strings.Join(scopeNames(), ", ")).InParam("scopes")
		}
		if !slices.Contains(out, Scope(n)) {
			out = append(out, Scope(n))
		}
	}
	slices.SortFunc(out, func(a, b Scope) int { return order(a) - order(b) })
	return out, nil
}

func scopeNames() []string {
	out := make([]string, len(table))
	for i, in := range table {
		out[i] = string(in.Name)
	}
	return out
}

func order(s Scope) int {
	for i, in := range table {
		if in.Name == s {
			return i
		}
	}
	return len(table)
}

// Identity is who a request is made by: a token's name, its scopes and
// the agents it reaches. The zero Identity has no rights.
type Identity struct {
	// Name is the token's name, as the audit log records it.
	Name string
	// Scopes as granted (see Parse); Has expands admin and implications.
	Scopes []Scope
	// Selector is the label selector as written; "" reaches every agent.
	Selector string
	// ExpiresAt is when the token stops working; zero: never.
	ExpiresAt time.Time

	sel []store.LabelMatch
}

// NewIdentity checks scopes and selector and builds an identity.
func NewIdentity(name string, scopes []Scope, selector string, expires time.Time) (Identity, error) {
	id := Identity{Name: name, Scopes: scopes, Selector: strings.TrimSpace(selector), ExpiresAt: expires}
	if len(scopes) == 0 {
		return Identity{}, fault.Invalidf(ErrInvalid, "no scopes").InParam("scopes")
	}
	sel, err := store.ParseSelector(id.Selector)
	if err != nil {
		return Identity{}, fault.Invalidf(ErrInvalid, "selector: %s", fault.Message(err)).InParam("selector")
	}
	id.sel = sel
	if len(sel) > 0 {
		for _, s := range scopes {
			if in, _ := Lookup(s); in.FleetWide {
				return Identity{}, fault.Invalidf(ErrInvalid, "scope %s is fleet-wide and cannot be limited by a selector", s).InParam("scopes")
			}
		}
	}
	return id, nil
}

// Has reports whether the identity holds scope s (directly, through admin,
// or implied by another of its scopes).
func (id Identity) Has(s Scope) bool {
	for _, g := range id.Scopes {
		if g == s || g == Admin {
			return true
		}
		if in, ok := Lookup(g); ok && slices.Contains(in.Implies, s) {
			return true
		}
	}
	return false
}

// ReadOnly reports that none of the identity's scopes allows a change.
func (id Identity) ReadOnly() bool {
	for _, s := range id.Scopes {
		if in, ok := Lookup(s); ok && in.Writes {
			return false
		}
	}
	return true
}

// Limited reports whether a selector restricts the agents reached.
func (id Identity) Limited() bool { return len(id.sel) > 0 }

// Labels returns the parsed selector (nil when not limited).
func (id Identity) Labels() []store.LabelMatch { return slices.Clone(id.sel) }

// Reaches reports whether an agent with these labels is within the
// identity's selector.
func (id Identity) Reaches(labels map[string]string) bool {
	return store.MatchLabels(id.sel, labels)
}

// Expired reports whether the identity's token has expired at now.
func (id Identity) Expired(now time.Time) bool {
	return !id.ExpiresAt.IsZero() && !now.Before(id.ExpiresAt)
}
