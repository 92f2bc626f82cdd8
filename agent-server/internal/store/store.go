// Package store is agent-server's persistence layer: agents, tasks with their
// per-agent results and output, the audit log and the metrics reported by
// metrics-agents.
//
// Two backends implement Store: SQLite (the default, a file under the data
// dir, pure Go) and MySQL/MariaDB (for a cluster of servers). Both pass the
// same test suite and share one schema source and one migration path
// (schema.go: ordered steps written once, translated for SQLite; migrate.go);
// a test compares the two schemas table by table. The code is split by area:
// agents.go, tasks.go, results.go, output.go, audit.go, metrics.go,
// secrets.go (agent secrets and journal acks), tokens.go, on the shared
// helpers of sql.go.
//
// Consumers depend on the few methods they use, declared where they are
// used (api.Store, tasks.Store, execsvc.Store, hostmetrics.Store, the hub's
// SecretStore and AckStore); Store is the whole contract, which Open returns.
//
// Conventions shared by every method:
//   - Times are stored in UTC with microsecond precision; they come back in UTC.
//   - Errors wrap ErrNotFound (no such row), ErrConflict (a duplicate id or a
//     transition the current state does not allow) or ErrInvalid (bad input:
//     a bad state, label, category or JSON blob); callers test with errors.Is.
//   - All values reach SQL as placeholders, label selectors included.
//   - Listings take a Paging and return one page plus the total count.
//
// Task output: each (task, agent) pair has an output stream stored as ordered
// chunks keyed by their byte offset. AppendOutput keeps everything up to
// Config.OutputCap bytes per stream and drops what goes beyond (it reports how
// much it kept); the runner keeps the last bytes itself and stores them in
// Result.OutputTail with Result.Dropped, so head and tail always survive.
// ReadOutput serves any byte range of the stored part (HTTP Range). Appends
// to one stream must not run concurrently (the runner owns a stream); appends
// to different streams may. Callers should batch small pieces (say 64 KiB or
// 100 ms): every append is a transaction.
//
// A Store is safe for concurrent use. The SQLite backend serialises writes on
// a single connection (SQLite allows one writer) and reads on a pool of
// read-only connections (WAL mode lets them run beside the writer).
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Sentinel errors; every error the store returns for these cases wraps one.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	ErrInvalid  = errors.New("invalid")
)

