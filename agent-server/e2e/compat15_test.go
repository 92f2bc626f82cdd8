package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The agent-server 1.5 API as a 1.5 client decodes it: one Go type per
// payload, written from the 1.5 response table (field names, JSON types,
// which fields may be absent). checkKinds and checkSchema hold the live
// responses and the OpenAPI document to them.

type v15Envelope struct {
	Code    int             `json:"code"`
	Msg     string          `json:"msg,omitempty"`
	Payload json.RawMessage `json:"-"` // checked as the route's type
}

type v15ServerInfo struct {
	ID         string `json:"id"`
	Version    string `json:"version"`
	Agents     int    `json:"agents"`
	IsBlocking bool   `json:"is_blocking"`
}

type v15Agent struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Version  string `json:"version"`
	IP       string `json:"ip"`
	MAC      string `json:"mac"`
	OS       string `json:"os"`
	Platform string `json:"platform"`
	Arch     string `json:"arch"`
	IsBusy   bool   `json:"is_busy"`
}

type v15LogFile struct {
	Name    string `json:"name"`
	Size    uint64 `json:"size"`
	ModTime int64  `json:"mod_time"` // unix
}

type v15Run struct {
	ID     string     `json:"id"`
	Begin  int64      `json:"begin"` // unix
	Pid    int        `json:"pid"`
	Result *v15Result `json:"result,omitempty"`
}

type v15Result struct {
	Running bool   `json:"running"`
	Code    int    `json:"code"`
	End     int64  `json:"end,omitempty"`  // unix
	Data    string `json:"data,omitempty"` // base64
}

type v15Status struct {
	Begin int64 `json:"begin"`
	End   int64 `json:"end,omitempty"`
	Done  bool  `json:"done"`
	Code  int   `json:"code"`
}

type v15Ps struct {
	TaskID string `json:"task_id"`
	Pid    int    `json:"pid"`
	Begin  int64  `json:"begin"`
}

type v15File struct {
	Name    string `json:"name"`
	Auth    uint64 `json:"auth"` // os.FileMode, type bits included
	User    string `json:"user,omitempty"`
	Group   string `json:"group,omitempty"`
	Size    uint64 `json:"size"`
	ModTime int64  `json:"mod_time"`
	IsDir   bool   `json:"is_dir"`
	IsLink  bool   `json:"is_link"`
	LinkDir string `json:"link_dir,omitempty"`
}

type v15Script struct {
	ID    string `json:"id"`
	Begin int64  `json:"begin"`
	End   int64  `json:"end"`
	Code  int    `json:"code"`
	Data  string `json:"data"`
}

type v15MetricsStatus struct {
	Jobs []struct {
		Name     string `json:"name"`
		Interval int    `json:"interval"` // seconds
	} `json:"jobs"`
	AllowConns []string `json:"allow_conns,omitempty"`
}

type v15Fleet struct {
	Total   int `json:"total"`
	Success int `json:"success"`
	Failure int `json:"failure"`
}

