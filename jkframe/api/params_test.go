package api

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

type paramCase struct {
	name    string
	query   string
	read    func(p *ParamReader) any
	want    any
	wantErr string
}

func page(p *ParamReader) any { return p.Int("page", 1, 1, 10000) }

var paramCases = []paramCase{
	{"int", "page=7", page, 7, ""},
	{"int absent", "", page, 1, ""},
	{"int empty is absent", "page=", page, 1, ""},
	{"int first value", "page=3&page=x", page, 3, ""},
	{"int not a number", "page=abc", page, 1, "invalid parameter page: must be an integer between 1 and 10000"},
	{"int float", "page=1.5", page, 1, "invalid parameter page: must be an integer between 1 and 10000"},
	{"int below", "page=0", page, 1, "invalid parameter page: must be an integer between 1 and 10000"},
	{"int above", "page=10001", page, 1, "invalid parameter page: must be an integer between 1 and 10000"},
	{"int overflow", "page=99999999999999999999", page, 1, "invalid parameter page: must be an integer between 1 and 10000"},
	{"int open max", "n=-1", func(p *ParamReader) any { return p.Int("n", 5, 0, math.MaxInt) }, 5, "invalid parameter n: must be an integer >= 0"},
	{"int open min", "n=101", func(p *ParamReader) any { return p.Int("n", 5, math.MinInt, 100) }, 5, "invalid parameter n: must be an integer <= 100"},
	{"int unbounded", "n=-42", func(p *ParamReader) any { return p.Int("n", 5, math.MinInt, math.MaxInt) }, -42, ""},
	{"int unbounded bad", "n=x", func(p *ParamReader) any { return p.Int("n", 5, math.MinInt, math.MaxInt) }, 5, "invalid parameter n: must be an integer"},

	{"bool true", "online=true", func(p *ParamReader) any { return p.Bool("online", false) }, true, ""},
	{"bool 0", "online=0", func(p *ParamReader) any { return p.Bool("online", true) }, false, ""},
	{"bool absent", "", func(p *ParamReader) any { return p.Bool("online", true) }, true, ""},
	{"bool bad", "online=yes", func(p *ParamReader) any { return p.Bool("online", false) }, false, "invalid parameter online: must be true or false"},

	{"duration seconds", "timeout=60", timeout, 60 * time.Second, ""},
	{"duration fraction", "timeout=1.5", timeout, 1500 * time.Millisecond, ""},
	{"duration go form", "timeout=1m30s", timeout, 90 * time.Second, ""},
	{"duration absent", "", timeout, 30 * time.Second, ""},
	{"duration bad", "timeout=soon", timeout, 30 * time.Second, "invalid parameter timeout: must be a duration (seconds or e.g. 1m30s) between 1s and 10m0s"},
	{"duration too long", "timeout=601", timeout, 30 * time.Second, "invalid parameter timeout: must be a duration (seconds or e.g. 1m30s) between 1s and 10m0s"},
	{"duration negative", "timeout=-5s", timeout, 30 * time.Second, "invalid parameter timeout: must be a duration (seconds or e.g. 1m30s) between 1s and 10m0s"},
	{"duration inf", "timeout=inf", timeout, 30 * time.Second, "invalid parameter timeout: must be a duration (seconds or e.g. 1m30s) between 1s and 10m0s"},
	{"duration nan", "timeout=NaN", timeout, 30 * time.Second, "invalid parameter timeout: must be a duration (seconds or e.g. 1m30s) between 1s and 10m0s"},
	{"duration hex", "timeout=0x10", timeout, 30 * time.Second, "invalid parameter timeout: must be a duration (seconds or e.g. 1m30s) between 1s and 10m0s"},
	{"duration huge", "timeout=1e300", timeout, 30 * time.Second, "invalid parameter timeout: must be a duration (seconds or e.g. 1m30s) between 1s and 10m0s"},

	{"strings", "files=a.log&files=&files=b%20c.log", func(p *ParamReader) any { return p.Strings("files") }, []string{"a.log", "b c.log"}, ""},
	{"strings absent", "", func(p *ParamReader) any { return p.Strings("files") }, []string(nil), ""},
	{"string", "dir=%2Ftmp", func(p *ParamReader) any { return p.String("dir", "/") }, "/tmp", ""},
	{"string default", "dir=", func(p *ParamReader) any { return p.String("dir", "/") }, "/", ""},
	{"has", "a=1", func(p *ParamReader) any { return [2]bool{p.Has("a"), p.Has("b")} }, [2]bool{true, false}, ""},
	{"required", "cmd=ls", func(p *ParamReader) any { return p.Required("cmd") }, "ls", ""},
	{"required missing", "cmd=", func(p *ParamReader) any { return p.Required("cmd") }, "", "missing parameter cmd"},
	{"one of", "type=bash", scriptType, "bash", ""},
	{"one of bad", "type=zsh", scriptType, "sh", "invalid parameter type: must be one of sh, bash, python3"},
	{"path", "", func(p *ParamReader) any { return p.Path("id") }, "agent-1", ""},
	{"path missing", "", func(p *ParamReader) any { return p.Path("pid") }, "", "missing parameter pid"},
	{"bad escape", "dir=%zz", func(p *ParamReader) any { return p.String("dir", "/") }, "/", `invalid query or form: invalid URL escape "%zz"`},
	{"first error wins", "page=0&online=maybe", func(p *ParamReader) any {
		return [2]any{p.Int("page", 1, 1, 10), p.Bool("online", false)}
	}, [2]any{1, false}, "invalid parameter page: must be an integer between 1 and 10"},
	{"getters after an error return defaults", "online=maybe&page=5&files=x", func(p *ParamReader) any {
		return [3]any{p.Bool("online", false), p.Int("page", 1, 1, 10), p.Strings("files")}
	}, [3]any{false, 1, []string(nil)}, "invalid parameter online: must be true or false"},
}

