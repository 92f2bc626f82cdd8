package protocol

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
)

// The registration table: every message type Encode and Decode know, with
// its name and the Go type of its payload. The built-in types are
// registered by this package (types.go); an agent registers its own types
// (200–999) with Register from an init function or a package-level var.
//
// Encode and Decode read an immutable snapshot (tables) built from the
// registrations on first use after a change; Register is rare, Decode is on
// every frame.

// typeInfo describes a registered type: its name, the envelope key of its
// payload ("" when the type has none) and the payload's pointer type.
type typeInfo struct {
	name    string
	key     string
	payload reflect.Type // *P; nil without payload
}

var (
	regMu   sync.Mutex
	regDefs = map[Type]typeInfo{}
	regKeys []string // payload keys in registration order
	regSnap atomic.Pointer[tables]
)

// Register adds message type t, named name, whose payload travels under the
// envelope key key as a JSON object decoded into a *P. From then on Decode
// sets Msg.Payload of such messages to a *P, and Encode requires one.
// Several types may share a key when they share P (pty_input and
// pty_output). Register returns t, so a type can be declared in one line:
//
//	var TypeEcho = protocol.Register[Echo](200, "echo", "echo")
//
// It panics when t is negative or already registered, when name or key is
// empty, when key is an envelope key or already carries another Go type:
// all programming errors, found when the program starts.
func Register[P any](t Type, name, key string) Type {
	if key == "" {
		panic(fmt.Sprintf("protocol: Register %d (%s): empty payload key (use RegisterEmpty)", int(t), name))
	}
	register(t, typeInfo{name: name, key: key, payload: reflect.TypeFor[*P]()})
	return t
}

// RegisterEmpty adds message type t, named name, which carries no payload
// (a request whose tid is all it needs, such as ps_req). It returns t and
// panics as Register does.
func RegisterEmpty(t Type, name string) Type {
	register(t, typeInfo{name: name})
	return t
}

