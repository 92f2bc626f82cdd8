package packages

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentfleet/agent-server/internal/fault"
)

func newRepo(t *testing.T, dir string, max int64) (*Repo, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	r, err := New(Options{Dir: dir, MaxSize: max, Registry: reg, Logger: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	return r, reg
}

// debOf is content that starts like a .deb, n bytes long.
func debOf(n int, fill byte) []byte {
	b := bytes.Repeat([]byte{fill}, n)
	copy(b, "!<arch>\ndebian-binary   ")
	return b
}

func tarOf(t *testing.T) []byte {
	var buf bytes.Buffer
	w := tar.NewWriter(&buf)
	if err := w.WriteHeader(&tar.Header{Name: "a", Mode: 0o644, Size: 1}); err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("x"))
	w.Close()
	return buf.Bytes()
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func TestPutListOpenDelete(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r, reg := newRepo(t, dir, 1<<20)
	deb := debOf(300<<10, 'd')
	elf := append([]byte("\x7fELF"), bytes.Repeat([]byte{1}, 1000)...)
	tr := tarOf(t)
	for _, c := range []struct {
		name, kind string
		body       []byte
		want       string
	}{
		{"app_1.0_amd64.deb", "deb", deb, sum(deb)},
		{"exec-agent_2.0_linux_amd64", "bin", elf, strings.ToUpper(sum(elf))},
		{"files.tar", "tar", tr, ""},
		{"same.deb", "deb", deb, ""}, // shares the blob of app_1.0_amd64.deb
	} {
		info, err := r.Put(ctx, c.name, bytes.NewReader(c.body), c.want)
		if err != nil {
			t.Fatalf("Put %s: %v", c.name, err)
		}
		want := Info{Name: c.name, Size: int64(len(c.body)), SHA256: sum(c.body), Kind: c.kind, Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
		if info != want {
			t.Fatalf("Put %s = %+v, want %+v", c.name, info, want)
		}
	}
	list, _ := r.List(ctx)
	var names []string
	for _, p := range list {
		names = append(names, p.Name)
	}
	if got := strings.Join(names, " "); got != "app_1.0_amd64.deb exec-agent_2.0_linux_amd64 files.tar same.deb" {
		t.Fatalf("List = %s", got)
	}
	if blobs, _ := os.ReadDir(filepath.Join(dir, "blobs")); len(blobs) != 3 {
		t.Fatalf("%d blobs, want 3 (same content shared)", len(blobs))
	}
	rc, info, err := r.Open(ctx, "app_1.0_amd64.deb")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, deb) || info.SHA256 != sum(deb) {
		t.Fatal("Open: content differs")
	}
	if n := metric(t, reg, "agentserver_packages")[""]; n != 4 {
		t.Fatalf("agentserver_packages = %v", n)
	}

	if err := r.Delete(ctx, "app_1.0_amd64.deb"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Stat(ctx, "app_1.0_amd64.deb"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stat after Delete: %v", err)
	}
	if err := r.Delete(ctx, "app_1.0_amd64.deb"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Delete twice: %v", err)
	}
	// The shared blob stays for same.deb; deleting it removes the blob.
	if _, err := os.Stat(filepath.Join(dir, "blobs", sum(deb))); err != nil {
		t.Fatal("shared blob removed with one of its names")
	}
	if err := r.Delete(ctx, "same.deb"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "blobs", sum(deb))); !os.IsNotExist(err) {
		t.Fatal("blob left after its last name was deleted")
	}

	// A reopened repository lists what was stored.
	r2, _ := newRepo(t, dir, 1<<20)
	list2, _ := r2.List(ctx)
	if len(list2) != 2 || list2[0] != list[1] || list2[1] != list[2] {
		t.Fatalf("reopened: %+v", list2)
	}
}

// metric returns the values of a metric family by its first label's value
// ("" for an unlabelled metric).
func metric(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			k := ""
			if len(m.GetLabel()) > 0 {
				k = m.GetLabel()[0].GetValue()
			}
			got[k] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return got
}

func runtimeKeepsOpenFiles() bool { return runtime.GOOS != "windows" }

func TestPutRefused(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r, reg := newRepo(t, dir, 64<<10)
	deb := debOf(1000, 'a')
	if _, err := r.Put(ctx, "app.deb", bytes.NewReader(deb), ""); err != nil {
		t.Fatal(err)
	}
	zero := strings.Repeat("0", 64)
	cases := []struct {
		name, sha string
		body      []byte
		kind      fault.Kind
		is        error
		param     string
		msg       string
		reason    string
	}{
		{"../x.deb", "", deb, fault.Invalid, ErrInvalid, "name", "must not start with '.'", "invalid"},
		{"a/b.deb", "", deb, fault.Invalid, ErrInvalid, "name", "path separator", "invalid"},
		{"b.deb", "xyz", deb, fault.Invalid, ErrInvalid, "sha256", "want 64 hexadecimal digits", "invalid"},
		{"b.deb", zero, deb, fault.Invalid, ErrChecksum, "sha256", "the content's sha256 is " + sum(deb) + ", expected " + zero, "checksum"},
		{"b.deb", "", []byte("PK\x03\x04zip"), fault.Invalid, ErrInvalid, "body", "the content is not a deb file", "invalid"},
		{"notes.txt", "", []byte("hello"), fault.Invalid, ErrInvalid, "name", "unknown package type", "invalid"},
		{"empty", "", nil, fault.Invalid, ErrInvalid, "name", "unknown package type", "invalid"},
		{"big.deb", "", debOf(64<<10+1, 'b'), fault.TooLarge, ErrTooLarge, "", "over packages.max_size (65536 bytes)", "too_large"},
		{"app.deb", "", debOf(1000, 'c'), fault.Conflict, ErrExists, "", `package "app.deb" exists`, "exists"},
		{"app.deb", sum(debOf(1000, 'c')), debOf(1000, 'c'), fault.Conflict, ErrExists, "", `package "app.deb" exists`, "exists"},
		{"APP.deb", "", deb, fault.Conflict, ErrExists, "", "only in case", "exists"},
	}
	for _, c := range cases {
		_, err := r.Put(ctx, c.name, bytes.NewReader(c.body), c.sha)
		fe, ok := fault.As(err)
		if !ok || fe.Kind != c.kind || !errors.Is(err, c.is) || fe.Param != c.param || !strings.Contains(fe.Msg, c.msg) {
			t.Errorf("Put(%q, sha %q) = %v (%+v), want %v in %q: %q", c.name, c.sha, err, fe, c.kind, c.param, c.msg)
		}
	}
	// Nothing kept: one package, one blob, an empty tmp.
	if list, _ := r.List(ctx); len(list) != 1 {
		t.Fatalf("List: %+v", list)
	}
	for sub, want := range map[string]int{"blobs": 1, "tmp": 0, "index": 1} {
		if e, _ := os.ReadDir(filepath.Join(dir, sub)); len(e) != want {
			t.Errorf("%s holds %d files, want %d", sub, len(e), want)
		}
	}
	got := metric(t, reg, "agentserver_package_uploads_refused_total")
	want := map[string]float64{"invalid": 6, "checksum": 1, "too_large": 1, "exists": 3, "io": 0}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("refused{reason=%s} = %v, want %v", k, got[k], v)
		}
	}
}

