package logging

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"gopkg.in/natefinch/lumberjack.v2"
)

// backupLayout is the time stamp lumberjack puts in rotated file names.
const backupLayout = "2006-01-02T15-04-05.000"

// The midnight timer never waits longer than maxWait, so that a wall-clock
// step (NTP, suspend) delays a rotation by at most that; and never less than
// minWait, so a clock that has not quite reached midnight does not spin.
const (
	minWait = 10 * time.Millisecond
	maxWait = time.Hour
)

// fileOutput is the "file" target: lumberjack for writing and size rotation,
// plus the midnight rotation and age pruning.
type fileOutput struct {
	lj      *lumberjack.Logger
	dir     string
	name    string // base name without ".log"
	path    string // dir/name.log
	daily   bool
	maxDays int
	now     func() time.Time

	mu     sync.Mutex // guards the fields below; held across writes and rotations
	closed bool
	day    time.Time // midnight starting the day the current file belongs to
	timer  *time.Timer
}

func openFile(o Options) (*fileOutput, error) {
	if o.Dir == "" || o.Name == "" {
		return nil, errors.New("logging: target file needs Dir and Name")
	}
	if strings.ContainsAny(o.Name, `/\`) {
		return nil, fmt.Errorf("logging: Name %q must not contain a path separator", o.Name)
	}
	if o.Rotate < 0 || o.MaxSize < 0 || o.MaxDays < 0 {
		return nil, fmt.Errorf("logging: negative Rotate (%d), MaxSize (%d) or MaxDays (%d)", o.Rotate, o.MaxSize, o.MaxDays)
	}
	size := o.MaxSize
	if size == 0 {
		size = DefaultMaxSize
	}
	rotate := o.Rotate
	if rotate == 0 {
		rotate = DefaultRotate
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("logging: create log dir: %w", err)
	}
	f := &fileOutput{
		dir:     o.Dir,
		name:    o.Name,
		path:    filepath.Join(o.Dir, o.Name+".log"),
		daily:   o.Daily,
		maxDays: o.MaxDays,
		now:     now,
	}
	f.lj = &lumberjack.Logger{
		Filename:   f.path,
		MaxSize:    mebibytes(size),
		MaxBackups: rotate,
		LocalTime:  true,
	}
	f.day = midnight(now())
	if err := f.pruneOld(); err != nil {
		return nil, err
	}
	if f.daily || f.maxDays > 0 {
		f.mu.Lock() // tick must see f.timer set
		f.timer = time.AfterFunc(f.wait(), f.tick)
		f.mu.Unlock()
	}
	return f, nil
}

func (f *fileOutput) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, os.ErrClosed
	}
	return f.lj.Write(p)
}

func (f *fileOutput) close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	if f.timer != nil {
		f.timer.Stop()
	}
	if err := f.lj.Close(); err != nil {
		return fmt.Errorf("logging: close %s: %w", f.path, err)
	}
	return nil
}

// mebibytes rounds size up to whole MiB, lumberjack's unit.
func mebibytes(size int64) int {
	mib := size >> 20
	if size&(1<<20-1) != 0 {
		mib++
	}
	return int(min(mib, math.MaxInt32))
}

func midnight(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, t.Location())
}

// wait returns how long to sleep until the next midnight of the clock.
func (f *fileOutput) wait() time.Duration {
	now := f.now()
	y, m, d := now.Date()
	next := time.Date(y, m, d+1, 0, 0, 0, 0, now.Location())
	return min(max(next.Sub(now), minWait), maxWait)
}

// tick runs on the timer: rotate if the day changed, prune, re-arm.
func (f *fileOutput) tick() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	// Errors have nowhere better to go than the next tick; the file keeps
	// being written either way.
	_ = f.newDay()
	f.timer.Reset(f.wait())
}

// newDay rotates the file when the clock has moved into a later day and
// then prunes old files. Caller holds f.mu.
func (f *fileOutput) newDay() error {
	today := midnight(f.now())
	if today.Equal(f.day) {
		return nil
	}
	forward := today.After(f.day)
	f.day = today // a clock set back just moves the day along
	if !forward {
		return nil
	}
	if f.daily {
		// An empty file is not worth a rotated copy.
		if fi, err := os.Stat(f.path); err == nil && fi.Size() > 0 {
			if err := f.lj.Rotate(); err != nil {
				return fmt.Errorf("logging: daily rotation: %w", err)
			}
		}
	}
	return f.pruneOld()
}

// pruneOld deletes rotated files whose time stamp is more than maxDays days
// before now.
func (f *fileOutput) pruneOld() error {
	if f.maxDays <= 0 {
		return nil
	}
	rotated, err := f.rotated()
	if err != nil {
		return err
	}
	cutoff := f.now().AddDate(0, 0, -f.maxDays)
	var errs []error
	for _, r := range rotated {
		if r.stamp.Before(cutoff) {
			err := os.Remove(filepath.Join(f.dir, r.info.Name))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("logging: prune old files: %w", errors.Join(errs...))
	}
	return nil
}

type rotatedFile struct {
	info  FileInfo
	stamp time.Time
}

// rotated lists the rotated files of f: Name-<backupLayout>.log.
func (f *fileOutput) rotated() ([]rotatedFile, error) {
	entries, err := os.ReadDir(f.dir)
	if err != nil {
		return nil, fmt.Errorf("logging: list %s: %w", f.dir, err)
	}
	var out []rotatedFile
	prefix := f.name + "-"
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !strings.HasPrefix(n, prefix) || !strings.HasSuffix(n, ".log") {
			continue
		}
		// lumberjack writes the stamp in local time (LocalTime: true).
		stamp, err := time.ParseInLocation(backupLayout, n[len(prefix):len(n)-len(".log")], time.Local)
		if err != nil {
			continue // not ours
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, rotatedFile{
			info:  FileInfo{Name: n, Size: info.Size(), ModTime: info.ModTime()},
			stamp: stamp,
		})
	}
	return out, nil
}

func (f *fileOutput) files() ([]FileInfo, error) {
	rotated, err := f.rotated()
	if err != nil {
		return nil, err
	}
	var current []FileInfo
	if fi, err := os.Stat(f.path); err == nil {
		current = append(current, FileInfo{Name: fi.Name(), Size: fi.Size(), ModTime: fi.ModTime()})
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("logging: %w", err)
	}
	return sortFiles(current, rotated), nil
}
