package logging

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Retention (Prune) and line counts (Count) walk a project's closed
// segments; the newest segment of a host, whose marks are in use, is never
// deleted.

type segFile struct {
	project, host string
	seq           uint64
	path          string
	size          int64
	mod           time.Time
}

// Prune applies retention: closed segments older than MaxAge, then the
// oldest closed segments of a project over MaxBytes. It returns how many
// segments and bytes it deleted.
func (s *Store) Prune() (n int, bytes int64, err error) {
	projects, err := os.ReadDir(s.o.Dir)
	if err != nil {
		return 0, 0, err
	}
	now := s.o.Now()
	for _, pe := range projects {
		if !pe.IsDir() || strings.HasPrefix(pe.Name(), ".") {
			continue
		}
		project := pe.Name()
		var files []segFile
		var total int64
		err := s.eachSegment(project, func(host, path string, seq uint64, newest bool) error {
			fi, err := os.Stat(path)
			if err != nil {
				return nil // deleted meanwhile
			}
			total += fi.Size()
			if newest || s.active(project, host, seq) {
				return nil // the newest segment holds the marks in use
			}
			files = append(files, segFile{project, host, seq, path, fi.Size(), fi.ModTime()})
			return nil
		})
		if err != nil {
			return n, bytes, err
		}
		slices.SortFunc(files, func(a, b segFile) int { return a.mod.Compare(b.mod) })
		for _, f := range files {
			old := s.o.MaxAge > 0 && now.Sub(f.mod) > s.o.MaxAge
			over := s.o.MaxBytes > 0 && total > s.o.MaxBytes
			if !old && !over {
				continue
			}
			if s.o.BeforeDelete != nil {
				s.o.BeforeDelete(f.project, f.host, f.seq, f.path)
			}
			if err := os.Remove(f.path); err != nil {
				return n, bytes, err
			}
			n++
			bytes += f.size
			total -= f.size
		}
	}
	return n, bytes, nil
}

// Count returns the number of lines stored for a project by reading the
// frame headers only (O(frames); for tests and tools, not for the API).
func (s *Store) Count(project string) (int64, error) {
	var total int64
	err := s.eachSegment(project, func(_, path string, _ uint64, _ bool) error {
		n, err := countSegment(path)
		total += n
		return err
	})
	if err != nil {
		return 0, err
	}
	return total, nil
}

// eachSegment calls fn for every segment of a project, host by host, in
// sequence order; newest marks a host's newest segment.
func (s *Store) eachSegment(project string, fn func(host, path string, seq uint64, newest bool) error) error {
	hosts, err := s.Hosts(project)
	if err != nil {
		return err
	}
	for _, host := range hosts {
		dir := filepath.Join(s.o.Dir, project, hostDir(host))
		seqs, err := segments(dir)
		if err != nil {
			continue // removed meanwhile
		}
		for i, seq := range seqs {
			if err := fn(host, filepath.Join(dir, segName(seq)), seq, i == len(seqs)-1); err != nil {
				return err
			}
		}
	}
	return nil
}
