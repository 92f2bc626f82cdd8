package utils

import (
	"testing"
)

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1.0.0", "1.0.0", 0},
		{"v1.0.0", "1.0.0", 0},
		{"1.2", "1.2.0", 0},
		{"v1.2", "1.2.0", 0},
		{"1.0.0+build.1", "1.0.0+build.2", 0},
		{"1.0.0-rc.1+b", "1.0.0-rc.1", 0},
		{"1.0.0", "2.0.0", -1},
		{"2.0.0", "2.1.0", -1},
		{"2.1.0", "2.1.1", -1},
		{"1.9.0", "1.10.0", -1},
		{"1.2", "1.2.1", -1},
		{"99999999999999999999.0.0", "100000000000000000000.0.0", -1},
		// The chain from semver.org §11.
		{"1.0.0-alpha", "1.0.0-alpha.1", -1},
		{"1.0.0-alpha.1", "1.0.0-alpha.beta", -1},
		{"1.0.0-alpha.beta", "1.0.0-beta", -1},
		{"1.0.0-beta", "1.0.0-beta.2", -1},
		{"1.0.0-beta.2", "1.0.0-beta.11", -1},
		{"1.0.0-beta.11", "1.0.0-rc.1", -1},
		{"1.0.0-rc.1", "1.0.0", -1},
		{"1.0.0-2", "1.0.0-10", -1},
		{"1.0.0-Z", "1.0.0-a", -1},
		{"1.0.0-1a", "1.0.0-1b", -1},
		{"1.0.0-x-y", "1.0.0-x", 1},
		{"1.2-rc.1", "1.2.0", -1},
	}
	for _, tc := range tests {
		got, err := CompareVersions(tc.a, tc.b)
		if err != nil {
			t.Errorf("CompareVersions(%q, %q): %v", tc.a, tc.b, err)
			continue
		}
		if got != tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if back, _ := CompareVersions(tc.b, tc.a); back != -tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.b, tc.a, back, -tc.want)
		}
	}
}

var versionBad = []struct {
	in, err string
}{
	{"", `invalid version "": empty`},
	{"v", `invalid version "v": empty`},
	{"1", `invalid version "1": want MAJOR.MINOR or MAJOR.MINOR.PATCH`},
	{"1.2.3.4", `invalid version "1.2.3.4": want MAJOR.MINOR or MAJOR.MINOR.PATCH`},
	{"V1.2.3", `invalid version "V1.2.3": major "V1" is not a number`},
	{"1.x.3", `invalid version "1.x.3": minor "x" is not a number`},
	{"1.2.", `invalid version "1.2.": patch "" is not a number`},
	{"01.2.3", `invalid version "01.2.3": major "01" has a leading zero`},
	{"1.2.03", `invalid version "1.2.03": patch "03" has a leading zero`},
	{"1.2.3-", `invalid version "1.2.3-": empty prerelease identifier`},
	{"1.2.3-rc..1", `invalid version "1.2.3-rc..1": empty prerelease identifier`},
	{"1.2.3-01", `invalid version "1.2.3-01": prerelease identifier "01" has a leading zero`},
	{"1.2.3-rc_1", `invalid version "1.2.3-rc_1": prerelease identifier "rc_1" has a character other than [0-9A-Za-z-]`},
	{"1.2.3+", `invalid version "1.2.3+": empty build identifier`},
	{"1.2.3+a+b", `invalid version "1.2.3+a+b": build identifier "a+b" has a character other than [0-9A-Za-z-]`},
	{" 1.2.3", `invalid version " 1.2.3": major " 1" is not a number`},
}

func TestCompareVersionsErrors(t *testing.T) {
	for _, tc := range versionBad {
		if _, err := CompareVersions(tc.in, "1.0.0"); err == nil || err.Error() != tc.err {
			t.Errorf("CompareVersions(%q, 1.0.0) error = %v, want %s", tc.in, err, tc.err)
		}
		if _, err := CompareVersions("1.0.0", tc.in); err == nil || err.Error() != tc.err {
			t.Errorf("CompareVersions(1.0.0, %q) error = %v, want %s", tc.in, err, tc.err)
		}
	}
}

// FuzzCompareVersions checks that any version that parses compares equal to
// itself and antisymmetrically to a fixed set of others.
func FuzzCompareVersions(f *testing.F) {
	for _, s := range []string{"1.0.0", "v1.2", "1.0.0-alpha.1", "1.0.0-beta.11+b.7", "1.0.0-x-y"} {
		f.Add(s)
	}
	for _, tc := range versionBad {
		f.Add(tc.in)
	}
	others := []string{"0.0.1", "1.0.0", "1.0.0-alpha", "1.0.0-2", "2.0.0-rc.1"}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := CompareVersions(s, s)
		if err != nil {
			return
		}
		if c != 0 {
			t.Fatalf("CompareVersions(%q, itself) = %d", s, c)
		}
		for _, o := range others {
			ab, err1 := CompareVersions(s, o)
			ba, err2 := CompareVersions(o, s)
			if err1 != nil || err2 != nil || ab != -ba {
				t.Fatalf("CompareVersions(%q, %q) = %d, %v; reversed %d, %v", s, o, ab, err1, ba, err2)
			}
		}
	})
}
