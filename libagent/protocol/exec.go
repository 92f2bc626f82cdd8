package protocol

import "time"

// Exec runs a command (type 10).
type Exec struct {
	Cmd     string   `json:"cmd"`
	Args    []string `json:"args,omitempty"`
	Timeout int      `json:"timeout"`        // seconds; <= 0 means 60
	Auth    string   `json:"auth,omitempty"` // "", AuthSu or AuthSudo
	User    string   `json:"user,omitempty"`
	Pass    string   `json:"pass,omitempty"` // see DecodePass
	WorkDir string   `json:"workdir,omitempty"`
	Env     []string `json:"env,omitempty"` // "K=V"
	DeferRM string   `json:"drm,omitempty"` // path removed after the process exits

	// Pipe asks for pipes instead of a pty (CapStream): no echo, no CRLF,
	// stdout and stderr interleaved as produced.
	Pipe bool `json:"pipe,omitempty"`
}

// Values of Exec.Auth and Upload.Auth.
const (
	AuthSu   = "su"
	AuthSudo = "sudo"
)

// Execd reports the start of an exec (type 11).
type Execd struct {
	OK   bool      `json:"ok"`
	Msg  string    `json:"msg,omitempty"`
	Pid  int       `json:"pid"`
	Time time.Time `json:"t"` // start time
	// Kind classifies Msg when OK is false (CapErrKind only).
	Kind ErrKind `json:"kind,omitempty"`
}

// ExecData is one chunk of output (type 12).
type ExecData struct {
	Data string `json:"data"` // standard base64 of the raw bytes
	// Off is the offset of Data in the command's output, as the agent
	// counts it (bytes it dropped included), sent with CapStream. A replay
	// of its journal then overlaps nothing the server holds already: the
	// server skips the bytes before its end. Nil from agents that do not
	// send it (jkstack 1.5), which the server appends as they come.
	Off *int64 `json:"off,omitempty"`
}

// ExecDone ends an exec (type 13); it always follows the last ExecData.
type ExecDone struct {
	Code int       `json:"code"` // exit code; killed by signal: 128+signal (legacy agents: -1)
	Time time.Time `json:"t"`    // end time

	// Cut reports that the output was not read to its end (CapStream):
	// background processes held it open, silent for the agent's drain
	// timeout after the main process exited. Dropped counts output bytes
	// the agent read but did not send. Msg says what is missing and why.
	// All three are absent when the output is complete.
	Cut     bool   `json:"cut,omitempty"`
	Dropped int64  `json:"dropped,omitempty"`
	Msg     string `json:"msg,omitempty"`

	// Restarted says that the agent ended the task itself instead of
	// reporting how the command ended (CapStream): a restarted agent
	// killed the command its previous process had started (Code
	// CodeKilled) or found it gone (Code CodeUnknown); Msg says which,
	// naming the pid. The server stores the task as failed with Msg.
	Restarted bool `json:"restarted,omitempty"`
}

// Exit codes of an ExecDone with Restarted.
const (
	// CodeKilled: the agent killed the command with SIGKILL (128+9).
	CodeKilled = 137
	// CodeUnknown: the command's exit status is unknown (it ended while no
	// agent was there to wait for it); 255 as ssh reports a lost remote
	// status.
	CodeUnknown = 255
)

// ExecKill kills a running task's process group (type 14). v1 has no reply.
type ExecKill struct {
	Pid int `json:"pid"`

	// TaskID selects the task by the tid of its exec (CapStream). Pid may
	// then be 0; when both are set both must match. With CapStream and an
	// envelope tid the agent answers with ExecKillRep (type 103).
	TaskID string `json:"task_id,omitempty"`
}
