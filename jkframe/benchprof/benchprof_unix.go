//go:build !windows

package benchprof

import (
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

// FromEnv profiles the process into the file named by env (nothing when
// it is unset) until SIGUSR1. It panics when the profile cannot start: it
// runs only in benchmark builds, where a missing profile must not pass.
func FromEnv(env string) {
	path := os.Getenv(env)
	if path == "" {
		return
	}
	f, err := os.Create(path)
	if err != nil {
		panic(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		panic(err)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGUSR1)
	go func() {
		<-stop
		pprof.StopCPUProfile()
		if f.Close() == nil {
			_ = os.WriteFile(path+".done", nil, 0o644)
		}
	}()
}
