package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// MaxFrame is the default read limit for one WebSocket frame (one message).
// The connection owner applies it; Decode does not.
const MaxFrame = 16 << 20

// Msg is the envelope of every message: a type, an optional task id, and at
// most one payload key, chosen by the type (Type.PayloadKey).
type Msg struct {
	Type   Type   `json:"type"`
	TID    string `json:"tid,omitempty"`    // task id; replies echo the request's
	ErrMsg string `json:"errmsg,omitempty"` // with TypeError
	// ErrKind classifies ErrMsg (CapErrKind only).
	ErrKind ErrKind         `json:"errkind,omitempty"`
	Plugin  json.RawMessage `json:"plugin,omitempty"` // legacy, ignored

	// Seq numbers journaled messages (execd, exec_data, exec_done) when
	// CapAck is in use; 1, 2, 3, … per agent journal, never reused.
	Seq uint64 `json:"seq,omitempty"`

	Come      *Come      `json:"come,omitempty"`
	Handshake *Handshake `json:"handshake,omitempty"`
	AI        *AgentInfo `json:"ai,omitempty"`

	LogLs    *LogLs           `json:"ls_log,omitempty"`
	LogDReq  *LogDownloadReq  `json:"log_dreq,omitempty"`
	LogDInfo *LogDownloadInfo `json:"log_dinfo,omitempty"`
	LogDData *LogDownloadData `json:"log_ddata,omitempty"`

	Exec     *Exec     `json:"exec,omitempty"`
	Execd    *Execd    `json:"execd,omitempty"`
	ExecData *ExecData `json:"exec_data,omitempty"`
	ExecDone *ExecDone `json:"exec_done,omitempty"`
	ExecKill *ExecKill `json:"exec_kill,omitempty"`

	LsReq         *LsReq         `json:"ls_req,omitempty"`
	LsRep         *LsRep         `json:"ls_rep,omitempty"`
	Upload        *Upload        `json:"upload,omitempty"`
	UploadRep     *UploadRep     `json:"upload_rep,omitempty"`
	DownloadReq   *DownloadReq   `json:"download_req,omitempty"`
	DownloadRep   *DownloadRep   `json:"download_rep,omitempty"`
	DownloadData  *DownloadData  `json:"download_data,omitempty"`
	DownloadError *DownloadError `json:"download_error,omitempty"`

	HMStatic       *HMStatic       `json:"hm_static,omitempty"`
	HMDynamicReq   *HMDynamicReq   `json:"hm_dynamic_req,omitempty"`
	HMDynamicRep   *HMDynamicRep   `json:"hm_dynamic_rep,omitempty"`
	HMStatusRep    *HMStatusRep    `json:"hm_status_rep,omitempty"`
	HMChangeStatus *HMChangeStatus `json:"hm_change_status,omitempty"`
	HMAgentStatus  *HMAgentStatus  `json:"hm_agent_status,omitempty"`

	// Extensions.
	Ack         *Ack         `json:"ack,omitempty"`
	Ps          *Ps          `json:"ps,omitempty"`
	ExecKillRep *ExecKillRep `json:"exec_kill_rep,omitempty"`

	PtyOpen   *PtyOpen   `json:"pty_open,omitempty"`
	PtyOpened *PtyOpened `json:"pty_opened,omitempty"`
	PtyData   *PtyData   `json:"pty_data,omitempty"` // pty_input and pty_output
	PtyResize *PtyResize `json:"pty_resize,omitempty"`
	PtyAck    *PtyAck    `json:"pty_ack,omitempty"`
	PtyExit   *PtyExit   `json:"pty_exit,omitempty"`

	// Extra holds the payload keys of a message whose type this package
	// does not know: the agents outside this repository (install, logs,
	// rpa, ...) and agent authors' own types carry their own keys, which a
	// server or agent built on this package must pass on intact. Decode
	// fills it only for unknown types; Encode writes its keys after the
	// others. A key that is also an envelope or payload key of Msg is an
	// encode error.
	Extra map[string]json.RawMessage `json:"-"`
}

