package install

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// ExtractMain, run in this process: the report of an archive unpacked,
// of a hostile one refused, and of bad arguments, each the last line of
// its output, read back by lastReport.
func TestExtractMain(t *testing.T) {
	good := writeFile(t, t.TempDir(), "good.tar", makeTar(t, []ent{file("a", "1"), file("b", "2"), file("c", "3")}, false))
	evil := writeFile(t, t.TempDir(), "evil.tar", makeTar(t, []ent{symlink("l", "/etc"), file("l/x", "x")}, false))
	dir := filepath.Join(t.TempDir(), "out")
	for _, c := range []struct {
		name  string
		args  []string
		code  int
		files []string
		total int
		err   string
	}{
		{"unpacked", []string{"-kind=tar", "-dir=" + dir, "-files=2", "-archive=" + good}, 0, []string{"a", "b"}, 3, ""},
		{"limits", []string{"-kind=tar", "-dir=" + dir, "-max-entries=2", "-archive=" + good}, 1, nil, 0, "archive refused"},
		{"hostile", []string{"-kind=tar", "-dir=" + dir, "-archive=" + evil}, 1, nil, 0, `archive refused: entry "l"`},
		{"not an archive", []string{"-kind=deb", "-dir=" + dir, "-archive=" + good}, 1, nil, 0, "deb is not an archive"},
		{"unknown kind", []string{"-kind=apk", "-dir=" + dir, "-archive=" + good}, 1, nil, 0, `"apk"`},
		{"no dir", []string{"-kind=tar", "-archive=" + good}, 1, nil, 0, "usage: "},
		{"positional", []string{"-kind=tar", "-dir=" + dir, "-archive=" + good, "extra"}, 1, nil, 0, "usage: "},
		{"unknown flag", []string{"-kind=tar", "-dir=" + dir, "-archive=" + good, "-x"}, 1, nil, 0, "flag provided but not defined: -x"},
	} {
		var out bytes.Buffer
		code := ExtractMain(c.args, &out)
		rep, ok := lastReport("su: some noise\n" + out.String())
		if code != c.code || !ok || rep.Total != c.total || !strings.Contains(rep.Error, c.err) || (c.err == "") != (rep.Error == "") ||
			strings.Join(rep.Files, ",") != strings.Join(c.files, ",") {
			t.Errorf("%s: code %d, report %+v (%v) from %q", c.name, code, rep, ok, out.String())
		}
	}
}

var reportCases = []string{
	`{"files":["a"],"total":1}`,
	"noise\n" + `{"files":[],"total":0,"error":"archive refused: x"}` + "\n",
	`{"files":["a","b"],"total":1}`,
	`{"files":[],"total":0,"extra":1}`,
	"{not json",
	"",
	`{"files":["a"],"total":1}` + "\nthen more",
	`{"files":["a"],"total":1} {}`,
}

// lastReport takes the last line only, and only a report that holds
// together.
func TestLastReport(t *testing.T) {
	want := []bool{true, true, false, false, false, false, false, false}
	for i, s := range reportCases {
		if _, ok := lastReport(s); ok != want[i] {
			t.Errorf("%q: ok %v, want %v", s, ok, want[i])
		}
	}
}

// FuzzLastReport: any output of the subcommand (which runs as another
// user) is read without a panic, and a report taken holds together.
func FuzzLastReport(f *testing.F) {
	for _, s := range reportCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rep, ok := lastReport(s)
		if !ok {
			return
		}
		if rep.Total < len(rep.Files) {
			t.Fatalf("report %+v", rep)
		}
		if _, err := json.Marshal(rep); err != nil {
			t.Fatal(err)
		}
	})
}
