package config

import "io/fs"

// permWarning: Windows files carry ACLs, not modes; the user profile's
// AppData is private to its user.
func permWarning(string, fs.FileMode) string { return "" }
