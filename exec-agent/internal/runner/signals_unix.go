//go:build unix

package runner

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// inheritedIgnores are the signals a process can inherit ignored and then
// pass on ignored to everything it starts: exec resets a caught signal to
// its default action but keeps an ignored one. An agent started under
// nohup, or with `agent &` from a script without job control, would start
// every command and shell with SIGHUP or SIGINT ignored — Ctrl-C in a
// terminal session would do nothing, and closing the session would not
// hang up its shell. (Go installs its own handler for the other signals
// whatever it inherited, so their children start with the default.)
var inheritedIgnores = []os.Signal{syscall.SIGHUP, syscall.SIGINT}

var childSignalsOnce sync.Once

// defaultChildSignals makes the commands the agent starts begin with the
// default action for inheritedIgnores. For each one the agent inherited
// ignored, it catches the signal instead, into a channel nobody reads: the
// agent itself goes on ignoring it, and its children, after exec, get the
// default.
func defaultChildSignals() {
	childSignalsOnce.Do(func() {
		var ignored []os.Signal
		for _, s := range inheritedIgnores {
			if signal.Ignored(s) {
				ignored = append(ignored, s)
			}
		}
		if len(ignored) > 0 {
			signal.Notify(make(chan os.Signal, 1), ignored...)
		}
	})
}
