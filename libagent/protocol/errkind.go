package protocol

import (
	"errors"
	"io/fs"
	"syscall"

	"github.com/agentfleet/jkframe/durable"
)

// CapErrKind: a failure reply says what kind of failure it is — Msg.ErrKind
// beside errmsg on type 0, "kind" in execd, ls_rep, upload_rep,
// download_rep, download_error, exec_kill_rep, log_dinfo and pty_opened —
// so that the
// server can tell a request the agent cannot carry out (a missing file, a
// relative path) from the agent failing. The fields are sent only when both
// sides announced it; a v1 peer gets the text alone, as before.
const CapErrKind = "errkind.v1"

// ErrKind classifies an agent-side failure (CapErrKind). The empty kind is
// the agent's own failure (or one it cannot classify); every other kind
// says the request cannot be carried out on this host as it stands. A
// receiver treats a kind it does not know as empty.
type ErrKind string

// The kinds. The HTTP statuses are what our server answers with.
const (
	// KindInvalid: the request is malformed for this agent — a relative
	// path, NUL in a path, a bad file or user name, an env entry that is
	// not K=V (400).
	KindInvalid ErrKind = "invalid"
	// KindNotFound: a file, directory or working directory the request
	// names does not exist (404).
	KindNotFound ErrKind = "not_found"
	// KindDenied: the agent's OS refused access (403).
	KindDenied ErrKind = "denied"
	// KindConflict: something the request would create already exists
	// (409).
	KindConflict ErrKind = "conflict"
	// KindUnprocessable: the request is well-formed but cannot be carried
	// out here — not a directory, is a directory, unknown user or group,
	// argument list too long, not supported on this OS (422).
	KindUnprocessable ErrKind = "unprocessable"
	// KindNoSpace: the agent's file system is full (ENOSPC, a quota; on
	// Windows ERROR_DISK_FULL): the request may succeed once space is freed
	// there (507).
	KindNoSpace ErrKind = "no_space"
)

// Known reports whether k is one of the kinds above (the empty kind is
// not).
func (k ErrKind) Known() bool {
	switch k {
	case KindInvalid, KindNotFound, KindDenied, KindConflict, KindUnprocessable, KindNoSpace:
		return true
	}
	return false
}

// KindError is an error with an explicit kind. Use WithKind.
type KindError struct {
	Kind ErrKind
	Err  error
}

func (e *KindError) Error() string { return e.Err.Error() }

func (e *KindError) Unwrap() error { return e.Err }

// WithKind marks err as being of kind k (nil stays nil). KindOf finds the
// mark through any wrapping; WithKind("", err) marks err as the agent's own
// failure, whatever standard error it wraps.
func WithKind(k ErrKind, err error) error {
	if err == nil {
		return nil
	}
	return &KindError{Kind: k, Err: err}
}

// KindOf classifies err: the kind of the outermost *KindError in its chain,
// else the kind of the standard error it wraps (fs.ErrNotExist, a few
// errnos, errors.ErrUnsupported), else "" (the agent's own failure).
func KindOf(err error) ErrKind {
	if err == nil {
		return ""
	}
	if ke, ok := errors.AsType[*KindError](err); ok {
		return ke.Kind
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return KindNotFound
	case errors.Is(err, fs.ErrPermission):
		return KindDenied
	case errors.Is(err, fs.ErrExist):
		return KindConflict
	case errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.EISDIR), errors.Is(err, syscall.E2BIG),
		errors.Is(err, syscall.ENAMETOOLONG), errors.Is(err, syscall.ELOOP), errors.Is(err, errors.ErrUnsupported):
		return KindUnprocessable
	case durable.IsNoSpace(err):
		return KindNoSpace
	}
	return ""
}

// ErrorReply returns the type 0 answer to task tid for err: its text, and
// its kind (KindOf). The kind goes on the wire only where CapErrKind is in
// use (see StripKinds).
func ErrorReply(tid string, err error) *Msg {
	return &Msg{Type: TypeError, TID: tid, ErrMsg: err.Error(), ErrKind: KindOf(err)}
}

// StripKinds removes every CapErrKind field from m, for a peer that did not
// announce it: what is left is the v1 message.
func (m *Msg) StripKinds() {
	m.ErrKind = ""
	if p, ok := m.Payload.(interface{ kind() *ErrKind }); ok {
		*p.kind() = ""
	}
}

// The payloads with a CapErrKind field.

func (p *Execd) kind() *ErrKind           { return &p.Kind }
func (p *LsRep) kind() *ErrKind           { return &p.Kind }
func (p *UploadRep) kind() *ErrKind       { return &p.Kind }
func (p *DownloadRep) kind() *ErrKind     { return &p.Kind }
func (p *DownloadError) kind() *ErrKind   { return &p.Kind }
func (p *ExecKillRep) kind() *ErrKind     { return &p.Kind }
func (p *LogDownloadInfo) kind() *ErrKind { return &p.Kind }
func (p *PtyOpened) kind() *ErrKind       { return &p.Kind }
