package durable

// IsNoSpace reports whether err says the file system is full: ENOSPC or a
// user's quota exhausted (EDQUOT) on Unix, ERROR_DISK_FULL or
// ERROR_HANDLE_DISK_FULL on Windows. Such a write may succeed once space
// comes back, unlike most other write errors.
func IsNoSpace(err error) bool { return err != nil && isNoSpace(err) }
