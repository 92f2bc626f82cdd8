package kvconf_test

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/kvconf"
	"github.com/agentfleet/jkframe/utils"
)

// level implements Unmarshaler and Marshaler.
type level int

var levelNames = []string{"debug", "info", "warn", "error"}

func (l *level) UnmarshalKV(s string) error {
	for i, n := range levelNames {
		if s == n {
			*l = level(i)
			return nil
		}
	}
	return fmt.Errorf("unknown level %q (want debug, info, warn or error)", s)
}

func (l level) MarshalKV() (string, error) {
	if int(l) < 0 || int(l) >= len(levelNames) {
		return "", fmt.Errorf("no level %d", int(l))
	}
	return levelNames[l], nil
}

type Inner struct {
	Inner string
}

// conf has a field of every supported type.
type conf struct {
	S      string `kv:"s"`
	Env    string `kv:"env,env"`
	B      bool
	I      int
	I8     int8
	I16    int16
	I32    int32
	I64    int64
	U      uint
	U8     uint8
	U16    uint16
	U32    uint32
	U64    uint64
	F32    float32
	F64    float64
	D      time.Duration  `kv:"d"`
	Size   utils.Bytes    `kv:"size"`
	UD     utils.Duration `kv:"ud"`
	List   []string       `kv:"list"`
	PS     *string        `kv:"ps"`
	PI     *int           `kv:"pi"`
	PSize  *utils.Bytes   `kv:"psize"`
	PD     *time.Duration `kv:"pd"`
	Level  level          `kv:"level"`
	PLevel *level         `kv:"plevel"`
	Addr   netip.Addr     `kv:"addr"`
	Skip   string         `kv:"-"`
	skip   string
	Nested struct {
		Dir    string `kv:"dir"`
		Deeper struct {
			X int `kv:"x"`
		} `kv:"deeper"`
	} `kv:"nested"`
	Inner
}

func ptr[T any](v T) *T { return &v }

var testEnv = kvconf.Env(fakeEnv(map[string]string{"AGENT_SERVER": "10.0.0.1:13081", "EMPTY": ""}))