type v15Static struct {
	Time int64 `json:"time"`
	Host struct {
		Name   string `json:"name"`
		Uptime int64  `json:"uptime"`
	} `json:"host"`
	OS struct {
		Name            string `json:"name"`
		PlatformName    string `json:"platform_name"`
		PlatformVersion string `json:"platform_version"`
		Install         int64  `json:"install"`
		Startup         int64  `json:"startup"`
	} `json:"os"`
	Kernel struct {
		Version string `json:"version"`
		Arch    string `json:"arch"`
	} `json:"kernel"`
	CPU struct {
		Physical int `json:"physical"`
		Logical  int `json:"logical"`
		Cores    []struct {
			Processor int32   `json:"processor"`
			Model     string  `json:"model"`
			Core      int32   `json:"core"`
			Cores     int32   `json:"cores"`
			Physical  int32   `json:"physical"`
			Mhz       float64 `json:"mhz"`
		} `json:"cores,omitempty"`
	} `json:"cpu"`
	Memory struct {
		Physical uint64 `json:"physical"`
		Swap     uint64 `json:"swap"`
	} `json:"memory"`
	Disks []struct {
		Model      string   `json:"model"`
		Total      uint64   `json:"total"`
		Type       string   `json:"type"`
		Partitions []string `json:"partitions,omitempty"`
	} `json:"disks,omitempty"`
	Partitions []struct {
		Mount  string   `json:"mount"`
		FSType string   `json:"fstype,omitempty"`
		Opts   []string `json:"opts,omitempty"`
		Total  uint64   `json:"total"`
		Inodes uint64   `json:"inodes,omitempty"`
	} `json:"partitions,omitempty"`
	Nameservers []string `json:"nameservers"`
	Gateway     string   `json:"gateway"`
	Interface   []struct {
		Index int      `json:"index"`
		Name  string   `json:"name"`
		MTU   int      `json:"mtu"`
		Flags []string `json:"flags,omitempty"`
		MAC   string   `json:"mac"`
		Addrs []string `json:"addrs,omitempty"`
	} `json:"interface,omitempty"`
	User []struct {
		Name string `json:"name"`
		ID   string `json:"id"`
		GID  string `json:"gid"`
	} `json:"user,omitempty"`
}

type v15Usage struct {
	CPU struct {
		Usage  float64 `json:"usage"`
		Load1  float64 `json:"load1"`
		Load5  float64 `json:"load5"`
		Load15 float64 `json:"load15"`
	} `json:"cpu"`
	Memory struct {
		Used      uint64  `json:"used"`
		Free      uint64  `json:"free"`
		Available uint64  `json:"available"`
		Usage     float64 `json:"usage"`
		SwapUsed  uint64  `json:"swap_used"`
		SwapFree  uint64  `json:"swap_free"`
	} `json:"memory"`
	Partitions []struct {
		Name           string  `json:"name"`
		Used           uint64  `json:"used"`
		Free           uint64  `json:"free"`
		Usage          float64 `json:"usage"`
		InodeUsed      uint64  `json:"inode_used,omitempty"`
		InodeFree      uint64  `json:"inode_free,omitempty"`
		InodeUsage     float64 `json:"inode_usage,omitempty"`
		ReadPerSecond  float64 `json:"read_per_second,omitempty"`
		WritePerSecond float64 `json:"write_per_second,omitempty"`
		IOPSInProgress uint64  `json:"iops_in_progress,omitempty"`
	} `json:"partitions,omitempty"`
	Interface []struct {
		Name        string `json:"name"`
		BytesSent   uint64 `json:"bytes_sent"`
		BytesRecv   uint64 `json:"bytes_recv"`
		PacketsSent uint64 `json:"packets_sent"`
		PacketsRecv uint64 `json:"packets_recv"`
	} `json:"interface,omitempty"`
}

type v15Process struct {
	ID          int32    `json:"id"`
	ParentID    int32    `json:"pid"`
	User        string   `json:"user"`
	CPUUsage    float64  `json:"cpu_usage,omitempty"`
	RSS         uint64   `json:"rss,omitempty"`
	VMS         uint64   `json:"vms,omitempty"`
	Swap        uint64   `json:"swap,omitempty"`
	MemoryUsage float64  `json:"memory_usage,omitempty"`
	Cmd         []string `json:"cmd,omitempty"`
	Listen      []uint32 `json:"listen,omitempty"`
	Conns       int      `json:"conns"`
}

type v15Connection struct {
	FD     uint32 `json:"fd"`
	Pid    int32  `json:"pid"`
	Type   string `json:"type"`
	Local  string `json:"local,omitempty"`
	Remote string `json:"remote,omitempty"`
	Status string `json:"status"`
}

type v15Temp struct {
	Name string  `json:"name"`
	Temp float64 `json:"temp"`
}