// Store persists what agent-server must remember across restarts.
type Store interface {
	// UpsertAgent records an agent at handshake. An existing agent keeps its
	// FirstSeen; a new one gets FirstSeen = a.FirstSeen, or ConnectedAt, or
	// LastSeen, or now, whichever is set first. Labels and Facts replace the
	// stored ones when non-nil and are kept when nil; every other field is
	// replaced.
	UpsertAgent(ctx context.Context, a Agent) error
	// TouchAgents moves LastSeen of the listed agents to t (never backwards).
	// Unknown ids are ignored. Meant to be called in batches.
	TouchAgents(ctx context.Context, ids []string, t time.Time) error
	// GetAgent returns one agent or ErrNotFound.
	GetAgent(ctx context.Context, id string) (Agent, error)
	// ListAgents returns a page of the matching agents ordered by id and
	// the number of matching agents.
	ListAgents(ctx context.Context, f AgentFilter) ([]Agent, int, error)
	// SetAgentLabels replaces an agent's labels (nil or empty clears them).
	SetAgentLabels(ctx context.Context, id string, labels map[string]string) error
	// DeleteAgent removes an agent with its labels and metrics (not its task
	// results). ErrNotFound when absent.
	DeleteAgent(ctx context.Context, id string) error

	// CreateTask stores a new task and returns it as stored: ID generated
	// when empty (time-ordered, 20 hex digits), State pending when empty,
	// CreatedAt now when zero. ErrConflict when the id exists.
	CreateTask(ctx context.Context, t Task) (Task, error)
	// CreateTaskResults is CreateTask and PutResults in one transaction:
	// the task is stored with rs (their TaskID set to the task's id), or
	// neither is. With no rs it is CreateTask.
	CreateTaskResults(ctx context.Context, t Task, rs []Result) (Task, error)
	// GetTask returns one task with its Summary, or ErrNotFound.
	GetTask(ctx context.Context, id string) (Task, error)
	// ListTasks returns a page of tasks, newest first, with their Summary,
	// and the number of matching tasks.
	ListTasks(ctx context.Context, f TaskFilter) ([]Task, int, error)
	// UpdateTaskState moves a task to state at time at. Allowed: pending →
	// any; running → running (a no-op, for resuming after a restart), done,
	// cancelled, failed. Entering running sets StartedAt unless already set;
	// entering a final state sets FinishedAt and Msg. Anything else (leaving
	// a final state) is ErrConflict; an unknown task is ErrNotFound.
	UpdateTaskState(ctx context.Context, id string, state TaskState, at time.Time, msg string) error
	// DeleteTask removes a task with its results and output.
	DeleteTask(ctx context.Context, id string) error

	// PutResults inserts or replaces results, all in one transaction; the
	// task must exist (else ErrNotFound). A stored final result (ok, failed,
	// timed_out, skipped) is not replaced by a non-final one (pending,
	// running, lost): late or reordered progress reports cannot undo an
	// outcome, while a journaled outcome may still replace lost.
	PutResults(ctx context.Context, rs []Result) error
	// PutResultsStates is PutResults then, in the same transaction, an
	// UpdateTaskState for each change in order; a change the task's state
	// refuses (ErrConflict: the task is final already) is skipped. Any
	// other error stores nothing. The exec service's group commit writes
	// a finished exec's result and its task's state with it: one commit.
	PutResultsStates(ctx context.Context, rs []Result, cs []TaskStateChange) error
	// GetResult returns one agent's result of a task, or ErrNotFound.
	GetResult(ctx context.Context, taskID, agentID string) (Result, error)
	// ResultByPID returns the result of the agent's command with that pid
	// that started last, or ErrNotFound.
	ResultByPID(ctx context.Context, agentID string, pid int) (Result, error)
	// ListResults returns a page of a task's results ordered by agent id,
	// and the number matching.
	ListResults(ctx context.Context, taskID string, f ResultFilter) ([]Result, int, error)
	// CountResults counts a task's results by state.
	CountResults(ctx context.Context, taskID string) (Summary, error)

	// AppendOutput appends p to the output stream of (task, agent) and
	// returns how many bytes it kept: all of p until the stream reaches
	// Config.OutputCap, then what fits, then 0. ErrNotFound when the task
	// does not exist.
	AppendOutput(ctx context.Context, taskID, agentID string, p []byte) (int, error)
	// AppendOutputAt stores p as the bytes of the stream from offset off,
	// idempotently: the bytes the stream already holds from off (an append
	// retried after a failure that was in fact stored, or replayed) are
	// skipped and the rest appended, within Config.OutputCap. It returns how
	// many bytes of p the stream holds afterwards, skipped ones included.
	// ErrInvalid when off is negative or beyond the stream's end (a gap).
	AppendOutputAt(ctx context.Context, taskID, agentID string, off int64, p []byte) (int, error)
	// ReadOutput returns up to length bytes of the stored stream from
	// offset (length < 0: to the end) and the stream's stored size. An
	// offset at or beyond the end gives no bytes and no error. ErrNotFound
	// when the task does not exist; ErrInvalid for a negative offset.
	ReadOutput(ctx context.Context, taskID, agentID string, offset, length int64) ([]byte, int64, error)
	// OutputSize returns the stored size of a stream (0 when none).
	OutputSize(ctx context.Context, taskID, agentID string) (int64, error)

	// AppendAudit stores an entry (Time now when zero) and returns its id.
	// The audit log is append-only: no method updates or deletes entries.
	AppendAudit(ctx context.Context, e AuditEntry) (int64, error)
	// ListAudit returns a page of entries, newest first, and the number matching.
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, int, error)
	// ScanAudit returns up to limit entries matching f (Paging ignored)
	// with an id above afterID, oldest first: an export walks the log
	// with it, stable under concurrent appends.
	ScanAudit(ctx context.Context, f AuditFilter, afterID int64, limit int) ([]AuditEntry, error)

	// CreateAPIToken stores a new runtime API token (CreatedAt now when
	// zero). ErrConflict when the name or the hash exists; ErrInvalid for
	// a bad name, a hash that is not TokenHashSize bytes or no scopes.
	CreateAPIToken(ctx context.Context, t APIToken) (APIToken, error)
	// GetAPIToken returns a token by name, or ErrNotFound.
	GetAPIToken(ctx context.Context, name string) (APIToken, error)
	// APITokenByHash returns the token whose secret hashes to hash, or
	// ErrNotFound; revoked and expired tokens are returned too.
	APITokenByHash(ctx context.Context, hash []byte) (APIToken, error)
	// ListAPITokens returns a page of tokens ordered by name, revoked ones
	// included, and the number of tokens.
	ListAPITokens(ctx context.Context, p Paging) ([]APIToken, int, error)
	// RevokeAPIToken marks a token revoked at at by by and returns it. A
	// token already revoked keeps its first revocation. ErrNotFound when
	// absent.
	RevokeAPIToken(ctx context.Context, name string, at time.Time, by string) (APIToken, error)

	// PutMetrics stores each metric as the latest of its (agent, category),
	// unless the stored one is newer.
	PutMetrics(ctx context.Context, ms []Metric) error
	// GetMetric returns the latest metric of one category, or ErrNotFound.
	GetMetric(ctx context.Context, agentID, category string) (Metric, error)
	// GetMetrics returns the latest metric of every category of an agent,
	// ordered by category.
	GetMetrics(ctx context.Context, agentID string) ([]Metric, error)
	// AddUsage appends usage samples to the history (Category is ignored).
	AddUsage(ctx context.Context, ms []Metric) error
	// UsageHistory returns an agent's usage samples at or after since,
	// oldest first, at most MaxUsageHistory of them (the newest).
	UsageHistory(ctx context.Context, agentID string, since time.Time) ([]Metric, error)
	// PruneUsage deletes usage samples older than olderThan and returns how many.
	PruneUsage(ctx context.Context, olderThan time.Time) (int64, error)

	// Ping checks that the database answers (for /readyz).
	// SecretHash and SetSecretHash keep the hash of each agent's secret
	// (auth.v1); nil means none. They implement hub.SecretStore.
	SecretHash(ctx context.Context, agentID string) ([]byte, error)
	SetSecretHash(ctx context.Context, agentID string, hash []byte) error
	// JournalAck and SetJournalAck keep the highest sequence number stored
	// per agent journal (ack.v1), never moving it back. They implement
	// hub.AckStore, so acknowledged results survive a server restart.
	JournalAck(ctx context.Context, agentID, journal string) (uint64, error)
	SetJournalAck(ctx context.Context, agentID, journal string, seq uint64) error

	Ping(ctx context.Context) error
	// Close releases the database. The Store must not be used afterwards.
	Close() error

	// UpsertAgents is UpsertAgent for many agents in one transaction (with
	// multi-row statements), the same semantics per agent; an id listed
	// twice ends as if UpsertAgent had been called in list order. Every
	// agent is checked first: one invalid agent fails the call (ErrInvalid,
	// naming it) and nothing is written.
	UpsertAgents(ctx context.Context, as []Agent) error
	// SetSecretHashes is SetSecretHash for many agents in one transaction
	// (a nil hash forgets the agent's secret).
	SetSecretHashes(ctx context.Context, hashes map[string][]byte) error
}

