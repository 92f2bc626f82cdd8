package limit

import (
	"reflect"
	"testing"
)

var diskCases = []struct {
	name, in string
	want     DiskLimits
	err      string
}{
	{name: "empty", in: "  "},
	{name: "empty array", in: "[]", want: DiskLimits{}},
	{name: "spec example", in: `[{"dev":"8:0","read_bytes":"10M","write_bytes":"10M","read_iops":1000,"write_iops":1000}]`,
		want: DiskLimits{{Major: 8, Minor: 0, ReadBytes: 10 << 20, WriteBytes: 10 << 20, ReadIOPS: 1000, WriteIOPS: 1000}}},
	{name: "two devices, partial", in: `[{"dev":"8:0","write_iops":5},{"dev":"253:16","read_bytes":1024}]`,
		want: DiskLimits{{Major: 8, WriteIOPS: 5}, {Major: 253, Minor: 16, ReadBytes: 1024}}},
	{name: "not json", in: `dev=8:0`, err: `disk_limit: want a JSON array of {"dev":"major:minor",...}: invalid character 'd' looking for beginning of value`},
	{name: "object not array", in: `{"dev":"8:0"}`, err: `disk_limit: want a JSON array of {"dev":"major:minor",...}: json: cannot unmarshal object into Go value of type []limit.diskJSON`},
	{name: "number", in: `8`, err: `disk_limit: want a JSON array of {"dev":"major:minor",...}: json: cannot unmarshal number into Go value of type []limit.diskJSON`},
	{name: "unknown field", in: `[{"dev":"8:0","read_bps":"1M"}]`, err: `disk_limit: want a JSON array of {"dev":"major:minor",...}: json: unknown field "read_bps"`},
	{name: "trailing", in: `[] []`, err: `disk_limit: text after the JSON array`},
	{name: "missing dev", in: `[{"read_iops":1}]`, err: `disk_limit[0]: missing "dev" ("major:minor", e.g. "8:0")`},
	{name: "bad dev", in: `[{"dev":"sda","read_iops":1}]`, err: `disk_limit[0]: bad dev "sda": want "major:minor", e.g. "8:0"`},
	{name: "dev overflow", in: `[{"dev":"8:99999999999","read_iops":1}]`, err: `disk_limit[0]: bad dev "8:99999999999": want "major:minor", e.g. "8:0"`},
	{name: "duplicate dev", in: `[{"dev":"8:0","read_iops":1},{"dev":"8:0","write_iops":1}]`, err: `disk_limit[1]: dev 8:0 listed twice`},
	{name: "bad size", in: `[{"dev":"8:0","read_bytes":"10X"}]`, err: `disk_limit[0] (dev 8:0): read_bytes: `},
	{name: "negative number", in: `[{"dev":"8:0","write_bytes":-1}]`, err: `disk_limit[0] (dev 8:0): write_bytes: want a size like "10M", got -1`},
	{name: "negative iops", in: `[{"dev":"8:0","read_iops":-1}]`, err: `disk_limit: want a JSON array of {"dev":"major:minor",...}: json: cannot unmarshal number -1 into Go struct field diskJSON.read_iops of type uint64`},
	{name: "no limit", in: `[{"dev":"8:0"}]`, err: `disk_limit[0] (dev 8:0): no limit set (read_bytes, write_bytes, read_iops, write_iops)`},
}

func TestParseDiskLimits(t *testing.T) {
	for _, tc := range diskCases {
		t.Run(tc.name, func(t *testing.T) {
			var got DiskLimits
			err := got.UnmarshalKV(tc.in)
			if tc.err != "" {
				if err == nil || len(err.Error()) < len(tc.err) || err.Error()[:len(tc.err)] != tc.err {
					t.Fatalf("got error %v, want prefix %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			checkRoundTrip(t, got)
		})
	}
}

func checkRoundTrip(t *testing.T, d DiskLimits) {
	t.Helper()
	text, err := d.MarshalKV()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseDiskLimits(text)
	if err != nil {
		t.Fatalf("re-parse of %q: %v", text, err)
	}
	if len(back) != len(d) || (len(d) > 0 && !reflect.DeepEqual(back, d)) {
		t.Fatalf("round trip %q: got %+v, want %+v", text, back, d)
	}
}

func TestMarshalKV(t *testing.T) {
	d := DiskLimits{{Major: 8, ReadBytes: 10 << 20, WriteIOPS: 7}}
	got, err := d.MarshalKV()
	if err != nil {
		t.Fatal(err)
	}
	if want := `[{"dev":"8:0","read_bytes":"10M","write_iops":7}]`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func FuzzDiskLimits(f *testing.F) {
	for _, tc := range diskCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDiskLimits(s)
		if err != nil {
			return
		}
		checkRoundTrip(t, d)
	})
}
