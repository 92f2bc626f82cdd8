package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestTypeString(t *testing.T) {
	tests := []struct {
		typ  Type
		want string
		key  string
	}{
		{TypeError, "error", ""},
		{TypeAgentInfo, "agent_info", "ai"},
		{TypeHMCollectStatus, "hm_collect_status", "hm_status_rep"},
		{TypeLogDownloadData, "log_download_data", "log_ddata"},
		{TypeAck, "ack", "ack"},
		{Type(55), "type(55)", ""},
	}
	for _, tt := range tests {
		if got := tt.typ.String(); got != tt.want {
			t.Errorf("Type(%d).String() = %q, want %q", int(tt.typ), got, tt.want)
		}
		if got := tt.typ.PayloadKey(); got != tt.key {
			t.Errorf("Type(%d).PayloadKey() = %q, want %q", int(tt.typ), got, tt.key)
		}
	}
	if Type(55).Known() || !TypeLogLsReq.Known() {
		t.Error("Known() wrong")
	}
}

func TestEncodings(t *testing.T) {
	tests := []struct {
		name string
		msg  *Msg
		want string // substring of the encoding
	}{
		{"md5 as array", &Msg{Type: TypeDownloadRep, Payload: &DownloadRep{MD5: MD5{0: 1, 15: 255}}},
			`"md5":[1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,255]`},
		{"dir mode with type bit", &Msg{Type: TypeLsRep, Payload: &LsRep{Files: []FileInfo{{Mod: os.ModeDir | 0o755}}}},
			`"mod":2147484141`},
		{"symlink mode", &Msg{Type: TypeLsRep, Payload: &LsRep{Files: []FileInfo{{Mod: os.ModeSymlink | 0o777}}}},
			`"mod":134218239`},
		{"time RFC 3339 nanos", &Msg{Type: TypeExecd, Payload: &Execd{Time: time.Date(2026, 11, 24, 13, 41, 28, 123456789, time.UTC)}},
			`"t":"2026-11-24T13:41:28.123456789Z"`},
		{"duration in ns", &Msg{Type: TypeHMCollectStatus, Payload: &HMStatusRep{Jobs: []HMJob{{Name: "u", Interval: 5 * time.Second}}}},
			`"interval":5000000000`},
		{"F2 NaN is 0", &Msg{Type: TypeHMDynamicRep, Payload: &HMDynamicRep{Temperatures: []HMTemperature{{Name: "x", Temp: F2(math.NaN())}}}},
			`{"name":"x","temp":0}`},
		{"intferface key", &Msg{Type: TypeHMDynamicRep, Payload: &HMDynamicRep{Usage: &HMUsage{Interface: []HMUsageNetwork{{Name: "eth0"}}}}},
			`"intferface":[{"name":"eth0"}]`},
		{"seq in envelope", &Msg{Type: TypeExecData, TID: "x", Seq: 3, Payload: &ExecData{Data: ""}},
			`{"type":12,"tid":"x","seq":3,"exec_data":{"data":""}}`},
		{"empty tid omitted", &Msg{Type: TypeFoo}, `{"type":8}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Encode(tt.msg)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), tt.want) {
				t.Errorf("Encode = %s\nwant it to contain %s", b, tt.want)
			}
		})
	}
}

func TestF2(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0"},
		{1, "1"},
		{12.3456, "12.35"},
		{12.344, "12.34"},
		{-0.001, "0"},
		{-3.5, "-3.5"},
		{99.999, "100"},
		{0.1, "0.1"},
		{1e20, "100000000000000000000"},
		{math.NaN(), "0"},
		{math.Inf(1), "0"},
		{math.Inf(-1), "0"},
	}
	for _, tt := range tests {
		b, err := F2(tt.in).MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tt.want {
			t.Errorf("F2(%v) = %s, want %s", tt.in, b, tt.want)
		}
	}
}

func TestDecodeLenient(t *testing.T) {
	t.Run("unknown keys ignored", func(t *testing.T) {
		m, err := Decode([]byte(`{"type":10,"tid":"a","new_key":[1,2],"exec":{"cmd":"ls","future":{"x":1}},"plugin":{"name":"exec"}}`))
		if err != nil {
			t.Fatal(err)
		}
		if m.Exec() == nil || m.Exec().Cmd != "ls" || m.TID != "a" {
			t.Errorf("got %+v", m)
		}
	})
	t.Run("unknown type accepted", func(t *testing.T) {
		m, err := Decode([]byte(`{"type":60,"tid":"rpa-1","rpa_run":{"x":1}}`))
		if err != nil {
			t.Fatal(err)
		}
		if m.Type != 60 || m.Type.Known() {
			t.Errorf("type %v", m.Type)
		}
		r := Unsupported(m)
		if r == nil || r.Type != TypeError || r.TID != "rpa-1" || r.ErrMsg != "unsupported message type 60" {
			t.Errorf("Unsupported = %+v", r)
		}
		if Unsupported(&Msg{Type: 60}) != nil {
			t.Error("Unsupported of a push must be nil")
		}
	})
	t.Run("error without tid", func(t *testing.T) {
		if _, err := Decode([]byte(`{"type":0,"errmsg":"boom"}`)); err != nil {
			t.Fatal(err)
		}
	})
}

func TestDecodeBad(t *testing.T) {
	for _, tt := range badInputs {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode([]byte(tt.in))
			if err == nil {
				t.Fatalf("Decode(%s) = %+v, want error", tt.in, m)
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q does not contain %q", err, tt.text)
			}
		})
	}
}

var badInputs = []struct {
	name, in string
	is       error
	text     string
}{
	{"empty", ``, ErrMalformed, "protocol: decode: malformed message: unexpected end of JSON input"},
	{"not json", `hello`, ErrMalformed, "invalid character 'h'"},
	{"array", `[1]`, ErrMalformed, "cannot unmarshal array"},
	{"trailing garbage", `{"type":8} x`, ErrMalformed, "invalid character 'x' after top-level value"},
	{"null", `null`, ErrNoType, "protocol: decode: missing message type"},
	{"no type", `{"tid":"a","exec":{"cmd":"ls"}}`, ErrNoType, "missing message type"},
	{"negative type", `{"type":-1}`, ErrNoType, "missing message type: type -1"},
	{"type as string", `{"type":"10"}`, ErrMalformed, "cannot unmarshal string"},
	{"type huge", `{"type":99999999999999999999}`, ErrMalformed, "cannot unmarshal number 99999999999999999999"},
	{"type float", `{"type":1.5}`, ErrMalformed, "cannot unmarshal number 1.5"},
	{"missing payload", `{"type":10,"tid":"a"}`, ErrPayload, `type 10 (exec) needs payload "exec"`},
	{"wrong payload", `{"type":10,"ls_req":{"dir":"/"}}`, ErrPayload, `type 10 (exec) carries payload "ls_req"`},
	{"extra payload", `{"type":20,"ls_req":{"dir":"/"},"exec":{"cmd":"x"}}`, ErrPayload, `type 20 (ls_req) carries payload "exec"`},
	{"payload on no-payload type", `{"type":30,"hm_static":{}}`, ErrPayload, `type 30 (hm_static_req) carries payload "hm_static"`},
	{"payload not object", `{"type":10,"exec":"ls"}`, ErrMalformed, "cannot unmarshal string"},
	{"huge timeout", `{"type":10,"exec":{"cmd":"x","timeout":1e300}}`, ErrMalformed, "cannot unmarshal number 1e300"},
	{"negative size", `{"type":25,"download_rep":{"size":-1}}`, ErrMalformed, "cannot unmarshal number -1"},
	{"md5 byte overflow", `{"type":25,"download_rep":{"md5":[256]}}`, ErrMalformed, "cannot unmarshal number 256"},
	{"bad ip", `{"type":1,"come":{"ip":"1.2.3"}}`, ErrMalformed, "invalid IP address"},
	{"bad time", `{"type":11,"execd":{"t":"yesterday"}}`, ErrMalformed, `parsing time "yesterday"`},
	{"tid not string", `{"type":8,"tid":5}`, ErrMalformed, "cannot unmarshal number"},
}

func TestEncodeChecks(t *testing.T) {
	tests := []struct {
		name string
		msg  *Msg
		text string
	}{
		{"nil", nil, "protocol: encode: nil message"},
		{"negative", &Msg{Type: -2}, "missing message type: type -2"},
		{"missing payload", &Msg{Type: TypeExecd}, `type 11 (execd) needs payload "execd"`},
		{"wrong payload", &Msg{Type: TypeAck, Payload: &Ps{}}, `type 100 (ack) carries payload "ps"`},
	}
	for _, tt := range tests {
		_, err := Encode(tt.msg)
		if err == nil || !strings.Contains(err.Error(), tt.text) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.text)
		}
	}
}

func TestHelpers(t *testing.T) {
	req := &Msg{Type: TypeLsReq, TID: "t1", Payload: &LsReq{Dir: "/"}}
	r := Reply(req, TypeLsRep)
	if r.Type != TypeLsRep || r.TID != "t1" {
		t.Errorf("Reply = %+v", r)
	}
	e := Errorf("t1", "bad dir %q", "/x")
	if e.Type != TypeError || e.TID != "t1" || e.ErrMsg != `bad dir "/x"` {
		t.Errorf("Errorf = %+v", e)
	}
	for typ, want := range map[Type]bool{TypeExecd: true, TypeExecData: true, TypeExecDone: true, TypeExec: false, TypeAck: false} {
		if typ.Journaled() != want {
			t.Errorf("%s.Journaled() = %v", typ, !want)
		}
	}
	if !HasCap([]string{"x", CapAck}, CapAck) || HasCap(nil, CapAck) {
		t.Error("HasCap wrong")
	}
}

func TestPass(t *testing.T) {
	key := &PassKey{}
	for i := range key.Key {
		key.Key[i] = byte(i * 7)
	}
	copy(key.IV[:], "0123456789abcdef")
	for _, plain := range []string{"", "pw", "exactly16bytes!!", "pässwörd with spaces"} {
		if got, err := DecodePass(EncodePass(plain), nil); err != nil || got != plain {
			t.Errorf("$0$ round trip %q: %q, %v", plain, got, err)
		}
		enc, err := EncodePassV1(plain, key)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(enc, "$1$") {
			t.Errorf("EncodePassV1 = %q", enc)
		}
		if got, err := DecodePass(enc, key); err != nil || got != plain {
			t.Errorf("$1$ round trip %q: %q, %v", plain, got, err)
		}
	}
	enc, _ := EncodePassV1("secret", key)
	wrong := &PassKey{}
	bad := []struct {
		in   string
		key  *PassKey
		is   error
		text string
	}{
		{"plain", nil, ErrPass, "bad password encoding: want a $0$ or $1$ prefix"},
		{enc, nil, ErrNoPassKey, "no v1 key is configured"},
		{"$1$!!!", key, ErrPass, "illegal base64"},
		{"$1$AAAA", key, ErrPass, "ciphertext length 3"},
		{enc, wrong, ErrPass, "bad padding"},
	}
	for _, tt := range bad {
		_, err := DecodePass(tt.in, tt.key)
		if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.text) {
			t.Errorf("DecodePass(%q) err = %v, want %v containing %q", tt.in, err, tt.is, tt.text)
		}
	}
	if got, err := DecodePass("", nil); got != "" || err != nil {
		t.Errorf("empty: %q %v", got, err)
	}
	if _, err := EncodePassV1("x", nil); !errors.Is(err, ErrNoPassKey) {
		t.Errorf("EncodePassV1 without key: %v", err)
	}
}

// FuzzDecode: Decode never panics, and whatever it accepts encodes, decodes
// again, and re-encodes to the same bytes.
func FuzzDecode(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, b := range badInputs {
		f.Add([]byte(b.in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := Decode(in)
		if err != nil {
			return
		}
		enc, err := Encode(m)
		if err != nil {
			t.Fatalf("decoded %q but cannot encode: %v", in, err)
		}
		m2, err := Decode(enc)
		if err != nil {
			t.Fatalf("cannot decode own encoding %s: %v", enc, err)
		}
		// Encode output is already normal (F2 rounded, IPs canonical), so a
		// second round trip must reproduce it exactly.
		enc2, err := Encode(m2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable:\n%s\n%s", enc, enc2)
		}
	})
}

// Messages of types this package does not know keep their payload keys, so
// a server can pass another agent's messages on intact.
func TestExtraPayloadOfUnknownType(t *testing.T) {
	in := `{"type":150,"tid":"t1","echo":{"text":"hi", "n":[1, 2]},"zz":true}`
	m, err := Decode([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(m.Extra["echo"]); got != `{"text":"hi","n":[1,2]}` {
		t.Fatalf("Extra[echo] = %s", got)
	}
	out, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"type":150,"tid":"t1","echo":{"text":"hi","n":[1,2]},"zz":true}`; string(out) != want {
		t.Fatalf("Encode = %s\nwant     %s", out, want)
	}

	known, err := Decode([]byte(`{"type":8,"tid":"t2","echo":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	if known.Extra != nil {
		t.Fatalf("known type got Extra %v; unknown keys of known types are ignored", known.Extra)
	}

	for _, tc := range []struct {
		extra map[string]json.RawMessage
		want  string
	}{
		{map[string]json.RawMessage{"tid": json.RawMessage(`"x"`)}, `extra key "tid" is a key of the envelope`},
		{map[string]json.RawMessage{"exec": json.RawMessage(`{}`)}, `extra key "exec" is a key of the envelope`},
		{map[string]json.RawMessage{"echo": json.RawMessage(`{bad`)}, `extra key "echo": invalid character 'b'`},
	} {
		_, err := Encode(&Msg{Type: 150, Extra: tc.extra})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Encode(%v) error = %v, want %q", tc.extra, err, tc.want)
		}
	}
}

// Agent-defined self-report fields survive a round trip.
func TestAgentInfoExtra(t *testing.T) {
	in := `{"type":7,"ai":{"v":"1.0.0","gv":"go1.26","cu":1.5,"mu":0,"ts":3,"rs":9,"st":1,"hi":2,"gc":null,"ip":0,"ib":0,"op":0,"ob":0,"pe":0,"pr":0,"rcc":0,"puc":null,"pop":null,"pob":null,"rcs":0,"wcs":0,"foo_count":3,"tdrop":0}}`
	m, err := Decode([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(m.AI().Extra["foo_count"]); got != "3" {
		t.Fatalf("Extra[foo_count] = %q, want 3 (all extra: %v)", got, m.AI().Extra)
	}
	if len(m.AI().Extra) != 2 {
		t.Fatalf("Extra = %v, want foo_count and tdrop only", m.AI().Extra)
	}
	out, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != in {
		t.Fatalf("round trip:\n got %s\nwant %s", out, in)
	}
	m.AI().Extra["cu"] = json.RawMessage("1")
	if _, err := Encode(m); err == nil || !strings.Contains(err.Error(), `extra key "cu"`) {
		t.Fatalf("Encode with a clashing extra key: err = %v", err)
	}
}

// CommonCaps keeps a's order and drops what b lacks.
func TestCommonCaps(t *testing.T) {
	got := CommonCaps([]string{CapPty, CapAuth, "x.v1", CapAck}, []string{CapAck, CapAuth, CapPty})
	if want := []string{CapPty, CapAuth, CapAck}; !slices.Equal(got, want) {
		t.Errorf("CommonCaps = %v, want %v", got, want)
	}
	if got := CommonCaps(Caps(), nil); got != nil {
		t.Errorf("CommonCaps with a v1 peer = %v, want nil", got)
	}
}
