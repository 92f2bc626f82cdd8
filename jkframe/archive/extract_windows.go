package archive

// platformName refuses names Windows cannot store as written.
func platformName(name string) error { return windowsName(name) }
