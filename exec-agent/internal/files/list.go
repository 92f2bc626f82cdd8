package files

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/agentfleet/libagent/protocol"
)

// Options configure an FS. The zero value is usable.
type Options struct {
	// TempDir is the directory an upload to "$$TMP$$" goes to; "": os.TempDir().
	TempDir string
}

// FS lists directories and writes uploads. It caches uid/gid → name
// lookups (names found are kept; misses are looked up again on the next
// listing, so a user created later shows up). Safe for concurrent use.
type FS struct {
	tmp   string
	names names
}

// New returns an FS.
func New(opts Options) *FS {
	return &FS{tmp: opts.TempDir}
}

// List lists dir (path rule in the package doc) sorted by name. Entries are
// not followed: a symlink is reported as a link (mode with os.ModeSymlink,
// its own size and time) with its target in LinkDir. Owner names are login
// names, the numeric id when the id has no name. On Windows "/" lists the
// drives.
func (fs *FS) List(dir string) ([]protocol.FileInfo, error) {
	if isDrivesRoot(dir) {
		return listDrives()
	}
	clean, err := CleanPath(dir)
	if err != nil {
		return nil, fmt.Errorf("ls: %w", err)
	}
	ents, err := os.ReadDir(clean)
	if err != nil {
		return nil, fmt.Errorf("ls: %w", err)
	}
	miss := map[string]bool{} // ids without a name, for this listing only
	list := make([]protocol.FileInfo, 0, len(ents))
	for _, e := range ents {
		full := filepath.Join(clean, e.Name())
		fi, err := e.Info()
		if err != nil {
			continue // removed since ReadDir
		}
		info := protocol.FileInfo{
			Name: e.Name(), Mod: fi.Mode(), Size: uint64(max(fi.Size(), 0)), ModTime: fi.ModTime(),
		}
		info.User, info.Group = fs.owner(full, fi, miss)
		if fi.Mode()&os.ModeSymlink != 0 {
			info.IsLink = true
			info.LinkDir, _ = os.Readlink(full)
		}
		list = append(list, info)
	}
	slices.SortFunc(list, func(a, b protocol.FileInfo) int { return strings.Compare(a.Name, b.Name) })
	return list, nil
}