var goodCases = []struct {
	name string
	in   string
	want func(c *conf)
}{
	{"empty file", "", func(c *conf) {}},
	{"only comments", "# a\n\n   # b\n\t\n", func(c *conf) {}},
	{"plain", "s = hello", func(c *conf) { c.S = "hello" }},
	{"no spaces", "s=hello", func(c *conf) { c.S = "hello" }},
	{"spaces kept inside", "   s   =   two  words   \n", func(c *conf) { c.S = "two  words" }},
	{"hash inside value", "s = ab#cd", func(c *conf) { c.S = "ab#cd" }},
	{"comment after value", "s = ab#cd # the password\t", func(c *conf) { c.S = "ab#cd" }},
	{"comment after tab", "s = ab\t#cd", func(c *conf) { c.S = "ab" }},
	{"comment at value start", "s =#x", func(c *conf) { c.S = "" }},
	{"empty value", "s =", func(c *conf) { c.S = "" }},
	{"empty value and comment", "s = # nothing", func(c *conf) { c.S = "" }},
	{"equals in value", "s = a=b", func(c *conf) { c.S = "a=b" }},
	{"quote inside bare value", `s = a"b"`, func(c *conf) { c.S = `a"b"` }},
	{"quoted", `s = "a #b"`, func(c *conf) { c.S = "a #b" }},
	{"quoted spaces", `s = "  x  "  # c`, func(c *conf) { c.S = "  x  " }},
	{"quoted escapes", `s = "say \"hi\" \\ ok"`, func(c *conf) { c.S = `say "hi" \ ok` }},
	{"quoted empty", `s = ""`, func(c *conf) { c.S = "" }},
	{"quoted then hash", `s = "x"#c`, func(c *conf) { c.S = "x" }},
	{"crlf and bom", "\ufeffs = x\r\nb = true\r\n", func(c *conf) { c.S, c.B = "x", true }},
	{"no final newline", "s = x\nb = true", func(c *conf) { c.S, c.B = "x", true }},
	{"long line", "s = " + strings.Repeat("x", 200_000), func(c *conf) { c.S = strings.Repeat("x", 200_000) }},
	{"bool forms", "b = 1", func(c *conf) { c.B = true }},
	{"bool false", "b = FALSE", func(c *conf) { c.B = false }},
	{"int limits", "i8 = -128\ni16 = 32767\ni32 = -2147483648\ni64 = 9223372036854775807\ni = -5",
		func(c *conf) {
			c.I8, c.I16, c.I32, c.I64, c.I = math.MinInt8, math.MaxInt16, math.MinInt32, math.MaxInt64, -5
		}},
	{"uint limits", "u8 = 255\nu16 = 65535\nu32 = 4294967295\nu64 = 18446744073709551615\nu = 010",
		func(c *conf) {
			c.U8, c.U16, c.U32, c.U64, c.U = math.MaxUint8, math.MaxUint16, math.MaxUint32, math.MaxUint64, 10
		}},
	{"floats", "f32 = 1.5\nf64 = -2.25e10", func(c *conf) { c.F32, c.F64 = 1.5, -2.25e10 }},
	{"durations", "d = 1d12h\nud = 90s\npd = 0", func(c *conf) {
		c.D, c.UD, c.PD = 36*time.Hour, utils.Duration(90*time.Second), ptr(time.Duration(0))
	}},
	{"bytes", "size = 10M\npsize = 1.5K", func(c *conf) { c.Size, c.PSize = 10<<20, ptr(utils.Bytes(1536)) }},
	{"list", "list = a, b ,,c,", func(c *conf) { c.List = []string{"a", "b", "c"} }},
	{"empty list", "list =", func(c *conf) { c.List = []string{} }},
	{"quoted list", `list = "x #1, y"`, func(c *conf) { c.List = []string{"x #1", "y"} }},
	{"pointers", "ps = x\npi = -3", func(c *conf) { c.PS, c.PI = ptr("x"), ptr(-3) }},
	{"pointer to empty", `ps = ""`, func(c *conf) { c.PS = ptr("") }},
	{"env", "env = $AGENT_SERVER", func(c *conf) { c.Env = "10.0.0.1:13081" }},
	{"env braces", "env = ${AGENT_SERVER}", func(c *conf) { c.Env = "10.0.0.1:13081" }},
	{"env set but empty", "env = $EMPTY", func(c *conf) { c.Env = "" }},
	{"env quoted is literal", `env = "$AGENT_SERVER"`, func(c *conf) { c.Env = "$AGENT_SERVER" }},
	{"env not a whole name", "env = ws://$AGENT_SERVER", func(c *conf) { c.Env = "ws://$AGENT_SERVER" }},
	{"no env option", "s = $AGENT_SERVER", func(c *conf) { c.S = "$AGENT_SERVER" }},
	{"unmarshaler", "level = warn\nplevel = error", func(c *conf) { c.Level, c.PLevel = 2, ptr(level(3)) }},
	{"text unmarshaler", "addr = 10.1.2.3", func(c *conf) { c.Addr = netip.MustParseAddr("10.1.2.3") }},
	{"nested", "nested.dir = /var/log\nnested.deeper.x = 3", func(c *conf) { c.Nested.Dir, c.Nested.Deeper.X = "/var/log", 3 }},
	{"embedded", "inner = y", func(c *conf) { c.Inner.Inner = "y" }},
}

func TestUnmarshal(t *testing.T) {
	for _, tc := range goodCases {
		t.Run(tc.name, func(t *testing.T) {
			var got, want conf
			tc.want(&want)
			if err := kvconf.Unmarshal([]byte(tc.in), &got, testEnv); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Unmarshal(%.60q)\n got %+v\nwant %+v", tc.in, got, want)
			}
		})
	}
}

