// Package benchprof lets a benchmark profile a whole process: FromEnv
// starts a CPU profile into the file an environment variable names and
// stops it on SIGUSR1, then creates <path>.done. The agents' binaries call
// it only from files built with a benchmark's tag (make logbench), so
// release builds do not contain it. Not available on Windows (no SIGUSR1).
package benchprof
