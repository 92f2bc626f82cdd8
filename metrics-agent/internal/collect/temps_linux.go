package collect

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/agentfleet/libagent/protocol"
)

// Temperatures reads every sensor of /sys/class/hwmon (named
// "<chip>_<label>", or "<chip>_temp<N>" without a label) and of
// /sys/class/thermal ("<zone type>"). A sensor that cannot be read is a
// warning; the others are reported.
func (c *Collector) Temperatures(_ context.Context) ([]protocol.HMTemperature, []Warning) {
	var w warns
	var out []protocol.HMTemperature
	chips, _ := filepath.Glob(c.sys("class", "hwmon", "hwmon*"))
	slices.SortFunc(chips, naturalLess)
	for _, chip := range chips {
		dir := chip
		inputs, _ := filepath.Glob(filepath.Join(dir, "temp*_input"))
		if len(inputs) == 0 { // kernels before 3.x kept them under device/
			dir = filepath.Join(chip, "device")
			inputs, _ = filepath.Glob(filepath.Join(dir, "temp*_input"))
		}
		name, err := c.readString(filepath.Join(chip, "name"))
		if err != nil {
			if name, err = c.readString(filepath.Join(chip, "device", "name")); err != nil {
				name = filepath.Base(chip)
			}
		}
		slices.SortFunc(inputs, func(a, b string) int {
			return naturalLess(strings.TrimSuffix(a, "_input"), strings.TrimSuffix(b, "_input"))
		})
		for _, in := range inputs {
			sensor := strings.TrimSuffix(filepath.Base(in), "_input")
			label, err := c.readString(filepath.Join(dir, sensor+"_label"))
			if err != nil || label == "" {
				label = sensor
			}
			t, err := readMilli(in)
			if err != nil {
				w.add("temps."+name+"_"+sensor, err)
				continue
			}
			out = append(out, protocol.HMTemperature{Name: name + "_" + sensorKey(label), Temp: protocol.F2(t)})
		}
	}
	zones, _ := filepath.Glob(c.sys("class", "thermal", "thermal_zone*"))
	slices.SortFunc(zones, naturalLess)
	for _, z := range zones {
		name, err := c.readString(filepath.Join(z, "type"))
		if err != nil || name == "" {
			name = filepath.Base(z)
		}
		t, err := readMilli(filepath.Join(z, "temp"))
		if err != nil {
			w.add("temps."+name, err)
			continue
		}
		out = append(out, protocol.HMTemperature{Name: name, Temp: protocol.F2(t)})
	}
	return out, w
}

// readMilli reads a millidegree Celsius file.
func readMilli(path string) (float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %q: %w", path, strings.TrimSpace(string(b)), errSyntax)
	}
	return float64(v) / 1000, nil
}

// sensorKey lower-cases a label and drops its blanks: "Core 0" → "core0".
func sensorKey(label string) string {
	return strings.ToLower(strings.Join(strings.Fields(label), ""))
}

// naturalLess orders hwmon2 before hwmon10.
func naturalLess(a, b string) int {
	na, nb := trailingNum(a), trailingNum(b)
	if pa, pb := a[:len(a)-len(na)], b[:len(b)-len(nb)]; pa != pb || na == "" || nb == "" {
		return strings.Compare(a, b)
	}
	x, _ := strconv.Atoi(na)
	y, _ := strconv.Atoi(nb)
	return x - y
}

func trailingNum(s string) string {
	i := len(s)
	for i > 0 && s[i-1] >= '0' && s[i-1] <= '9' {
		i--
	}
	return s[i:]
}
