//go:build !linux

package service

import ks "github.com/kardianos/service"

// knownState: the library reports every state itself on these systems.
func knownState(ks.Service, string) (State, bool) { return StateUnknown, false }
