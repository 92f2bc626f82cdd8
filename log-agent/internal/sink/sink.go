// Package sink holds the local sinks of log-agent: Discard (acknowledges
// and forgets, for benchmarks) and File (a directory of per-source files,
// for tests, for the kill -9 runs and as a local collector until delivery
// to agent-server exists).
//
// # The file sink
//
// Every source (batch.Source id) gets a file <dir>/<project>/<id>.log of
// entries
//
//	<offset> <stream> <flags> <length>\n<data>\n
//
// so any bytes go through unchanged. The sink keeps, per source, the
// highest offset it stored and skips records at or below it: batches
// delivered again after a crash (at-least-once) leave each line stored
// once. The high-water marks are recovered from the files themselves on
// open (a torn last entry is cut), so they survive a kill -9 of the
// process. <dir>/<project>/sources.json maps ids to source names.
//
// A *File is safe for concurrent use.
package sink

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"

	"github.com/agentfleet/libagent/statefile"

	"github.com/agentfleet/log-agent/internal/batch"
)

// Discard acknowledges every batch and keeps nothing.
type Discard struct{}

// Ship acknowledges all.
func (Discard) Ship(_ context.Context, bs []*batch.Batch) (int, error) { return len(bs), nil }

// File is the file sink.
type File struct {
	dir string
	// Sync: fsync each file written before acknowledging (a host crash
	// then loses nothing acknowledged).
	Sync bool

	mu    sync.Mutex
	files map[string]*source // by project/id
	names map[string]map[string]string
}

type source struct {
	f    *os.File
	high int64 // highest offset stored; -1: none
	size int64
}

var idRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// NewFile returns a file sink writing under dir.
func NewFile(dir string) (*File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("file sink: %w", err)
	}
	return &File{dir: dir, files: map[string]*source{}, names: map[string]map[string]string{}}, nil
}

// Ship stores the batches' records, skipping the ones already stored.
func (s *File) Ship(ctx context.Context, bs []*batch.Batch) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, b := range bs {
		if err := ctx.Err(); err != nil {
			return i, err
		}
		if err := s.store(b); err != nil {
			return i, err
		}
	}
	return len(bs), nil
}

func (s *File) store(b *batch.Batch) error {
	if !idRE.MatchString(b.Project) {
		return fmt.Errorf("file sink: bad project name %q", b.Project)
	}
	recs, err := b.Records(0)
	if err != nil {
		return fmt.Errorf("file sink: batch %d: %w", b.Seq, err)
	}
	srcs := make([]*source, len(b.Sources))
	for i, src := range b.Sources {
		if !idRE.MatchString(src.ID) {
			return fmt.Errorf("file sink: bad source id %q", src.ID)
		}
		if srcs[i], err = s.open(b.Project, src); err != nil {
			return err
		}
	}
	bufs := make([]bytes.Buffer, len(srcs))
	highs := make([]int64, len(srcs))
	for i, sr := range srcs {
		highs[i] = sr.high
	}
	var hdr [64]byte
	for _, r := range recs {
		if r.Offset <= highs[r.Source] {
			continue // stored before (a delivery repeated after a crash)
		}
		highs[r.Source] = r.Offset
		w := &bufs[r.Source]
		h := strconv.AppendInt(hdr[:0], r.Offset, 10)
		h = append(h, ' ')
		h = strconv.AppendUint(h, uint64(r.Stream), 10)
		h = append(h, ' ')
		h = strconv.AppendUint(h, uint64(r.Flags), 10)
		h = append(h, ' ')
		h = strconv.AppendInt(h, int64(len(r.Data)), 10)
		h = append(h, '\n')
		w.Write(h)
		w.Write(r.Data)
		w.WriteByte('\n')
	}
	for i, sr := range srcs {
		if bufs[i].Len() == 0 {
			continue
		}
		if _, err := sr.f.Write(bufs[i].Bytes()); err != nil {
			_ = sr.f.Truncate(sr.size)
			return fmt.Errorf("file sink: %w", err)
		}
		if s.Sync {
			if err := sr.f.Sync(); err != nil {
				return fmt.Errorf("file sink: %w", err)
			}
		}
		sr.size += int64(bufs[i].Len())
		sr.high = highs[i]
	}
	return nil
}

func (s *File) open(project string, src batch.Source) (*source, error) {
	key := project + "/" + src.ID
	if sr, ok := s.files[key]; ok {
		return sr, nil
	}
	dir := filepath.Join(s.dir, project)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("file sink: %w", err)
	}
	names := s.names[project]
	if names == nil {
		names = map[string]string{}
		if b, err := os.ReadFile(filepath.Join(dir, "sources.json")); err == nil {
			_ = json.Unmarshal(b, &names)
		}
		s.names[project] = names
	}
	if names[src.ID] != src.Name {
		names[src.ID] = src.Name
		b, _ := json.MarshalIndent(names, "", "  ")
		if err := statefile.WriteAtomic(filepath.Join(dir, "sources.json"), b, 0o644); err != nil {
			return nil, fmt.Errorf("file sink: %w", err)
		}
	}
	path := filepath.Join(dir, src.ID+".log")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("file sink: %w", err)
	}
	high, size, err := recoverFile(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("file sink %s: %w", path, err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, fmt.Errorf("file sink: %w", err)
	}
	if _, err := f.Seek(size, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("file sink: %w", err)
	}
	sr := &source{f: f, high: high, size: size}
	s.files[key] = sr
	return sr, nil
}

// Entry is one stored record.
type Entry struct {
	Offset int64
	Stream byte
	Flags  byte
	Data   []byte
}

// ReadEntries calls fn for every whole entry of a sink file and returns the
// size they take (a torn last entry is not included).
func ReadEntries(r io.Reader, fn func(Entry) error) (int64, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	var size int64
	for {
		head, err := br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, bufio.ErrBufferFull) {
				return size, nil
			}
			return size, err
		}
		var e Entry
		var n int
		var stream, flags int
		if k, err := fmt.Sscanf(string(head), "%d %d %d %d\n", &e.Offset, &stream, &flags, &n); k != 4 || err != nil || n < 0 {
			return size, nil
		}
		hl := int64(len(head))
		e.Stream, e.Flags = byte(stream), byte(flags)
		e.Data = make([]byte, n+1)
		if _, err := io.ReadFull(br, e.Data); err != nil || e.Data[n] != '\n' {
			return size, nil
		}
		e.Data = e.Data[:n]
		if err := fn(e); err != nil {
			return size, err
		}
		size += hl + int64(n) + 1
	}
}

func recoverFile(f *os.File) (high, size int64, err error) {
	high = -1
	size, err = ReadEntries(f, func(e Entry) error {
		high = e.Offset
		return nil
	})
	return high, size, err
}

// Sources returns the id → name map of a project's stored sources.
func Sources(dir, project string) (map[string]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, project, "sources.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	return m, json.Unmarshal(b, &m)
}

// Close closes the open files.
func (s *File) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for k, sr := range s.files {
		errs = append(errs, sr.f.Close())
		delete(s.files, k)
	}
	return errors.Join(errs...)
}

// High returns the highest offset stored for a source (-1: none), for
// tests.
func (s *File) High(project, id string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sr, ok := s.files[project+"/"+id]; ok {
		return sr.high
	}
	return -1
}
