package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/agentfleet/libagent"
	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/exec-agent/internal/install"
)

// Software installs (install.v1): install_run runs the install engine on
// the worker pool for the install's lifetime; each action is sent as it is
// journaled (install_action), then the whole log (install_done). Both go
// through the runtime's reliable journal (ack.v1), so a dropped connection
// loses nothing. The engine's own journal (one file per install, beside
// the state file) is what survives the agent's process: an agent that
// starts finds the installs its predecessor left, finished or cut short,
// and reports each with install_done{restarted:true} before removing its
// journal.

// installer holds the install engine and its journal store.
type installer struct {
	eng   *install.Engine
	store *install.Store
	// recovered are the installs a previous agent process left (read
	// only after setup): an answer about one says restarted, as its
	// report does.
	recovered map[string]bool
}

// installDirs returns where the journals and the packages being installed
// live: beside the state file, or (no state file: installs are not
// reported after a restart) in a temporary directory.
func installDirs(statePath string) (journals, work string, err error) {
	base := ""
	if statePath != "" {
		base = strings.TrimSuffix(statePath, filepath.Ext(statePath))
	} else {
		dir, err := os.MkdirTemp("", "exec-agent-install-")
		if err != nil {
			return "", "", fmt.Errorf("install: %w", err)
		}
		base = filepath.Join(dir, "agent")
	}
	return base + ".install", base + ".install-work", nil
}

// setupInstall opens the journal store and the engine, and returns the
// reports of installs a previous agent process left.
func (a *agent) setupInstall(cfg InstallConfig) ([]install.Report, error) {
	statePath := ""
	if st := a.rt.State(); st != nil {
		statePath = st.Path()
	}
	jdir, work, err := installDirs(statePath)
	if err != nil {
		return nil, err
	}
	log := a.rt.Logger()
	store, err := install.OpenStore(install.StoreOptions{Dir: jdir, Logger: log})
	if err != nil {
		return nil, err
	}
	// The agent's own executable unpacks archives as another user (auth).
	self, err := os.Executable()
	if err != nil {
		log.Warn("install: the agent's executable is not known; archives with auth will be refused", "err", err)
	}
	eng, err := install.NewEngine(install.Options{
		Store: store, Runner: a.run, WorkDir: work, Logger: log, Self: self,
		Installers: install.Installers{
			DpkgArgs: strings.Fields(cfg.DpkgArgs),
			RPMArgs:  strings.Fields(cfg.RPMArgs),
			ExeFlags: strings.Fields(cfg.ExeFlags),
		},
	})
	if err != nil {
		return nil, err
	}
	// Before any install starts: Recover finishes the journals of
	// installs cut short.
	reports, err := store.Recover()
	if err != nil {
		log.Warn("install: some journals could not be read", "err", err)
	}
	a.inst = &installer{eng: eng, store: store, recovered: make(map[string]bool, len(reports))}
	for _, r := range reports {
		a.inst.recovered[r.ID] = true
	}
	return reports, nil
}

// wireActions converts the engine's action log.
func wireActions(acts []install.Action) []protocol.InstallAction {
	out := make([]protocol.InstallAction, len(acts))
	for i, x := range acts {
		out[i] = wireAction(i, x)
	}
	return out
}

func wireAction(n int, x install.Action) protocol.InstallAction {
	return protocol.InstallAction{N: n, Action: x.Action, Name: x.Name, Time: x.Time, OK: x.OK, Msg: x.Msg}
}

// installRun runs one install and reports it.
func (a *agent) installRun(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
	r := req.InstallRun()
	log := a.rt.Logger().With("tid", req.TID)
	ireq := install.Request{
		ID:     req.TID,
		Source: install.Source{URL: r.URL, SHA256: r.SHA256},
		Name:   r.Name, Kind: install.Kind(r.Kind), Dir: r.Dir,
		Timeout: time.Duration(r.Timeout) * time.Second,
		Auth:    r.Auth, User: r.User, Pass: r.Pass, Deps: r.Deps,
	}
	if r.URI != "" {
		if r.URL != "" {
			return a.refuseInstall(ctx, req.TID, w, fmt.Errorf("%w: uri and url: give one", install.ErrRequest))
		}
		if ireq.Name == "" {
			ireq.Name = r.URI
		}
		ireq.Open = a.pull(r.Transfer, r.Token)
	}
	// The reports go on even when the handler's context ends (shutdown):
	// they are journaled, and what does not make it is in the install's
	// own journal, reported after the restart.
	sendCtx := context.WithoutCancel(ctx)
	ireq.Progress = func(n int, x install.Action) {
		sctx, cancel := context.WithTimeout(sendCtx, doneTimeout)
		defer cancel()
		err := w.ReplyReliable(sctx, &protocol.Msg{Type: protocol.TypeInstallAction, Payload: ptr(wireAction(n, x))})
		if err != nil {
			log.Info("install: an action not sent now; install_done carries it", "n", n, "err", err)
		}
	}
	st, err := a.inst.eng.Run(ctx, ireq)
	switch {
	case errors.Is(err, install.ErrExists):
		log.Info("install: a repeated install_run ignored (the first one reports)")
		return nil
	case errors.Is(err, install.ErrRequest):
		log.Info("install refused", "req", ireq, "err", err)
		return a.refuseInstall(ctx, req.TID, w, err)
	case err != nil && len(st.Actions) == 0:
		log.Warn("install: not started", "err", err)
		return a.refuseInstall(ctx, req.TID, w, err)
	case err != nil:
		log.Warn("install: journal", "err", err)
	}
	a.reportInstall(sendCtx, install.Report{ID: req.TID, Status: st}, false)
	return nil
}

