package store

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/agentfleet/agent-server/internal/fault"
)

// Agent is what the server remembers about an agent between connections.
// Whether it is online is not stored: the hub knows.
type Agent struct {
	ID              string            `json:"id"`
	Type            string            `json:"type"` // come.name, e.g. "exec-agent"
	Version         string            `json:"version"`
	IP              string            `json:"ip"`
	MAC             string            `json:"mac"`
	HostName        string            `json:"host_name"`
	OS              string            `json:"os"`
	Platform        string            `json:"platform"`
	PlatformVersion string            `json:"platform_version"`
	KernelVersion   string            `json:"kernel_version"`
	Arch            string            `json:"arch"`
	CPU             string            `json:"cpu"`      // model name
	CPUCore         int               `json:"cpu_core"` // logical cores
	Memory          uint64            `json:"memory"`   // bytes
	Labels          map[string]string `json:"labels,omitempty"`
	Facts           json.RawMessage   `json:"facts,omitempty"` // anything else the handshake carried
	FirstSeen       time.Time         `json:"first_seen"`
	LastSeen        time.Time         `json:"last_seen"`
	ConnectedAt     time.Time         `json:"connected_at"`
}

// Paging selects one page of a listing. Page is 1-based; Page < 1 means 1.
// Size < 1 means DefaultPageSize and Size > MaxPageSize means MaxPageSize.
// A page beyond the end is empty (the total is still reported).
type Paging struct {
	Page int
	Size int
}

// Page sizes applied by the listings.
const (
	DefaultPageSize = 20
	MaxPageSize     = 1000
)

// limitOffset normalises p and returns the SQL LIMIT and OFFSET.
func (p Paging) limitOffset() (limit, offset int) {
	page, size := p.Page, p.Size
	if page < 1 {
		page = 1
	}
	if size < 1 {
		size = DefaultPageSize
	}
	if size > MaxPageSize {
		size = MaxPageSize
	}
	// Keeps page*size from overflowing, on 32-bit platforms too (no table
	// holds two billion rows to page through).
	const maxOffset = math.MaxInt32
	if page-1 > maxOffset/size {
		return size, maxOffset
	}
	return size, (page - 1) * size
}

// AgentFilter selects agents; empty fields do not filter. All conditions must hold.
type AgentFilter struct {
	Type     string
	OS       string
	Platform string
	// Keyword matches a case-insensitive substring of the id, IP, MAC or
	// host name.
	Keyword string
	// Labels must all match (see ParseSelector).
	Labels []LabelMatch
	// IDs, when not empty, restricts the result to these ids (at most MaxFilterIDs).
	IDs []string
	// Sort orders the page: one of AgentSortKeys, "-" in front for
	// descending; ties are broken by id. Empty sorts by id.
	Sort string
	Paging
}

// AgentSortKeys are the columns AgentFilter.Sort accepts.
var AgentSortKeys = []string{"id", "type", "version", "ip", "host_name", "os", "platform", "arch", "first_seen", "last_seen"}

// AgentOrder checks AgentFilter.Sort and returns its ORDER BY clause.
func AgentOrder(sort string) (string, error) {
	key, dir := strings.TrimPrefix(sort, "-"), ""
	if strings.HasPrefix(sort, "-") {
		dir = " DESC"
	}
	switch {
	case sort == "":
		return "id", nil
	case !slices.Contains(AgentSortKeys, key):
		return "", fault.Invalidf(ErrInvalid, "sort key %q (one of %s, - in front for descending)", key, strings.Join(AgentSortKeys, ", "))
	case key == "id":
		return "id" + dir, nil
	}
	return key + dir + ", id" + dir, nil
}

// MaxFilterIDs bounds AgentFilter.IDs.
const MaxFilterIDs = 20000

// TaskKind says what a task runs.
type TaskKind string