func TestPutSameAndReplace(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r, _ := newRepo(t, dir, 1<<20)
	v1, v2 := debOf(2000, '1'), debOf(3000, '2')
	first, err := r.Put(ctx, "app.deb", bytes.NewReader(v1), "")
	if err != nil {
		t.Fatal(err)
	}
	// The same content again, sha256 given: the stored Info.
	again, err := r.Put(ctx, "app.deb", bytes.NewReader(v1), sum(v1))
	if err != nil || again != first {
		t.Fatalf("Put same = %+v, %v", again, err)
	}
	// A reader of v1 keeps reading v1 while the package is replaced.
	rc, _, err := r.Open(ctx, "app.deb")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	info, err := r.Replace(ctx, "app.deb", bytes.NewReader(v2), sum(v2))
	if err != nil || info.SHA256 != sum(v2) || info.Size != 3000 {
		t.Fatalf("Replace = %+v, %v", info, err)
	}
	if runtimeKeepsOpenFiles() {
		if got, _ := io.ReadAll(rc); !bytes.Equal(got, v1) {
			t.Fatal("open reader lost the old content")
		}
	}
	if e, _ := os.ReadDir(filepath.Join(dir, "blobs")); len(e) != 1 {
		t.Fatalf("%d blobs after replace, want 1", len(e))
	}
	if st, _ := r.Stat(ctx, "app.deb"); st != info {
		t.Fatalf("Stat = %+v", st)
	}
}

// TestRecover: what a crash leaves is cleaned when the repository opens.
func TestRecover(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r, _ := newRepo(t, dir, 1<<20)
	deb := debOf(5000, 'r')
	if _, err := r.Put(ctx, "keep.deb", bytes.NewReader(deb), ""); err != nil {
		t.Fatal(err)
	}
	write := func(p, s string) {
		if err := os.WriteFile(filepath.Join(dir, p), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("tmp/upload-123", "half an upload")
	write("blobs/"+strings.Repeat("a", 64), "orphan")
	write("index/.keep2.deb.tmp99", "{")
	write("index/bad.deb", "not json")
	write("index/gone.deb", `{"name":"gone.deb","size":1,"sha256":"`+strings.Repeat("b", 64)+`","kind":"deb"}`)

	r2, _ := newRepo(t, dir, 1<<20)
	list, _ := r2.List(ctx)
	if len(list) != 1 || list[0].Name != "keep.deb" {
		t.Fatalf("List = %+v", list)
	}
	for _, gone := range []string{"tmp/upload-123", "blobs/" + strings.Repeat("a", 64), "index/.keep2.deb.tmp99"} {
		if _, err := os.Stat(filepath.Join(dir, gone)); !os.IsNotExist(err) {
			t.Errorf("%s left", gone)
		}
	}
	// Broken entries are left for the operator, not deleted.
	for _, kept := range []string{"index/bad.deb", "index/gone.deb"} {
		if _, err := os.Stat(filepath.Join(dir, kept)); err != nil {
			t.Errorf("%s: %v", kept, err)
		}
	}
}

func TestConcurrentPuts(t *testing.T) {
	ctx := context.Background()
	r, _ := newRepo(t, t.TempDir(), 1<<20)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			// Half the uploads race for one name with two contents.
			name := "shared.deb"
			if i%2 == 0 {
				name = "own" + string(rune('a'+i)) + ".deb"
			}
			_, err := r.Put(ctx, name, bytes.NewReader(debOf(20000, byte(i%4))), "")
			if err != nil && !errors.Is(err, ErrExists) {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	list, _ := r.List(ctx)
	if len(list) != 9 {
		t.Fatalf("%d packages, want 9", len(list))
	}
}

func TestClientGone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	r, _ := newRepo(t, dir, 1<<20)
	pr, pw := io.Pipe()
	go func() {
		pw.Write(debOf(1000, 'x'))
		cancel()
		pw.CloseWithError(io.ErrUnexpectedEOF)
	}()
	_, err := r.Put(ctx, "cut.deb", pr, "")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Put = %v, want context.Canceled", err)
	}
	if e, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(e) != 0 {
		t.Fatal("temporary file left")
	}
}
