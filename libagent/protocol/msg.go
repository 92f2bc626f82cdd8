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
// most one payload, whose envelope key and Go type are the type's
// registration (Register; Type.PayloadKey).
type Msg struct {
	Type   Type
	TID    string // task id; replies echo the request's
	ErrMsg string // with TypeError
	// ErrKind classifies ErrMsg (CapErrKind only).
	ErrKind ErrKind
	Plugin  json.RawMessage // legacy, ignored

	// Seq numbers journaled messages (execd, exec_data, exec_done) when
	// CapAck is in use; 1, 2, 3, … per agent journal, never reused.
	Seq uint64

	// Payload is the message's payload, a pointer to the Go type its type
	// registered (*Exec for TypeExec), nil for a type without payload or
	// one this process does not know. Decode sets it; the accessor
	// methods (m.Exec(), …) and PayloadOf read it.
	Payload any

	// Extra holds the payload keys of a message whose type this process
	// does not know: the agents outside this repository (install, logs,
	// rpa, ...) and agent authors' own types carry their own keys, which a
	// server or agent built on this package must pass on intact. Decode
	// fills it only for unknown types; Encode writes its keys after the
	// others. A key that is an envelope key or the payload key of a
	// registered type is an encode error (and Decode leaves such keys of
	// an unknown type out, as it ignores unknown keys of a known type).
	Extra map[string]json.RawMessage
}

// MarshalJSON is Encode, so that a Msg inside other JSON is in wire form.
func (m *Msg) MarshalJSON() ([]byte, error) { return Encode(m) }

// UnmarshalJSON is Decode.
func (m *Msg) UnmarshalJSON(b []byte) error {
	d, err := Decode(b)
	if err != nil {
		return err
	}
	*m = *d
	return nil
}

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
func (m *Msg) check(tab *tables) error {
	ti, known := tab.types[m.Type]
	if !known {
		if m.Payload != nil {
			return fmt.Errorf("%w: type %d is not registered but carries a %T payload (use Extra)", ErrPayload, int(m.Type), m.Payload)
		}
		return nil
	}
	if m.Payload == nil {
		if ti.key != "" {
			return fmt.Errorf("%w: type %d (%s) needs payload %q", ErrPayload, int(m.Type), ti.name, ti.key)
		}
		return nil
	}
	pt := reflect.TypeOf(m.Payload)
	if pt != ti.payload {
		if k, ok := tab.keyOf[pt]; ok {
			return fmt.Errorf("%w: type %d (%s) carries payload %q", ErrPayload, int(m.Type), ti.name, k)
		}
		return fmt.Errorf("%w: type %d (%s) carries a %T payload, want %v", ErrPayload, int(m.Type), ti.name, m.Payload, ti.payload)
	}
	if reflect.ValueOf(m.Payload).IsNil() {
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
	tab := registry()
	if err := m.check(tab); err != nil {
		return nil, fmt.Errorf("protocol: encode: %w", err)
	}
	ti := tab.types[m.Type]
	var v reflect.Value
	if ti.key != "" {
		v = reflect.New(tab.encode[ti.key]).Elem()
		v.Field(envelopeFields).Set(reflect.ValueOf(m.Payload))
	} else {
		v = reflect.New(envelopeType).Elem()
	}
	v.Field(fType).SetInt(int64(m.Type))
	v.Field(fTID).SetString(m.TID)
	v.Field(fErrMsg).SetString(m.ErrMsg)
	v.Field(fErrKind).SetString(string(m.ErrKind))
	v.Field(fPlugin).SetBytes(m.Plugin)
	v.Field(fSeq).SetUint(m.Seq)
	b, err := json.Marshal(v.Addr().Interface())
	if err != nil {
		return nil, fmt.Errorf("protocol: encode %s: %w", m.Type, err)
	}
	if len(m.Extra) > 0 {
		if b, err = appendExtra(b, m.Extra, tab.reserved); err != nil {
			return nil, fmt.Errorf("protocol: encode %s: %w", m.Type, err)
		}
	}
	return b, nil
}

// envelopeType is the encode struct of a message without payload.
var envelopeType = reflect.StructOf(envelopeStructFields(false))

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

// Decode parses one message. Unknown keys are ignored and unknown types are
// accepted, their payload keys kept in Extra; the errors wrap
// ErrMalformed, ErrNoType or ErrPayload.
func Decode(b []byte) (*Msg, error) {
	tab := registry()
	// One pass over the bytes: the decode struct has a field for every
	// registered payload key, so a payload of another type shows, and
	// encoding/json matches keys as it always has (case-folded too).
	pv := reflect.New(tab.decode)
	if err := json.Unmarshal(b, pv.Interface()); err != nil {
		return nil, fmt.Errorf("protocol: decode: %w: %w", ErrMalformed, err)
	}
	v := pv.Elem()
	typ, _ := v.Field(fType).Interface().(*Type)
	if typ == nil {
		return nil, fmt.Errorf("protocol: decode: %w", ErrNoType)
	}
	if *typ < 0 {
		return nil, fmt.Errorf("protocol: decode: %w: type %d", ErrNoType, int(*typ))
	}
	m := &Msg{
		Type:    *typ,
		TID:     v.Field(fTID).String(),
		ErrMsg:  v.Field(fErrMsg).String(),
		ErrKind: ErrKind(v.Field(fErrKind).String()),
		Seq:     v.Field(fSeq).Uint(),
	}
	if p := v.Field(fPlugin).Bytes(); p != nil {
		m.Plugin = p
	}
	ti, known := tab.types[m.Type]
	if !known {
		extra, err := decodeExtra(b, tab.reserved)
		if err != nil {
			return nil, fmt.Errorf("protocol: decode: %w: %w", ErrMalformed, err)
		}
		m.Extra = extra
		return m, nil
	}
	found := false
	for i, k := range tab.fields {
		f := v.Field(envelopeFields + i)
		if f.IsNil() {
			continue
		}
		if k == ti.key {
			m.Payload = f.Interface()
			found = true
			continue
		}
		return nil, fmt.Errorf("protocol: decode: %w: type %d (%s) carries payload %q", ErrPayload, int(m.Type), ti.name, k)
	}
	if ti.key != "" && !found {
		return nil, fmt.Errorf("protocol: decode: %w: type %d (%s) needs payload %q", ErrPayload, int(m.Type), ti.name, ti.key)
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
