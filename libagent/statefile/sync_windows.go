package statefile

// Windows cannot open a directory for fsync; the rename is durable once
// MoveFileEx returns with the flags Go uses.
func syncDir(string) error { return nil }

// Chmod on Windows only toggles the read-only bit; failures are not fatal.
func chmodUnsupported() bool { return true }
