//go:build linux

package agent

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/agentfleet/libagent/agenttest"
	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/exec-agent/internal/files"
	"github.com/agentfleet/exec-agent/internal/runner"
)

func TestKindOf(t *testing.T) {
	_, missing := os.Stat("/nonexistent/e2e")
	tests := []struct {
		err  error
		want protocol.ErrKind
	}{
		{nil, ""},
		{errors.New("disk on fire"), ""},
		{fmt.Errorf("ls: %w", missing), protocol.KindNotFound},
		{fmt.Errorf("ls: invalid: %w", files.ErrPath), protocol.KindInvalid},
		{fmt.Errorf("upload: %w", files.ErrName), protocol.KindInvalid},
		{fmt.Errorf("%w: env[0]", runner.ErrSpec), protocol.KindInvalid},
		{fmt.Errorf("download /dev/zero: device, %w", files.ErrNotRegular), protocol.KindUnprocessable},
		{fmt.Errorf("chown: user %q: %w", "bob", user.UnknownUserError("bob")), protocol.KindUnprocessable},
		{fmt.Errorf("chown: %w", user.UnknownGroupError("ops")), protocol.KindUnprocessable},
		{fmt.Errorf("kill: %w", runner.ErrNoTask), protocol.KindNotFound},
		{fmt.Errorf("busy: %w", runner.ErrBusy), ""},
		{fmt.Errorf("start: %w", &os.PathError{Op: "fork/exec", Path: "/bin/sh", Err: syscall.E2BIG}), protocol.KindUnprocessable},
		{protocol.WithKind("", fmt.Errorf("upload to server: %w", missing)), ""}, // marked as the agent's own
	}
	for _, tt := range tests {
		if got := kindOf(tt.err); got != tt.want {
			t.Errorf("kindOf(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// Each failure a request can cause goes out with its kind to a server
// with errkind.v1, and without one to a v1 server (same text).
func TestReplyKinds(t *testing.T) {
	for _, v1 := range []bool{false, true} {
		t.Run(map[bool]string{false: "errkind.v1", true: "v1"}[v1], func(t *testing.T) {
			e := start(t, agenttest.Options{V1: v1}, nil)
			dir := t.TempDir()
			file := filepath.Join(dir, "f")
			if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			missing := filepath.Join(dir, "nope")
			tests := []struct {
				name string
				msg  *protocol.Msg
				kind protocol.ErrKind
				text string
			}{
				{"ls relative", &protocol.Msg{Type: protocol.TypeLsReq, Payload: &protocol.LsReq{Dir: "rel"}}, protocol.KindInvalid, `invalid path "rel": not absolute`},
				{"ls missing", &protocol.Msg{Type: protocol.TypeLsReq, Payload: &protocol.LsReq{Dir: missing}}, protocol.KindNotFound, "no such file or directory"},
				{"ls file", &protocol.Msg{Type: protocol.TypeLsReq, Payload: &protocol.LsReq{Dir: file}}, protocol.KindUnprocessable, "not a directory"},
				{"download dir", &protocol.Msg{Type: protocol.TypeDownloadReq, Payload: &protocol.DownloadReq{Dir: dir}}, protocol.KindUnprocessable, "not a regular file"},
				{"download missing", &protocol.Msg{Type: protocol.TypeDownloadReq, Payload: &protocol.DownloadReq{Dir: missing}}, protocol.KindNotFound, "no such file or directory"},
				{"upload bad name", &protocol.Msg{Type: protocol.TypeUpload, Payload: &protocol.Upload{Dir: dir, Name: "a/b"}}, protocol.KindInvalid, "invalid file name"},
				{"upload below a file", &protocol.Msg{Type: protocol.TypeUpload, Payload: &protocol.Upload{Dir: file + "/d", Name: "x"}}, protocol.KindUnprocessable, "not a directory"},
				{"exec missing workdir", &protocol.Msg{Type: protocol.TypeExec, Payload: &protocol.Exec{Cmd: "pwd", WorkDir: missing}}, protocol.KindNotFound, "workdir: stat"},
				{"exec workdir a file", &protocol.Msg{Type: protocol.TypeExec, Payload: &protocol.Exec{Cmd: "pwd", WorkDir: file}}, protocol.KindUnprocessable, "not a directory"},
				{"exec NUL", &protocol.Msg{Type: protocol.TypeExec, Payload: &protocol.Exec{Cmd: "echo", Args: []string{"a\x00b"}}}, protocol.KindInvalid, "args contains NUL"},
				{"exec bad env", &protocol.Msg{Type: protocol.TypeExec, Payload: &protocol.Exec{Cmd: "true", Env: []string{"novalue"}}}, protocol.KindInvalid, "want K=V"},
				{"exec 900 KB", &protocol.Msg{Type: protocol.TypeExec, Payload: &protocol.Exec{Cmd: "echo " + strings.Repeat("y", 900<<10)}}, protocol.KindUnprocessable, "argument list too long"},
			}
			for _, tt := range tests {
				rep := e.call(tt.msg)
				var msg string
				var kind protocol.ErrKind
				switch {
				case rep.LsRep() != nil && !rep.LsRep().OK:
					msg, kind = rep.LsRep().Msg, rep.LsRep().Kind
				case rep.DownloadRep() != nil && !rep.DownloadRep().OK:
					msg, kind = rep.DownloadRep().Msg, rep.DownloadRep().Kind
				case rep.UploadRep() != nil && !rep.UploadRep().OK:
					msg, kind = rep.UploadRep().Msg, rep.UploadRep().Kind
				case rep.Execd() != nil && !rep.Execd().OK:
					msg, kind = rep.Execd().Msg, rep.Execd().Kind
				default:
					t.Errorf("%s: reply %v, want a failure", tt.name, rep.Type)
					continue
				}
				want := tt.kind
				if v1 {
					want = ""
				}
				if kind != want || !strings.Contains(msg, tt.text) || len(msg) > 1024 {
					t.Errorf("%s: %q %.200q, want %q with %q", tt.name, kind, msg, want, tt.text)
				}
			}
		})
	}
}
