//go:build !linux && !windows

package collect

import (
	"context"

	"github.com/shirou/gopsutil/v4/load"
)

func loadAvg(ctx context.Context) ([3]float64, error) {
	l, err := load.AvgWithContext(ctx)
	if err != nil {
		return [3]float64{}, err
	}
	return [3]float64{l.Load1, l.Load5, l.Load15}, nil
}
