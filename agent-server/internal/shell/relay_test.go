package shell

import (
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseControl(t *testing.T) {
	tests := []struct {
		in   string
		want Control
		err  string
	}{
		{`{"type":"resize","cols":120,"rows":40}`, Control{Type: "resize", Cols: 120, Rows: 40}, ""},
		{`{"rows":1,"cols":4096,"type":"resize","extra":[1]}`, Control{Type: "resize", Cols: 4096, Rows: 1}, ""},
		{`{"type":"paste-mode","on":true}`, Control{Type: "paste-mode"}, ""},
		{`{"type":""}`, Control{}, ""},
		{``, Control{}, `invalid control message: not a JSON object with a string "type": unexpected end of JSON input`},
		{`resize 80 24`, Control{}, `invalid control message: not a JSON object with a string "type": invalid character 'r'`},
		{`[1,2]`, Control{}, `invalid control message: not a JSON object with a string "type": json: cannot unmarshal array`},
		{`{"cols":80}`, Control{}, `invalid control message: missing "type"`},
		{`{"type":7}`, Control{}, `invalid control message: not a JSON object with a string "type": json: cannot unmarshal number`},
		{`{"type":"resize","cols":80}`, Control{}, `invalid resize: missing "rows"`},
		{`{"type":"resize","rows":24}`, Control{}, `invalid resize: missing "cols"`},
		{`{"type":"resize","cols":0,"rows":24}`, Control{}, `invalid resize: "cols" must be an integer 1…4096, got 0`},
		{`{"type":"resize","cols":80,"rows":4097}`, Control{}, `invalid resize: "rows" must be an integer 1…4096, got 4097`},
		{`{"type":"resize","cols":-1,"rows":24}`, Control{}, `invalid resize: "cols" must be an integer 1…4096, got -1`},
		{`{"type":"resize","cols":80.5,"rows":24}`, Control{}, `invalid resize: "cols" must be an integer 1…4096, got 80.5`},
		{`{"type":"resize","cols":"80","rows":24}`, Control{}, `invalid resize: "cols" must be an integer 1…4096, got "80"`},
		{`{"type":"resize","cols":null,"rows":24}`, Control{}, `invalid resize: missing "cols"`},
		{`{"type":"resize","cols":80,"rows":99999999999999999999999999999999999}`, Control{}, `invalid resize: "rows" must be an integer 1…4096, got 99999999999999999999999999999999…`},
	}
	for _, tt := range tests {
		got, err := ParseControl([]byte(tt.in))
		if tt.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
				t.Errorf("ParseControl(%s) error %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseControl(%s) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

// FuzzParseControl: never panics; an accepted resize is in range; error
// texts stay short (they go to the client).
func FuzzParseControl(f *testing.F) {
	for _, s := range []string{
		`{"type":"resize","cols":120,"rows":40}`, `{"type":"x"}`, `{"cols":1}`, `[]`, ``, `{"type":"resize","cols":1e9,"rows":2}`,
		`{"type":"resize","cols":"` + strings.Repeat("9", 1000) + `","rows":2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseControl(b)
		if err != nil {
			if len(err.Error()) > 300 {
				t.Fatalf("error text of %d bytes", len(err.Error()))
			}
			return
		}
		if c.Type == "resize" && (c.Cols < 1 || c.Cols > 4096 || c.Rows < 1 || c.Rows > 4096) {
			t.Fatalf("accepted resize %+v", c)
		}
	})
}
