package e2e

import (
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestAgentErrors: errors the request causes but only the agent can see
// come back with the status of their kind and the agent's reason, through
// the real server and the real exec-agent (errkind.v1). A v1 agent's
// texts are mapped too (TestExecBadInput); the agent's own failures stay
// 503 (TestExecAgentErrorKinds in exec-agent).
func TestAgentErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the exec-agent")
	}
	ts := startServerForReal(t)
	bin := buildAgent(t, t.TempDir(), "exec-agent")
	startBinAgent(t, ts, bin, "err-exec", "")
	dir := t.TempDir()
	file := filepath.Join(dir, "a.txt")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	q := url.QueryEscape
	missing := filepath.Join(dir, "nope")
	bigCmd := "echo " + strings.Repeat("x", 900<<10)
	unknownUser := "no-such-user-e2e"
	if _, err := user.Lookup(unknownUser); err == nil {
		t.Fatalf("user %s exists", unknownUser)
	}

	type form struct {
		fields map[string]string
		name   string
	}
	tests := []struct {
		name   string
		method string
		path   string
		body   any   // JSON body
		form   *form // or a multipart upload of "data"
		status int
		msg    string // contained in the message
	}{
		{"ls relative", "GET", "/api/file/err-exec/ls?dir=relative/dir", nil, nil, 400, `invalid path "relative/dir": not absolute`},
		{"ls dot-dot", "GET", "/api/file/err-exec/ls?dir=" + q(dir+"/../x"), nil, nil, 400, `has a . or .. element`},
		{"ls NUL", "GET", "/api/file/err-exec/ls?dir=" + q(dir+"\x00x"), nil, nil, 400, `contains NUL`},
		{"ls missing", "GET", "/api/file/err-exec/ls?dir=" + q(missing), nil, nil, 404, "open " + missing + ": no such file or directory"},
		{"ls a file", "GET", "/api/file/err-exec/ls?dir=" + q(file), nil, nil, 422, "not a directory"},
		{"download missing", "GET", "/api/file/err-exec/download?dir=" + q(missing), nil, nil, 404, "no such file or directory"},
		{"download a directory", "GET", "/api/file/err-exec/download?dir=" + q(dir), nil, nil, 422, "directory, not a regular file"},
		{"download relative", "GET", "/api/file/err-exec/download?dir=etc/passwd", nil, nil, 400, `invalid path "etc/passwd": not absolute`},
		{"upload relative dir", "POST", "/api/file/err-exec/upload", nil, &form{map[string]string{"dir": "tmp/x"}, "f"}, 400, `invalid path "tmp/x": not absolute`},
		{"upload below a file", "POST", "/api/file/err-exec/upload", nil, &form{map[string]string{"dir": file + "/d"}, "f"}, 422, "not a directory"},
		{"upload onto a directory", "POST", "/api/file/err-exec/upload", nil, &form{map[string]string{"dir": dir}, "sub"}, 422, "is a directory"},
		{"upload unknown owner", "POST", "/api/file/err-exec/upload", nil, &form{map[string]string{"dir": dir, "own_user": unknownUser}, "owned"}, 422, "unknown user " + unknownUser},
		{"exec missing workdir", "POST", "/api/exec/err-exec/run", map[string]any{"cmd": "pwd", "workdir": missing}, nil, 404, "workdir: stat " + missing + ": no such file or directory"},
		{"exec workdir a file", "POST", "/api/exec/err-exec/run", map[string]any{"cmd": "pwd", "workdir": file}, nil, 422, "workdir " + file + ": not a directory"},
		{"exec NUL", "POST", "/api/exec/err-exec/run", map[string]any{"cmd": "echo a\x00b"}, nil, 400, "invalid parameter cmd: contains NUL"},
		{"exec 900 KB", "POST", "/api/exec/err-exec/run", map[string]any{"cmd": bigCmd}, nil, 422, "argument list too long"},
		{"script missing workdir", "POST", "/api/script/err-exec/run", nil, &form{map[string]string{"type": "sh", "workdir": missing}, "s.sh"}, 404, "no such file or directory"},
		{"log not listed", "GET", "/api/agents/err-exec/log/download?files=other.log", nil, nil, 404, "not a log file of this agent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e envelope
			switch {
			case tt.form != nil:
				e = ts.multipart(tt.path, tt.form.fields, tt.form.name, "data")
			case tt.body != nil:
				e = ts.json(tt.method, tt.path, tt.body)
			default:
				e = ts.do(tt.method, tt.path, opToken, nil)
			}
			if e.status != tt.status || e.Code != tt.status || !strings.Contains(e.Msg, tt.msg) {
				t.Errorf("%d %.300q, want %d with %q", e.status, e.Msg, tt.status, tt.msg)
			}
			if len(e.Msg) > 1200 || !utf8.ValidString(e.Msg) {
				t.Errorf("message of %d bytes: a long parameter was echoed back", len(e.Msg))
			}
		})
	}
}
