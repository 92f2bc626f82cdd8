package install

import "syscall"

// quoteProg quotes a program for the runner's command line (cmd /C).
func quoteProg(s string) string { return syscall.EscapeArg(s) }

// envPrefix: the variables set for deb installers mean nothing on Windows.
func envPrefix(string) string { return "" }
