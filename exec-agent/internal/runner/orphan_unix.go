//go:build unix

package runner

func (pr *proc) taskMarker() string { return pr.marker }
