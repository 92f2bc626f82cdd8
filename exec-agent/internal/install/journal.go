package install

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/agentfleet/jkframe/durable"
	"github.com/agentfleet/jkframe/pkgkind"
)

// Journal limits (Store's zero values).
const (
	DefaultMaxActions  = 256
	DefaultMaxJournals = 64
	// maxMsg bounds an action's msg (installer output is clipped to its tail).
	maxMsg = 4 << 10
	// maxName bounds an action's name.
	maxName = 1 << 10
	// maxLine bounds a journal line when reading one back.
	maxLine    = 16 << 10
	journalExt = ".journal"
)

// Errors callers branch on (errors.Is).
var (
	// ErrRequest: the request is invalid (the message names the parameter).
	ErrRequest = errors.New("invalid install request")
	// ErrNotFound: no journal has that id.
	ErrNotFound = errors.New("install not found")
	// ErrExists: an install with that id was already started.
	ErrExists = errors.New("install id already used")
)

// line is a journal line: an action, or a note for recovery (Tmp alone).
type line struct {
	Action
	// Tmp is the temporary file a download is being written to, removed by
	// Recover when the install was interrupted.
	Tmp string `json:"tmp,omitempty"`
}

// Store keeps the journals of installs, one file per install in Dir. A
// journal is append-only; each line is an Action in JSON, written with one
// write and fsync'd before Append returns, so after a crash the journal holds
// every action that was reported, plus at most one torn last line (ignored
// and cut off by Recover). Its methods are safe for concurrent use.
type Store struct {
	dir         string
	maxActions  int
	maxJournals int
	now         func() time.Time
	log         *slog.Logger

	mu      sync.Mutex
	open    map[string]*Journal
	dropped int64 // actions dropped at a journal's limit, and journals pruned
}

// StoreOptions configure a Store.
type StoreOptions struct {
	// Dir holds the journals; created (0700) when missing.
	Dir string
	// MaxActions bounds a journal; beyond MaxActions-1 actions only the done
	// action is written (the others are counted and named in its msg).
	// ≤ 1: DefaultMaxActions.
	MaxActions int
	// MaxJournals bounds the finished journals kept; when a new install
	// starts beyond it the oldest finished ones are removed (counted and
	// logged). ≤ 0: DefaultMaxJournals.
	MaxJournals int
	// Now is the clock; nil: time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// OpenStore opens (creating) the journal directory.
func OpenStore(opts StoreOptions) (*Store, error) {
	if opts.Dir == "" {
		return nil, errors.New("install journal: no directory")
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("install journal: %w", err)
	}
	if opts.MaxActions <= 1 {
		opts.MaxActions = DefaultMaxActions
	}
	if opts.MaxJournals <= 0 {
		opts.MaxJournals = DefaultMaxJournals
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{dir: opts.Dir, maxActions: opts.MaxActions, maxJournals: opts.MaxJournals,
		now: opts.Now, log: log, open: make(map[string]*Journal)}, nil
}

// validID accepts ids that are safe as a file name.
func validID(id string) error {
	switch {
	case id == "":
		return errors.New("empty")
	case len(id) > 128:
		return errors.New("longer than 128 bytes")
	case id[0] == '.' || id[0] == '-':
		return errors.New("starts with '.' or '-'")
	case strings.ContainsFunc(id, func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && !strings.ContainsRune("-_.", r)
	}):
		return errors.New("holds a character other than letters, digits, '-', '_' and '.'")
	}
	return nil
}

func (s *Store) path(id string) string { return filepath.Join(s.dir, id+journalExt) }

// Dropped counts the actions dropped at a journal's limit and the
// finished journals pruned to keep the store bounded.
func (s *Store) Dropped() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// Begin starts the journal of a new install.
func (s *Store) Begin(id string) (*Journal, error) {
	if err := validID(id); err != nil {
		return nil, fmt.Errorf("%w: id %q: %v", ErrRequest, clip(id, 64), err)
	}
	s.prune()
	f, err := os.OpenFile(s.path(id), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("%w: %q", ErrExists, id)
	}
	if err != nil {
		return nil, fmt.Errorf("install journal: %w", err)
	}
	if err := durable.SyncDir(s.dir); err != nil {
		f.Close()
		os.Remove(s.path(id))
		return nil, fmt.Errorf("install journal: %w", err)
	}
	j := &Journal{s: s, id: id, f: f}
	s.mu.Lock()
	s.open[id] = j
	s.mu.Unlock()
	return j, nil
}

// prune removes the oldest finished journals beyond the limit, keeping room
// for the one about to start.
func (s *Store) prune() {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return
	}
	type old struct {
		id  string
		mod time.Time
	}
	var done []old
	s.mu.Lock()
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), journalExt)
		if !ok || s.open[id] != nil {
			continue
		}
		if info, err := e.Info(); err == nil {
			done = append(done, old{id, info.ModTime()})
		}
	}
	s.mu.Unlock()
	if len(done) < s.maxJournals {
		return
	}
	sort.Slice(done, func(i, k int) bool { return done[i].mod.Before(done[k].mod) })
	for _, o := range done[:len(done)-s.maxJournals+1] {
		if err := os.Remove(s.path(o.id)); err == nil {
			s.mu.Lock()
			s.dropped++
			s.mu.Unlock()
			s.log.Warn("install: journal removed unacknowledged: too many finished journals kept", "id", o.id, "limit", s.maxJournals)
		}
	}
}

