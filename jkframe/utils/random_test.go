package utils

import (
	"regexp"
	"testing"
)

func TestRandomHex(t *testing.T) {
	for _, n := range []int{-1, 0, 1, 16, 32} {
		s := RandomHex(n)
		want := max(n, 0) * 2
		if len(s) != want || !regexp.MustCompile(`^[0-9a-f]*$`).MatchString(s) {
			t.Errorf("RandomHex(%d) = %q, want %d hex digits", n, s, want)
		}
	}
	if a, b := RandomHex(16), RandomHex(16); a == b {
		t.Errorf("two RandomHex(16) calls gave the same %q", a)
	}
}

func TestNewUUID(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	a, b := NewUUID(), NewUUID()
	if !re.MatchString(a) {
		t.Errorf("NewUUID() = %q, not a version 4 UUID", a)
	}
	if a == b {
		t.Errorf("two NewUUID calls gave the same %q", a)
	}
}
