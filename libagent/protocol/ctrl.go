package protocol

import (
	"encoding/json"
	"net"
	"reflect"
	"time"
)

// Come is the agent's hello (type 1), sent right after the WebSocket opens.
type Come struct {
	ID              string `json:"id"` // empty: ask the server to assign one
	Name            string `json:"name"`
	Version         string `json:"version"`
	IP              net.IP `json:"ip"`  // local address of the socket
	MAC             string `json:"mac"` // hardware address of the interface holding IP
	HostName        string `json:"host_name"`
	OS              string `json:"os"`               // GOOS: linux, windows, …
	Platform        string `json:"platform"`         // debian, centos, …
	PlatformVersion string `json:"platform_version"` // 7.7.1908
	KernelVersion   string `json:"kernel_version"`
	Arch            string `json:"arch"` // amd64, arm64, …
	CPU             string `json:"cpu"`  // CPU model name
	CPUCore         uint64 `json:"cpu_core"`
	Memory          uint64 `json:"memory"` // total bytes

	// Extensions; v1 servers ignore them.

	// Caps lists the capabilities this agent speaks (Cap* constants).
	Caps []string `json:"caps,omitempty"`
	// Secret is the per-agent secret from an earlier handshake.secret
	// (CapAuth). Proving it lets this connection replace a live session of
	// the same id.
	Secret string `json:"secret,omitempty"`
	// Labels are operator-set key/value labels (config basic.labels).
	Labels map[string]string `json:"labels,omitempty"`
	// Journal identifies the agent's result journal (CapAck): a random id
	// created with the journal. A new value tells the server the sequence
	// numbers restarted.
	Journal string `json:"journal,omitempty"`
}

// Handshake is the server's answer to come (type 2).
type Handshake struct {
	OK       bool     `json:"ok"`
	ID       string   `json:"id"`  // the agent id (assigned when come.id was empty)
	Msg      string   `json:"msg"` // reason when !OK, e.g. MsgIDConflict
	Redirect []string `json:"redirect,omitempty"`

	// Extensions.

	// Caps lists the capabilities the server speaks. The extensions in use
	// are the intersection with come.caps.
	Caps []string `json:"caps,omitempty"`
	// Secret, when set, is a new per-agent secret (CapAuth) for the agent to
	// store in its state file (before doing anything else) and present in
	// come.secret from now on. Sent only when come.secret was empty.
	Secret string `json:"secret,omitempty"`
	// Ack is the highest sequence number of come.journal the server already
	// holds (CapAck); the agent drops those and replays the rest.
	Ack uint64 `json:"ack,omitempty"`
}

// Handshake failure messages (Handshake.Msg).
const (
	MsgIDConflict = "agent id conflict"
	MsgBadSecret  = "invalid agent secret"
)

// AgentInfo is the agent's self-report (type 7, key "ai").
type AgentInfo struct {
	Version          string             `json:"v"`
	GoVersion        string             `json:"gv"`
	CPUUsage         float32            `json:"cu"` // % over the last interval
	MemoryUsage      float32            `json:"mu"` // % of total memory (RSS)
	Threads          int                `json:"ts"`
	Routines         int                `json:"rs"`
	Startup          int64              `json:"st"` // process start, unix seconds
	HeapInuse        uint64             `json:"hi"`
	GC               map[string]float64 `json:"gc"` // pause quantiles (s), keys "0" "25" "50" "75" "100"
	InPackets        uint64             `json:"ip"`
	InBytes          uint64             `json:"ib"`
	OutPackets       uint64             `json:"op"`
	OutBytes         uint64             `json:"ob"`
	PluginExecd      uint64             `json:"pe"`  // legacy, 0
	PluginRunning    uint64             `json:"pr"`  // legacy, 0
	ReconnectCount   int                `json:"rcc"` // reconnects since start
	PluginUseCount   map[string]uint64  `json:"puc"` // legacy, null
	PluginOutPackets map[string]uint64  `json:"pop"` // legacy, null
	PluginOutBytes   map[string]uint64  `json:"pob"` // legacy, null
	ReadChanSize     int                `json:"rcs"`
	WriteChanSize    int                `json:"wcs"`

	// Extra holds agent-defined report fields (libagent's Agent.Report and
	// the runtime's own queue counters) beside the standard keys; a server
	// exposes the numeric ones as further agent_info tags.
	Extra map[string]json.RawMessage `json:"-"`
}

type agentInfoFields AgentInfo

var agentInfoKeys = jsonKeys(reflect.TypeFor[agentInfoFields]())

// MarshalJSON writes the standard keys, then Extra's.
func (a AgentInfo) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(agentInfoFields(a))
	if err != nil || len(a.Extra) == 0 {
		return b, err
	}
	return appendExtra(b, a.Extra, agentInfoKeys)
}

// UnmarshalJSON reads the standard keys and keeps the others in Extra.
func (a *AgentInfo) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, (*agentInfoFields)(a)); err != nil {
		return err
	}
	extra, err := decodeExtra(b, agentInfoKeys)
	if err != nil {
		return err
	}
	a.Extra = extra
	return nil
}

// LogFile is one entry of LogLs.
type LogFile struct {
	Name    string    `json:"name"` // base name
	Size    uint64    `json:"size"`
	ModTime time.Time `json:"mod"`
}

// LogLs lists the agent's log files (type 10001, key "ls_log").
type LogLs struct {
	Files []LogFile `json:"files"`
}

// LogDownloadReq asks for a zip of some log files (type 10002, key
// "log_dreq"). Files are base names from LogLs; anything else is refused.
type LogDownloadReq struct {
	Files []string `json:"files"`
}

// LogDownloadInfo starts the answer to a LogDownloadReq (type 10003, key
// "log_dinfo"); LogDownloadData blocks follow when OK.
type LogDownloadInfo struct {
	OK        bool   `json:"ok"`
	Msg       string `json:"msg,omitempty"`
	Size      uint64 `json:"size,omitempty"`
	BlockSize uint64 `json:"block_size,omitempty"`
	MD5       MD5    `json:"md5,omitempty"` // an array: omitempty never omits it
	// Kind classifies Msg when OK is false (CapErrKind only).
	Kind ErrKind `json:"kind,omitempty"`
}

// LogDownloadData is one block of the zip (type 10004, key "log_ddata").
type LogDownloadData struct {
	Offset uint64 `json:"offset"`
	Data   string `json:"data"` // compress $N$ form
}
