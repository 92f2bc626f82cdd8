package protocol

import (
	"encoding/json"
	"fmt"
)

// Log collection (CapLog, types 150–153): agent-server pushes the projects a
// log-agent runs, the agent ships batches of log lines and the server
// acknowledges each one once it is stored.
//
// These types are not in this package's type table: their payloads travel
// in Msg.Extra under the keys below (SetExtra / GetExtra), so a peer built
// on an older copy of this package passes them on intact.
const (
	// CapLog: log_config, log_batch, log_ack, log_status.
	CapLog = "log.v1"

	TypeLogConfig Type = 150 // S→A, CapLog: log_config, the node's whole project list
	TypeLogBatch  Type = 151 // A→S, CapLog: log_batch, with a tid
	TypeLogAck    Type = 152 // S→A, CapLog: log_ack, echoes the batch's tid
	TypeLogStatus Type = 153 // A→S, CapLog: log_status, the projects' status

	KeyLogConfig = "log_config"
	KeyLogBatch  = "log_batch"
	KeyLogAck    = "log_ack"
	KeyLogStatus = "log_status"
)

// LogConfig is the list of projects a node runs (type 150). It replaces the
// previous list: a project missing from it is removed from the node (its
// checkpoints and spool deleted), a project with Running false is stopped
// (its state kept).
type LogConfig struct {
	Projects []LogProject `json:"projects"`
}

// LogProject is one project of LogConfig: the log-agent's project JSON
// (log-agent/internal/project), kept raw so that the agent validates it.
type LogProject struct {
	Name    string          `json:"name"`
	Running bool            `json:"running"`
	Spec    json.RawMessage `json:"spec"`
}

// LogBatch is one batch of log lines (type 151): the log-agent's batch
// (log-agent/internal/batch) with its zstd record block, encoded and
// decoded by package libagent/logship. Data is base64 in
// the JSON.
type LogBatch struct {
	Project string      `json:"project"`
	Seq     uint64      `json:"seq"`
	Created int64       `json:"created"` // Unix ns
	Lines   int         `json:"lines"`
	Bytes   int         `json:"bytes"`
	Sources []LogSource `json:"sources"`
	Data    []byte      `json:"data"`
}

// LogSource is one source of a LogBatch: its stable id, its name (path,
// container, pod/container) and the byte range [First, End) the batch
// accounts for.
type LogSource struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	First int64  `json:"first"`
	End   int64  `json:"end"`
}

// LogAck answers a LogBatch (type 152, the batch's tid). OK: the batch is
// stored (Stored new lines, Dup lines that were stored before); otherwise
// Err says why and the agent sends it again later.
type LogAck struct {
	Project string `json:"project"`
	Seq     uint64 `json:"seq"`
	OK      bool   `json:"ok"`
	Stored  int    `json:"stored"`
	Dup     int    `json:"dup"`
	Err     string `json:"err,omitempty"`
}

// LogStatus is the node's status of every project it runs (type 153),
// sent when the projects change and periodically. Each entry is the
// log-agent's collector status (name, running, info, counters, errors).
type LogStatus struct {
	Projects []json.RawMessage `json:"projects"`
}

// SetExtra encodes v as the payload key of m (for the types this package
// carries in Extra).
func (m *Msg) SetExtra(key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	if m.Extra == nil {
		m.Extra = map[string]json.RawMessage{}
	}
	m.Extra[key] = b
	return nil
}

// GetExtra decodes the payload key of m into v; a missing key is an error
// naming it.
func (m *Msg) GetExtra(key string, v any) error {
	b, ok := m.Extra[key]
	if !ok {
		return fmt.Errorf("%w: type %d without %q", ErrMalformed, int(m.Type), key)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrMalformed, key, err)
	}
	return nil
}