// msgKeys are the JSON keys of Msg's own fields.
var msgKeys = jsonKeys(reflect.TypeFor[Msg]())

// jsonKeys returns the JSON keys of a struct type's fields.
func jsonKeys(t reflect.Type) map[string]bool {
	keys := map[string]bool{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			keys[name] = true
		}
	}
	return keys
}

// payloads returns the keys of the payloads present in m.
func (m *Msg) payloads() []string {
	var keys []string
	add := func(present bool, key string) {
		if present {
			keys = append(keys, key)
		}
	}
	add(m.Come != nil, "come")
	add(m.Handshake != nil, "handshake")
	add(m.AI != nil, "ai")
	add(m.LogLs != nil, "ls_log")
	add(m.LogDReq != nil, "log_dreq")
	add(m.LogDInfo != nil, "log_dinfo")
	add(m.LogDData != nil, "log_ddata")
	add(m.Exec != nil, "exec")
	add(m.Execd != nil, "execd")
	add(m.ExecData != nil, "exec_data")
	add(m.ExecDone != nil, "exec_done")
	add(m.ExecKill != nil, "exec_kill")
	add(m.LsReq != nil, "ls_req")
	add(m.LsRep != nil, "ls_rep")
	add(m.Upload != nil, "upload")
	add(m.UploadRep != nil, "upload_rep")
	add(m.DownloadReq != nil, "download_req")
	add(m.DownloadRep != nil, "download_rep")
	add(m.DownloadData != nil, "download_data")
	add(m.DownloadError != nil, "download_error")
	add(m.HMStatic != nil, "hm_static")
	add(m.HMDynamicReq != nil, "hm_dynamic_req")
	add(m.HMDynamicRep != nil, "hm_dynamic_rep")
	add(m.HMStatusRep != nil, "hm_status_rep")
	add(m.HMChangeStatus != nil, "hm_change_status")
	add(m.HMAgentStatus != nil, "hm_agent_status")
	add(m.Ack != nil, "ack")
	add(m.Ps != nil, "ps")
	add(m.ExecKillRep != nil, "exec_kill_rep")
	add(m.PtyOpen != nil, "pty_open")
	add(m.PtyOpened != nil, "pty_opened")
	add(m.PtyData != nil, "pty_data")
	add(m.PtyResize != nil, "pty_resize")
	add(m.PtyAck != nil, "pty_ack")
	add(m.PtyExit != nil, "pty_exit")
	return keys
}

// Sentinel errors of Encode and Decode, for errors.Is.
var (
	// ErrMalformed: the bytes are not a JSON object of the envelope's shape
	// (syntax error, a value of the wrong JSON type, a number out of range).
	ErrMalformed = errors.New("malformed message")
	// ErrNoType: the envelope has no "type" key, or a negative one.
	ErrNoType = errors.New("missing message type")
	// ErrPayload: a known type without its payload key, or with another
	// type's payload.
	ErrPayload = errors.New("payload does not match message type")
)

// check validates the payload against the type. Unknown types pass: the
// receiver answers them with Unsupported.
func (m *Msg) check() error {
	ti, known := types[m.Type]
	if !known {
		return nil
	}
	found := false
	for _, k := range m.payloads() {
		if k == ti.key {
			found = true
			continue
		}
		return fmt.Errorf("%w: type %d (%s) carries payload %q", ErrPayload, int(m.Type), ti.name, k)
	}
	if ti.key != "" && !found {
		return fmt.Errorf("%w: type %d (%s) needs payload %q", ErrPayload, int(m.Type), ti.name, ti.key)
	}
	return nil
}

