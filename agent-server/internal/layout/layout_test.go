package layout

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/agentfleet/agent-server/internal/layout/layouttest"
)

const goodMain = `name: deploy nginx
timeout: 600
tasks:
  - name: check nginx
    plugin: exec
    cmd: dpkg -l | grep -c nginx || true
    output: installed
    auth: sudo
    timeout: 60
  - name: stop nginx
    plugin: exec
    cmd: systemctl stop nginx
    if: $installed > 0
  - name: add site
    plugin: file
    action: push
    src: conf/example.conf
    dst: /etc/nginx/conf.d/example.conf
    mode: "0644"
  - name: fetch log
    plugin: file
    action: pull
    src: /var/log/nginx/error.log
    dst: error-$ID.log
  - name: only on even hosts
    plugin: exec
    cmd: echo even $$HOME $1 $
    if: $EVEN = 1
`

func TestParseGood(t *testing.T) {
	for _, gz := range []bool{false, true} {
		l, err := Parse(bytes.NewReader(layouttest.Tar(t, gz,
			layouttest.Entry{Name: "main.yaml", Body: goodMain},
			layouttest.Entry{Name: "conf/", Type: tar.TypeDir},
			layouttest.Entry{Name: "./conf/example.conf", Body: "server {}\n"},
			layouttest.Entry{Name: "link", Body: "conf/example.conf", Type: tar.TypeSymlink},
		)), Limits{}, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if l.Name != "deploy nginx" || len(l.Steps) != 5 || l.RunTimeout().Seconds() != 600 || l.StepTimeout(&l.Steps[0]).Seconds() != 60 {
			t.Fatalf("%+v", l)
		}
		if c := l.Steps[1].Cond(); c == nil || *c != (Cond{"$installed", ">", "0"}) {
			t.Fatalf("cond %+v", c)
		}
		if b, err := readSrc(l, "conf/example.conf"); err != nil || string(b) != "server {}\n" {
			t.Fatalf("file %q %v", b, err)
		}
		if l.Files["conf/example.conf"] != 10 || len(l.Files) != 2 {
			t.Fatalf("files %v", l.Files)
		}
		dir := l.dir
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Fatalf("spool dir after Close: %v", err)
		}
		if l.Steps[2].FileMode() != 0o644 {
			t.Fatalf("mode %o", l.Steps[2].FileMode())
		}
		cmd, err := Expand(l.Steps[4].Cmd, Vars("a1", 2, 99))
		if err != nil || cmd != "echo even $HOME $1 $" {
			t.Fatalf("expand %q %v", cmd, err)
		}
	}
	// main.json works the same.
	l, err := Parse(bytes.NewReader(layouttest.Tar(t, false, layouttest.Entry{Name: "main.json", Body: `{"name":"j","tasks":[{"name":"a","plugin":"exec","cmd":"true"}]}`})), Limits{}, t.TempDir())
	if err != nil || l.Steps[0].Cmd != "true" {
		t.Fatalf("json: %+v %v", l, err)
	}
	l.Close()
}

