package project

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/agentfleet/libagent/logship"
)

func TestDecodeDefaults(t *testing.T) {
	p, err := Decode([]byte(`{"name":"web","type":"logtail","paths":["/var/log/app/*.log"],"dir":"/var/log/other.log"}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Batch != logship.DefaultBatch || p.Buffer != logship.DefaultBuffer || p.Interval != logship.DefaultInterval ||
		p.MaxLine != DefaultMaxLine || p.ReadFrom != ReadFromEnd {
		t.Fatalf("defaults not applied: %+v", p)
	}
	if got := strings.Join(p.Paths, ","); got != "/var/log/app/*.log,/var/log/other.log" {
		t.Fatalf("paths = %s (the seed's dir joins them)", got)
	}
	if p.ExcludeRE() != nil || p.MultilineRE() != nil {
		t.Fatal("no regexes were configured")
	}
}

func TestDecodeAllTypes(t *testing.T) {
	for _, in := range []string{
		`{"name":"a","type":"logtail","paths":["/var/log/*.log","C:/logs/*.log"],"exclude":"DEBUG","batch":10,"buffer":1024,"interval":1,"read_from":"beginning","max_line":2048}`,
		`{"name":"b","type":"docker","containers":["nginx","api-*"],"tags":["1.25","latest"]}`,
		`{"name":"c","type":"docker","containers":["nginx"],"dir":"/var/log/nginx/*.log"}`,
		`{"name":"d","type":"k8s","namespace":"shop","apps":["web","api"],"api":"https://10.0.0.1:6443","token":"abc","dir":"/logs/*.log"}`,
		`{"name":"e.f_g-1","type":"logtail","paths":["/x"],"multiline":{"start":"^\\d{4}-"}}`,
	} {
		p, err := Decode([]byte(in))
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if p.Multiline != nil && (p.Multiline.Timeout != DefaultMultilineTimeout || p.Multiline.MaxLines != DefaultMultilineMaxLines) {
			t.Errorf("multiline defaults not applied: %+v", p.Multiline)
		}
	}
}

func TestDecodeBad(t *testing.T) {
	long := strings.Repeat("a", 65)
	many := `"/a"` + strings.Repeat(`,"/a"`, 64)
	for _, c := range []struct{ in, param, msg string }{
		{`{`, "project", "bad JSON"},
		{`[]`, "project", "bad JSON"},
		{`{"name":"a","type":"logtail","paths":["/a"]} {}`, "project", "data after"},
		{`{"type":"logtail","paths":["/a"]}`, "name", "required"},
		{`{"name":"` + long + `","type":"logtail","paths":["/a"]}`, "name", "want 1 to 64"},
		{`{"name":"../x","type":"logtail","paths":["/a"]}`, "name", "want 1 to 64"},
		{`{"name":"a","type":"","paths":["/a"]}`, "type", "required"},
		{`{"name":"a","type":"syslog"}`, "type", `"syslog"`},
		{`{"name":"a","type":"logtail"}`, "paths", "required"},
		{`{"name":"a","type":"logtail","paths":["rel/*.log"]}`, "paths[0]", "not absolute"},
		{`{"name":"a","type":"logtail","paths":["/a/../etc/*"]}`, "paths[0]", `".." element`},
		{`{"name":"a","type":"logtail","paths":["/a/["]}`, "paths[0]", "syntax error"},
		{`{"name":"a","type":"logtail","paths":["C:\\logs\\x"]}`, "paths[0]", "separator"},
		{`{"name":"a","type":"logtail","paths":["/a\u0000"]}`, "paths[0]", "control"},
		{`{"name":"a","type":"logtail","paths":[` + many + `]}`, "paths", "at most 64"},
		{`{"name":"a","type":"logtail","paths":["/a"],"containers":["x"]}`, "containers", "not a parameter of type logtail"},
		{`{"name":"a","type":"logtail","paths":["/a"],"token":"x"}`, "token", "not a parameter"},
		{`{"name":"a","type":"logtail","paths":"/a"}`, "paths", "want []string"},
		{`{"name":"a","type":"logtail","paths":["/a"],"batch":"10"}`, "batch", "want int"},
		{`{"name":"a","type":"logtail","paths":["/a"],"bogus":1}`, "bogus", "unknown parameter"},
		{`{"name":"a","type":"logtail","paths":["/a"],"exclude":"("}`, "exclude", "missing closing"},
		{`{"name":"a","type":"logtail","paths":["/a"],"batch":-1}`, "batch", "want 1 to 100000"},
		{`{"name":"a","type":"logtail","paths":["/a"],"batch":100001}`, "batch", "want 1 to"},
		{`{"name":"a","type":"logtail","paths":["/a"],"buffer":10}`, "buffer", "want 256 to"},
		{`{"name":"a","type":"logtail","paths":["/a"],"interval":3601}`, "interval", "want 1 to 3600"},
		{`{"name":"a","type":"logtail","paths":["/a"],"max_line":10}`, "max_line", "want 1024"},
		{`{"name":"a","type":"logtail","paths":["/a"],"read_from":"middle"}`, "read_from", "want end or beginning"},
		{`{"name":"a","type":"logtail","paths":["/a"],"multiline":{}}`, "multiline.start", "required"},
		{`{"name":"a","type":"logtail","paths":["/a"],"multiline":{"start":"("}}`, "multiline.start", "missing closing"},
		{`{"name":"a","type":"logtail","paths":["/a"],"multiline":{"start":"^x","timeout":-2}}`, "multiline.timeout", "want 1"},
		{`{"name":"a","type":"logtail","paths":["/a"],"multiline":{"start":"^x","max_lines":1000000}}`, "multiline.max_lines", "want 1"},
		{`{"name":"a","type":"docker"}`, "containers", "required"},
		{`{"name":"a","type":"docker","containers":["a/b"]}`, "containers[0]", "container name"},
		{`{"name":"a","type":"docker","containers":["x","x"]}`, "containers[1]", "appears twice"},
		{`{"name":"a","type":"docker","containers":["x"],"tags":["bad tag"]}`, "tags[0]", "image tag"},
		{`{"name":"a","type":"docker","containers":["x"],"paths":["/a"]}`, "paths", "not a parameter of type docker"},
		{`{"name":"a","type":"docker","containers":["x"],"dir":"logs/*.log"}`, "dir", "not absolute"},
		{`{"name":"a","type":"k8s","apps":["w"],"api":"https://k"}`, "namespace", "required"},
		{`{"name":"a","type":"k8s","namespace":"Shop","apps":["w"],"api":"https://k"}`, "namespace", "not a namespace"},
		{`{"name":"a","type":"k8s","namespace":"s","api":"https://k"}`, "apps", "required"},
		{`{"name":"a","type":"k8s","namespace":"s","apps":["-x"],"api":"https://k"}`, "apps[0]", "label value"},
		{`{"name":"a","type":"k8s","namespace":"s","apps":["w"]}`, "api", "required"},
		{`{"name":"a","type":"k8s","namespace":"s","apps":["w"],"api":"ftp://k"}`, "api", "http(s)"},
		{`{"name":"a","type":"k8s","namespace":"s","apps":["w"],"api":"https://u:p@k"}`, "api", "http(s)"},
		{`{"name":"a","type":"k8s","namespace":"s","apps":["w"],"api":"https://k","token":"a\nb"}`, "token", "not a bearer"},
		{`{"name":"a","type":"k8s","namespace":"s","apps":["w"],"api":"https://k","ca":"xyz"}`, "ca", "PEM"},
		{`{"name":"a","type":"k8s","namespace":"s","apps":["w"],"api":"https://k","tags":["x"]}`, "tags", "not a parameter of type k8s"},
	} {
		_, err := Decode([]byte(c.in))
		var pe *Error
		if !errors.As(err, &pe) || !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: error %v, want an *Error", c.in, err)
			continue
		}
		if pe.Param != c.param || !strings.Contains(pe.Msg, c.msg) {
			t.Errorf("%s:\n got %s: %s\nwant %s: …%s…", c.in, pe.Param, pe.Msg, c.param, c.msg)
		}
	}
}

func TestDecodeList(t *testing.T) {
	ps, err := DecodeList([]byte(`[{"name":"a","type":"logtail","paths":["/a"]},{"name":"b","type":"logtail","paths":["/b"]}]`))
	if err != nil || len(ps) != 2 {
		t.Fatalf("%v %v", ps, err)
	}
	_, err = DecodeList([]byte(`[{"name":"a","type":"logtail","paths":["/a"]},{"name":"a","type":"logtail","paths":["/b"]}]`))
	if err == nil || !strings.Contains(err.Error(), `projects[1]: invalid project: name: "a" appears twice`) {
		t.Fatalf("duplicate: %v", err)
	}
	_, err = DecodeList([]byte(`[{"name":"a","type":"logtail"}]`))
	if err == nil || !strings.Contains(err.Error(), "projects[0]: invalid project: paths: required") {
		t.Fatalf("bad item: %v", err)
	}
}

func TestSecretNeverPrinted(t *testing.T) {
	p, err := Decode([]byte(`{"name":"d","type":"k8s","namespace":"s","apps":["w"],"api":"https://k","token":"s3cr3t"}`))
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	slog.New(slog.NewTextHandler(&sb, nil)).Info("x", "project", p, "token", p.Token)
	out := sb.String() + fmt.Sprintf("%v %+v %s", p, p, p.Token)
	if strings.Contains(out, "s3cr3t") {
		t.Fatalf("token printed: %s", out)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"name":"a","type":"logtail","paths":["/var/log/*.log"],"exclude":"x","multiline":{"start":"^a"}}`,
		`{"name":"b","type":"docker","containers":["n*"],"tags":["1"],"dir":"/l/*.log"}`,
		`{"name":"d","type":"k8s","namespace":"s","apps":["w"],"api":"https://k","token":"t"}`,
		`{"name":"a","type":"logtail","paths":["C:/x/[a-"]}`,
		`[{"name":"a"}]`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error not ErrInvalid: %v", err)
			}
			return
		}
		// A decoded project is valid and stays so.
		if err := p.Normalize(); err != nil {
			t.Fatalf("normalized project fails again: %v", err)
		}
		_ = p.ExcludeRE()
		_ = p.MultilineRE()
		_, _ = DecodeList(b)
	})
}