// Encode checks m (as Decode would) and returns its JSON form.
func Encode(m *Msg) ([]byte, error) {
	if m == nil {
		return nil, fmt.Errorf("protocol: encode: nil message")
	}
	if m.Type < 0 {
		return nil, fmt.Errorf("protocol: encode: %w: type %d", ErrNoType, int(m.Type))
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("protocol: encode: %w", err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("protocol: encode %s: %w", m.Type, err)
	}
	if len(m.Extra) > 0 {
		if b, err = appendExtra(b, m.Extra, msgKeys); err != nil {
			return nil, fmt.Errorf("protocol: encode %s: %w", m.Type, err)
		}
	}
	return b, nil
}

// appendExtra splices the extra keys, in sorted order, into the encoded
// non-empty object b; a key in reserved is an error.
func appendExtra(b []byte, extra map[string]json.RawMessage, reserved map[string]bool) ([]byte, error) {
	keys := make([]string, 0, len(extra))
	for k := range extra {
		if isReserved(reserved, k) {
			return nil, fmt.Errorf("extra key %q is a key of the envelope", k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	buf := bytes.NewBuffer(b[:len(b)-1]) // drop the closing brace
	for _, k := range keys {
		name, _ := json.Marshal(k)
		buf.WriteByte(',')
		buf.Write(name)
		buf.WriteByte(':')
		if err := json.Compact(buf, extra[k]); err != nil {
			return nil, fmt.Errorf("extra key %q: %w", k, err)
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// isReserved reports whether k names a struct field. encoding/json matches
// keys without regard to case, so "iB" fills the field "ib": such a key is
// the field's, never an extra key, or a round trip would not be stable.
func isReserved(reserved map[string]bool, k string) bool {
	if reserved[k] {
		return true
	}
	for r := range reserved {
		if strings.EqualFold(r, k) {
			return true
		}
	}
	return false
}

// decodeExtra collects the keys of the object b that are not in reserved
// (the keys of the struct b was decoded into).
func decodeExtra(b []byte, reserved map[string]bool) (map[string]json.RawMessage, error) {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, err
	}
	var extra map[string]json.RawMessage
	for k, v := range all {
		if isReserved(reserved, k) {
			continue // the struct decode took it
		}
		var c bytes.Buffer
		if err := json.Compact(&c, v); err != nil {
			return nil, err
		}
		if extra == nil {
			extra = make(map[string]json.RawMessage)
		}
		extra[k] = c.Bytes()
	}
	return extra, nil
}

// msgFields has Msg's fields without its methods, so decoding it does not
// recurse.
type msgFields Msg

// Decode parses one message. Unknown keys are ignored and unknown types are
// accepted, their payload keys kept in Extra; the errors wrap
// ErrMalformed, ErrNoType or ErrPayload.
func Decode(b []byte) (*Msg, error) {
	m := new(Msg)
	var w struct {
		Type *Type `json:"type"` // shadows msgFields.Type, to see its absence
		*msgFields
	}
	w.msgFields = (*msgFields)(m)
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("protocol: decode: %w: %w", ErrMalformed, err)
	}
	if w.Type == nil {
		return nil, fmt.Errorf("protocol: decode: %w", ErrNoType)
	}
	if *w.Type < 0 {
		return nil, fmt.Errorf("protocol: decode: %w: type %d", ErrNoType, int(*w.Type))
	}
	m.Type = *w.Type
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("protocol: decode: %w", err)
	}
	if !m.Type.Known() {
		extra, err := decodeExtra(b, msgKeys)
		if err != nil {
			return nil, fmt.Errorf("protocol: decode: %w: %w", ErrMalformed, err)
		}
		m.Extra = extra
	}
	return m, nil
}

// Reply returns an empty message of type typ answering req (same tid).
func Reply(req *Msg, typ Type) *Msg { return &Msg{Type: typ, TID: req.TID} }

// Errorf returns a type 0 message with the formatted text for task tid.
func Errorf(tid, format string, args ...any) *Msg {
	return &Msg{Type: TypeError, TID: tid, ErrMsg: fmt.Sprintf(format, args...)}
}

// Unsupported returns the answer to a message of a type the receiver does
// not handle ("unsupported message type N"), or nil when req has no tid
// (nobody waits for an answer).
func Unsupported(req *Msg) *Msg {
	if req.TID == "" {
		return nil
	}
	return Errorf(req.TID, "unsupported message type %d", int(req.Type))
}

// Journaled reports whether messages of type t carry Msg.Seq and are kept
// until acked when CapAck is in use.
func (t Type) Journaled() bool {
	return t == TypeExecd || t == TypeExecData || t == TypeExecDone
}
