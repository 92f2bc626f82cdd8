package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"time"

	japi "github.com/agentfleet/jkframe/api"
	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/execsvc"
	"github.com/agentfleet/agent-server/internal/store"
)

// interpreter says how a script type runs: the program, the arguments
// before the script's path, and the file extension.
type interpreter struct {
	cmd string
	pre []string
	ext string
}

var interpreters = map[string]interpreter{
	"sh":         {"sh", nil, ".sh"},
	"bash":       {"bash", nil, ".sh"},
	"python":     {"python", nil, ".py"},
	"python3":    {"python3", nil, ".py"},
	"php":        {"php", nil, ".php"},
	"lua":        {"lua", nil, ".lua"},
	"bat":        {"cmd", []string{"/C"}, ".bat"},
	"powershell": {"powershell", []string{"-NoProfile", "-ExecutionPolicy", "Bypass", "-File"}, ".ps1"},
}

// scriptTypes in the order of the documentation (error messages).
var scriptTypes = []string{"sh", "bash", "python", "python3", "bat", "powershell", "php", "lua"}

// ScriptReply is the payload of POST /api/script/{id}/run.
type ScriptReply struct {
	ID          string    `json:"id"`    // the task id
	Begin       int64     `json:"begin"` // unix seconds, as 1.5
	End         int64     `json:"end"`   // unix seconds, as 1.5; 0 while running
	Code        int       `json:"code"`  // CodeServerTimeout while running
	Data        []byte    `json:"data"`  // base64 in JSON
	BeginAt     time.Time `json:"begin_at"`
	EndAt       time.Time `json:"end_at,omitzero"`
	Running     bool      `json:"running"`
	State       string    `json:"state"`
	Msg         string    `json:"msg,omitempty"`
	Dropped     int64     `json:"dropped"`
	OutputBytes int64     `json:"output_bytes"`
}

// script uploads the script to the agent's temp dir and runs it there
// with its interpreter; the agent removes it afterwards (drm).
func (x *execRoutes) script(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := x.s.agentType(id, ExecAgent); err != nil {
		return err
	}
	f, err := x.readForm(r, maxScript)
	if err != nil {
		return err
	}
	defer f.close()
	p := japi.Params(r)
	typ := p.Required("type")
	if typ != "" {
		typ = p.OneOf("type", "", scriptTypes...)
	}
	args := p.Strings("args")
	md5hex := p.String("md5", "")
	auth := p.OneOf("auth", "", protocol.AuthSu, protocol.AuthSudo)
	user, pass := p.String("user", ""), p.String("pass", "")
	workdir := p.String("workdir", "")
	env := p.Strings("env")
	timeoutSec := p.Int("timeout", 0, -1<<31, 1<<31-1)
	if err := p.Err(); err != nil {
		return err
	}
	if f.spool == nil {
		return japi.MissingParam("file")
	}
	if err := checkMD5(md5hex, f.spool); err != nil {
		return err
	}
	timeout, err := x.cmdTimeout(timeoutSec)
	if err != nil {
		return err
	}
	in := interpreters[typ]
	name := "agentfleet-script-" + hex.EncodeToString(f.spool.MD5[:6]) + "-" + randSuffix() + in.ext
	spec := execsvc.Spec{Cmd: in.cmd, Auth: auth, User: user, Pass: pass, WorkDir: workdir, Env: env, Timeout: timeout}
	if err := spec.Validate(); err != nil {
		return x.err(r.Context(), 0, err)
	}
	audit := execAudit{Type: typ, Cmd: f.fileName, Args: args, Auth: auth, User: user, WorkDir: workdir, Env: env, Timeout: int(timeout / time.Second)}
	SetAudit(r, "", audit)

	limit := time.Duration(x.s.o.Config.API.Timeout)
	ctx, cancel := context.WithTimeout(r.Context(), limit)
	defer cancel()
	path, err := x.svc.Upload(ctx, id, execsvc.UploadSpec{Dir: protocol.UploadTmpDir, Name: name, Mod: 0o700, Auth: auth, User: user, Pass: pass}, f.spool)
	if err != nil {
		return x.err(ctx, limit, err)
	}
	spec.Args = append(append(append([]string(nil), in.pre...), path), args...)
	spec.DeferRM = path
	e, rep, err := x.start(r, id, spec, execsvc.RunOptions{Kind: store.KindScript, CreatedBy: actor(r)})
	if e != nil {
		audit.TaskID = e.TaskID()
		SetAudit(r, "", audit)
	}
	if err != nil {
		return err
	}
	res, err := x.wait(r, e)
	if err != nil {
		return err
	}
	japi.OK(w, r, ScriptReply{ID: rep.ID, Begin: rep.Begin, End: res.End, Code: res.Code, Data: res.Data, BeginAt: rep.BeginAt, EndAt: res.EndAt, Running: res.Running,
		State: res.State, Msg: res.Msg, Dropped: res.Dropped, OutputBytes: res.OutputBytes})
	return nil
}

func randSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on supported systems
	return hex.EncodeToString(b[:])
}
