//go:build unix

package files

import (
	"errors"
	"fmt"
	"io/fs"
	"os/user"
	"strconv"
	"sync"
	"syscall"
)

// names caches the user and group names found.
type names struct {
	mu     sync.Mutex
	users  map[uint32]string
	groups map[uint32]string
}

// owner returns the login names of fi's user and group.
func (f *FS) owner(_ string, fi fs.FileInfo, miss map[string]bool) (string, string) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", ""
	}
	return f.names.name("u", uint32(st.Uid), miss), f.names.name("g", uint32(st.Gid), miss)
}

func (f *names) name(kind string, id uint32, miss map[string]bool) string {
	num := strconv.FormatUint(uint64(id), 10)
	f.mu.Lock()
	if f.users == nil {
		f.users, f.groups = map[uint32]string{}, map[uint32]string{}
	}
	cache := f.users
	if kind == "g" {
		cache = f.groups
	}
	n, ok := cache[id]
	f.mu.Unlock()
	if ok {
		return n
	}
	if miss[kind+num] {
		return num
	}
	var err error
	if kind == "u" {
		var u *user.User
		if u, err = user.LookupId(num); err == nil {
			n = u.Username
		}
	} else {
		var g *user.Group
		if g, err = user.LookupGroupId(num); err == nil {
			n = g.Name
		}
	}
	if err != nil {
		miss[kind+num] = true
		return num
	}
	f.mu.Lock()
	cache[id] = n
	f.mu.Unlock()
	return n
}

// resolveOwner turns user and group names (or numeric ids) into ids; ""
// gives -1 (leave unchanged). A name the host does not know is an
// *OwnerError.
func resolveOwner(owner, group string) (uid, gid int, err error) {
	uid, gid = -1, -1
	if owner != "" {
		uid, err = lookupID(owner, func(s string) (string, error) {
			u, err := user.Lookup(s)
			if err != nil {
				return "", err
			}
			return u.Uid, nil
		})
		if err != nil {
			return 0, 0, ownerErr("own_user", owner, err)
		}
	}
	if group != "" {
		gid, err = lookupID(group, func(s string) (string, error) {
			g, err := user.LookupGroup(s)
			if err != nil {
				return "", err
			}
			return g.Gid, nil
		})
		if err != nil {
			return 0, 0, ownerErr("own_group", group, err)
		}
	}
	return uid, gid, nil
}

// ownerErr is an *OwnerError when the lookup found no such name, else the
// lookup's own failure (the user database could not be read).
func ownerErr(field, name string, err error) error {
	var uu user.UnknownUserError
	var ug user.UnknownGroupError
	if errors.As(err, &uu) || errors.As(err, &ug) {
		return &OwnerError{Field: field, Name: name, Err: err}
	}
	return fmt.Errorf("%s %q: %w", field, name, err)
}

// lookupID resolves a name, or takes a numeric id as it is.
func lookupID(s string, lookup func(string) (string, error)) (int, error) {
	id, err := lookup(s)
	if err != nil {
		var unknownUser user.UnknownUserError
		var unknownGroup user.UnknownGroupError
		if n, nerr := strconv.ParseUint(s, 10, 31); nerr == nil && (errors.As(err, &unknownUser) || errors.As(err, &unknownGroup)) {
			return int(n), nil
		}
		return 0, err
	}
	n, err := strconv.Atoi(id)
	if err != nil {
		return 0, fmt.Errorf("id %q: %w", id, err)
	}
	return n, nil
}
