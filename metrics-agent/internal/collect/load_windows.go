package collect

import (
	"context"
	"fmt"
)

// loadAvg: Windows has no load average (gopsutil emulates one with a
// background goroutine it never stops, which an agent must not start).
func loadAvg(context.Context) ([3]float64, error) {
	return [3]float64{}, fmt.Errorf("load average: %w", ErrUnsupported)
}