// readSrc reads the spooled file a push src names.
func readSrc(l *Layout, src string) ([]byte, error) {
	f, _, err := l.Open(src)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

func mainWith(steps string) layouttest.Entry {
	return layouttest.Entry{Name: "main.yaml", Body: "name: x\ntasks:\n" + steps}
}

// malformed pairs archives with the exact error text Parse gives.
func malformed(t testing.TB) []struct {
	name string
	tar  []byte
	err  string
} {
	f := func(gz bool, es ...layouttest.Entry) []byte { return layouttest.Tar(t, gz, es...) }
	conf := layouttest.Entry{Name: "a.conf", Body: "x"}
	return []struct {
		name string
		tar  []byte
		err  string
	}{
		{"not a tar", []byte("hello, this is not a tar archive at all, but it is long enough to be read as a header? no." + strings.Repeat("x", 600)), "invalid layout: file: not a tar, tar.gz, tar.bz2 or zip archive"},
		{"empty input", nil, "invalid layout: file: empty archive"},
		{"bad gzip", []byte{0x1f, 0x8b, 1, 2, 3}, "invalid layout: file: not a gzip stream: unexpected EOF"},
		{"truncated gzip", f(true, mainWith("  - {name: a, plugin: exec, cmd: 'true'}\n"))[:40], "invalid layout: file: not a tar.gz archive: unexpected EOF"},
		{"no main", f(false, conf), "invalid layout: file: the archive has no main.yaml or main.json"},
		{"main is a link", f(false, layouttest.Entry{Name: "main.yaml", Body: "other.yaml", Type: tar.TypeSymlink}), "invalid layout: file: main.yaml is a link in the archive (links are ignored)"},
		{"both mains", f(false, mainWith(""), layouttest.Entry{Name: "main.json", Body: "{}"}), "invalid layout: file: both main.yaml and main.json (keep one)"},
		{"bad yaml", f(false, layouttest.Entry{Name: "main.yaml", Body: "tasks: [\n"}), "invalid layout: main.yaml: line 1: did not find expected node content"},
		{"unknown key", f(false, layouttest.Entry{Name: "main.yaml", Body: "name: x\ntask: []\n"}), "invalid layout: main.yaml: unmarshal errors:\n  line 2: field task not found in type layout.Layout"},
		{"bad json", f(false, layouttest.Entry{Name: "main.json", Body: `{"tasks":`}), "invalid layout: main.json: unexpected EOF"},
		{"empty yaml", f(false, layouttest.Entry{Name: "main.yaml", Body: ""}), "invalid layout: main.yaml: empty"},
		{"no tasks", f(false, mainWith("")), "invalid layout: main: no tasks"},
		{"absolute entry", f(false, mainWith("  - {name: a, plugin: exec, cmd: 'true'}\n"), layouttest.Entry{Name: "/etc/x", Body: "x"}), `invalid layout: file: "/etc/x": absolute path`},
		{"escaping entry", f(false, layouttest.Entry{Name: "../x", Body: "x"}), `invalid layout: file: "../x": path climbs out of the archive`},
		{"symlink out of the archive", f(false, mainWith("  - {name: a, plugin: exec, cmd: 'true'}\n"), layouttest.Entry{Name: "l", Body: "/etc/passwd", Type: tar.TypeSymlink}), `invalid layout: file: "l": symlink to an absolute path ("/etc/passwd")`},
		{"hard link out of the archive", f(false, mainWith("  - {name: a, plugin: exec, cmd: 'true'}\n"), layouttest.Entry{Name: "h", Body: "../../etc/shadow", Type: tar.TypeLink}), `invalid layout: file: "h": hard link to "../../etc/shadow": path climbs out of the archive`},
		{"device", f(false, mainWith("  - {name: a, plugin: exec, cmd: 'true'}\n"), layouttest.Entry{Name: "mem", Type: tar.TypeChar}), `invalid layout: file: "mem": device file`},
		{"unknown plugin", f(false, mainWith("  - {name: a, plugin: exec, cmd: 'true'}\n  - {name: b, plugin: shell, cmd: ls}\n")), `invalid layout: step 2 "b": unknown plugin "shell" (want exec or file)`},
		{"missing plugin", f(false, mainWith("  - {name: a, cmd: ls}\n")), `invalid layout: step 1 "a": missing plugin (want exec or file)`},
		{"missing cmd", f(false, mainWith("  - {name: a, plugin: exec}\n")), `invalid layout: step 1 "a": missing cmd`},
		{"missing src", f(false, mainWith("  - {name: copy, plugin: file, action: push, dst: /tmp/x}\n")), `invalid layout: step 1 "copy": missing src`},
		{"missing dst", f(false, mainWith("  - {name: copy, plugin: file, src: a.conf}\n"), conf), `invalid layout: step 1 "copy": missing dst`},
		{"src not in archive", f(false, mainWith("  - {name: copy, plugin: file, src: b.conf, dst: /tmp/x}\n"), conf), `invalid layout: step 1 "copy": src "b.conf" is not in the archive`},
		{"src escapes", f(false, mainWith("  - {name: copy, plugin: file, src: ../../etc/passwd, dst: /tmp/x}\n"), conf), `invalid layout: step 1 "copy": src "../../etc/passwd" escapes the archive`},
		{"src escapes via dir", f(false, mainWith("  - {name: copy, plugin: file, src: d/../../x, dst: /tmp/x}\n"), conf), `invalid layout: step 1 "copy": src "d/../../x" escapes the archive`},
		{"src absolute", f(false, mainWith("  - {name: copy, plugin: file, src: /etc/passwd, dst: /tmp/x}\n"), conf), `invalid layout: step 1 "copy": src "/etc/passwd" must be relative to the archive root`},
		{"src is a symlink", f(false, mainWith("  - {name: copy, plugin: file, src: l, dst: /tmp/x}\n"), layouttest.Entry{Name: "l", Body: "a.conf", Type: tar.TypeSymlink}), `invalid layout: step 1 "copy": src "l" is a link in the archive (links are ignored)`},
		{"src is a hard link", f(false, mainWith("  - {name: copy, plugin: file, src: h, dst: /tmp/x}\n"), conf, layouttest.Entry{Name: "h", Body: "a.conf", Type: tar.TypeLink}), `invalid layout: step 1 "copy": src "h" is a link in the archive (links are ignored)`},
		{"src is a dir", f(false, mainWith("  - {name: copy, plugin: file, src: d, dst: /tmp/x}\n"), layouttest.Entry{Name: "d/", Type: tar.TypeDir}), `invalid layout: step 1 "copy": src "d" is a directory`},
		{"pull src relative", f(false, mainWith("  - {name: get, plugin: file, action: pull, src: x.log, dst: x}\n")), `invalid layout: step 1 "get": src "x.log" must be an absolute path on the agent`},
		{"pull dst absolute", f(false, mainWith("  - {name: get, plugin: file, action: pull, src: /x.log, dst: /etc/cron.d/x}\n")), `invalid layout: step 1 "get": dst: "/etc/cron.d/x" must be relative to the task's result area`},
		{"pull dst escapes", f(false, mainWith("  - {name: get, plugin: file, action: pull, src: /x.log, dst: a/../../x}\n")), `invalid layout: step 1 "get": dst: "a/../../x" escapes the task's result area`},
		{"pull dst escapes after a variable", f(false, mainWith("  - {name: get, plugin: file, action: pull, src: /x.log, dst: $ID/../../x}\n")), `invalid layout: step 1 "get": dst: "$ID/../../x" escapes the task's result area`},
		{"pull dst drive", f(false, mainWith("  - {name: get, plugin: file, action: pull, src: /x.log, dst: 'C:\\x'}\n")), `invalid layout: step 1 "get": dst: "C:\\x" must be relative to the task's result area`},
		{"pull dst backslashes escape", f(false, mainWith("  - {name: get, plugin: file, action: pull, src: /x.log, dst: '..\\x'}\n")), `invalid layout: step 1 "get": dst: "..\\x" escapes the task's result area`},
		{"pull dst empty path", f(false, mainWith("  - {name: get, plugin: file, action: pull, src: /x.log, dst: ./}\n")), `invalid layout: step 1 "get": dst: empty path`},
		{"bad action", f(false, mainWith("  - {name: get, plugin: file, action: copy, src: a.conf, dst: x}\n"), conf), `invalid layout: step 1 "get": unknown action "copy" (want push or pull)`},
		{"bad mode", f(false, mainWith("  - {name: c, plugin: file, src: a.conf, dst: /x, mode: '999'}\n"), conf), `invalid layout: step 1 "c": invalid mode "999" (octal, e.g. "0644")`},
		{"bad auth", f(false, mainWith("  - {name: a, plugin: exec, cmd: ls, auth: root}\n")), `invalid layout: step 1 "a": unknown auth "root" (want sudo or su)`},
		{"unknown variable", f(false, mainWith("  - {name: a, plugin: exec, cmd: echo $nope}\n")), `invalid layout: step 1 "a": cmd: unknown variable $nope`},
		{"variable used before its step", f(false, mainWith("  - {name: a, plugin: exec, cmd: echo $v}\n  - {name: b, plugin: exec, cmd: 'true', output: v}\n")), `invalid layout: step 1 "a": cmd: unknown variable $v`},
		{"bad if", f(false, mainWith("  - {name: a, plugin: exec, cmd: ls, if: $ID ~ 3}\n")), `invalid layout: step 1 "a": if: no comparison operator in "$ID ~ 3" (want one of > < = != <= >=)`},
		{"if unknown variable", f(false, mainWith("  - {name: a, plugin: exec, cmd: ls, if: $x = 3}\n")), `invalid layout: step 1 "a": if: unknown variable $x`},
		{"output builtin", f(false, mainWith("  - {name: a, plugin: exec, cmd: ls, output: ID}\n")), `invalid layout: step 1 "a": output "ID" is a built-in variable`},
		{"negative timeout", f(false, mainWith("  - {name: a, plugin: exec, cmd: ls, timeout: -1}\n")), `invalid layout: step 1 "a": negative timeout`},
		{"oversize file", f(false, mainWith("  - {name: a, plugin: exec, cmd: ls}\n"), layouttest.Entry{Name: "big", Body: strings.Repeat("x", 2000)}), `invalid layout: file: "big": declares 2000 bytes, over the 1024-byte file limit`},
		{"oversize archive", f(false, layouttest.Entry{Name: "a", Body: strings.Repeat("x", 1000)}, layouttest.Entry{Name: "b", Body: strings.Repeat("x", 1000)}, layouttest.Entry{Name: "c", Body: strings.Repeat("x", 1000)}), `invalid layout: file: "c": the archive unpacks to over 2048 bytes`},
		{"too many entries", f(false, layouttest.Entry{Name: "1/", Type: tar.TypeDir}, layouttest.Entry{Name: "2/", Type: tar.TypeDir}, layouttest.Entry{Name: "3/", Type: tar.TypeDir}, layouttest.Entry{Name: "4/", Type: tar.TypeDir}, layouttest.Entry{Name: "5/", Type: tar.TypeDir}, layouttest.Entry{Name: "6/", Type: tar.TypeDir}), "invalid layout: file: more than 5 entries"},
	}
}

var testLimits = Limits{ArchiveBytes: 2048, FileBytes: 1024, Entries: 5}

func TestParseMalformed(t *testing.T) {
	for _, c := range malformed(t) {
		t.Run(c.name, func(t *testing.T) {
			spool := t.TempDir()
			_, err := Parse(bytes.NewReader(c.tar), testLimits, spool)
			if ents, _ := os.ReadDir(spool); len(ents) != 0 {
				t.Errorf("spool left behind: %v", ents)
			}
			if err == nil || err.Error() != c.err {
				t.Fatalf("error\n got %q\nwant %q", err, c.err)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("%v does not wrap ErrInvalid", err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, c := range malformed(f) {
		f.Add(c.tar)
	}
	f.Add(layouttest.Tar(f, false, layouttest.Entry{Name: "main.yaml", Body: goodMain}, layouttest.Entry{Name: "conf/example.conf", Body: "x"}))
	f.Add(layouttest.Tar(f, true, layouttest.Entry{Name: "main.yaml", Body: goodMain}, layouttest.Entry{Name: "conf/example.conf", Body: "x"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := Parse(bytes.NewReader(b), testLimits, t.TempDir())
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if len(l.Steps) == 0 {
			t.Fatal("valid layout without steps")
		}
		for i := range l.Steps {
			s := &l.Steps[i]
			if s.Plugin != PluginExec && s.Plugin != PluginFile {
				t.Fatalf("step %d plugin %q accepted", i, s.Plugin)
			}
			if s.Plugin == PluginFile && s.Action == ActionPull {
				if _, err := ResultPath(s.Dst); err != nil {
					t.Fatalf("step %d: pull dst %q accepted: %v", i, s.Dst, err)
				}
			}
			if s.Plugin == PluginFile && s.Action == ActionPush && !strings.Contains(s.Src, "$") {
				if _, err := readSrc(l, s.Src); err != nil {
					t.Fatalf("step %d: validated src fails: %v", i, err)
				}
			}
		}
		for name := range l.Files {
			if strings.HasPrefix(name, "/") || name == ".." || strings.HasPrefix(name, "../") {
				t.Fatalf("file %q kept", name)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	})
}
