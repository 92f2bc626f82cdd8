//go:build !linux

package collect

import (
	"context"
	"errors"

	"github.com/shirou/gopsutil/v4/sensors"

	"github.com/agentfleet/libagent/protocol"
)

// Temperatures reads the sensors gopsutil knows of (SMC on macOS, WMI on
// Windows); sensors that fail are warnings, the others reported.
func (c *Collector) Temperatures(ctx context.Context) ([]protocol.HMTemperature, []Warning) {
	var w warns
	list, err := sensors.TemperaturesWithContext(ctx)
	var partial *sensors.Warnings
	switch {
	case errors.As(err, &partial):
		for _, e := range partial.List {
			w.add("temps", e)
		}
	case err != nil:
		w.add("temps", err)
	}
	out := make([]protocol.HMTemperature, 0, len(list))
	for _, t := range list {
		out = append(out, protocol.HMTemperature{Name: t.SensorKey, Temp: protocol.F2(t.Temperature)})
	}
	return out, w
}
