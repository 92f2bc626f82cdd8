package servertest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// ReleaseOptions describe a release binary built by Release.
type ReleaseOptions struct {
	Module  string // the agent: "exec-agent", "metrics-agent", …
	Version string // its buildinfo.Version
	// Key is a private key file (release-sign keygen, or
	// libagent/selfupdate.GenerateKey written to a file): the binary is
	// signed with it; "" leaves it unsigned.
	Key string
	Dir string // where the release goes
}

// Release builds Module for this machine's linux/GOARCH as `make release`
// does (.ci/release, format bin, signed with Key) and returns the bare
// binary, <Module>_<Version>_linux_<arch> in Dir, and the text of its .sig
// ("" unsigned): what the self-update tests upload and offer.
func Release(o ReleaseOptions) (bin, sig string, err error) {
	if o.Module == "" || o.Version == "" || o.Dir == "" {
		return "", "", errors.New("servertest: ReleaseOptions.Module, Version and Dir are required")
	}
	root, err := repoRoot()
	if err != nil {
		return "", "", err
	}
	target := "linux/" + runtime.GOARCH
	cmd := exec.Command("bash", filepath.Join(root, ".ci", "release"))
	cmd.Env = append(os.Environ(), "VERSION="+o.Version,
		"LDFLAGS=-s -w -X github.com/agentfleet/libagent/buildinfo.Version="+o.Version,
		"RELEASE_ONLY="+o.Module, "RELEASE_TARGETS="+target, "RELEASE_REQUIRED="+target,
		"RELEASE_FORMATS=bin", "RELEASE_DIR="+o.Dir, "RELEASE_SIGNING_KEY="+o.Key, "RELEASE_JOBS=1")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf(".ci/release %s %s: %v\n%s", o.Module, o.Version, err, b)
	}
	bin = filepath.Join(o.Dir, fmt.Sprintf("%s_%s_linux_%s", o.Module, o.Version, runtime.GOARCH))
	if _, err := os.Stat(bin); err != nil {
		return "", "", fmt.Errorf(".ci/release %s %s: %w", o.Module, o.Version, err)
	}
	if o.Key == "" {
		return bin, "", nil
	}
	s, err := os.ReadFile(bin + ".sig")
	if err != nil {
		return "", "", fmt.Errorf("release %s %s: no signature: %w", o.Module, o.Version, err)
	}
	return bin, strings.TrimSpace(string(s)), nil
}