func register(t Type, ti typeInfo) {
	regMu.Lock()
	defer regMu.Unlock()
	switch {
	case t < 0:
		panic(fmt.Sprintf("protocol: Register %d (%s): negative type", int(t), ti.name))
	case ti.name == "":
		panic(fmt.Sprintf("protocol: Register %d: empty name", int(t)))
	case strings.Trim(ti.key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != "":
		panic(fmt.Sprintf("protocol: Register %d (%s): payload key %q: only letters, digits and _ . -", int(t), ti.name, ti.key))
	case isReserved(envelopeKeys, ti.key):
		panic(fmt.Sprintf("protocol: Register %d (%s): payload key %q is an envelope key", int(t), ti.name, ti.key))
	}
	if old, dup := regDefs[t]; dup {
		panic(fmt.Sprintf("protocol: Register %d (%s): already registered as %s", int(t), ti.name, old.name))
	}
	if ti.key != "" {
		fresh := true
		for _, old := range regDefs {
			if old.key == ti.key {
				if old.payload != ti.payload {
					panic(fmt.Sprintf("protocol: Register %d (%s): payload key %q already carries %s, not %s", int(t), ti.name, ti.key, old.payload, ti.payload))
				}
				fresh = false
			}
		}
		if fresh {
			regKeys = append(regKeys, ti.key)
		}
	}
	regDefs[t] = ti
	regSnap.Store(nil)
}

// tables is a snapshot of the registrations in the forms Encode and
// Decode use. Never modified once built.
type tables struct {
	types map[Type]typeInfo
	// reserved: the envelope keys and every payload key, which no Extra
	// key may be.
	reserved map[string]bool
	// decode is a struct of the envelope fields followed by one *P field
	// per payload key (fields[i] is the key of field envelopeFields+i):
	// one json.Unmarshal reads a whole message, whatever its type.
	decode reflect.Type
	fields []string
	// keyOf is the payload key of each payload type.
	keyOf map[reflect.Type]string
	// encode holds, per payload key, a struct of the envelope fields and
	// that key's *P field, so that json.Marshal writes the v1 layout.
	encode map[string]reflect.Type
}

// registry returns the current snapshot, building it after a Register.
func registry() *tables {
	if t := regSnap.Load(); t != nil {
		return t
	}
	regMu.Lock()
	defer regMu.Unlock()
	if t := regSnap.Load(); t != nil {
		return t
	}
	t := &tables{
		types:    make(map[Type]typeInfo, len(regDefs)),
		reserved: make(map[string]bool, len(envelopeKeys)+len(regKeys)),
		fields:   regKeys[:len(regKeys):len(regKeys)],
		encode:   make(map[string]reflect.Type, len(regKeys)),
		keyOf:    make(map[reflect.Type]string, len(regKeys)),
	}
	payloadOf := map[string]reflect.Type{}
	for typ, ti := range regDefs {
		t.types[typ] = ti
		if ti.key != "" {
			payloadOf[ti.key] = ti.payload
			t.keyOf[ti.payload] = ti.key
		}
	}
	for k := range envelopeKeys {
		t.reserved[k] = true
	}
	decodeFields := envelopeStructFields(true)
	for _, k := range regKeys {
		t.reserved[k] = true
		f := payloadField(k, payloadOf[k])
		decodeFields = append(decodeFields, f)
		t.encode[k] = reflect.StructOf(append(envelopeStructFields(false), f))
	}
	t.decode = reflect.StructOf(decodeFields)
	regSnap.Store(t)
	return t
}

// The envelope, as the leading fields of the decode and encode structs.
// Field order is wire order.
const (
	fType = iota
	fTID
	fErrMsg
	fErrKind
	fPlugin
	fSeq
	envelopeFields
)

// envelopeKeys are the JSON keys of the envelope.
var envelopeKeys = func() map[string]bool {
	keys := map[string]bool{}
	for _, f := range envelopeStructFields(false) {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		keys[name] = true
	}
	return keys
}()

// envelopeStructFields returns the envelope's fields; for decoding, type is
// a pointer so that its absence shows.
func envelopeStructFields(decode bool) []reflect.StructField {
	typ := reflect.TypeFor[Type]()
	if decode {
		typ = reflect.TypeFor[*Type]()
	}
	return []reflect.StructField{
		fType:    {Name: "Type", Type: typ, Tag: `json:"type"`},
		fTID:     {Name: "TID", Type: reflect.TypeFor[string](), Tag: `json:"tid,omitempty"`},
		fErrMsg:  {Name: "ErrMsg", Type: reflect.TypeFor[string](), Tag: `json:"errmsg,omitempty"`},
		fErrKind: {Name: "ErrKind", Type: reflect.TypeFor[ErrKind](), Tag: `json:"errkind,omitempty"`},
		fPlugin:  {Name: "Plugin", Type: reflect.TypeFor[json.RawMessage](), Tag: `json:"plugin,omitempty"`},
		fSeq:     {Name: "Seq", Type: reflect.TypeFor[uint64](), Tag: `json:"seq,omitempty"`},
	}
}

// payloadField is the struct field of payload key k.
func payloadField(k string, typ reflect.Type) reflect.StructField {
	return reflect.StructField{
		// Field names only need to be distinct and exported; the tag
		// gives the key.
		Name: fmt.Sprintf("P_%x", k),
		Type: typ,
		Tag:  reflect.StructTag(fmt.Sprintf(`json:%q`, k+",omitempty")),
	}
}

// PayloadOf returns m's payload as a *P, nil when m is nil or its payload
// is not a *P. For the built-in types Msg has one accessor method each
// (m.Exec(), m.LsRep(), …); PayloadOf serves the types an agent registers.
func PayloadOf[P any](m *Msg) *P {
	if m == nil {
		return nil
	}
	p, _ := m.Payload.(*P)
	return p
}