// Status returns an install's action log: the running journal's, or the one
// on disk.
func (s *Store) Status(id string) (Status, error) {
	if err := validID(id); err != nil {
		return Status{}, fmt.Errorf("%w: id %q: %v", ErrRequest, clip(id, 64), err)
	}
	s.mu.Lock()
	j := s.open[id]
	s.mu.Unlock()
	if j != nil {
		return j.Status(), nil
	}
	lines, _, err := readJournal(s.path(id))
	if errors.Is(err, os.ErrNotExist) {
		return Status{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	if err != nil {
		return Status{}, err
	}
	return statusOf(lines), nil
}

// Remove deletes a finished journal (once its outcome was delivered).
func (s *Store) Remove(id string) error {
	if err := validID(id); err != nil {
		return fmt.Errorf("%w: id %q: %v", ErrRequest, clip(id, 64), err)
	}
	s.mu.Lock()
	running := s.open[id] != nil
	s.mu.Unlock()
	if running {
		return fmt.Errorf("install %q is running", id)
	}
	if err := os.Remove(s.path(id)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: %q", ErrNotFound, id)
		}
		return err
	}
	return nil
}

// Report is a finished install whose outcome is still to be delivered.
type Report struct {
	ID string
	Status
}

// Recover runs once at start, before any install: a journal without a done
// action belongs to an install that the agent's end interrupted. It gets
// its done action (not ok, msg naming the last action reached), its
// temporary download is removed, and it is returned with every other
// finished journal, oldest first, for the caller to deliver and Remove.
func (s *Store) Recover() ([]Report, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("install journal: %w", err)
	}
	var reports []Report
	var errs []error
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), journalExt)
		if !ok || e.IsDir() || validID(id) != nil {
			continue
		}
		s.mu.Lock()
		running := s.open[id] != nil
		s.mu.Unlock()
		if running {
			continue
		}
		st, err := s.recoverOne(id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		reports = append(reports, Report{ID: id, Status: st})
	}
	return reports, errors.Join(errs...)
}

func (s *Store) recoverOne(id string) (Status, error) {
	p := s.path(id)
	lines, good, err := readJournal(p)
	if err != nil {
		return Status{}, err
	}
	st := statusOf(lines)
	if st.Done {
		return st, nil
	}
	for _, l := range lines {
		if l.Tmp != "" {
			if err := os.Remove(l.Tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
				s.log.Warn("install: removing an interrupted download", "id", id, "file", l.Tmp, "err", err)
			}
		}
	}
	msg := interruptedMsg(lines)
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return Status{}, fmt.Errorf("install journal %s: %w", id, err)
	}
	defer f.Close()
	// A torn last line (the write the crash cut) is cut off first.
	if err := f.Truncate(good); err != nil {
		return Status{}, fmt.Errorf("install journal %s: %w", id, err)
	}
	done := Action{Action: ActDone, Name: id, Time: s.now().Unix(), OK: false, Msg: msg}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		return Status{}, fmt.Errorf("install journal %s: %w", id, err)
	}
	if err := writeLine(f, line{Action: done}); err != nil {
		return Status{}, fmt.Errorf("install journal %s: %w", id, err)
	}
	st.Actions = append(st.Actions, done)
	st.Done = true
	return st, nil
}

// interruptedMsg says where an install was when the agent stopped.
func interruptedMsg(lines []line) string {
	var last *Action
	downloading := ""
	for i := range lines {
		switch l := &lines[i]; {
		case l.Tmp != "":
			downloading = l.Name
		case l.Action.Action == ActDownload:
			downloading = ""
			last = &l.Action
		default:
			last = &l.Action
		}
	}
	switch {
	case downloading != "":
		return fmt.Sprintf("interrupted: the agent stopped while downloading %s", clip(downloading, 256))
	case last == nil:
		return "interrupted: the agent stopped before the first action of the install"
	case last.Action == ActDownload && last.OK:
		return fmt.Sprintf("interrupted: the agent stopped while installing %s (downloaded, install not finished)", clip(last.Name, 256))
	}
	outcome := "failed"
	if last.OK {
		outcome = "ok"
	}
	return fmt.Sprintf("interrupted: the agent stopped after the %s action (%s, %s) before the install finished",
		last.Action, clip(last.Name, 256), outcome)
}

