//go:build unix && !linux

package agent

import "testing"

// liveGroupMembers is only implemented on Linux (/proc).
func liveGroupMembers(t *testing.T, _ int) []string {
	t.Skip("needs /proc")
	return nil
}
