package limit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/agentfleet/jkframe/utils"
)

// DiskLimit throttles one block device; zero fields are not limited.
type DiskLimit struct {
	// Major and Minor number the device ("8:0" is /dev/sda).
	Major, Minor uint32
	ReadBytes    utils.Bytes // bytes per second
	WriteBytes   utils.Bytes // bytes per second
	ReadIOPS     uint64
	WriteIOPS    uint64
}

// Dev returns "major:minor".
func (d DiskLimit) Dev() string { return fmt.Sprintf("%d:%d", d.Major, d.Minor) }

// DiskLimits is the value of basic.limit.disk_limit, a JSON array:
//
//	[{"dev":"8:0","read_bytes":"10M","write_bytes":"10M","read_iops":1000,"write_iops":1000}]
//
// Byte rates are strings with units (utils.ParseBytes; a plain JSON number is
// bytes), IOPS are integers. Each entry needs a dev and at least one limit; a
// device appears once.
type DiskLimits []DiskLimit

// diskJSON is the wire form of one entry. Byte rates are RawMessage so both
// "10M" and 10485760 are accepted.
type diskJSON struct {
	Dev        string          `json:"dev"`
	ReadBytes  json.RawMessage `json:"read_bytes,omitempty"`
	WriteBytes json.RawMessage `json:"write_bytes,omitempty"`
	ReadIOPS   uint64          `json:"read_iops,omitempty"`
	WriteIOPS  uint64          `json:"write_iops,omitempty"`
}

// ParseDiskLimits parses the JSON form; empty text is no limits.
func ParseDiskLimits(s string) (DiskLimits, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	var raw []diskJSON
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("disk_limit: want a JSON array of {\"dev\":\"major:minor\",...}: %w", err)
	}
	if dec.More() {
		return nil, errors.New("disk_limit: text after the JSON array")
	}
	out := make(DiskLimits, 0, len(raw))
	seen := map[string]bool{}
	for i, r := range raw {
		var d DiskLimit
		var err error
		if d.Major, d.Minor, err = parseDev(r.Dev); err != nil {
			return nil, fmt.Errorf("disk_limit[%d]: %w", i, err)
		}
		if seen[d.Dev()] {
			return nil, fmt.Errorf("disk_limit[%d]: dev %s listed twice", i, d.Dev())
		}
		seen[d.Dev()] = true
		if d.ReadBytes, err = parseRate(r.ReadBytes); err != nil {
			return nil, fmt.Errorf("disk_limit[%d] (dev %s): read_bytes: %w", i, d.Dev(), err)
		}
		if d.WriteBytes, err = parseRate(r.WriteBytes); err != nil {
			return nil, fmt.Errorf("disk_limit[%d] (dev %s): write_bytes: %w", i, d.Dev(), err)
		}
		d.ReadIOPS, d.WriteIOPS = r.ReadIOPS, r.WriteIOPS
		if d.ReadBytes == 0 && d.WriteBytes == 0 && d.ReadIOPS == 0 && d.WriteIOPS == 0 {
			return nil, fmt.Errorf("disk_limit[%d] (dev %s): no limit set (read_bytes, write_bytes, read_iops, write_iops)", i, d.Dev())
		}
		out = append(out, d)
	}
	return out, nil
}

func parseDev(s string) (major, minor uint32, err error) {
	if s == "" {
		return 0, 0, errors.New(`missing "dev" ("major:minor", e.g. "8:0")`)
	}
	a, b, ok := strings.Cut(s, ":")
	ma, err1 := strconv.ParseUint(a, 10, 32)
	mi, err2 := strconv.ParseUint(b, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("bad dev %q: want \"major:minor\", e.g. \"8:0\"", s)
	}
	return uint32(ma), uint32(mi), nil
}

func parseRate(raw json.RawMessage) (utils.Bytes, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var s string
	if raw[0] != '"' {
		var n uint64
		if err := json.Unmarshal(raw, &n); err != nil {
			return 0, fmt.Errorf("want a size like \"10M\", got %s", raw)
		}
		return utils.Bytes(n), nil
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, err
	}
	return utils.ParseBytes(s)
}

// UnmarshalKV implements the kvconf hook.
func (d *DiskLimits) UnmarshalKV(s string) error {
	v, err := ParseDiskLimits(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalKV implements the kvconf hook; the text parses back to d.
func (d DiskLimits) MarshalKV() (string, error) {
	if len(d) == 0 {
		return "", nil
	}
	raw := make([]diskJSON, len(d))
	for i, l := range d {
		raw[i] = diskJSON{Dev: l.Dev(), ReadIOPS: l.ReadIOPS, WriteIOPS: l.WriteIOPS}
		if l.ReadBytes != 0 {
			raw[i].ReadBytes = strconv.AppendQuote(nil, l.ReadBytes.String())
		}
		if l.WriteBytes != 0 {
			raw[i].WriteBytes = strconv.AppendQuote(nil, l.WriteBytes.String())
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(raw); err != nil {
		return "", err
	}
	return strings.TrimSpace(buf.String()), nil
}
