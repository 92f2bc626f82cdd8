package protocol

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestKindOf(t *testing.T) {
	_, statErr := os.Stat(filepath.Join(t.TempDir(), "nope"))
	tests := []struct {
		name string
		err  error
		want ErrKind
	}{
		{"nil", nil, ""},
		{"plain", errors.New("disk on fire"), ""},
		{"context", fmt.Errorf("send: %w", context.DeadlineExceeded), ""},
		{"stat missing", statErr, KindNotFound},
		{"wrapped missing", fmt.Errorf("workdir: %w", statErr), KindNotFound},
		{"permission", &fs.PathError{Op: "open", Path: "/root/x", Err: syscall.EACCES}, KindDenied},
		{"exists", &fs.PathError{Op: "mkdir", Path: "/x", Err: syscall.EEXIST}, KindConflict},
		{"not a dir", &fs.PathError{Op: "open", Path: "/etc/passwd/x", Err: syscall.ENOTDIR}, KindUnprocessable},
		{"is a dir", fmt.Errorf("upload /tmp: %w", syscall.EISDIR), KindUnprocessable},
		{"arg list", &fs.PathError{Op: "fork/exec", Path: "/bin/sh", Err: syscall.E2BIG}, KindUnprocessable},
		{"name too long", &fs.PathError{Op: "open", Path: "/x", Err: syscall.ENAMETOOLONG}, KindUnprocessable},
		{"unsupported", fmt.Errorf("chown: %w", errors.ErrUnsupported), KindUnprocessable},
		{"disk full", fmt.Errorf("upload /x: after 4096 bytes: %w", &fs.PathError{Op: "write", Path: "/x/.upload-1.part", Err: syscall.ENOSPC}), KindNoSpace},
		{"disk full, text only", errors.New("write /x: no space left on device"), ""},
		{"marked", WithKind(KindInvalid, errors.New("invalid path")), KindInvalid},
		{"marked, wrapped", fmt.Errorf("upload: %w", WithKind(KindInvalid, errors.New("bad name"))), KindInvalid},
		{"mark wins over errno", WithKind(KindInvalid, statErr), KindInvalid},
		{"outer mark wins", WithKind(KindDenied, WithKind(KindInvalid, errors.New("x"))), KindDenied},
	}
	for _, tt := range tests {
		if got := KindOf(tt.err); got != tt.want {
			t.Errorf("%s: KindOf(%v) = %q, want %q", tt.name, tt.err, got, tt.want)
		}
	}
	if WithKind(KindInvalid, nil) != nil {
		t.Error("WithKind(k, nil) != nil")
	}
	e := WithKind(KindNotFound, statErr)
	if e.Error() != statErr.Error() || !errors.Is(e, fs.ErrNotExist) {
		t.Errorf("WithKind changed the error: %v", e)
	}
}

func TestErrKindKnown(t *testing.T) {
	for _, k := range []ErrKind{KindInvalid, KindNotFound, KindDenied, KindConflict, KindUnprocessable} {
		if !k.Known() {
			t.Errorf("%q not known", k)
		}
	}
	for _, k := range []ErrKind{"", "teapot", "Invalid"} {
		if k.Known() {
			t.Errorf("%q known", k)
		}
	}
}

// StripKinds leaves the v1 message: the same bytes as one built without
// kinds.
func TestStripKinds(t *testing.T) {
	msgs := []struct{ with, without *Msg }{
		{ErrorReply("t", WithKind(KindInvalid, errors.New("bad"))), &Msg{Type: TypeError, TID: "t", ErrMsg: "bad"}},
		{&Msg{Type: TypeExecd, Payload: &Execd{Msg: "m", Kind: KindNotFound}}, &Msg{Type: TypeExecd, Payload: &Execd{Msg: "m"}}},
		{&Msg{Type: TypeLsRep, Payload: &LsRep{Msg: "m", Kind: KindNotFound}}, &Msg{Type: TypeLsRep, Payload: &LsRep{Msg: "m"}}},
		{&Msg{Type: TypeUploadRep, Payload: &UploadRep{Msg: "m", Kind: KindDenied}}, &Msg{Type: TypeUploadRep, Payload: &UploadRep{Msg: "m"}}},
		{&Msg{Type: TypeDownloadRep, Payload: &DownloadRep{Msg: "m", Kind: KindUnprocessable}}, &Msg{Type: TypeDownloadRep, Payload: &DownloadRep{Msg: "m"}}},
		{&Msg{Type: TypeDownloadError, Payload: &DownloadError{Msg: "m", Kind: KindConflict}}, &Msg{Type: TypeDownloadError, Payload: &DownloadError{Msg: "m"}}},
		{&Msg{Type: TypeExecKillRep, Payload: &ExecKillRep{Msg: "m", Kind: KindNotFound}}, &Msg{Type: TypeExecKillRep, Payload: &ExecKillRep{Msg: "m"}}},
		{&Msg{Type: TypeLogDownloadInfo, Payload: &LogDownloadInfo{Msg: "m", Kind: KindNotFound}}, &Msg{Type: TypeLogDownloadInfo, Payload: &LogDownloadInfo{Msg: "m"}}},
		{&Msg{Type: TypePtyOpened, Payload: &PtyOpened{Msg: "m", Kind: KindInvalid}}, &Msg{Type: TypePtyOpened, Payload: &PtyOpened{Msg: "m"}}},
	}
	for _, m := range msgs {
		m.with.StripKinds()
		a, err1 := Encode(m.with)
		b, err2 := Encode(m.without)
		if err1 != nil || err2 != nil || string(a) != string(b) {
			t.Errorf("stripped %s (%v), want %s (%v)", a, err1, b, err2)
		}
	}
}