func ptr[T any](v T) *T { return &v }

// refuseInstall answers a request refused before anything was journaled:
// a log of one done action, not ok, naming the parameter.
func (a *agent) refuseInstall(ctx context.Context, tid string, w libagent.Replier, err error) error {
	done := protocol.InstallAction{Action: protocol.InstallActDone, Name: tid, Time: time.Now().Unix(), Msg: err.Error()}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), doneTimeout)
	defer cancel()
	return w.ReplyReliable(sctx, &protocol.Msg{Type: protocol.TypeInstallDone, Payload: &protocol.InstallStatus{
		Done: true, Actions: []protocol.InstallAction{done},
	}})
}

// reportInstall sends an install's whole log and, once the runtime holds
// it, removes its journal. It reports whether it was sent.
func (a *agent) reportInstall(ctx context.Context, r install.Report, restarted bool) bool {
	sctx, cancel := context.WithTimeout(ctx, doneTimeout)
	defer cancel()
	err := a.rt.Replier(r.ID).ReplyReliable(sctx, &protocol.Msg{Type: protocol.TypeInstallDone, Payload: &protocol.InstallStatus{
		Done: r.Done, Actions: wireActions(r.Actions), Restarted: restarted,
	}})
	if err != nil {
		a.rt.Logger().Warn("install: reporting the outcome; kept in its journal for the next start", "id", r.ID, "err", err)
		return false
	}
	if err := a.inst.store.Remove(r.ID); err != nil {
		a.rt.Logger().Warn("install: removing a delivered journal", "id", r.ID, "err", err)
	}
	return true
}

// reportInstalls sends the installs a previous agent process left, once
// connected, retrying each until it is handed over.
func (a *agent) reportInstalls(ctx context.Context, reports []install.Report) {
	handOver(ctx, a, reports, func(r install.Report) bool {
		if !a.reportInstall(ctx, r, true) {
			return false
		}
		a.rt.Logger().Info("install: reported an install of the previous agent process", "id", r.ID, "done", r.Done)
		return true
	})
}

// installStatus answers install_status_req with the log the agent holds.
func (a *agent) installStatus(ctx context.Context, req *protocol.Msg, w libagent.Replier) error {
	st, err := a.inst.store.Status(req.TID)
	if errors.Is(err, install.ErrNotFound) || errors.Is(err, install.ErrRequest) {
		return w.Reply(ctx, &protocol.Msg{Type: protocol.TypeInstallDone, Payload: &protocol.InstallStatus{Actions: []protocol.InstallAction{}, Unknown: true}})
	}
	if err != nil {
		return err
	}
	return w.Reply(ctx, &protocol.Msg{Type: protocol.TypeInstallDone, Payload: &protocol.InstallStatus{
		Done: st.Done, Actions: wireActions(st.Actions), Restarted: a.inst.recovered[req.TID],
	}})
}

// pull opens a repository package on the server: a one-shot GET streamed
// through a pipe, so the engine hashes and bounds it as it arrives and
// nothing holds the whole file in memory.
func (a *agent) pull(transfer, token string) func(ctx context.Context) (io.ReadCloser, int64, error) {
	return func(ctx context.Context) (io.ReadCloser, int64, error) {
		if transfer == "" {
			return nil, 0, fmt.Errorf("%w: uri: no transfer path to fetch it from", install.ErrRequest)
		}
		pr, pw := io.Pipe()
		p := &pulling{r: pr}
		p.wg.Go(func() {
			_, err := a.rt.Fetch(ctx, transfer, token, pw)
			pw.CloseWithError(err)
		})
		return p, -1, nil
	}
}

// pulling is the body of a pull; Close stops the GET and waits for it.
type pulling struct {
	r  *io.PipeReader
	wg sync.WaitGroup
}

func (p *pulling) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if err == nil || errors.Is(err, io.EOF) {
		return n, err
	}
	return n, fmt.Errorf("from the server: %w", err)
}

func (p *pulling) Close() error {
	p.r.Close() // a GET still writing fails and returns
	p.wg.Wait()
	return nil
}
