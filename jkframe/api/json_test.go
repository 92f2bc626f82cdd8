package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

type runReq struct {
	Cmd     string            `json:"cmd"`
	Args    []string          `json:"args"`
	Env     map[string]string `json:"env"`
	Timeout int               `json:"timeout"`
	Result  *bool             `json:"result"`
	Size    uint32            `json:"size"`
	Ratio   float64           `json:"ratio"`
	At      time.Time         `json:"at"`
	Opts    struct {
		Deep bool `json:"deep"`
	} `json:"opts"`
	Wait waitArg `json:"wait"`
}

// waitArg is a Describer: a string ending in "s".
type waitArg string

func (w *waitArg) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) != nil || !strings.HasSuffix(s, "s") {
		return TypeError(b, reflect.TypeFor[waitArg]())
	}
	*w = waitArg(s)
	return nil
}

func (waitArg) DescribeJSON() string { return "a duration such as 5s" }

var jsonCases = []struct {
	name     string
	body     string
	wantCode int
	wantMsg  string
}{
	{"good", `{"cmd":"ls","args":["-l"],"timeout":5,"result":false} `, 0, ""},
	{"empty object", `{}`, 0, ""},
	{"exactly max", `{"cmd":"` + strings.Repeat("x", 64-10) + `"}`, 0, ""},
	{"empty body", ``, 400, "missing JSON body"},
	{"white space only", " \n ", 400, "missing JSON body"},
	{"syntax", `{"cmd":"ls",}`, 400, "invalid JSON body at offset 13: invalid character '}' looking for beginning of object key string"},
	{"not json", `cmd=ls`, 400, "invalid JSON body at offset 1: invalid character 'c' looking for beginning of value"},
	{"truncated", `{"cmd":"l`, 400, "invalid JSON body: unexpected end of input"},
	{"string for int", `{"timeout":"60"}`, 400, "invalid parameter timeout: must be an integer (got string)"},
	{"float for int", `{"timeout":1.5}`, 400, "invalid parameter timeout: must be an integer (got number 1.5)"},
	{"negative for uint", `{"size":-1}`, 400, "invalid parameter size: must be a non-negative integer (got number -1)"},
	{"object for array", `{"args":{"a":1}}`, 400, "invalid parameter args: must be an array (got object)"},
	{"number in array", `{"args":["a",2]}`, 400, "invalid parameter args: must be a string (got number)"},
	{"nested", `{"opts":{"deep":"yes"}}`, 400, "invalid parameter opts.deep: must be true or false (got string)"},
	{"map value", `{"env":{"A":1}}`, 400, "invalid parameter env: must be a string (got number)"},
	{"string for number", `{"ratio":"x"}`, 400, "invalid parameter ratio: must be a number (got string)"},
	{"top level array", `[1,2]`, 400, "invalid JSON body: must be an object (got array)"},
	{"describer", `{"wait":"5s"}`, 0, ""},
	{"describer refuses", `{"wait":"soon"}`, 400, `invalid parameter wait: must be a duration such as 5s (got string "soon")`},
	{"describer bool", `{"wait":true}`, 400, "invalid parameter wait: must be a duration such as 5s (got bool)"},
	{"describer number", `{"wait":12}`, 400, "invalid parameter wait: must be a duration such as 5s (got number 12)"},
	{"describer long", `{"wait":"` + strings.Repeat("y", 45) + `"}`, 400, `invalid parameter wait: must be a duration such as 5s (got string "` + strings.Repeat("y", 39) + `…)`},
	{"unknown field", `{"cmd":"ls","colour":"red"}`, 400, "unknown parameter colour"},
	{"bad time", `{"at":"yesterday"}`, 400, `invalid JSON body: parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse "yesterday" as "2006"`},
	{"trailing data", `{} x`, 400, "invalid JSON body: data after the JSON value"},
	{"two values", `{}{}`, 400, "invalid JSON body: data after the JSON value"},
	{"over max", `{"cmd":"` + strings.Repeat("x", 64-9) + `"}`, 413, "request body too large (limit 64 bytes)"},
	{"over max in trailing space", `{}` + strings.Repeat(" ", 63), 413, "request body too large (limit 64 bytes)"},
}

func TestDecodeJSON(t *testing.T) {
	for _, tt := range jsonCases {
		for _, chunked := range []bool{false, true} {
			name := tt.name
			if chunked {
				name += "/chunked"
			}
			t.Run(name, func(t *testing.T) {
				req := httptest.NewRequest("POST", "/", strings.NewReader(tt.body))
				if chunked {
					req.Body = io.NopCloser(io.MultiReader(strings.NewReader(tt.body)))
					req.ContentLength = -1
				}
				var v runReq
				err := DecodeJSON(req, &v, 64)
				if tt.wantCode == 0 {
					if err != nil {
						t.Fatalf("err = %v", err)
					}
					return
				}
				var ae *Error
				if !errors.As(err, &ae) || ae.Code != tt.wantCode || ae.Msg != tt.wantMsg {
					t.Fatalf("err = %#v\nwant %d %q", err, tt.wantCode, tt.wantMsg)
				}
			})
		}
	}
}

func TestDecodeJSONValue(t *testing.T) {
	req := httptest.NewRequest("POST", "/", strings.NewReader(`{"cmd":"ls","args":["-l"],"env":{"A":"1"},"timeout":5,"result":false}`))
	var got runReq
	if err := DecodeJSON(req, &got, 1<<10); err != nil {
		t.Fatal(err)
	}
	f := false
	want := runReq{Cmd: "ls", Args: []string{"-l"}, Env: map[string]string{"A": "1"}, Timeout: 5, Result: &f}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestDecodeJSONMisuse(t *testing.T) {
	var v runReq
	for _, target := range []any{v, (*runReq)(nil), nil} {
		err := DecodeJSON(httptest.NewRequest("POST", "/", strings.NewReader(`{}`)), target, 10)
		var ae *Error
		if err == nil || errors.As(err, &ae) {
			t.Errorf("DecodeJSON(%T) = %v, want a plain (500) error", target, err)
		}
	}
	// A nil Body (server requests always have one; hand-made ones may not).
	req := httptest.NewRequest("POST", "/", nil)
	req.Body = nil
	var ae *Error
	if err := DecodeJSON(req, &v, 10); !errors.As(err, &ae) || ae.Msg != "missing JSON body" {
		t.Errorf("nil body: %v", err)
	}
}

// FuzzDecodeJSON: any body gives nil, a 400 or a 413; never a panic or 500.
func FuzzDecodeJSON(f *testing.F) {
	for _, tt := range jsonCases {
		f.Add([]byte(tt.body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		h := HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			var v runReq
			if err := DecodeJSON(r, &v, 64); err != nil {
				return err
			}
			OK(w, r, v)
			return nil
		})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/", strings.NewReader(string(body))))
		if c := rec.Code; c != 200 && c != 400 && c != 413 {
			t.Fatalf("status %d for %q: %s", c, body, rec.Body)
		}
	})
}