// Task kinds.
const (
	KindExec   TaskKind = "exec"
	KindScript TaskKind = "script"
	KindFleet  TaskKind = "fleet"
	KindLayout TaskKind = "layout"
	// KindUpgrade: agents' self-update on a selection (package tasks).
	KindUpgrade TaskKind = "upgrade"
)

func (k TaskKind) valid() bool {
	switch k {
	case KindExec, KindScript, KindFleet, KindLayout, KindUpgrade:
		return true
	}
	return false
}

// TaskState is the state of a whole task. Done, cancelled and failed are final.
type TaskState string

// Task states.
const (
	TaskPending   TaskState = "pending"
	TaskRunning   TaskState = "running"
	TaskDone      TaskState = "done"
	TaskCancelled TaskState = "cancelled"
	TaskFailed    TaskState = "failed"
)

// Final reports whether no further transition is allowed from s.
func (s TaskState) Final() bool {
	return s == TaskDone || s == TaskCancelled || s == TaskFailed
}

func (s TaskState) valid() bool {
	return s == TaskPending || s == TaskRunning || s.Final()
}

// TaskStateChange is one UpdateTaskState, for PutResultsStates.
type TaskStateChange struct {
	ID    string
	State TaskState
	At    time.Time // now when zero
	Msg   string
	// OwnerToken, when not 0, fences the change: it is made only while the
	// task's owner_token is still this (taskowner.go); ErrConflict otherwise.
	OwnerToken int64
}

// Task is one exec, script, fleet or layout run.
type Task struct {
	ID         string          `json:"id"` // generated by CreateTask when empty
	Kind       TaskKind        `json:"kind"`
	Spec       json.RawMessage `json:"spec,omitempty"` // the request, as the API received it
	State      TaskState       `json:"state"`
	CreatedBy  string          `json:"created_by"` // token name
	CreatedAt  time.Time       `json:"created_at"`
	StartedAt  time.Time       `json:"started_at,omitzero"`
	FinishedAt time.Time       `json:"finished_at,omitzero"`
	Msg        string          `json:"msg,omitempty"` // why it failed or was cancelled
	// Owner, when its Member is set, makes CreateTask store the task owned
	// by that cluster member (token 1; taskowner.go). Not read back by
	// GetTask and ListTasks: TaskOwnerOf reads it.
	Owner TaskOwner `json:"-"`
	// Summary counts the task's results by state; computed on read, never stored.
	Summary Summary `json:"summary"`
}

// Summary counts a task's per-agent results by state.
type Summary struct {
	Total    int `json:"total"`
	Pending  int `json:"pending"`
	Running  int `json:"running"`
	OK       int `json:"ok"`
	Failed   int `json:"failed"`
	TimedOut int `json:"timed_out"`
	Skipped  int `json:"skipped"`
	Lost     int `json:"lost"`
}

func (s *Summary) add(state ResultState, n int) {
	s.Total += n
	switch state {
	case ResultPending:
		s.Pending += n
	case ResultRunning:
		s.Running += n
	case ResultOK:
		s.OK += n
	case ResultFailed:
		s.Failed += n
	case ResultTimedOut:
		s.TimedOut += n
	case ResultSkipped:
		s.Skipped += n
	case ResultLost:
		s.Lost += n
	}
}

// TaskFilter selects tasks; empty fields do not filter.
type TaskFilter struct {
	Kind TaskKind
	// Kinds selects tasks of any of these kinds (and of Kind, when set).
	Kinds     []TaskKind
	States    []TaskState // any of these
	CreatedBy string
	Paging
}

// ResultState is the state of one agent's part of a task.
type ResultState string

// Result states. OK, failed, timed_out and skipped are final; lost is not:
// an agent that comes back may still report what it did.
const (
	ResultPending  ResultState = "pending"
	ResultRunning  ResultState = "running"
	ResultOK       ResultState = "ok"
	ResultFailed   ResultState = "failed"
	ResultTimedOut ResultState = "timed_out"
	ResultSkipped  ResultState = "skipped"
	ResultLost     ResultState = "lost"
)