// Drivers.
const (
	DriverSQLite = "sqlite"
	DriverMySQL  = "mysql"
)

// DefaultOutputCap is the per-stream output cap when Config.OutputCap is 0.
const DefaultOutputCap = 16 << 20

// Config configures Open.
type Config struct {
	// Driver is DriverSQLite (default when empty) or DriverMySQL.
	Driver string
	// DSN: for SQLite a file path (default <DataDir>/agent-server.db); for
	// MySQL a go-sql-driver DSN with the database name. parseTime, loc=UTC
	// and clientFoundRows are forced.
	DSN string
	// DataDir holds the SQLite file when DSN is empty.
	DataDir string
	// OutputCap bounds each task output stream (bytes); 0 means
	// DefaultOutputCap, negative means unbounded.
	OutputCap int64
	// Logger gets migration and open messages; slog.DiscardHandler when nil.
	Logger *slog.Logger
	// Registerer, when set, gets the agent_server_store_duration_seconds histogram.
	Registerer prometheus.Registerer
	// Now is the clock for defaults (CreatedAt, audit Time); time.Now when nil.
	Now func() time.Time
}

// Open opens (creating or migrating as needed) the store cfg describes.
func Open(ctx context.Context, cfg Config) (Store, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.OutputCap == 0 {
		cfg.OutputCap = DefaultOutputCap
	}
	switch cfg.Driver {
	case "", DriverSQLite:
		return openSQLite(ctx, cfg)
	case DriverMySQL:
		return openMySQL(ctx, cfg)
	default:
		return nil, fmt.Errorf("store: %w: driver %q (want %q or %q)", ErrInvalid, cfg.Driver, DriverSQLite, DriverMySQL)
	}
}

// checkJSON rejects blobs that are not JSON; empty means absent.
func checkJSON(what string, b json.RawMessage) error {
	if len(b) > 0 && !json.Valid(b) {
		return fmt.Errorf("%w: %s is not valid JSON", ErrInvalid, what)
	}
	return nil
}
