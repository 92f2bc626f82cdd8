package collect

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// netFS are the file system types reported although their source is not a
// block device.
var netFS = map[string]bool{
	"nfs": true, "nfs4": true, "cifs": true, "smb3": true, "smbfs": true, "ceph": true,
	"fuse.glusterfs": true, "glusterfs": true, "zfs": true, "9p": true, "fuse.sshfs": true,
}

// mounts reads the mount table and keeps the file systems that hold data:
// block devices, network and ZFS file systems, and "/" whatever it is (a
// container's overlay). Bind mounts of sub-directories are dropped (btrfs
// sub-volumes kept); a mount point mounted twice keeps the last (visible) one.
func (c *Collector) mounts() ([]mount, error) {
	data, err := os.ReadFile(c.proc("self", "mountinfo"))
	if err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	all, err := parseMountinfo(data)
	if err != nil {
		return nil, err
	}
	var out []mount
	at := make(map[string]int)
	for _, m := range all {
		block := strings.HasPrefix(m.Source, "/")
		if !(block || netFS[m.FSType] || m.Point == "/") {
			continue
		}
		if block && m.Root != "/" && m.FSType != "btrfs" {
			continue
		}
		if i, ok := at[m.Point]; ok {
			out[i] = m
			continue
		}
		at[m.Point] = len(out)
		out = append(out, m)
	}
	return out, nil
}

// devIndex resolves the source of a mount to the kernel's name of its block
// device (sda1, dm-0, nvme0n1p2): by device number through /proc/diskstats,
// else by the source path (/dev/mapper/<name> through /sys/block/dm-*/dm/name,
// symbolic links such as /dev/disk/by-uuid/... through the Dev root).
type devIndex struct {
	byNum map[[2]uint32]string
	dm    map[string]string // device-mapper name → dm-N
	known map[string]bool   // kernel names
}

func (c *Collector) newDevIndex(stats []diskStat) *devIndex {
	ix := &devIndex{byNum: make(map[[2]uint32]string), dm: make(map[string]string), known: make(map[string]bool)}
	for _, s := range stats {
		ix.byNum[[2]uint32{s.Major, s.Minor}] = s.Name
		ix.known[s.Name] = true
	}
	dms, _ := filepath.Glob(c.sys("block", "dm-*", "dm", "name"))
	for _, p := range dms {
		if b, err := os.ReadFile(p); err == nil {
			ix.dm[strings.TrimSpace(string(b))] = filepath.Base(filepath.Dir(filepath.Dir(p)))
		}
	}
	return ix
}

func (c *Collector) resolve(ix *devIndex, m mount) string {
	if m.Major != 0 {
		if n, ok := ix.byNum[[2]uint32{m.Major, m.Minor}]; ok {
			return n
		}
	}
	rel, ok := strings.CutPrefix(m.Source, "/dev/")
	if !ok {
		return ""
	}
	if name, ok := strings.CutPrefix(rel, "mapper/"); ok {
		return ix.dm[name]
	}
	if ix.known[rel] {
		return rel
	}
	// A symbolic link inside the Dev root (by-uuid, by-label, vg/lv).
	p := filepath.Join(c.roots.Dev, rel)
	if t, err := filepath.EvalSymlinks(p); err == nil {
		base := filepath.Base(t)
		if ix.known[base] {
			return base
		}
		for name, dm := range ix.dm {
			if base == name {
				return dm
			}
		}
	}
	return ""
}
