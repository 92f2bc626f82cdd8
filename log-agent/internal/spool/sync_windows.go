package spool

// syncDir is a no-op on Windows, where directories cannot be fsynced and
// NTFS journals the metadata.
func syncDir(string) error { return nil }
