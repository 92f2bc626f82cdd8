package service

import (
	"errors"
	"io/fs"
	"os"

	ks "github.com/kardianos/service"
)

// knownState answers status where the library cannot: with SysV init it
// runs "service NAME status", which fails the same way for a missing script
// and for other problems, so a missing init script is checked first.
func knownState(s ks.Service, name string) (State, bool) {
	if s.Platform() != "unix-systemv" {
		return StateUnknown, false
	}
	if _, err := os.Stat("/etc/init.d/" + name); errors.Is(err, fs.ErrNotExist) {
		return StateNotInstalled, true
	}
	return StateUnknown, false
}
