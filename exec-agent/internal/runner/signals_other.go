//go:build !unix

package runner

// defaultChildSignals: Windows has no inherited signal dispositions to undo.
func defaultChildSignals() {}
