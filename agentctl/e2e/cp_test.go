//go:build linux

package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentfleet/jkframe/filetest"
)

// TestCp200MB copies a 200 MB file to an agent and back: the MD5 agentctl
// reports, the file the agent wrote and the file downloaded all equal the
// original's.
func TestCp200MB(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "big.bin")
	sum := filetest.Make(t, src, 200<<20, filetest.Noise)
	remote := filepath.Join(dir, "remote")
	if err := os.Mkdir(remote, 0o755); err != nil {
		t.Fatal(err)
	}
	r := fleet.ok(t, "cp", "-o", "json", src, "e2e-a1:"+remote+"/")
	var v struct {
		Files []struct {
			Dst  string `json:"dst"`
			Size int64  `json:"size"`
			MD5  string `json:"md5"`
		} `json:"files"`
	}
	if err := json.Unmarshal([]byte(r.out), &v); err != nil || len(v.Files) != 1 {
		t.Fatalf("%v\n%s", err, r.out)
	}
	if v.Files[0].MD5 != sum || v.Files[0].Size != 200<<20 || v.Files[0].Dst != "e2e-a1:"+filepath.Join(remote, "big.bin") {
		t.Errorf("upload: %+v, want md5 %s", v.Files[0], sum)
	}
	if got, _ := filetest.MD5(t, filepath.Join(remote, "big.bin")); got != sum {
		t.Fatalf("the agent wrote md5 %s, want %s", got, sum)
	}
	back := filepath.Join(dir, "back.bin")
	r = fleet.ok(t, "cp", "-o", "json", "e2e-a2:"+filepath.Join(remote, "big.bin"), back)
	checkShape(t, "cp", r.out)
	if err := json.Unmarshal([]byte(r.out), &v); err != nil || len(v.Files) != 1 || v.Files[0].MD5 != sum {
		t.Errorf("download: %+v %v", v, err)
	}
	if got, _ := filetest.MD5(t, back); got != sum {
		t.Fatalf("downloaded md5 %s, want %s", got, sum)
	}
	if fi, _ := os.Stat(back); fi.Mode().Perm() != 0o644 {
		t.Errorf("downloaded file mode %v", fi.Mode())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*agentctl*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// TestCpStreamsAndTrees covers stdin and stdout, renaming, directories
// with -r both ways (modes kept, links and empty directories reported),
// and errors.
func TestCpStreamsAndTrees(t *testing.T) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("line of text\n"), 10000)
	r := fleet.ctl(t, ctlOpts{stdin: bytes.NewReader(data)}, "cp", "-", "e2e-a1:"+dir+"/new/sub/from-stdin.txt")
	if r.code != 0 {
		t.Fatalf("stdin: %d %s", r.code, r.err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "new", "sub", "from-stdin.txt")); !bytes.Equal(got, data) {
		t.Errorf("stdin upload: %d bytes", len(got))
	}
	r = fleet.ok(t, "cp", "--no-checksum", "-o", "json", "-", "e2e-a2:"+dir+"/nosum.txt")
	// The md5 reported is the server's of what it received (of nothing here).
	if got, _ := os.ReadFile(filepath.Join(dir, "nosum.txt")); len(got) != 0 || !strings.Contains(r.out, `"md5": "d41d8cd98f00b204e9800998ecf8427e"`) {
		t.Errorf("--no-checksum: %q %s", got, r.out)
	}
	r = fleet.ok(t, "cp", "e2e-a3:"+dir+"/new/sub/from-stdin.txt", "-")
	if r.out != string(data) {
		t.Errorf("stdout: %d bytes", len(r.out))
	}

	// A tree up and down again.
	tree := filepath.Join(dir, "tree")
	for p, body := range map[string]string{"a.txt": "a", "bin/run.sh": "#!/bin/sh\necho run\n", "deep/er/x": strings.Repeat("x", 100000)} {
		os.MkdirAll(filepath.Dir(filepath.Join(tree, p)), 0o755)
		os.WriteFile(filepath.Join(tree, p), []byte(body), 0o644)
	}
	os.Chmod(filepath.Join(tree, "bin/run.sh"), 0o755)
	os.Mkdir(filepath.Join(tree, "empty"), 0o755)
	os.Symlink("a.txt", filepath.Join(tree, "link"))
	up := filepath.Join(dir, "up")
	os.Mkdir(up, 0o755)
	r = fleet.ctl(t, ctlOpts{}, "cp", "-r", tree, "e2e-a2:"+up)
	if r.code != 1 || !strings.Contains(r.err, "2 not copied") || !strings.Contains(r.err, "link (not a regular file)") || !strings.Contains(r.err, "empty/ (empty directory") {
		t.Errorf("cp -r up: exit %d\n%s", r.code, r.err)
	}
	for _, p := range []string{"a.txt", "bin/run.sh", "deep/er/x"} {
		want, _ := os.ReadFile(filepath.Join(tree, p))
		got, err := os.ReadFile(filepath.Join(up, "tree", p))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %v", p, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(up, "tree", "bin", "run.sh")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("mode kept: %v %v", fi, err)
	}
	down := filepath.Join(dir, "down")
	r = fleet.ok(t, "cp", "-r", "e2e-a1:"+filepath.Join(up, "tree"), down)
	for _, p := range []string{"a.txt", "bin/run.sh", "deep/er/x"} {
		want, _ := os.ReadFile(filepath.Join(tree, p))
		if got, err := os.ReadFile(filepath.Join(down, p)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("down %s: %v", p, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(down, "bin", "run.sh")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("mode after download: %v %v", fi, err)
	}

	// A file onto an existing local directory; a directory without -r.
	r = fleet.ok(t, "cp", "e2e-a1:"+filepath.Join(tree, "a.txt"), down)
	if b, _ := os.ReadFile(filepath.Join(down, "a.txt")); string(b) != "a" {
		t.Errorf("into a dir: %q", b)
	}
	r = fleet.ctl(t, ctlOpts{}, "cp", "e2e-a1:"+tree, filepath.Join(dir, "x"))
	if r.code != 1 || !strings.Contains(r.err, "-r") {
		t.Errorf("dir without -r: %d %s", r.code, r.err)
	}
	r = fleet.ctl(t, ctlOpts{}, "cp", "e2e-a1:"+filepath.Join(dir, "nosuch"), filepath.Join(dir, "y"))
	if r.code != 1 || !strings.Contains(r.err, "no such file") {
		t.Errorf("missing file: %d %s", r.code, r.err)
	}
	if _, err := os.Stat(filepath.Join(dir, "y")); err == nil {
		t.Error("a failed download left a file")
	}
}