// Final reports whether s is an outcome that a pending, running or lost
// report can no longer replace.
func (s ResultState) Final() bool {
	return s == ResultOK || s == ResultFailed || s == ResultTimedOut || s == ResultSkipped
}

func (s ResultState) valid() bool {
	return s == ResultPending || s == ResultRunning || s == ResultLost || s.Final()
}

// Result is one agent's part of a task.
type Result struct {
	TaskID    string      `json:"task_id"`
	AgentID   string      `json:"agent_id"`
	State     ResultState `json:"state"`
	ExitCode  int         `json:"exit_code"`
	PID       int         `json:"pid,omitempty"`
	StartedAt time.Time   `json:"started_at,omitzero"`
	EndedAt   time.Time   `json:"ended_at,omitzero"`
	Msg       string      `json:"msg,omitempty"`
	// OutputHead and OutputTail are the first and last bytes of the output,
	// Dropped the bytes between them that are in neither, OutputBytes the
	// total the agent produced. The runner computes them.
	OutputHead  []byte `json:"output_head,omitempty"`
	OutputTail  []byte `json:"output_tail,omitempty"`
	Dropped     int64  `json:"dropped"`
	OutputBytes int64  `json:"output_bytes"`
}

// ResultFilter selects results of one task.
type ResultFilter struct {
	States []ResultState // any of these
	Paging
}

// AuditEntry records one API call: every state-changing call and every
// call that touches a host.
type AuditEntry struct {
	ID     int64     `json:"id"`   // assigned by AppendAudit
	Time   time.Time `json:"time"` // now when zero
	Actor  string    `json:"actor"`
	Action string    `json:"action"` // the route, e.g. "POST /api/exec/{id}/run"
	Target string    `json:"target"` // agent id, task id, ...
	// Agent is the agent the call reached ("" when none or many).
	Agent string `json:"agent"`
	// Remote is the client's address (host:port of the connection).
	Remote string `json:"remote"`
	// Status is the HTTP status of the answer (0: not known).
	Status    int             `json:"status"`
	RequestID string          `json:"request_id"`
	Detail    json.RawMessage `json:"detail,omitempty"`
	Result    string          `json:"result"` // "ok" or the error text
}

// AuditFilter selects audit entries; empty fields do not filter. Since is
// inclusive, Until exclusive.
type AuditFilter struct {
	Actor  string
	Action string
	Target string
	Agent  string
	Since  time.Time
	Until  time.Time
	Paging
}

// APIToken is an API token created at runtime (/api/tokens). Only the
// SHA-256 hash of its secret is stored. A revoked token is kept, so its
// name stays taken.
type APIToken struct {
	Name      string    `json:"name"`
	Hash      []byte    `json:"-"`
	Scopes    []string  `json:"scopes"`
	Selector  string    `json:"selector"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"` // zero: never
	RevokedAt time.Time `json:"revoked_at,omitzero"` // zero: not revoked
	RevokedBy string    `json:"revoked_by,omitempty"`
}

// Lengths of APIToken fields.
const (
	MaxTokenName  = 64
	TokenHashSize = 32
)

// Metric categories pushed by metrics-agents.
const (
	CategoryStatic  = "static"
	CategoryUsage   = "usage"
	CategoryProcess = "process"
	CategoryConns   = "conns"
	CategoryTemps   = "temps"
)

func validCategory(c string) bool {
	switch c {
	case CategoryStatic, CategoryUsage, CategoryProcess, CategoryConns, CategoryTemps:
		return true
	}
	return false
}

// Metric is one report of one category from one agent.
type Metric struct {
	AgentID  string          `json:"agent_id"`
	Category string          `json:"category"`
	Time     time.Time       `json:"time"`
	Data     json.RawMessage `json:"data"`
}

// MaxUsageHistory bounds the rows UsageHistory returns.
const MaxUsageHistory = 100000
