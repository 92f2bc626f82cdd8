package statefile

// Chmod on Windows only toggles the read-only bit; failures are not fatal.
func chmodUnsupported() bool { return true }