func timeout(p *ParamReader) any {
	return p.Duration("timeout", 30*time.Second, time.Second, 10*time.Minute)
}

func scriptType(p *ParamReader) any { return p.OneOf("type", "sh", "sh", "bash", "python3") }

func TestParams(t *testing.T) {
	for _, tt := range paramCases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readParams(tt.query, "agent-1", tt.read)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("value = %#v, want %#v", got, tt.want)
			}
			checkParamErr(t, err, tt.wantErr)
		})
	}
}

func readParams(query, id string, read func(*ParamReader) any) (any, error) {
	req := httptest.NewRequest("GET", "/x", nil)
	req.URL.RawQuery = query
	req.SetPathValue("id", id)
	p := Params(req)
	v := read(p)
	return v, p.Err()
}

func checkParamErr(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("err = %v", err)
		}
		return
	}
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != http.StatusBadRequest || ae.Msg != want {
		t.Fatalf("err = %#v\nwant 400 %q", err, want)
	}
}

// Through a real ServeMux and the envelope: path wildcards and status.
func TestParamsThroughMux(t *testing.T) {
	mux := http.NewServeMux()
	// Named getters read the query and form only, never path wildcards:
	// here pid comes from the query string although the path has {pid}.
	mux.Handle("GET /api/exec/{id}/status/{pid}", HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		p := Params(r)
		id, pid := p.Path("id"), p.Int("pid", 0, 1, math.MaxInt32)
		if err := p.Err(); err != nil {
			return err
		}
		OK(w, r, fmt.Sprintf("%s/%d", id, pid))
		return nil
	}))
	// Wildcards are read with Path and PathInt.
	mux.Handle("GET /api/exec/{id}/pty/{pid}", HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		p := Params(r)
		id := p.Path("id")
		pid := p.PathInt("pid", 1, math.MaxInt32)
		if err := p.Err(); err != nil {
			return err
		}
		OK(w, r, fmt.Sprintf("%s/%d", id, pid))
		return nil
	}))
	tests := []struct{ path, wantCode, wantBody string }{
		{"/api/exec/a1/pty/42", "200", `{"code":200,"payload":"a1/42","extime":0}`},
		{"/api/exec/a1/pty/x", "400", `{"code":400,"msg":"invalid parameter pid: must be an integer between 1 and 2147483647","reqid":"t","extime":0}`},
		{"/api/exec/a1/pty/0", "400", `{"code":400,"msg":"invalid parameter pid: must be an integer between 1 and 2147483647","reqid":"t","extime":0}`},
		{"/api/exec/a1/status/7?pid=9", "200", `{"code":200,"payload":"a1/9","extime":0}`},
	}
	for _, tt := range tests {
		req := httptest.NewRequest("GET", tt.path, nil)
		req.Header.Set(HeaderRequestID, "t")
		rec, body := serve(mux, req)
		if fmt.Sprint(rec.Code) != tt.wantCode || body != tt.wantBody {
			t.Errorf("%s: %d %s\nwant %s %s", tt.path, rec.Code, body, tt.wantCode, tt.wantBody)
		}
	}
}