type v15Dynamic struct {
	Usage        *v15Usage       `json:"usage,omitempty"`
	Process      []v15Process    `json:"process,omitempty"`
	Connections  []v15Connection `json:"connections,omitempty"`
	Temperatures []v15Temp       `json:"temperatures,omitempty"`
}

// jsonField is a struct field's JSON name and whether 1.5 may leave it out.
func jsonField(f reflect.StructField) (name string, optional, ok bool) {
	tag := f.Tag.Get("json")
	if tag == "-" || !f.IsExported() {
		return "", false, false
	}
	name, opts, _ := strings.Cut(tag, ",")
	if name == "" {
		name = f.Name
	}
	return name, strings.Contains(opts, "omitempty"), true
}

// decodeNumbers decodes b keeping numbers as json.Number.
func decodeNumbers(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	err := d.Decode(&v)
	return v, err
}

// checkKinds returns every difference between v (a JSON value decoded by
// decodeNumbers) and the 1.5 type t: a field missing (unless omitempty),
// a value of another JSON kind, a fraction or a sign where 1.5 has an
// integer or an unsigned one. Slices, maps and pointers may be null, as Go
// writes a nil one; fields 1.5 does not have are ignored.
func checkKinds(path string, v any, t reflect.Type) []string {
	bad := func(want string) []string { return []string{fmt.Sprintf("%s: %s, want %s", path, kindName(v), want)} }
	switch t.Kind() {
	case reflect.Pointer:
		if v == nil {
			return nil
		}
		return checkKinds(path, v, t.Elem())
	case reflect.String:
		if _, ok := v.(string); !ok {
			return bad("string")
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			return bad("bool")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(json.Number)
		if _, err := strconv.ParseInt(string(n), 10, t.Bits()); !ok || err != nil {
			return bad(fmt.Sprintf("an integer (%s)", t))
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := v.(json.Number)
		if _, err := strconv.ParseUint(string(n), 10, t.Bits()); !ok || err != nil {
			return bad(fmt.Sprintf("an unsigned integer (%s)", t))
		}
	case reflect.Float32, reflect.Float64:
		if _, ok := v.(json.Number); !ok {
			return bad("a number")
		}
	case reflect.Slice:
		if v == nil {
			return nil
		}
		a, ok := v.([]any)
		if !ok {
			return bad("an array")
		}
		var out []string
		for i, e := range a {
			out = append(out, checkKinds(fmt.Sprintf("%s[%d]", path, i), e, t.Elem())...)
		}
		return out
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return bad("an object")
		}
		var out []string
		for i := range t.NumField() {
			name, optional, ok := jsonField(t.Field(i))
			if !ok {
				continue
			}
			fv, present := m[name]
			if !present {
				if !optional {
					out = append(out, fmt.Sprintf("%s.%s: missing", path, name))
				}
				continue
			}
			out = append(out, checkKinds(path+"."+name, fv, t.Field(i).Type)...)
		}
		return out
	default:
		panic("checkKinds: no rule for " + t.String())
	}
	return nil
}

func kindName(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return fmt.Sprintf("string %.40q", x)
	case bool:
		return "bool"
	case json.Number:
		return "number " + string(x)
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// openAPI is the server's OpenAPI document, decoded.
type openAPI map[string]any

// payloadSchema returns the schema of the payload of route's 200 response
// ("GET /api/agents/{id}").
func (d openAPI) payloadSchema(route string) (map[string]any, error) {
	method, path, _ := strings.Cut(route, " ")
	op, _ := dig(map[string]any(d), "paths", path, strings.ToLower(method)).(map[string]any)
	if op == nil {
		return nil, fmt.Errorf("no operation %s", route)
	}
	schema, _ := dig(op, "responses", "200", "content", "application/json", "schema").(map[string]any)
	schema = d.resolve(schema)
	// allOf: the Envelope (payload: any), then the route's payload.
	all, _ := schema["allOf"].([]any)
	for i := len(all) - 1; i > 0; i-- {
		if p, _ := dig(d.resolve(asMap(all[i])), "properties", "payload").(map[string]any); p != nil {
			return d.resolve(p), nil
		}
	}
	return nil, fmt.Errorf("%s: the 200 response has no payload schema", route)
}

func asMap(v any) map[string]any { m, _ := v.(map[string]any); return m }

func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// resolve follows a local $ref, and an allOf of one schema (the way to
// make a $ref nullable in OpenAPI 3.0).
func (d openAPI) resolve(s map[string]any) map[string]any {
	for range 10 {
		if all, _ := s["allOf"].([]any); len(all) == 1 {
			s = asMap(all[0])
			continue
		}
		ref, _ := s["$ref"].(string)
		if ref == "" {
			return s
		}
		s = asMap(dig(map[string]any(d), strings.Split(strings.TrimPrefix(ref, "#/"), "/")...))
	}
	return s
}

// checkSchema returns every difference between the schema s and the 1.5
// type t: a field not described, described with another type, or (when
// 1.5 always sends it) not required.
func (d openAPI) checkSchema(path string, s map[string]any, t reflect.Type) []string {
	s = d.resolve(s)
	if s == nil {
		return []string{path + ": no schema"}
	}
	typ, _ := s["type"].(string)
	want := ""
	switch t.Kind() {
	case reflect.Pointer:
		return d.checkSchema(path, s, t.Elem())
	case reflect.String:
		want = "string"
	case reflect.Bool:
		want = "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		want = "integer"
	case reflect.Float32, reflect.Float64:
		want = "number"
	case reflect.Slice:
		if typ != "array" {
			return []string{fmt.Sprintf("%s: type %q, want array", path, typ)}
		}
		items, _ := s["items"].(map[string]any)
		return d.checkSchema(path+"[]", items, t.Elem())
	case reflect.Struct:
		if typ != "object" {
			return []string{fmt.Sprintf("%s: type %q, want object", path, typ)}
		}
		props, _ := s["properties"].(map[string]any)
		required, _ := s["required"].([]any)
		var out []string
		for i := range t.NumField() {
			name, optional, ok := jsonField(t.Field(i))
			if !ok {
				continue
			}
			p, _ := props[name].(map[string]any)
			if p == nil {
				out = append(out, fmt.Sprintf("%s.%s: not in the schema", path, name))
				continue
			}
			if !optional && !slices.Contains(required, any(name)) {
				out = append(out, fmt.Sprintf("%s.%s: 1.5 always sends it, the schema does not require it", path, name))
			}
			out = append(out, d.checkSchema(path+"."+name, p, t.Field(i).Type)...)
		}
		return out
	}
	if typ != want {
		return []string{fmt.Sprintf("%s: type %q, want %s", path, typ, want)}
	}
	return nil
}

// The checks fail on the shapes our server sent before it kept 1.5's
// types, and on other changes of type or presence.
func TestCompat15Checks(t *testing.T) {
	kinds := []struct {
		typ  reflect.Type
		json string
		want string // first difference; "" = none
	}{
		{reflect.TypeFor[v15Run](), `{"id":"t","begin":1795514400,"pid":7,"result":{"running":false,"code":0,"end":1795514401,"data":"aGk="}}`, ""},
		{reflect.TypeFor[v15Run](), `{"id":"t","begin":1795514400,"pid":7}`, ""},
		{reflect.TypeFor[v15Run](), `{"id":"t","begin":"2026-11-24T10:00:00Z","pid":7}`, `x.begin: string "2026-11-24T10:00:00Z", want an integer (int64)`},
		{reflect.TypeFor[v15Run](), `{"id":"t","begin":1795514400,"pid":7,"result":{"running":false,"code":0,"end":"2026-11-24T10:00:01Z"}}`, `x.result.end: string "2026-11-24T10:00:01Z", want an integer (int64)`},
		{reflect.TypeFor[v15Run](), `{"id":"t","begin":1795514400.5,"pid":7}`, `x.begin: number 1795514400.5, want an integer (int64)`},
		{reflect.TypeFor[v15Run](), `{"id":"t","pid":7}`, `x.begin: missing`},
		{reflect.TypeFor[[]v15File](), `[{"name":"d","auth":"drwx------","size":0,"mod_time":1,"is_dir":true,"is_link":false}]`, `x[0].auth: string "drwx------", want an unsigned integer (uint64)`},
		{reflect.TypeFor[[]v15File](), `[{"name":"d","auth":-1,"size":0,"mod_time":1,"is_dir":true,"is_link":false}]`, `x[0].auth: number -1, want an unsigned integer (uint64)`},
		{reflect.TypeFor[[]v15File](), `[{"name":"d","auth":2147484096,"size":0,"mod_time":"2026-11-24T10:00:00Z","is_dir":true,"is_link":false}]`, `x[0].mod_time: string "2026-11-24T10:00:00Z", want an integer (int64)`},
		{reflect.TypeFor[[]v15LogFile](), `null`, ""},
		{reflect.TypeFor[[]v15LogFile](), `{}`, `x: object, want an array`},
		{reflect.TypeFor[v15Agent](), `{"id":"a","type":"t","version":"1","ip":"","mac":"","os":"linux","platform":"","arch":"","is_busy":"no"}`, `x.is_busy: string "no", want bool`},
		{reflect.TypeFor[v15Status](), `{"begin":1,"done":true,"code":null}`, `x.code: null, want an integer (int)`},
		{reflect.TypeFor[v15Usage](), `{"cpu":{"usage":"12.5","load1":0,"load5":0,"load15":0},"memory":{"used":1,"free":1,"available":1,"usage":1,"swap_used":0,"swap_free":0}}`, `x.cpu.usage: string "12.5", want a number`},
	}
	for _, k := range kinds {
		v, err := decodeNumbers([]byte(k.json))
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if d := checkKinds("x", v, k.typ); len(d) > 0 {
			got = d[0]
		}
		if got != k.want {
			t.Errorf("checkKinds(%s, %s) = %q, want %q", k.typ, k.json, got, k.want)
		}
	}

	doc := openAPI{"components": map[string]any{"schemas": map[string]any{
		"Ps": map[string]any{"type": "object", "required": []any{"task_id", "pid", "begin"}, "properties": map[string]any{
			"task_id": map[string]any{"type": "string"}, "pid": map[string]any{"type": "integer"}, "begin": map[string]any{"type": "integer"},
		}},
		"PsOld": map[string]any{"type": "object", "required": []any{"task_id", "pid", "begin"}, "properties": map[string]any{
			"task_id": map[string]any{"type": "string"}, "pid": map[string]any{"type": "integer"}, "begin": map[string]any{"type": "string", "format": "date-time"},
		}},
		"PsLoose": map[string]any{"type": "object", "properties": map[string]any{
			"task_id": map[string]any{"type": "string"}, "pid": map[string]any{"type": "integer"}, "begin": map[string]any{"type": "integer"},
		}},
	}}}
	schemas := []struct{ ref, want string }{
		{"Ps", ""},
		{"PsOld", `x[].begin: type "string", want integer`},
		{"PsLoose", `x[].task_id: 1.5 always sends it, the schema does not require it`},
	}
	for _, s := range schemas {
		arr := map[string]any{"type": "array", "items": map[string]any{"$ref": "#/components/schemas/" + s.ref}}
		got := ""
		if d := doc.checkSchema("x", arr, reflect.TypeFor[[]v15Ps]()); len(d) > 0 {
			got = d[0]
		}
		if got != s.want {
			t.Errorf("checkSchema(%s) = %q, want %q", s.ref, got, s.want)
		}
	}
}