var badCases = []struct {
	name, in, err string
}{
	{"no equals", "s", `test.conf:1: missing "=" in "s"`},
	{"no equals long", "\n# c\nthis line has no equals sign but is very long indeed",
		`test.conf:3: missing "=" in "this line has no equals sign but is very..."`},
	{"no key", " = x", `test.conf:1: missing key before "="`},
	{"bad key", "a b = x", `test.conf:1: invalid key "a b" (allowed: letters, digits, "_", "-", ".")`},
	{"unterminated", `s = "abc`, `test.conf:1: s: unterminated quoted value`},
	{"unterminated escape", `s = "abc\`, `test.conf:1: s: unterminated quoted value`},
	{"bad escape", `s = "a\n"`, `test.conf:1: s: invalid escape "\n" in quoted value (only \" and \\ are allowed)`},
	{"text after quote", `s = "a" b`, `test.conf:1: s: unexpected text after quoted value: "b"`},
	{"duplicate", "s = 1\n\ns = 2", `test.conf:3: s: duplicate key (first set on line 1)`},
	{"unknown", "b = true\r\nnope = 1\r\n", `test.conf:2: nope: unknown key`},
	{"struct key", "nested = x", `test.conf:1: nested: unknown key`},
	{"skipped field", "skip = x", `test.conf:1: skip: unknown key`},
	{"case-sensitive", "S = x", `test.conf:1: S: unknown key`},
	{"bom only at start", "b = true\n\ufeffs = x", `test.conf:2: invalid key "\ufeffs" (allowed: letters, digits, "_", "-", ".")`},
	{"int8 overflow", "i8 = 128", `test.conf:1: i8: value "128" out of range for int8`},
	{"int64 overflow", "i64 = -9223372036854775809", `test.conf:1: i64: value "-9223372036854775809" out of range for int64`},
	{"uint8 overflow", "u8 = 256", `test.conf:1: u8: value "256" out of range for uint8`},
	{"uint64 overflow", "u64 = 18446744073709551616", `test.conf:1: u64: value "18446744073709551616" out of range for uint64`},
	{"negative uint", "u = -1", `test.conf:1: u: invalid uint value "-1"`},
	{"not an int", "i = abc", `test.conf:1: i: invalid int value "abc"`},
	{"hex int", "i = 0x10", `test.conf:1: i: invalid int value "0x10"`},
	{"empty int", "i =", `test.conf:1: i: invalid int value ""`},
	{"empty pointer int", "pi =", `test.conf:1: pi: invalid int value ""`},
	{"float32 overflow", "f32 = 1e39", `test.conf:1: f32: value "1e39" out of range for float32`},
	{"not a float", "f64 = 1,5", `test.conf:1: f64: invalid float64 value "1,5"`},
	{"bool", "b = yes", `test.conf:1: b: invalid bool value "yes" (want true or false)`},
	{"duration", "d = 5x", `test.conf:1: d: invalid duration "5x": unknown unit "x"`},
	{"duration overflow", "d = 106752d", `test.conf:1: d: invalid duration "106752d": out of range`},
	{"utils duration", "ud =", `test.conf:1: ud: invalid duration "": empty`},
	{"bytes", "size = 10X", `test.conf:1: size: invalid byte size "10X": unknown unit "X"`},
	{"bytes overflow", "psize = 16384P", `test.conf:1: psize: invalid byte size "16384P": too large`},
	{"env unset", "env = $NOT_SET_ANYWHERE", `test.conf:1: env: environment variable NOT_SET_ANYWHERE is not set`},
	{"unmarshaler", "level = loud", `test.conf:1: level: unknown level "loud" (want debug, info, warn or error)`},
	{"pointer unmarshaler", "\n\nplevel = loud", `test.conf:3: plevel: unknown level "loud" (want debug, info, warn or error)`},
}

func TestUnmarshalErrors(t *testing.T) {
	for _, tc := range badCases {
		t.Run(tc.name, func(t *testing.T) {
			var c conf
			err := kvconf.Unmarshal([]byte(tc.in), &c, kvconf.File("test.conf"), testEnv)
			if err == nil || err.Error() != tc.err {
				t.Fatalf("Unmarshal(%q)\n got error %v\nwant error %s", tc.in, err, tc.err)
			}
			var ke *kvconf.Error
			if !errors.As(err, &ke) || ke.File != "test.conf" || ke.Line == 0 {
				t.Errorf("error %v is not an *Error with file and line: %#v", err, ke)
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	base := errors.New("boom")
	for _, tc := range []struct {
		e    kvconf.Error
		want string
	}{
		{kvconf.Error{File: "a.conf", Line: 3, Key: "k", Err: base}, "a.conf:3: k: boom"},
		{kvconf.Error{Line: 3, Key: "k", Err: base}, "line 3: k: boom"},
		{kvconf.Error{File: "a.conf", Line: 3, Err: base}, "a.conf:3: boom"},
		{kvconf.Error{Key: "k", Err: base}, "k: boom"},
		{kvconf.Error{Err: base}, "boom"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("%#v.Error() = %q, want %q", tc.e, got, tc.want)
		}
		if !errors.Is(&tc.e, base) {
			t.Errorf("%#v does not unwrap to its Err", tc.e)
		}
	}
	// Without File, Unmarshal errors name the line only.
	var c conf
	err := kvconf.Unmarshal([]byte("s = 1\ni8 = 300"), &c)
	if want := `line 2: i8: value "300" out of range for int8`; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

func TestStrict(t *testing.T) {
	in := []byte("s = x\nnope = 1\nnested.nope = 2\n")
	var c conf
	err := kvconf.Unmarshal(in, &c, kvconf.File("a.conf"))
	if !errors.Is(err, kvconf.ErrUnknownKey) {
		t.Fatalf("strict: got %v, want ErrUnknownKey", err)
	}
	var warnings []string
	c = conf{}
	err = kvconf.Unmarshal(in, &c, kvconf.File("a.conf"), kvconf.Strict(false), kvconf.Warn(func(err error) {
		if !errors.Is(err, kvconf.ErrUnknownKey) {
			t.Errorf("warning %v is not ErrUnknownKey", err)
		}
		warnings = append(warnings, err.Error())
	}))
	if err != nil {
		t.Fatalf("not strict: %v", err)
	}
	want := []string{"a.conf:2: nope: unknown key", "a.conf:3: nested.nope: unknown key"}
	if !reflect.DeepEqual(warnings, want) || c.S != "x" {
		t.Errorf("warnings %q, S %q; want %q and S x", warnings, c.S, want)
	}
	// Without Warn the warnings are dropped.
	if err := kvconf.Unmarshal(in, &c, kvconf.Strict(false)); err != nil {
		t.Errorf("not strict, no Warn: %v", err)
	}
}

func TestDefaultsKept(t *testing.T) {
	c := conf{S: "default", I: 7}
	if err := kvconf.Unmarshal([]byte("i = 8"), &c); err != nil {
		t.Fatal(err)
	}
	if c.S != "default" || c.I != 8 {
		t.Errorf("got S %q I %d, want S default I 8", c.S, c.I)
	}
}

func TestDefaultEnvIsProcessEnv(t *testing.T) {
	t.Setenv("KVCONF_TEST_SERVER", "h:1")
	var c conf
	if err := kvconf.Unmarshal([]byte("env = $KVCONF_TEST_SERVER"), &c); err != nil || c.Env != "h:1" {
		t.Errorf("got %q, %v; want h:1", c.Env, err)
	}
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.conf")
	if err := os.WriteFile(path, []byte("s = x\ni8 = 1000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var c conf
	err := kvconf.Load(path, &c, kvconf.File("ignored"))
	if want := path + `:2: i8: value "1000" out of range for int8`; err == nil || err.Error() != want {
		t.Errorf("Load: got %v, want %s", err, want)
	}
	err = kvconf.Load(filepath.Join(t.TempDir(), "missing.conf"), &c)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing file: got %v, want fs.ErrNotExist", err)
	}
}

func TestBadTargets(t *testing.T) {
	type unsupported struct {
		M map[string]int
	}
	type badOption struct {
		S string `kv:"s,envv"`
	}
	type badName struct {
		S string `kv:"a b"`
	}
	type dupKeys struct {
		A string `kv:"x"`
		B string `kv:"x"`
	}
	type envStruct struct {
		N struct{ S string } `kv:"n,env"`
	}
	type pointerToStruct struct {
		P *struct{ S string }
	}
	for _, tc := range []struct {
		v   any
		err string
	}{
		{conf{}, "kvconf: decoding needs a non-nil pointer to a struct, not kvconf_test.conf"},
		{(*conf)(nil), "kvconf: decoding needs a non-nil pointer to a struct, not *kvconf_test.conf"},
		{new(int), "kvconf: decoding needs a non-nil pointer to a struct, not *int"},
		{&unsupported{}, "kvconf: field unsupported.M: unsupported type map[string]int"},
		{&badOption{}, `kvconf: field badOption.S: unknown tag option "envv"`},
		{&badName{}, `kvconf: field badName.S: invalid key "a b" (allowed: letters, digits, "_", "-", ".")`},
		{&dupKeys{}, `kvconf: kvconf_test.dupKeys: two fields have the key "x"`},
		{&envStruct{}, "kvconf: field envStruct.N: option env on a struct"},
		{&pointerToStruct{}, "kvconf: field pointerToStruct.P: unsupported type *struct { S string }"},
	} {
		if err := kvconf.Unmarshal(nil, tc.v); err == nil || err.Error() != tc.err {
			t.Errorf("Unmarshal into %T: got %v, want %s", tc.v, err, tc.err)
		}
	}
	if _, err := kvconf.Marshal(42); err == nil || err.Error() != "kvconf: Marshal needs a struct or a non-nil pointer to one, not int" {
		t.Errorf("Marshal(42): %v", err)
	}
}

func TestParse(t *testing.T) {
	in := "\ufeff# head\r\nbasic.id = $HOSTNAME\r\n\r\nbasic.token = \"a b\" # c\r\nunknown.key=1"
	got, err := kvconf.Parse(strings.NewReader(in), "x.conf")
	if err != nil {
		t.Fatal(err)
	}
	want := []kvconf.Entry{
		{Key: "basic.id", Value: "$HOSTNAME", Line: 2},
		{Key: "basic.token", Value: "a b", Line: 4, Quoted: true},
		{Key: "unknown.key", Value: "1", Line: 5},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse\n got %+v\nwant %+v", got, want)
	}
}

func TestParseReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	_, err := kvconf.Parse(&failingReader{data: "a = 1\n", err: boom}, "x.conf")
	if !errors.Is(err, boom) || err.Error() != "kvconf: read x.conf: disk on fire" {
		t.Errorf("got %v", err)
	}
}

type failingReader struct {
	data string
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.data == "" {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestMarshalText(t *testing.T) {
	type small struct {
		S     string   `kv:"s"`
		Env   string   `kv:"env,env"`
		List  []string `kv:"list"`
		Empty []string `kv:"empty"`
		Nil   []string `kv:"nil"`
		P     *int     `kv:"p"`
		F     float32  `kv:"f"`
	}
	for _, tc := range []struct {
		s, env, want string
	}{
		{"plain", "h:1", "s = plain\nenv = h:1\n"},
		{"", "", "s = \"\"\nenv = \"\"\n"},
		{" lead", "$X", "s = \" lead\"\nenv = \"$X\"\n"},
		{"trail\t", "${X}", "s = \"trail\t\"\nenv = \"${X}\"\n"},
		{"a #b", "x$X", "s = \"a #b\"\nenv = x$X\n"},
		{"ab#cd", "$1", "s = ab#cd\nenv = $1\n"},
		{"#x", `"q"`, "s = \"#x\"\nenv = \"\\\"q\\\"\"\n"},
		{`a\b"c`, `\`, "s = a\\b\"c\nenv = \\\n"},
		{"a\u00a0", "a\rb", "s = \"a\u00a0\"\nenv = a\rb\n"},
	} {
		c := small{S: tc.s, Env: tc.env, List: []string{"a b", "c"}, Empty: []string{}, F: 0.1}
		out, err := kvconf.Marshal(&c)
		if err != nil {
			t.Fatalf("Marshal(%q, %q): %v", tc.s, tc.env, err)
		}
		want := tc.want + "list = a b, c\nempty = \"\"\nf = 0.1\n"
		if string(out) != want {
			t.Errorf("Marshal(%q, %q)\n got %q\nwant %q", tc.s, tc.env, out, want)
		}
		var back small
		if err := kvconf.Unmarshal(out, &back, kvconf.Env(fakeEnv(nil))); err != nil {
			t.Fatalf("Unmarshal(%q): %v", out, err)
		}
		if !reflect.DeepEqual(back, c) {
			t.Errorf("round trip\n got %+v\nwant %+v", back, c)
		}
	}
}

func TestMarshalErrors(t *testing.T) {
	type lists struct {
		S    string   `kv:"s"`
		List []string `kv:"list"`
	}
	for _, tc := range []struct {
		v   any
		err string
	}{
		{lists{S: "a\nb"}, "s: value contains a line break"},
		{lists{List: []string{"a,b"}}, `list: list item "a,b" contains a comma`},
		{lists{List: []string{"a", ""}}, "list: list item 1 is empty"},
		{lists{List: []string{" a"}}, `list: list item " a" has leading or trailing space`},
		{conf{Level: 9}, "level: no level 9"},
	} {
		if _, err := kvconf.Marshal(tc.v); err == nil || err.Error() != tc.err {
			t.Errorf("Marshal(%+v): got %v, want %s", tc.v, err, tc.err)
		}
	}
}

// fullConf sets every field of conf to a value that needs care to encode.
func fullConf() conf {
	c := conf{
		S: " a #b \"c\" \\ ", Env: "$AGENT_SERVER", B: true,
		I: math.MinInt, I8: math.MinInt8, I16: math.MaxInt16, I32: math.MinInt32, I64: math.MaxInt64,
		U: math.MaxUint, U8: math.MaxUint8, U16: math.MaxUint16, U32: math.MaxUint32, U64: math.MaxUint64,
		F32: math.MaxFloat32, F64: -math.SmallestNonzeroFloat64,
		D: -36*time.Hour - 1, Size: 1536 << 10, UD: utils.Duration(90 * time.Second),
		List: []string{"x #1", "y"}, PS: ptr(""), PI: ptr(0), PSize: ptr(utils.Bytes(1<<64 - 1)),
		PD: ptr(time.Duration(math.MinInt64)), Level: 3, PLevel: ptr(level(0)),
		Addr: netip.MustParseAddr("fe80::1%eth0"),
	}
	c.Nested.Dir = `C:\Program Files\agent`
	c.Nested.Deeper.X = -1
	c.Inner.Inner = "#"
	return c
}

func TestRoundTrip(t *testing.T) {
	want := fullConf()
	out, err := kvconf.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var got conf
	if err := kvconf.Unmarshal(out, &got, kvconf.Env(fakeEnv(nil))); err != nil {
		t.Fatalf("Unmarshal(%s): %v", out, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip through\n%s\n got %+v\nwant %+v", out, got, want)
	}
	// The zero value round-trips too, leaving nil pointers and slices out.
	out, err = kvconf.Marshal(conf{})
	if err != nil {
		t.Fatal(err)
	}
	got = conf{}
	if err := kvconf.Unmarshal(out, &got); err != nil || !reflect.DeepEqual(got, conf{}) {
		t.Errorf("zero round trip through\n%s\n got %+v, %v", out, got, err)
	}
}

func FuzzUnmarshal(f *testing.F) {
	for _, tc := range goodCases {
		f.Add([]byte(tc.in))
	}
	for _, tc := range badCases {
		f.Add([]byte(tc.in))
	}
	if full, err := kvconf.Marshal(fullConf()); err == nil {
		f.Add(full)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var c conf
		if err := kvconf.Unmarshal(data, &c, kvconf.Strict(false), testEnv); err != nil {
			var ke *kvconf.Error
			if !errors.As(err, &ke) || ke.Line == 0 {
				t.Fatalf("error without a line: %v", err)
			}
			return
		}
		// Whatever decodes must encode, and re-encode to the same text.
		out, err := kvconf.Marshal(c)
		if err != nil {
			t.Fatalf("Marshal after Unmarshal(%q): %v", data, err)
		}
		var back conf
		if err := kvconf.Unmarshal(out, &back); err != nil {
			t.Fatalf("Unmarshal(Marshal(...)) of\n%s: %v", out, err)
		}
		again, err := kvconf.Marshal(back)
		if err != nil || string(again) != string(out) {
			t.Fatalf("not a fixed point:\n%s\n---\n%s\n%v", out, again, err)
		}
	})
}

func FuzzRoundTrip(f *testing.F) {
	f.Add("plain", "a,b", int64(-1), uint64(1), 0.5, int64(90e9), uint64(10<<20))
	f.Add(" a #b ", " x , y ,", int64(math.MinInt64), uint64(math.MaxUint64), -1e300, int64(math.MinInt64), uint64(1536))
	f.Add(`"\`, "", int64(0), uint64(0), 0.0, int64(0), uint64(0))
	f.Add("$HOME", "#,##", int64(1), uint64(1), 1.0, int64(1), uint64(1))
	f.Add("a\nb", "\ufeff", int64(1), uint64(1), 1.0, int64(1), uint64(1))
	f.Fuzz(func(t *testing.T, s, list string, i int64, u uint64, fl float64, d int64, size uint64) {
		if math.IsNaN(fl) {
			fl = 0 // NaN never compares equal
		}
		want := conf{S: s, Env: s, PS: &s, I64: i, U64: u, F64: fl, D: time.Duration(d), Size: utils.Bytes(size),
			List: splitClean(list), UD: utils.Duration(d)}
		want.Nested.Dir = s
		out, err := kvconf.Marshal(want)
		if err != nil {
			if strings.Contains(s, "\n") {
				return
			}
			t.Fatalf("Marshal(%q): %v", s, err)
		}
		var got conf
		if err := kvconf.Unmarshal(out, &got, kvconf.Env(fakeEnv(nil))); err != nil {
			t.Fatalf("Unmarshal(%q): %v", out, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip through %q\n got %+v\nwant %+v", out, got, want)
		}
	})
}

// splitClean makes a list Marshal can write: items without commas, trimmed,
// not empty.
func splitClean(s string) []string {
	out := []string{}
	for it := range strings.SplitSeq(s, ",") {
		if it = strings.TrimSpace(it); it != "" && !strings.Contains(it, "\n") {
			out = append(out, it)
		}
	}
	return out
}

func TestSkippedFields(t *testing.T) {
	out, err := kvconf.Marshal(conf{Skip: "tagged -", skip: "unexported"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "skip") || strings.Contains(string(out), "unexported") {
		t.Errorf("Marshal wrote skipped fields:\n%s", out)
	}
}
