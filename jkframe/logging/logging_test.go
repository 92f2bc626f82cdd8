package logging

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/agentfleet/jkframe/eventually"
	"github.com/agentfleet/jkframe/syncbuf"
)

func TestMain(m *testing.M) {
	// lumberjack starts one goroutine per file logger to prune rotated files
	// and never stops it (see the package doc).
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("gopkg.in/natefinch/lumberjack%2ev2.(*Logger).millRun"))
}

// fakeClock is a settable clock.
type fakeClock struct{ t atomic.Pointer[time.Time] }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.set(t)
	return c
}
func (c *fakeClock) set(t time.Time) { c.t.Store(&t) }
func (c *fakeClock) now() time.Time  { return *c.t.Load() }

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func names(fs []FileInfo) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Name)
	}
	return out
}

func TestParseLevel(t *testing.T) {
	tests := []struct {
		in   string
		want slog.Level
		err  string
	}{
		{in: "debug", want: slog.LevelDebug},
		{in: "INFO", want: slog.LevelInfo},
		{in: " Warn ", want: slog.LevelWarn},
		{in: "error", want: slog.LevelError},
		{in: "", err: `unknown log level "" (want debug, info, warn or error)`},
		{in: "warning", err: `unknown log level "warning" (want debug, info, warn or error)`},
		{in: "3", err: `unknown log level "3" (want debug, info, warn or error)`},
	}
	for _, tc := range tests {
		got, err := ParseLevel(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err || !errors.Is(err, ErrUnknownLevel) {
				t.Errorf("ParseLevel(%q) error = %v, want %s", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// FuzzParseLevel: the level comes from config files and the environment.
func FuzzParseLevel(f *testing.F) {
	for _, s := range []string{"debug", "INFO", " Warn ", "error", "", "warning", "3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lv, err := ParseLevel(s)
		if err != nil {
			if !errors.Is(err, ErrUnknownLevel) {
				t.Fatalf("error %v is not ErrUnknownLevel", err)
			}
			return
		}
		if again, err := ParseLevel(strings.ToUpper(lv.String())); err != nil || again != lv {
			t.Fatalf("%q parsed as %v, which does not round-trip: %v, %v", s, lv, again, err)
		}
	})
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "plain")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		o    Options
		env  string
		err  string
	}{
		{name: "target", o: Options{Targets: []string{"syslog"}}, err: `logging: unknown target "syslog" (want stdout or file)`},
		{name: "format", o: Options{Format: "xml"}, err: `logging: unknown format "xml" (want text or json)`},
		{name: "no dir", o: Options{Targets: []string{"file"}, Name: "a"}, err: "logging: target file needs Dir and Name"},
		{name: "no name", o: Options{Targets: []string{"file"}, Dir: dir}, err: "logging: target file needs Dir and Name"},
		{name: "name with slash", o: Options{Targets: []string{"file"}, Dir: dir, Name: "x/a"}, err: `logging: Name "x/a" must not contain a path separator`},
		{name: "negative", o: Options{Targets: []string{"file"}, Dir: dir, Name: "a", Rotate: -1}, err: "logging: negative Rotate (-1), MaxSize (0) or MaxDays (0)"},
		{name: "dir is a file", o: Options{Targets: []string{"file"}, Dir: filepath.Join(notDir, "logs"), Name: "a"}, err: "logging: create log dir: mkdir " + notDir + ": not a directory"},
		{name: "bad env", env: "loud", err: `logging: JKFRAME_LOG_LEVEL: unknown log level "loud" (want debug, info, warn or error)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvLevel, tc.env)
			l, err := New(tc.o)
			if err == nil {
				l.Close()
				t.Fatalf("New succeeded, want %s", tc.err)
			}
			if err.Error() != tc.err {
				t.Fatalf("error\n got %s\nwant %s", err, tc.err)
			}
		})
	}
}

func TestLevels(t *testing.T) {
	t.Setenv(EnvLevel, "")
	var buf syncbuf.Buffer
	l, err := New(Options{Stdout: &buf})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	sub := l.With("component", "x")
	sub.Debug("hidden")
	l.Info("shown")
	if l.Level() != slog.LevelInfo {
		t.Fatalf("Level = %v", l.Level())
	}
	l.SetLevel(slog.LevelDebug)
	sub.Debug("now visible")
	l.SetLevel(slog.LevelError)
	l.Warn("hidden again")
	out := buf.String()
	if strings.Contains(out, "hidden") || !strings.Contains(out, "msg=shown") ||
		!strings.Contains(out, `level=DEBUG msg="now visible" component=x`) {
		t.Fatalf("output:\n%s", out)
	}
}

func TestEnvOverride(t *testing.T) {
	t.Setenv(EnvLevel, "DEBUG")
	var buf syncbuf.Buffer
	l, err := New(Options{Level: slog.LevelError, Stdout: &buf, Format: "json"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Level() != slog.LevelDebug {
		t.Fatalf("Level = %v, want DEBUG from the environment", l.Level())
	}
	l.Debug("d", "k", 1)
	var rec map[string]any
	if err := json.Unmarshal([]byte(buf.String()), &rec); err != nil {
		t.Fatalf("not one JSON record: %q: %v", buf.String(), err)
	}
	if rec["level"] != "DEBUG" || rec["msg"] != "d" || rec["k"] != 1.0 {
		t.Fatalf("record %v", rec)
	}
}

func TestStdoutAndFile(t *testing.T) {
	t.Setenv(EnvLevel, "")
	dir := filepath.Join(t.TempDir(), "logs")
	var buf syncbuf.Buffer
	l, err := New(Options{Targets: []string{"stdout", "file"}, Dir: dir, Name: "agent", Stdout: &buf})
	if err != nil {
		t.Fatal(err)
	}
	l.Info("hello", "n", 1)
	if l.Dir() != dir {
		t.Fatalf("Dir = %q", l.Dir())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	file := readFile(t, filepath.Join(dir, "agent.log"))
	if file != buf.String() || !strings.Contains(file, "msg=hello n=1") {
		t.Fatalf("file %q, stdout %q", file, buf.String())
	}
	// After Close the file is not reopened; stdout still works.
	os.Remove(filepath.Join(dir, "agent.log"))
	l.Info("late")
	if _, err := os.Stat(filepath.Join(dir, "agent.log")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("file reopened after Close: %v", err)
	}
	if !strings.Contains(buf.String(), "msg=late") {
		t.Fatal("stdout lost a record after Close")
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

var lineRE = regexp.MustCompile(`msg=line w=(\d+) i=(\d+) `)

// TestConcurrentRotation writes from many goroutines through several size
// rotations and finds every line exactly once across the files.
func TestConcurrentRotation(t *testing.T) {
	t.Setenv(EnvLevel, "")
	dir := t.TempDir()
	l, err := New(Options{Targets: []string{"file"}, Dir: dir, Name: "app", MaxSize: 1, Rotate: 100})
	if err != nil {
		t.Fatal(err)
	}
	const writers, lines = 8, 2500
	pad := strings.Repeat("x", 200)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			log := l.With("w", w)
			for i := range lines {
				log.Info("line", "i", i, "pad", pad)
			}
		})
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	files, err := l.Files()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 4 || files[0].Name != "app.log" {
		t.Fatalf("want the current file first and at least 3 rotations, got %v", names(files))
	}
	seen := make(map[string]bool)
	for k, f := range files {
		if f.Size > 1<<20 {
			t.Errorf("%s is %d bytes, over 1 MiB", f.Name, f.Size)
		}
		if k > 1 && f.ModTime.After(files[k-1].ModTime) {
			t.Errorf("not newest first: %v", names(files))
		}
		sc := bufio.NewScanner(strings.NewReader(readFile(t, filepath.Join(dir, f.Name))))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			m := lineRE.FindStringSubmatch(sc.Text())
			if m == nil {
				t.Fatalf("%s: garbled line %q", f.Name, sc.Text())
			}
			key := m[1] + "/" + m[2]
			if seen[key] {
				t.Fatalf("line %s twice", key)
			}
			seen[key] = true
		}
	}
	if len(seen) != writers*lines {
		t.Fatalf("found %d lines, wrote %d", len(seen), writers*lines)
	}
}

func TestRotateKeepsN(t *testing.T) {
	t.Setenv(EnvLevel, "")
	dir := t.TempDir()
	l, err := New(Options{Targets: []string{"file"}, Dir: dir, Name: "app", MaxSize: 1 << 20, Rotate: 2})
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("y", 1000)
	for i := range 5 * 1024 { // about 5 MiB: 4 or 5 rotations
		l.Info("x", "i", i, "pad", pad)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// lumberjack prunes in the background shortly after each rotation.
	var files []FileInfo
	eventually.True(t, "2 rotated files", func() bool {
		files, err = l.Files()
		return err == nil && len(files) == 3
	})
	if files[0].Name != "app.log" || files[0].Size == 0 || files[1].Size < 1<<20-2000 {
		t.Fatalf("files %v", files)
	}
}

func TestDailyRotation(t *testing.T) {
	t.Setenv(EnvLevel, "")
	zone := time.FixedZone("UTC+3", 3*3600)
	clock := newFakeClock(time.Date(2024, 3, 10, 23, 59, 59, 950e6, zone))
	dir := t.TempDir()
	l, err := New(Options{Targets: []string{"file"}, Dir: dir, Name: "app", Daily: true, Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Info("before midnight")
	clock.set(time.Date(2024, 3, 11, 0, 0, 0, 10e6, zone))
	var files []FileInfo
	eventually.True(t, "the midnight rotation", func() bool {
		files, err = l.Files()
		return err == nil && len(files) == 2
	})
	l.Info("after midnight")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ = l.Files()
	cur := readFile(t, filepath.Join(dir, files[0].Name))
	old := readFile(t, filepath.Join(dir, files[1].Name))
	if files[0].Name != "app.log" || !strings.Contains(old, "before midnight") || strings.Contains(old, "after") ||
		!strings.Contains(cur, "after midnight") || strings.Contains(cur, "before") {
		t.Fatalf("files %v\ncurrent %q\nrotated %q", names(files), cur, old)
	}
}

// TestNewDay drives the day change directly over several days: an empty file
// is not rotated, a clock set back does not rotate, MaxDays prunes.
func TestNewDay(t *testing.T) {
	t.Setenv(EnvLevel, "")
	clock := newFakeClock(time.Date(2024, 3, 10, 12, 0, 0, 0, time.Local))
	dir := t.TempDir()
	l, err := New(Options{Targets: []string{"file"}, Dir: dir, Name: "app", Daily: true, Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	step := func(to time.Time, wantFiles int) {
		t.Helper()
		clock.set(to)
		l.file.mu.Lock()
		err := l.file.newDay()
		l.file.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		files, err := l.Files()
		if err != nil || len(files) != wantFiles {
			t.Fatalf("at %v: files %v, %v; want %d", to, names(files), err, wantFiles)
		}
	}
	step(time.Date(2024, 3, 11, 0, 0, 1, 0, time.Local), 0) // nothing written yet
	l.Info("day 11")
	step(time.Date(2024, 3, 11, 23, 0, 0, 0, time.Local), 1) // same day
	step(time.Date(2024, 3, 12, 0, 0, 1, 0, time.Local), 2)
	l.Info("day 12")
	// lumberjack names rotated files by the real time in milliseconds: two
	// rotations within one millisecond would collide.
	time.Sleep(2 * time.Millisecond)
	step(time.Date(2024, 3, 11, 0, 0, 1, 0, time.Local), 2) // clock set back
	step(time.Date(2024, 3, 12, 0, 0, 1, 0, time.Local), 3)
}

func TestMaxDays(t *testing.T) {
	t.Setenv(EnvLevel, "")
	now := time.Date(2024, 3, 11, 0, 0, 0, 10e6, time.Local)
	dir := t.TempDir()
	var want []string
	for _, age := range []int{10, 5, 3, 2, 1} {
		name := "app-" + now.AddDate(0, 0, -age).Add(time.Minute).Format(backupLayout) + ".log"
		if err := os.WriteFile(filepath.Join(dir, name), []byte("old\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if age <= 3 {
			want = append([]string{name}, want...)
		}
	}
	for _, other := range []string{"app-notatime.log", "other.log", "app.txt"} {
		if err := os.WriteFile(filepath.Join(dir, other), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l, err := New(Options{Targets: []string{"file"}, Dir: dir, Name: "app", MaxDays: 3, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	files, err := l.Files()
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(names(files)); got != fmt.Sprint(want) {
		t.Fatalf("files %s, want %s", got, fmt.Sprint(want))
	}
	for _, other := range []string{"app-notatime.log", "other.log", "app.txt"} {
		if _, err := os.Stat(filepath.Join(dir, other)); err != nil {
			t.Fatalf("pruned a file that is not ours: %v", err)
		}
	}
}

func TestMebibytes(t *testing.T) {
	for in, want := range map[int64]int{1: 1, 1 << 20: 1, 1<<20 + 1: 2, 10 << 20: 10, math.MaxInt64: math.MaxInt32} {
		if got := mebibytes(in); got != want {
			t.Errorf("mebibytes(%d) = %d, want %d", in, got, want)
		}
	}
}

func TestWait(t *testing.T) {
	zone := time.FixedZone("X", -5*3600)
	for _, tc := range []struct {
		now  time.Time
		want time.Duration
	}{
		{time.Date(2024, 3, 10, 23, 59, 59, 0, zone), time.Second},
		{time.Date(2024, 3, 10, 23, 59, 59, 999e6, zone), minWait},
		{time.Date(2024, 3, 10, 0, 0, 0, 0, zone), maxWait},
		{time.Date(2024, 3, 10, 23, 30, 0, 0, zone), 30 * time.Minute},
	} {
		f := &fileOutput{now: func() time.Time { return tc.now }}
		if got := f.wait(); got != tc.want {
			t.Errorf("wait at %v = %v, want %v", tc.now, got, tc.want)
		}
	}
}
