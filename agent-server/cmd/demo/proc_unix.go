//go:build unix

package main

import (
	"os/exec"
	"syscall"
)

// detach puts the child in its own process group: Ctrl-C in the terminal
// reaches only the demo, which then stops the agents before the server.
func detach(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }
