package config

import "github.com/agentfleet/jkframe/utils"

// Packages configures the server's package repository (internal/packages,
// /api/packages).
type Packages struct {
	// Dir holds the repository; "" is <data_dir>/packages.
	Dir string `kv:"dir"`
	// MaxSize bounds one package.
	MaxSize utils.Bytes `kv:"max_size"`
}

// DefaultPackagesMaxSize is the default packages.max_size (2 GiB).
const DefaultPackagesMaxSize = 2 << 30

func (p *Packages) check(add func(error)) {
	if p.MaxSize < 1<<10 || p.MaxSize > 1<<40 {
		add(invalid("packages.max_size", "must be between 1K and 1T"))
	}
}
