package api

import (
	"bytes"
	"errors"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
	"unicode"

	japi "github.com/agentfleet/jkframe/api"
	"github.com/agentfleet/jkframe/utils"

	"github.com/agentfleet/agent-server/internal/config"
	"github.com/agentfleet/agent-server/internal/execsvc"
)

// TestUploadParams checks the parameters of an upload as read at the
// file part (values before it and the query) and at the end.
func TestUploadParams(t *testing.T) {
	c := &config.Config{}
	c.API.Timeout = utils.Duration(30 * time.Second)
	c.API.MaxTimeout = utils.Duration(time.Hour)
	x := &execRoutes{s: &Server{o: Options{Config: c}}}
	tests := []struct {
		query    string
		fields   map[string]string
		fileName string
		want     uploadParams
		err      string
	}{
		{"dir=/d", nil, "f.bin", uploadParams{dir: "/d", name: "f.bin", mod: 0o644, timeout: 30 * time.Second}, ""},
		{"", map[string]string{"dir": "/d", "name": "n", "mod": "0600", "md5": "ab", "timeout": "5"}, "f.bin",
			uploadParams{dir: "/d", name: "n", mod: 0o600, md5hex: "ab", timeout: 5 * time.Second}, ""},
		{"dir=/q", map[string]string{"dir": "/form"}, "f", uploadParams{dir: "/q", name: "f", mod: 0o644, timeout: 30 * time.Second}, ""}, // first value wins
		{"dir=/d&url=http://h/p.tar", nil, "", uploadParams{dir: "/d", rawURL: "http://h/p.tar", mod: 0o644, timeout: 30 * time.Second}, ""},
		{"", nil, "f", uploadParams{}, "missing parameter dir"},
		{"dir=/d&mod=0999", nil, "f", uploadParams{}, "invalid parameter mod: must be an octal file mode like 0644"},
		{"dir=/d&mod=17777", nil, "f", uploadParams{}, "invalid parameter mod: must be an octal file mode like 0644"},
		{"dir=/d&auth=sudo", nil, "f", uploadParams{}, "missing parameter user"},
		{"dir=/d&auth=root", nil, "f", uploadParams{}, "invalid parameter auth: must be one of su, sudo"},
	}
	for i, tt := range tests {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		for k, v := range tt.fields {
			_ = mw.WriteField(k, v)
		}
		_ = mw.Close()
		r := httptest.NewRequest("POST", "/api/file/a/upload?"+tt.query, &body)
		r.Header.Set("Content-Type", mw.FormDataContentType())
		mr, err := multipartReader(r)
		if err != nil {
			t.Fatal(err)
		}
		values := map[string][]string{}
		for {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			var b bytes.Buffer
			_, _ = b.ReadFrom(p)
			values[p.FormName()] = append(values[p.FormName()], b.String())
		}
		r.MultipartForm = &multipart.Form{Value: values}
		got, err := x.uploadParams(r, tt.fileName)
		var ae *japi.Error
		switch {
		case tt.err != "":
			if !errors.As(err, &ae) || ae.Code != http.StatusBadRequest || ae.Msg != tt.err {
				t.Errorf("%d: err = %v, want 400 %q", i, err, tt.err)
			}
		case err != nil || got != tt.want:
			t.Errorf("%d: got %+v, %v; want %+v", i, got, err, tt.want)
		}
	}
}

func TestMultipartReader(t *testing.T) {
	for _, tt := range []struct{ ct, err string }{
		{"", "request Content-Type isn't multipart/form-data"},
		{"text/plain", "request Content-Type isn't multipart/form-data"},
		{"multipart/form-data; boundary=\"x", "request Content-Type isn't multipart/form-data"},
		{"multipart/form-data", "no multipart boundary param in Content-Type"},
		{"multipart/form-data; boundary=x", ""},
	} {
		r := httptest.NewRequest("POST", "/", nil)
		r.Header.Set("Content-Type", tt.ct)
		_, err := multipartReader(r)
		if (err == nil) != (tt.err == "") || err != nil && err.Error() != tt.err {
			t.Errorf("%q: err = %v, want %q", tt.ct, err, tt.err)
		}
	}
}

func TestFileMode(t *testing.T) {
	for _, tt := range []struct {
		unix uint64
		want os.FileMode
	}{
		{0o644, 0o644},
		{0o4755, os.ModeSetuid | 0o755},
		{0o2750, os.ModeSetgid | 0o750},
		{0o1777, os.ModeSticky | 0o777},
		{0o7777, os.ModeSetuid | os.ModeSetgid | os.ModeSticky | 0o777},
		{0, 0},
	} {
		if got := fileMode(tt.unix); got != tt.want {
			t.Errorf("%04o: %v, want %v", tt.unix, got, tt.want)
		}
	}
}

// FuzzUploadParams: whatever the query, uploadParams answers a 400 or
// values within their bounds; names that pass ValidName
// carry no control character.
func FuzzUploadParams(f *testing.F) {
	for _, q := range []string{"dir=/d", "dir=/d&mod=4755&name=a", "dir=/d&mod=17777", "dir=/d&name=a%01b", "dir=/d&auth=sudo&user=u", "dir=/d&own_user=x&timeout=5", "dir=/d&url=http://h/p"} {
		f.Add(q, "f.bin")
	}
	c := &config.Config{}
	c.API.Timeout = utils.Duration(30 * time.Second)
	c.API.MaxTimeout = utils.Duration(time.Hour)
	x := &execRoutes{s: &Server{o: Options{Config: c}}}
	f.Fuzz(func(t *testing.T, query, fileName string) {
		r := httptest.NewRequest("POST", "/api/file/a/upload", nil)
		r.URL.RawQuery = query
		r.MultipartForm = &multipart.Form{Value: map[string][]string{}}
		u, err := x.uploadParams(r, fileName)
		if err != nil {
			var ae *japi.Error
			if !errors.As(err, &ae) || ae.Code != http.StatusBadRequest || ae.Msg == "" {
				t.Fatalf("error %v is not a 400 with a message", err)
			}
			return
		}
		if u.mod > 0o7777 || u.dir == "" || u.timeout <= 0 || u.timeout > time.Hour {
			t.Fatalf("accepted %+v", u)
		}
		if fileMode(u.mod)&^(os.ModePerm|os.ModeSetuid|os.ModeSetgid|os.ModeSticky) != 0 {
			t.Fatalf("mode %v", fileMode(u.mod))
		}
		if execsvc.ValidName(u.name) == nil && strings.ContainsFunc(u.name, unicode.IsControl) {
			t.Fatalf("name %q passes", u.name)
		}
	})
}
