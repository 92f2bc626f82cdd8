// Package upgrade is the server side of agents' self-update: for one agent
// of an upgrade task (package tasks) it finds the binary in the package
// repository, offers it on a one-shot transfer URL, asks the agent to
// upgrade (protocol upgrade / upgrade_rep) and follows the agent until it
// comes back on the new version and stays up, or comes back on the old
// one (its watchdog rolled back), or does not come back in time.
// docs/upgrade.md describes the whole mechanism.
//
// A Service is safe for concurrent use; it starts no goroutines.
package upgrade

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/agentfleet/libagent/protocol"

	"github.com/agentfleet/agent-server/internal/fault"
	"github.com/agentfleet/agent-server/internal/hub"
	"github.com/agentfleet/agent-server/internal/packages"
	"github.com/agentfleet/agent-server/internal/tasks"
)

// Packages is the package repository (*packages.Repo), as this package
// uses it. A missing name is packages.ErrNotFound.
type Packages interface {
	Open(ctx context.Context, name string) (io.ReadCloser, packages.Info, error)
}

// Hub is the agents' sessions.
type Hub interface {
	Session(agentID string) (*hub.Session, bool)
}

// Offerer makes one-shot transfer URLs (*execsvc.Service): open is called
// when the agent GETs the URL and returns the body and its size.
type Offerer interface {
	Offer(open func() (io.ReadCloser, int64, error)) (uri, token string, withdraw func())
}

// Options configure New.
type Options struct {
	Packages Packages // required
	Hub      Hub      // required
	Offer    Offerer  // required
	Logger   *slog.Logger
	// Poll is the interval of session checks while an agent restarts
	// (default 250 ms).
	Poll time.Duration
	// Grace is how long beyond the deadline the agent is waited for: its
	// watchdog's rollback, the restart by its service manager and the
	// reconnect take that long at most (default 60 s).
	Grace time.Duration
}

// Service runs upgrades; it implements tasks.Upgrader.
type Service struct{ o Options }

// New returns a Service.
func New(o Options) *Service {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Poll <= 0 {
		o.Poll = 250 * time.Millisecond
	}
	if o.Grace <= 0 {
		o.Grace = time.Minute
	}
	return &Service{o: o}
}

// Caps are the protocol extensions the server announces for upgrades.
var Caps = []string{protocol.CapUpgrade}

// maxSig bounds a .sig file read from the repository.
const maxSig = 4 << 10

// PackageName is the repository name of a release binary:
// <type>_<version>_<os>_<arch>, with .exe on Windows (what `make release`
// writes next to the archives). arch is the agent's come.arch, the
// kernel's name for it (x86_64, aarch64), turned into Go's (GoArch).
func PackageName(agentType, version, goos, arch string) string {
	n := fmt.Sprintf("%s_%s_%s_%s", agentType, strings.TrimPrefix(version, "v"), goos, GoArch(arch))
	if goos == "windows" {
		n += ".exe"
	}
	return n
}

// Check verifies that a named package exists and is a binary.
func (s *Service) Check(ctx context.Context, spec tasks.UpgradeSpec) error {
	if spec.Package == "" {
		return nil // per agent: its os and arch name the package
	}
	_, err := s.stat(ctx, spec.Package)
	return err
}

func (s *Service) stat(ctx context.Context, name string) (packages.Info, error) {
	rc, p, err := s.o.Packages.Open(ctx, name)
	if errors.Is(err, packages.ErrNotFound) {
		return p, fault.New(fault.NotFound, tasks.ErrInvalid, "package %q: not in the repository", name).InParam("package")
	}
	if err != nil {
		return p, fmt.Errorf("package %s: %w", name, err)
	}
	_ = rc.Close()
	if p.Kind != "bin" && p.Kind != "exe" {
		return p, fault.Invalidf(tasks.ErrInvalid, "package %q: is a %s, not an agent binary", name, p.Kind).InParam("package")
	}
	return p, nil
}

