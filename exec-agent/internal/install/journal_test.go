package install

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func fixedClock() func() time.Time {
	return func() time.Time { return time.Unix(1700000000, 0) }
}

func openStore(t *testing.T, dir string, opts StoreOptions) *Store {
	t.Helper()
	opts.Dir = dir
	if opts.Now == nil {
		opts.Now = fixedClock()
	}
	s, err := OpenStore(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestJournalStatusShape: the action log as the seed's /install/status
// payload has it.
func TestJournalStatusShape(t *testing.T) {
	s := openStore(t, t.TempDir(), StoreOptions{})
	j, err := s.Begin("t1")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []Action{
		{Action: ActDownload, Name: "https://example.com/a.tar.gz", OK: true},
		{Action: ActInstall, Name: "https://example.com/a.tar.gz", OK: true},
		{Action: ActFile, Name: "/opt/a/bin/a", OK: true},
	} {
		if err := j.Append(a); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := s.Status("t1"); st.Done || len(st.Actions) != 3 {
		t.Fatalf("running status = %+v", st)
	}
	if err := j.Finish(true, ""); err != nil {
		t.Fatal(err)
	}
	st, err := s.Status("t1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(st)
	want := `{"done":true,"actions":[` +
		`{"action":"download","name":"https://example.com/a.tar.gz","time":1700000000,"ok":true,"msg":""},` +
		`{"action":"install","name":"https://example.com/a.tar.gz","time":1700000000,"ok":true,"msg":""},` +
		`{"action":"file","name":"/opt/a/bin/a","time":1700000000,"ok":true,"msg":""},` +
		`{"action":"done","name":"t1","time":1700000000,"ok":true,"msg":""}]}`
	if string(b) != want {
		t.Fatalf("status\n got %s\nwant %s", b, want)
	}
	if err := j.Append(Action{Action: ActFile, Name: "late"}); err == nil {
		t.Fatal("append after finish accepted")
	}
	// Nothing to recover: finished journals are reported as they are.
	reps, err := s.Recover()
	if err != nil || len(reps) != 1 || len(reps[0].Actions) != 4 || !reps[0].Actions[3].OK {
		t.Fatalf("Recover = %+v, %v", reps, err)
	}
	if err := s.Remove("t1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Status("t1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("status after remove: %v", err)
	}
}

// TestJournalInterrupted: a journal left without done by an agent that
// stopped is reported after the restart as done, not ok, saying where it
// stopped; a torn last line is cut off and an interrupted download removed.
func TestJournalInterrupted(t *testing.T) {
	cases := []struct {
		name    string
		write   func(t *testing.T, j *Journal, work string)
		torn    string
		wantMsg string
		actions int // before done
	}{
		{"before anything", func(*testing.T, *Journal, string) {}, "",
			"interrupted: the agent stopped before the first action of the install", 0},
		{"while downloading", func(t *testing.T, j *Journal, work string) {
			tmp := writeFile(t, work, ".install-1.part", []byte("half"))
			if err := j.noteTmp(tmp, "https://example.com/x.deb"); err != nil {
				t.Fatal(err)
			}
		}, "", "interrupted: the agent stopped while downloading https://example.com/x.deb", 0},
		{"while installing", func(t *testing.T, j *Journal, work string) {
			tmp := writeFile(t, work, ".install-2.part", []byte("whole"))
			j.noteTmp(tmp, "https://example.com/x.deb")
			j.Append(Action{Action: ActDownload, Name: "https://example.com/x.deb", OK: true})
		}, "", "interrupted: the agent stopped while installing https://example.com/x.deb (downloaded, install not finished)", 1},
		{"torn line", func(t *testing.T, j *Journal, work string) {
			j.Append(Action{Action: ActDownload, Name: "u", OK: true})
			j.Append(Action{Action: ActInstall, Name: "u", OK: true})
		}, `{"action":"file","name":"/opt/x`, "interrupted: the agent stopped after the install action (u, ok) before the install finished", 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir, work := t.TempDir(), t.TempDir()
			s := openStore(t, dir, StoreOptions{})
			j, err := s.Begin("t1")
			if err != nil {
				t.Fatal(err)
			}
			c.write(t, j, work)
			// The agent dies: the file is closed by the kernel, nothing more.
			j.f.Close()
			if c.torn != "" {
				f, _ := os.OpenFile(filepath.Join(dir, "t1.journal"), os.O_WRONLY|os.O_APPEND, 0)
				f.WriteString(c.torn)
				f.Close()
			}

			s2 := openStore(t, dir, StoreOptions{Now: func() time.Time { return time.Unix(1700000100, 0) }})
			reps, err := s2.Recover()
			if err != nil || len(reps) != 1 {
				t.Fatalf("Recover = %+v, %v", reps, err)
			}
			st := reps[0].Status
			if !st.Done || len(st.Actions) != c.actions+1 {
				t.Fatalf("status = %+v", st)
			}
			done := st.Actions[c.actions]
			if done.Action != ActDone || done.OK || done.Msg != c.wantMsg || done.Time != 1700000100 {
				t.Fatalf("done = %+v, want msg %q", done, c.wantMsg)
			}
			if ents, _ := os.ReadDir(work); len(ents) != 0 {
				t.Fatalf("interrupted download left: %v", ents)
			}
			// The journal on disk now parses whole and says the same.
			again, err := s2.Status("t1")
			if err != nil || len(again.Actions) != len(st.Actions) || !again.Done {
				t.Fatalf("status from disk = %+v, %v", again, err)
			}
			if reps, _ := s2.Recover(); len(reps) != 1 || len(reps[0].Actions) != len(st.Actions) {
				t.Fatalf("second Recover = %+v", reps)
			}
		})
	}
}

// TestJournalLimits: actions beyond the limit are counted and named in the
// done action; finished journals beyond the limit are pruned oldest first.
func TestJournalLimits(t *testing.T) {
	s := openStore(t, t.TempDir(), StoreOptions{MaxActions: 4, MaxJournals: 2})
	j, _ := s.Begin("a")
	for range 10 {
		if err := j.Append(Action{Action: ActFile, Name: strings.Repeat("n", 5000), Msg: strings.Repeat("m", 10000), OK: true}); err != nil {
			t.Fatal(err)
		}
	}
	j.Finish(true, "")
	st, _ := s.Status("a")
	if len(st.Actions) != 4 || st.Actions[3].Msg != "7 actions not recorded (journal limit 4)" {
		t.Fatalf("status = %d actions, done %+v", len(st.Actions), st.Actions[len(st.Actions)-1])
	}
	if n := len(st.Actions[0].Name); n > maxName+len("…") {
		t.Fatalf("name not clipped: %d bytes", n)
	}
	if s.Dropped() != 7 {
		t.Fatalf("Dropped = %d", s.Dropped())
	}
	for i, id := range []string{"b", "c"} {
		os.Chtimes(s.path("a"), time.Unix(1, 0), time.Unix(1, 0))
		jj, err := s.Begin(id)
		if err != nil {
			t.Fatal(err)
		}
		jj.Finish(true, "")
		os.Chtimes(s.path(id), time.Unix(int64(10+i), 0), time.Unix(int64(10+i), 0))
	}
	// a (oldest) was pruned when c began.
	if _, err := s.Status("a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a: %v", err)
	}
	if s.Dropped() != 8 {
		t.Fatalf("Dropped = %d, want 8", s.Dropped())
	}
}

func TestJournalBadID(t *testing.T) {
	s := openStore(t, t.TempDir(), StoreOptions{})
	for _, c := range []struct{ id, want string }{
		{"", `invalid install request: id "": empty`},
		{"../x", `invalid install request: id "../x": starts with '.' or '-'`},
		{"a/b", `invalid install request: id "a/b": holds a character other than letters, digits, '-', '_' and '.'`},
		{"-rf", `invalid install request: id "-rf": starts with '.' or '-'`},
		{strings.Repeat("x", 129), "longer than 128 bytes"},
	} {
		if _, err := s.Begin(c.id); !errors.Is(err, ErrRequest) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Begin(%q) = %v, want %q", c.id, err, c.want)
		}
	}
	j, _ := s.Begin("x")
	if _, err := s.Begin("x"); !errors.Is(err, ErrExists) {
		t.Fatalf("second Begin: %v", err)
	}
	if err := s.Remove("x"); err == nil {
		t.Fatal("removed a running journal")
	}
	j.Finish(false, "boom")
}
