package tail

import (
	"hash/fnv"
	"os"
)

// fileKey has no device and inode to offer on Windows (FileInfo does not
// carry the file index): the path stands in for the inode, so a renamed
// file is found again by its fingerprint only.
func fileKey(path string, _ os.FileInfo) (dev, ino uint64) {
	h := fnv.New64a()
	h.Write([]byte(path))
	return 0, h.Sum64()
}
