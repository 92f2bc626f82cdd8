package manifest

import (
	"bytes"
	_ "embed"
)

//go:embed basic.yaml
var basicYAML []byte

// BasicFile is the name Basic's items carry in problems.
const BasicFile = "basic.yaml"

// Basic returns the items of the basic.* keys every agent has, in Chinese
// and English. Each call returns a fresh copy.
func Basic() *Manifest {
	m, err := Parse(bytes.NewReader(basicYAML), BasicFile)
	if err != nil {
		panic("manifest: embedded basic.yaml: " + err.Error()) // covered by TestBasicValid
	}
	return m
}
