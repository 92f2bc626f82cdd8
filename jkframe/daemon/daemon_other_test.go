//go:build !unix

package daemon

import "os"

var helperSignals = []os.Signal{os.Interrupt}
