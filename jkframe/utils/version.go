package utils

import (
	"cmp"
	"fmt"
	"strings"
)

// CompareVersions compares two versions by Semantic Versioning 2.0.0
// precedence and returns -1, 0 or +1. A leading "v" is allowed, "1.2" is read
// as "1.2.0", prerelease identifiers are compared numerically when both are
// numeric and lexically (ASCII) otherwise, a version with a prerelease sorts
// before the same version without one, and build metadata ("+...") is
// ignored. An invalid version is an error naming it.
func CompareVersions(a, b string) (int, error) {
	va, err := parseVersion(a)
	if err != nil {
		return 0, err
	}
	vb, err := parseVersion(b)
	if err != nil {
		return 0, err
	}
	for i := range va.core {
		if c := compareNumeric(va.core[i], vb.core[i]); c != 0 {
			return c, nil
		}
	}
	switch {
	case len(va.pre) == 0 && len(vb.pre) == 0:
		return 0, nil
	case len(va.pre) == 0:
		return 1, nil
	case len(vb.pre) == 0:
		return -1, nil
	}
	for i := 0; i < len(va.pre) && i < len(vb.pre); i++ {
		if c := comparePrerelease(va.pre[i], vb.pre[i]); c != 0 {
			return c, nil
		}
	}
	return cmp.Compare(len(va.pre), len(vb.pre)), nil
}

type semver struct {
	core [3]string // major, minor, patch: digit strings without leading zeros
	pre  []string
}

func parseVersion(s string) (semver, error) {
	var v semver
	bad := func(why string) (semver, error) {
		return semver{}, fmt.Errorf("invalid version %q: %s", s, why)
	}
	rest := strings.TrimPrefix(s, "v")
	if rest == "" {
		return bad("empty")
	}
	rest, build, hasBuild := strings.Cut(rest, "+")
	if hasBuild {
		for id := range strings.SplitSeq(build, ".") {
			if why := checkIdentifier(id, "build"); why != "" {
				return bad(why)
			}
		}
	}
	rest, pre, hasPre := strings.Cut(rest, "-")
	if hasPre {
		for id := range strings.SplitSeq(pre, ".") {
			if why := checkIdentifier(id, "prerelease"); why != "" {
				return bad(why)
			}
			if isDigits(id) && len(id) > 1 && id[0] == '0' {
				return bad(fmt.Sprintf("prerelease identifier %q has a leading zero", id))
			}
			v.pre = append(v.pre, id)
		}
	}
	parts := strings.Split(rest, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return bad("want MAJOR.MINOR or MAJOR.MINOR.PATCH")
	}
	v.core[2] = "0"
	names := [3]string{"major", "minor", "patch"}
	for i, p := range parts {
		if !isDigits(p) {
			return bad(fmt.Sprintf("%s %q is not a number", names[i], p))
		}
		if len(p) > 1 && p[0] == '0' {
			return bad(fmt.Sprintf("%s %q has a leading zero", names[i], p))
		}
		v.core[i] = p
	}
	return v, nil
}

// checkIdentifier returns why id is not a valid prerelease or build
// identifier, or "".
func checkIdentifier(id, kind string) string {
	if id == "" {
		return "empty " + kind + " identifier"
	}
	for _, c := range []byte(id) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
			return fmt.Sprintf("%s identifier %q has a character other than [0-9A-Za-z-]", kind, id)
		}
	}
	return ""
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// compareNumeric compares digit strings without leading zeros, of any length.
func compareNumeric(a, b string) int {
	if c := cmp.Compare(len(a), len(b)); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

func comparePrerelease(a, b string) int {
	an, bn := isDigits(a), isDigits(b)
	switch {
	case an && bn:
		return compareNumeric(a, b)
	case an:
		return -1 // numeric identifiers have lower precedence
	case bn:
		return 1
	}
	return strings.Compare(a, b)
}
