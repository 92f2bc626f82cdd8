package files

import (
	"errors"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/agentfleet/libagent/protocol"
	"golang.org/x/sys/windows"
)

// names caches SID → account name lookups.
type names struct {
	mu    sync.Mutex
	names map[string]string
}

// owner returns the account names of the owner and primary group in the
// file's security descriptor ("" when it cannot be read; the SID string
// when the SID has no name).
func (f *FS) owner(path string, _ fs.FileInfo, _ map[string]bool) (string, string) {
	sd, err := windows.GetNamedSecurityInfo(path, windows.SE_FILE_OBJECT,
		windows.OWNER_SECURITY_INFORMATION|windows.GROUP_SECURITY_INFORMATION)
	if err != nil {
		return "", ""
	}
	var user, group string
	if sid, _, err := sd.Owner(); err == nil && sid != nil {
		user = f.names.name(sid)
	}
	if sid, _, err := sd.Group(); err == nil && sid != nil {
		group = f.names.name(sid)
	}
	return user, group
}

func (n *names) name(sid *windows.SID) string {
	key := sid.String()
	n.mu.Lock()
	defer n.mu.Unlock()
	if v, ok := n.names[key]; ok {
		return v
	}
	v := key
	if acct, _, _, err := sid.LookupAccount(""); err == nil {
		v = acct
	}
	if n.names == nil {
		n.names = map[string]string{}
	}
	n.names[key] = v
	return v
}

// resolveOwner: owners are not set on Windows; asking for one fails before
// anything is written.
func resolveOwner(owner, group string) (int, int, error) {
	if owner != "" || group != "" {
		return 0, 0, errors.New("own_user and own_group are not supported on Windows")
	}
	return -1, -1, nil
}

// isDrivesRoot: "/" (or "\") is the list of drives.
func isDrivesRoot(dir string) bool { return dir == "/" || dir == `\` }

// listDrives returns C:\, D:\ … as directories.
func listDrives() ([]protocol.FileInfo, error) {
	mask, err := windows.GetLogicalDrives()
	if err != nil {
		return nil, err
	}
	var list []protocol.FileInfo
	for i := range 26 {
		if mask&(1<<i) == 0 {
			continue
		}
		root := string(rune('A'+i)) + `:\`
		info := protocol.FileInfo{Name: root, Mod: os.ModeDir | 0o755, LinkDir: ""}
		if fi, err := os.Stat(root); err == nil {
			info.Mod, info.ModTime = fi.Mode(), fi.ModTime()
		} else {
			info.ModTime = time.Time{}
		}
		list = append(list, info)
	}
	return list, nil
}
