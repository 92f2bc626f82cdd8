package collect

import (
	"os"
	"strconv"
	"sync"
	"time"
)

// userCache maps uids to user names from passwd, read again only when the
// file's modification time or size changes.
type userCache struct {
	mu    sync.Mutex
	mtime time.Time
	size  int64
	byUID map[uint32]string
}

// lookup returns the names of uids; a uid without a passwd entry is named
// by its number, as ps does.
func (u *userCache) lookup(path string, uids []uint32, w *warns) map[uint32]string {
	u.mu.Lock()
	defer u.mu.Unlock()
	fi, err := os.Stat(path)
	if err != nil {
		w.add("process.user", err)
	} else if u.byUID == nil || !fi.ModTime().Equal(u.mtime) || fi.Size() != u.size {
		if b, err := os.ReadFile(path); err != nil {
			w.add("process.user", err)
		} else {
			list, _ := parsePasswd(b)
			m := make(map[uint32]string, len(list))
			for _, e := range list {
				id, _ := strconv.ParseUint(e.ID, 10, 32)
				if _, dup := m[uint32(id)]; !dup {
					m[uint32(id)] = e.Name
				}
			}
			u.byUID, u.mtime, u.size = m, fi.ModTime(), fi.Size()
		}
	}
	out := make(map[uint32]string, 8)
	for _, id := range uids {
		if _, done := out[id]; done {
			continue
		}
		name, ok := u.byUID[id]
		if !ok {
			name = strconv.FormatUint(uint64(id), 10)
		}
		out[id] = name
	}
	return out
}