// readJournal reads the journal's lines up to the first one that does not
// parse (a torn write), returning the lines and the offset where the good
// part ends.
func readJournal(p string) ([]line, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 4096)
	var lines []line
	var good int64
	for {
		b, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: read the rest of it.
			full := slices.Clone(b)
			for errors.Is(err, bufio.ErrBufferFull) && len(full) <= maxLine {
				b, err = r.ReadSlice('\n')
				full = append(full, b...)
			}
			b = full
		}
		if err != nil {
			// No newline: a torn last line, or the end.
			return lines, good, nil
		}
		var l line
		if json.Unmarshal(bytes.TrimSpace(b), &l) != nil || (l.Action.Action == "" && l.Tmp == "") {
			return lines, good, nil
		}
		lines = append(lines, l)
		good += int64(len(b))
	}
}

func statusOf(lines []line) Status {
	st := Status{Actions: make([]Action, 0, len(lines))}
	for _, l := range lines {
		if l.Action.Action == "" {
			continue
		}
		st.Actions = append(st.Actions, l.Action)
		if l.Action.Action == ActDone {
			st.Done = true
		}
	}
	return st
}

func writeLine(f *os.File, l line) error {
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		return err
	}
	return f.Sync()
}

// noteTmp records the temporary file the download of name is written to,
// for Recover to remove if the install is interrupted. Not an action.
func (j *Journal) noteTmp(path, name string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := writeLine(j.f, line{Tmp: path, Action: Action{Name: clip(name, maxName)}}); err != nil {
		return fmt.Errorf("install journal %s: %w", j.id, err)
	}
	return nil
}

// Journal is the action log of one running install. Append and Finish are
// called by the install's goroutine; Status may be called from any.
type Journal struct {
	s  *Store
	id string

	// progress is Request.Progress, called after each write, outside mu.
	progress func(n int, a Action)

	mu      sync.Mutex
	f       *os.File
	actions []Action
	dropped int
	done    bool
}

// ID is the install's id.
func (j *Journal) ID() string { return j.id }

// Append writes an action (not done: see Finish) and syncs it to disk.
// Beyond the store's MaxActions-1 actions it is counted, not written.
func (j *Journal) Append(a Action) error { return j.append(line{Action: a}) }

func (j *Journal) append(l line) error {
	l.Name = clip(l.Name, maxName)
	l.Msg = clip(l.Msg, maxMsg)
	if l.Time == 0 {
		l.Time = j.s.now().Unix()
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.done {
		return fmt.Errorf("install journal %s: already finished", j.id)
	}
	if l.Action.Action == ActDone {
		return fmt.Errorf("install journal %s: done is written by Finish", j.id)
	}
	if len(j.actions) >= j.s.maxActions-1 {
		j.dropped++
		j.s.mu.Lock()
		j.s.dropped++
		j.s.mu.Unlock()
		return nil
	}
	if err := writeLine(j.f, l); err != nil {
		return fmt.Errorf("install journal %s: %w", j.id, err)
	}
	j.actions = append(j.actions, l.Action)
	if j.progress != nil && l.Action.Action != "" {
		n := len(j.actions) - 1
		j.mu.Unlock()
		j.progress(n, l.Action)
		j.mu.Lock()
	}
	return nil
}

// Finish writes the done action, syncs and closes the journal. Actions
// dropped at the limit are named in its msg.
func (j *Journal) Finish(ok bool, msg string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.done {
		return nil
	}
	j.done = true
	if j.dropped > 0 {
		note := fmt.Sprintf("%d actions not recorded (journal limit %d)", j.dropped, j.s.maxActions)
		if msg == "" {
			msg = note
		} else {
			msg += "; " + note
		}
		j.s.log.Warn("install: actions dropped at the journal limit", "id", j.id, "dropped", j.dropped, "limit", j.s.maxActions)
	}
	done := Action{Action: ActDone, Name: j.id, Time: j.s.now().Unix(), OK: ok, Msg: clip(msg, maxMsg)}
	err := writeLine(j.f, line{Action: done})
	j.actions = append(j.actions, done)
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	j.s.mu.Lock()
	delete(j.s.open, j.id)
	j.s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("install journal %s: %w", j.id, err)
	}
	if j.progress != nil {
		n := len(j.actions) - 1
		j.mu.Unlock()
		j.progress(n, done)
		j.mu.Lock()
	}
	return nil
}

// Status returns a copy of the action log so far.
func (j *Journal) Status() Status {
	j.mu.Lock()
	defer j.mu.Unlock()
	return Status{Done: j.done, Actions: slices.Clone(j.actions)}
}

// clip shortens s to at most n bytes (on a rune boundary), marking the cut.
func clip(s string, n int) string { return pkgkind.Clip(s, n) }
