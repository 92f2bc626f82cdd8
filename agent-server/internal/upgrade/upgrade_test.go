package upgrade

import "testing"

func TestPackageName(t *testing.T) {
	for _, c := range []struct{ typ, version, os, arch, want string }{
		{"exec-agent", "2.0.0", "linux", "x86_64", "exec-agent_2.0.0_linux_amd64"},
		{"exec-agent", "v2.0.0", "linux", "aarch64", "exec-agent_2.0.0_linux_arm64"},
		{"metrics-agent", "1.2.3-rc.1", "windows", "x86_64", "metrics-agent_1.2.3-rc.1_windows_amd64.exe"},
		{"exec-agent", "1", "linux", "i686", "exec-agent_1_linux_386"},
		{"exec-agent", "1", "linux", "armv7l", "exec-agent_1_linux_arm"},
		{"exec-agent", "1", "darwin", "arm64", "exec-agent_1_darwin_arm64"},
		{"exec-agent", "1", "linux", "riscv64", "exec-agent_1_linux_riscv64"},
	} {
		if got := PackageName(c.typ, c.version, c.os, c.arch); got != c.want {
			t.Errorf("PackageName(%q, %q, %q, %q) = %q, want %q", c.typ, c.version, c.os, c.arch, got, c.want)
		}
	}
}
