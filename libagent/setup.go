package libagent

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/agentfleet/jkframe/kvconf"
	"github.com/agentfleet/jkframe/logging"

	"github.com/agentfleet/libagent/limit"
	"github.com/agentfleet/libagent/protocol"
)

// LimitConfig is basic.limit.* (see package limit).
type LimitConfig = limit.Config

// loadConfig fills cfg (whose Basic is b) with the defaults, then the file.
// Unknown keys are errors naming file:line.
func loadConfig(path string, cfg any, b *Basic) error {
	*b = DefaultBasic()
	if err := kvconf.Load(path, cfg, kvconf.Env(envLookup)); err != nil {
		return err
	}
	return nil
}

// envLookup resolves $NAME values of basic.id and basic.server: the
// environment, then the special $HOSTNAME (the host name) and $IP (the
// first non-loopback address of an interface that is up).
func envLookup(name string) (string, bool) {
	if v, ok := os.LookupEnv(name); ok {
		return v, true
	}
	switch name {
	case "HOSTNAME":
		h, err := os.Hostname()
		return h, err == nil
	case "IP":
		if ip := firstIP(); ip != "" {
			return ip, true
		}
	}
	return "", false
}

func firstIP() string {
	ifs, err := net.Interfaces()
	if err != nil {
		return ""
	}
	var v6 string
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok || n.IP.IsLinkLocalUnicast() {
				continue
			}
			if n.IP.To4() != nil {
				return n.IP.String()
			}
			if v6 == "" {
				v6 = n.IP.String()
			}
		}
	}
	return v6
}

// newLogger builds the agent's logger from basic.log.*. A relative log dir
// is taken from baseDir (the binary's directory).
func newLogger(name, baseDir string, c Log) (*slog.Logger, logLister, func(), error) {
	level, err := logging.ParseLevel(c.Level)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("basic.log.level: %w", err)
	}
	dir := c.Dir
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(baseDir, dir)
	}
	lg, err := logging.New(logging.Options{
		Level:   level,
		Targets: c.Target,
		Dir:     dir,
		Name:    name,
		MaxSize: int64(c.Size),
		Rotate:  int(c.Rotate),
	})
	if err != nil {
		return nil, nil, nil, err
	}
	list := func() ([]logFile, error) {
		fis, err := lg.Files()
		if err != nil {
			return nil, err
		}
		out := make([]logFile, 0, len(fis))
		for _, f := range fis {
			out = append(out, logFile{
				LogFile: protocol.LogFile{Name: f.Name, Size: uint64(max(f.Size, 0)), ModTime: f.ModTime},
				path:    filepath.Join(lg.Dir(), f.Name),
			})
		}
		return out, nil
	}
	return lg.Logger, list, func() { _ = lg.Close() }, nil
}

// applyLimits applies basic.limit.*; a failure is logged, the agent runs
// on unlimited rather than not at all.
func (rt *Runtime) applyLimits() {
	if rt.basic.Limit.Empty() {
		return
	}
	ap, err := limit.Apply(rt.basic.Limit, limit.Options{Name: rt.agent.Name, Logger: rt.log})
	if err != nil {
		rt.log.Error("resource limits not applied", "err", err)
		return
	}
	rt.log.Info("resource limits applied", "mode", ap.Mode, "settings", strings.Join(ap.Settings, " "))
}
