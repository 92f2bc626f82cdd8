package protocol

import (
	"encoding/base64"
	"fmt"
)

// Interactive terminal sessions (CapPty, types 104–111).
//
// A session is named by the tid of its pty_open; every message of the
// session, in both directions, carries that tid. Data flows under
// credit-based flow control counted in messages: a side may have at most
// as many data messages (pty_input, pty_output) unacknowledged as the other
// side granted (pty_open.window for output, pty_opened.window for input),
// each carrying at most PtyMaxData raw bytes; pty_ack returns credits once
// the receiver has consumed messages (written them to the terminal, or to
// its client). Memory held for one session is therefore bounded on both
// sides by window × PtyMaxData.

// Limits and defaults of the pty messages.
const (
	// PtyMaxData is the most raw bytes one pty_input / pty_output carries.
	PtyMaxData = 32 << 10
	// PtyDefaultWindow is the window a side grants when it has no
	// preference (a window of 0 on the wire means this).
	PtyDefaultWindow = 16
	// PtyMaxWindow is the largest window a side may grant; larger values
	// are taken as PtyMaxWindow.
	PtyMaxWindow = 64
	// PtyMaxSize is the largest number of columns or rows.
	PtyMaxSize = 4096
)

// PtyOpen starts an interactive session in a pty (type 104, key
// "pty_open"). The agent answers pty_opened.
type PtyOpen struct {
	// Cmd is a shell command line; "" runs the user's login shell.
	Cmd string `json:"cmd,omitempty"`
	// User runs the session as that user; "" as the agent's user.
	User string `json:"user,omitempty"`
	// Env entries "K=V" are added to the environment (TERM among them).
	Env []string `json:"env,omitempty"`
	// Cols and Rows are the initial terminal size, 1…PtyMaxSize.
	Cols uint16 `json:"cols"`
	Rows uint16 `json:"rows"`
	// Window is the number of pty_output messages the agent may send
	// before the first pty_ack; 0 means PtyDefaultWindow.
	Window uint32 `json:"window,omitempty"`
}

// PtyOpened answers pty_open (type 105, key "pty_opened"). With OK false
// (Msg says why) the session does not exist and nothing follows.
type PtyOpened struct {
	OK  bool   `json:"ok"`
	Msg string `json:"msg,omitempty"`
	Pid int    `json:"pid,omitempty"` // the session's main process
	// Window is the number of pty_input messages the server may send
	// before the first pty_ack; 0 means PtyDefaultWindow.
	Window uint32 `json:"window,omitempty"`
	// Kind classifies Msg when OK is false (CapErrKind only).
	Kind ErrKind `json:"kind,omitempty"`
}

// PtyData is a chunk of terminal bytes: keystrokes in pty_input (type 106)
// and output in pty_output (type 107), key "pty_data".
type PtyData struct {
	Data string `json:"data"` // standard base64 of at most PtyMaxData raw bytes
}

// PtyResize sets the terminal size (type 108, key "pty_resize").
type PtyResize struct {
	Cols uint16 `json:"cols"`
	Rows uint16 `json:"rows"`
}

// PtyAck returns N credits to the sender of data messages (type 109, key
// "pty_ack"): N more messages were consumed.
type PtyAck struct {
	N uint32 `json:"n"`
}

// PtyExit ends a session (type 110, key "pty_exit"); it follows the last
// pty_output and is the agent's last message of the session.
type PtyExit struct {
	// Code is the exit code of the session's main process; killed by
	// signal n: 128+n.
	Code int `json:"code"`
	// Msg is set when the agent ended the session itself or could not
	// carry on: "closed by the server", "idle timeout …", "agent shutting
	// down", a flow-control violation.
	Msg string `json:"msg,omitempty"`
}

// PtyWindow returns the window a side may use when the other granted w:
// 0 is PtyDefaultWindow, more than PtyMaxWindow is PtyMaxWindow.
func PtyWindow(w uint32) int {
	switch {
	case w == 0:
		return PtyDefaultWindow
	case w > PtyMaxWindow:
		return PtyMaxWindow
	}
	return int(w)
}

// maxPtyEncoded is the longest valid PtyData.Data.
var maxPtyEncoded = base64.StdEncoding.EncodedLen(PtyMaxData)

// NewPtyData encodes p (at most PtyMaxData bytes; the caller splits).
func NewPtyData(p []byte) *PtyData {
	return &PtyData{Data: base64.StdEncoding.EncodeToString(p)}
}

// Bytes decodes the chunk, refusing one that is not standard base64 or
// that holds more than PtyMaxData bytes (checked before decoding).
func (d *PtyData) Bytes() ([]byte, error) {
	if len(d.Data) > maxPtyEncoded {
		return nil, fmt.Errorf("pty data: %d base64 characters, at most %d (%d bytes)", len(d.Data), maxPtyEncoded, PtyMaxData)
	}
	b, err := base64.StdEncoding.Strict().DecodeString(d.Data)
	if err != nil {
		return nil, fmt.Errorf("pty data: %w", err)
	}
	if len(b) > PtyMaxData {
		return nil, fmt.Errorf("pty data: %d bytes, at most %d", len(b), PtyMaxData)
	}
	return b, nil
}

// CheckSize reports whether cols × rows is a size a terminal may have.
func CheckSize(cols, rows uint16) error {
	if cols < 1 || cols > PtyMaxSize || rows < 1 || rows > PtyMaxSize {
		return fmt.Errorf("terminal size %d×%d: columns and rows must be 1…%d", cols, rows, PtyMaxSize)
	}
	return nil
}