func TestParamsForms(t *testing.T) {
	// url-encoded body
	req := httptest.NewRequest("POST", "/x?src=query", strings.NewReader("dir=%2Fvar&mod=0644"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	p := Params(req)
	if got := [3]string{p.String("dir", ""), p.String("mod", ""), p.String("src", "")}; got != [3]string{"/var", "0644", "query"} || p.Err() != nil {
		t.Fatalf("form values = %v, err %v", got, p.Err())
	}

	// multipart, parsed by the handler first
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("dir", "/srv")
	_ = mw.WriteField("timeout", "bad")
	fw, _ := mw.CreateFormFile("file", "a.txt")
	_, _ = fw.Write([]byte("content"))
	_ = mw.Close()
	req = httptest.NewRequest("POST", "/x", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if err := req.ParseMultipartForm(1 << 20); err != nil {
		t.Fatal(err)
	}
	form := req.MultipartForm
	defer func() { _ = form.RemoveAll() }()
	p = Params(req)
	if got := p.String("dir", ""); got != "/srv" {
		t.Errorf("multipart dir = %q", got)
	}
	p.Duration("timeout", 0, 0, time.Hour)
	checkParamErr(t, p.Err(), "invalid parameter timeout: must be a duration (seconds or e.g. 1m30s) between 0s and 1h0m0s")

	// oversize form body behind MaxBody
	req = httptest.NewRequest("POST", "/x", strings.NewReader("a="+strings.Repeat("b", 100)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Body = http.MaxBytesReader(httptest.NewRecorder(), req.Body, 10)
	var ae *Error
	if err := Params(req).Err(); !errors.As(err, &ae) || ae.Code != 413 {
		t.Fatalf("oversize form: %v", err)
	}
}

// FuzzParams: whatever the query and path, every getter either succeeds or
// reports a 400 naming a parameter; never a panic, never a 500.
func FuzzParams(f *testing.F) {
	for _, tt := range paramCases {
		f.Add(tt.query, "agent-1")
	}
	f.Add("page=%", "")
	f.Add("a=1;b=2", "x y")
	h := HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		p := Params(r)
		p.Path("id")
		p.PathInt("id", 1, 100)
		page(p)
		timeout(p)
		scriptType(p)
		p.Int("n", 0, math.MinInt, math.MaxInt)
		p.Bool("online", false)
		p.Strings("files")
		p.Required("cmd")
		p.String("dir", "/")
		if err := p.Err(); err != nil {
			return err
		}
		OK(w, r, nil)
		return nil
	})
	f.Fuzz(func(t *testing.T, query, id string) {
		req := httptest.NewRequest("GET", "/a/x", nil)
		req.URL.RawQuery = query
		req.SetPathValue("id", id)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 && rec.Code != 400 {
			t.Fatalf("status %d for %q: %s", rec.Code, query, rec.Body)
		}
		if rec.Code == 400 && !strings.Contains(rec.Body.String(), "parameter") && !strings.Contains(rec.Body.String(), "invalid query") {
			t.Fatalf("400 without naming the parameter: %s", rec.Body)
		}
	})
}