// signature is the .sig text of package name: from the request, else the
// repository's <name>.sig; "" when there is none.
func (s *Service) signature(ctx context.Context, spec tasks.UpgradeSpec, name string) (string, error) {
	if sig := spec.Signatures[name]; sig != "" {
		return sig, nil
	}
	rc, _, err := s.o.Packages.Open(ctx, name+".sig")
	if errors.Is(err, packages.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("signature %s.sig: %w", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxSig))
	if err != nil {
		return "", fmt.Errorf("signature %s.sig: %w", name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Upgrade upgrades one agent (tasks.Upgrader).
func (s *Service) Upgrade(ctx context.Context, agentID string, spec tasks.UpgradeSpec) (string, error) {
	sess, ok := s.o.Hub.Session(agentID)
	if !ok {
		return "", errors.New("agent offline")
	}
	info := sess.Info()
	switch {
	case info.Type != spec.AgentType:
		return "", fmt.Errorf("agent is a %s, not a %s", info.Type, spec.AgentType)
	case !sess.HasCap(protocol.CapUpgrade):
		return "", fmt.Errorf("agent version %s does not support self-update (%s)", info.Version, protocol.CapUpgrade)
	case spec.Version != "" && info.Version == strings.TrimPrefix(spec.Version, "v"):
		return "already at version " + info.Version, nil
	}
	name := spec.Package
	if name == "" {
		name = PackageName(spec.AgentType, spec.Version, info.OS, info.Arch)
	}
	pkg, err := s.stat(ctx, name)
	if err != nil {
		return "", errors.New(fault.Message(err))
	}
	sig, err := s.signature(ctx, spec, name)
	if err != nil {
		return "", err
	}
	open := func() (io.ReadCloser, int64, error) {
		rc, info, err := s.o.Packages.Open(context.WithoutCancel(ctx), name)
		return rc, info.Size, err
	}
	uri, token, withdraw := s.o.Offer.Offer(open)
	defer withdraw()
	req := &protocol.Msg{Type: protocol.TypeUpgrade, Payload: &protocol.Upgrade{
		URI: uri, Token: token, Size: pkg.Size, SHA256: pkg.SHA256, Sig: sig, Task: spec.Task,
		Deadline: int(spec.Deadline / time.Second), Stay: int(spec.Stay / time.Second),
	}}
	from := info.Version
	s.o.Logger.Info("upgrade: offering", "task", spec.Task, "agent", agentID, "package", name, "from", from, "signed", sig != "")
	cctx, cancel := context.WithTimeout(ctx, spec.Deadline)
	rep, err := sess.Call(cctx, req)
	cancel()
	sent := time.Now()
	var aerr *hub.AgentError
	switch {
	case errors.As(err, &aerr):
		return "", fmt.Errorf("refused by the agent: %s", aerr.Msg)
	case errors.Is(err, hub.ErrAgentGone):
		// It went away before its answer arrived: it may have swapped;
		// its version when it comes back tells.
	case err != nil:
		return "", fmt.Errorf("upgrade request: %w", err)
	case rep.UpgradeRep() == nil:
		return "", fmt.Errorf("unexpected reply %s", rep.Type)
	case !rep.UpgradeRep().OK:
		return "", fmt.Errorf("refused by the agent, nothing swapped: %s", rep.UpgradeRep().Msg)
	}
	return s.follow(ctx, agentID, sess, from, name, spec, sent)
}

// follow waits for the agent to come back after it swapped its binary.
// The agent's watchdog decides at sent+Deadline (it counted from the swap,
// a moment before sent): a new version up Stay before then is confirmed;
// one still up a little after then was confirmed (the watchdog would have
// stopped it); the old version back means a rollback.
func (s *Service) follow(ctx context.Context, id string, old *hub.Session, from, name string, spec tasks.UpgradeSpec, sent time.Time) (string, error) {
	const margin = 2 * time.Second
	decide := sent.Add(spec.Deadline)
	giveUp := decide.Add(s.o.Grace)
	t := time.NewTicker(s.o.Poll)
	defer t.Stop()
	var cur *hub.Session
	var since time.Time
	want := strings.TrimPrefix(spec.Version, "v")
	for {
		now := time.Now()
		if sess, ok := s.o.Hub.Session(id); ok && sess != old {
			v := sess.Info().Version
			switch {
			case v == from:
				return "", fmt.Errorf("came back on version %s: the new binary (%s) did not connect and stay up %s within %s, and the agent's watchdog rolled back", from, name, spec.Stay, spec.Deadline)
			case want != "" && v != want:
				return "", fmt.Errorf("came back on version %s, not %s", v, want)
			}
			if sess != cur {
				cur, since = sess, now
			}
			up := now.Sub(since)
			if up >= spec.Stay && now.Add(margin).Before(decide) || since.Before(decide) && now.After(decide.Add(margin+time.Second)) {
				return fmt.Sprintf("upgraded from %s to %s (%s)", from, v, name), nil
			}
		} else if !ok {
			cur = nil
		}
		if now.After(giveUp) {
			return "", fmt.Errorf("did not come back within %s after the upgrade request (deadline %s plus %s)", giveUp.Sub(sent).Round(time.Second), spec.Deadline, s.o.Grace)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("stopped following the agent (%v); its watchdog still decides", context.Cause(ctx))
		case <-t.C:
		}
	}
}

// GoArch turns a kernel's machine name into Go's GOARCH (the names of the
// release files); a name it does not know is returned as it is.
func GoArch(arch string) string {
	switch strings.ToLower(arch) {
	case "x86_64", "amd64", "x64":
		return "amd64"
	case "aarch64", "arm64", "armv8", "armv8l":
		return "arm64"
	case "i386", "i486", "i586", "i686", "x86", "386":
		return "386"
	case "armv6l", "armv7l", "armv7", "arm":
		return "arm"
	}
	return arch
}
