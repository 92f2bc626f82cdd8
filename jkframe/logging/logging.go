// Package logging sets up levelled, structured logging on log/slog, written
// to stdout and/or a rotated log file.
//
// The file Dir/Name.log is rotated by size and, optionally, at midnight.
// Rotated files are named Name-<local time of rotation>.log (for example
// agent-2024-03-11T00-00-00.002.log) and sit next to the current file. At
// most Rotate rotated files are kept; with MaxDays, rotated files older than
// that many days are deleted too. Files lists them for serving to a server.
//
// Size rotation and the retention count are done by
// gopkg.in/natefinch/lumberjack.v2, which works in whole MiB: MaxSize is
// rounded up to a multiple of 1 MiB. A rotation happens inside the write that
// would overflow the file, under the same lock, so no line is lost or split.
// lumberjack prunes rotated files in a background goroutine of its own, which
// it starts on the first write and never stops (one per Logger with a file,
// parked when idle): count pruning therefore completes shortly after a
// rotation rather than within it.
//
// The level can be changed at run time with SetLevel; the environment
// variable JKFRAME_LOG_LEVEL, when set and not empty, overrides Options.Level
// at New (an unknown value there is an error).
//
// A Logger is safe for concurrent use.
package logging

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"
)

// EnvLevel names the environment variable that overrides Options.Level.
const EnvLevel = "JKFRAME_LOG_LEVEL"

// Defaults for the zero values of Options.
const (
	DefaultMaxSize = 10 << 20
	DefaultRotate  = 7
)

// ErrUnknownLevel is returned (wrapped) by ParseLevel for a level name it
// does not know.
var ErrUnknownLevel = errors.New("unknown log level")

// Options configures New. The zero value logs at info level, as text, to
// os.Stdout.
type Options struct {
	// Level is the minimum level logged; JKFRAME_LOG_LEVEL overrides it.
	Level slog.Level
	// Targets lists the outputs: "stdout" and/or "file". Default: stdout.
	Targets []string
	// Dir and Name place the log file at Dir/Name.log (target "file").
	Dir, Name string
	// MaxSize is the size in bytes at which the file is rotated, rounded up
	// to whole MiB. Default 10 MiB.
	MaxSize int64
	// Rotate is the number of rotated files kept (>= 1). Default 7.
	Rotate int
	// Daily rotates the file at midnight (in the location of Now's times).
	Daily bool
	// MaxDays, when > 0, deletes rotated files older than that many days,
	// checked at New and at every midnight.
	MaxDays int
	// Format is "text" (default) or "json".
	Format string
	// Stdout is the writer of the "stdout" target. Default os.Stdout.
	Stdout io.Writer
	// Now is the clock for daily rotation and age pruning. Default time.Now.
	Now func() time.Time
}

// Logger is a *slog.Logger whose level can be changed and whose file can be
// listed and closed.
type Logger struct {
	*slog.Logger
	level *slog.LevelVar
	file  *fileOutput // nil without the "file" target
}

// New builds a Logger from o. With the "file" target it creates Dir if
// needed and starts the midnight timer when Daily or MaxDays is set; Close
// releases them.
func New(o Options) (*Logger, error) {
	level := new(slog.LevelVar)
	level.Set(o.Level)
	if v, ok := os.LookupEnv(EnvLevel); ok && strings.TrimSpace(v) != "" {
		lv, err := ParseLevel(v)
		if err != nil {
			return nil, fmt.Errorf("logging: %s: %w", EnvLevel, err)
		}
		level.Set(lv)
	}

	targets := o.Targets
	if len(targets) == 0 {
		targets = []string{"stdout"}
	}
	out := &fanout{}
	for _, t := range targets {
		switch strings.ToLower(strings.TrimSpace(t)) {
		case "stdout":
			out.stdout = o.Stdout
			if out.stdout == nil {
				out.stdout = os.Stdout
			}
		case "file":
			out.wantFile = true
		default:
			return nil, fmt.Errorf("logging: unknown target %q (want stdout or file)", t)
		}
	}

	hopts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch strings.ToLower(o.Format) {
	case "", "text":
		h = slog.NewTextHandler(out, hopts)
	case "json":
		h = slog.NewJSONHandler(out, hopts)
	default:
		return nil, fmt.Errorf("logging: unknown format %q (want text or json)", o.Format)
	}

	if out.wantFile {
		f, err := openFile(o)
		if err != nil {
			return nil, err
		}
		out.file = f
	}
	return &Logger{Logger: slog.New(h), level: level, file: out.file}, nil
}

// SetLevel changes the minimum level of l and of every logger derived from
// it (With, WithGroup).
func (l *Logger) SetLevel(v slog.Level) { l.level.Set(v) }

// Level returns the current minimum level.
func (l *Logger) Level() slog.Level { return l.level.Level() }

// Close stops the midnight timer and closes the log file. Records logged
// afterwards still go to stdout but no longer to the file. Calling Close
// again does nothing.
func (l *Logger) Close() error {
	if l.file == nil {
		return nil
	}
	return l.file.close()
}

// Dir returns the directory of the log files, or "" without the file target.
func (l *Logger) Dir() string {
	if l.file == nil {
		return ""
	}
	return l.file.dir
}

// FileInfo describes one log file.
type FileInfo struct {
	Name    string    `json:"name"` // base name, in Dir()
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mod_time"`
}

// Files lists the current log file and the rotated ones, newest first. It
// returns nothing without the file target.
func (l *Logger) Files() ([]FileInfo, error) {
	if l.file == nil {
		return nil, nil
	}
	return l.file.files()
}

// ParseLevel parses debug, info, warn or error, in any case.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%w %q (want debug, info, warn or error)", ErrUnknownLevel, s)
}

// fanout writes each record to stdout and the file. The slog handler calls
// Write once per record, serialised by its own lock.
type fanout struct {
	stdout   io.Writer
	wantFile bool
	file     *fileOutput
}

func (w *fanout) Write(p []byte) (int, error) {
	var errs []error
	if w.stdout != nil {
		if _, err := w.stdout.Write(p); err != nil {
			errs = append(errs, err)
		}
	}
	if w.file != nil {
		if _, err := w.file.Write(p); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return 0, errors.Join(errs...)
	}
	return len(p), nil
}

// sortFiles orders by time, newest first, keeping the current file (index 0)
// in front.
func sortFiles(current []FileInfo, rotated []rotatedFile) []FileInfo {
	slices.SortFunc(rotated, func(a, b rotatedFile) int {
		if c := b.stamp.Compare(a.stamp); c != 0 {
			return c
		}
		return strings.Compare(b.info.Name, a.info.Name)
	})
	out := current
	for _, r := range rotated {
		out = append(out, r.info)
	}
	return out
}
