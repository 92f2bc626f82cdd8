package install

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentfleet/exec-agent/internal/runner"
	"github.com/agentfleet/jkframe/syncbuf"
)

type testEngine struct {
	*Engine
	store   *Store
	journal string
	work    string
	logs    *syncbuf.Buffer
}

func newTestEngine(t *testing.T, opts Options) *testEngine {
	t.Helper()
	logs := &syncbuf.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	te := &testEngine{journal: t.TempDir(), work: filepath.Join(t.TempDir(), "work"), logs: logs}
	var err error
	te.store, err = OpenStore(StoreOptions{Dir: te.journal, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	r := runner.New(runner.Options{Logger: log})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		r.Close(ctx)
	})
	opts.Store, opts.Runner, opts.Logger = te.store, r, log
	if opts.WorkDir == "" {
		opts.WorkDir = te.work
	}
	te.work = opts.WorkDir
	te.Engine, err = NewEngine(opts)
	if err != nil {
		t.Fatal(err)
	}
	return te
}

// serve serves files by name.
func serve(t *testing.T, files map[string][]byte) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[strings.TrimPrefix(r.URL.Path, "/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// kinds lists the action kinds of a log, with their outcome.
func kinds(st Status) string {
	var s []string
	for _, a := range st.Actions {
		k := a.Action
		if !a.OK {
			k += "!"
		}
		s = append(s, k)
	}
	return strings.Join(s, " ")
}

func last(st Status) Action { return st.Actions[len(st.Actions)-1] }

func dpkgStatus(t *testing.T, root, pkg string) string {
	out, _ := exec.Command("dpkg", "--root="+root, "-s", pkg).CombinedOutput()
	for _, l := range strings.Split(string(out), "\n") {
		if s, ok := strings.CutPrefix(l, "Status: "); ok {
			return s
		}
	}
	return strings.TrimSpace(string(out))
}

// TestInstallDeb installs a .deb built with nfpm with the real dpkg into a
// throwaway root, then removes it.
func TestInstallDeb(t *testing.T) {
	need(t, "dpkg")
	deb := buildPkg(t, "deb", pkgSpec{name: "agentfleet-installtest", version: "1.0.0", dst: "/opt/installtest/hello.txt", body: "hello from a deb\n"})
	root, args := dpkgRoot(t)
	e := newTestEngine(t, Options{Installers: Installers{DpkgArgs: args}})
	srv := serve(t, map[string][]byte{"pkg/installtest_1.0.0_all.deb": deb})
	url := srv.URL + "/pkg/installtest_1.0.0_all.deb"

	st, err := e.Run(context.Background(), Request{ID: "deb1", Source: Source{URL: url, SHA256: sum(deb)}})
	if err != nil {
		t.Fatal(err)
	}
	if kinds(st) != "download install done" || st.Actions[0].Name != url || st.Actions[1].Name != url {
		t.Fatalf("actions %s: %+v", kinds(st), st)
	}
	if b, err := os.ReadFile(filepath.Join(root, "opt/installtest/hello.txt")); err != nil || string(b) != "hello from a deb\n" {
		t.Fatalf("installed file: %q %v", b, err)
	}
	if s := dpkgStatus(t, root, "agentfleet-installtest"); s != "install ok installed" {
		t.Fatalf("dpkg status %q", s)
	}
	if ents, _ := os.ReadDir(e.work); len(ents) != 0 {
		t.Fatalf("work dir not cleaned: %v", ents)
	}
	runCmd(t, "", "dpkg", "--root="+root, "--force-not-root", "--force-script-chrootless", "--log=/dev/null", "-r", "agentfleet-installtest")
	if _, err := os.Stat(filepath.Join(root, "opt/installtest/hello.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after dpkg -r: %v", err)
	}

	// The same id again is refused; a broken deb fails with dpkg's words.
	if _, err := e.Run(context.Background(), Request{ID: "deb1", Source: Source{URL: url}}); !errors.Is(err, ErrExists) {
		t.Fatalf("id reused: %v", err)
	}
	bad := append(append([]byte{}, deb[:200]...), make([]byte, 300)...)
	srv2 := serve(t, map[string][]byte{"broken.deb": bad})
	st, _ = e.Run(context.Background(), Request{ID: "deb2", Source: Source{URL: srv2.URL + "/broken.deb"}})
	if kinds(st) != "download install! done!" || !strings.Contains(st.Actions[1].Msg, "exit code") {
		t.Fatalf("broken deb: %s %+v", kinds(st), st.Actions)
	}
}

// TestInstallRPM installs an .rpm built with nfpm with rpm into a
// throwaway root and database, then removes it.
func TestInstallRPM(t *testing.T) {
	need(t, "rpm")
	pkg := buildPkg(t, "rpm", pkgSpec{name: "agentfleet-installtest", version: "1.0.0", dst: "/opt/installtest/hello.txt", body: "hello from an rpm\n"})
	root := t.TempDir()
	rpmArgs := []string{"--root=" + root, "--dbpath=/rpmdb"}
	e := newTestEngine(t, Options{Installers: Installers{RPMArgs: rpmArgs}})
	srv := serve(t, map[string][]byte{"x.rpm": pkg})

	st, err := e.Run(context.Background(), Request{ID: "rpm1", Source: Source{URL: srv.URL + "/x.rpm", SHA256: sum(pkg)}})
	if err != nil {
		t.Fatal(err)
	}
	if kinds(st) != "download install done" {
		t.Fatalf("actions %s: %+v", kinds(st), st.Actions)
	}
	if b, err := os.ReadFile(filepath.Join(root, "opt/installtest/hello.txt")); err != nil || string(b) != "hello from an rpm\n" {
		t.Fatalf("installed file: %q %v", b, err)
	}
	out, err := exec.Command("rpm", append(rpmArgs, "-q", "agentfleet-installtest")...).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "agentfleet-installtest-1.0.0") {
		t.Fatalf("rpm -q: %s %v", out, err)
	}
	runCmd(t, "", "rpm", append(rpmArgs, "-e", "agentfleet-installtest")...)
	if _, err := os.Stat(filepath.Join(root, "opt/installtest/hello.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after rpm -e: %v", err)
	}
}

// TestInstallChecksumMismatch: a package whose sha256 is not the expected
// one is refused after the download, before anything is installed.
func TestInstallChecksumMismatch(t *testing.T) {
	need(t, "dpkg")
	deb := buildPkg(t, "deb", pkgSpec{name: "agentfleet-installtest", version: "1.0.0", dst: "/opt/installtest/hello.txt", body: "x"})
	root, args := dpkgRoot(t)
	e := newTestEngine(t, Options{Installers: Installers{DpkgArgs: args}})
	srv := serve(t, map[string][]byte{"x.deb": deb})
	before := snapshot(t, root)
	st, err := e.Run(context.Background(), Request{ID: "sum", Source: Source{URL: srv.URL + "/x.deb", SHA256: sum([]byte("another package"))}})
	if err != nil {
		t.Fatal(err)
	}
	if kinds(st) != "download! done!" || !strings.Contains(st.Actions[0].Msg, "checksum mismatch: sha256 "+sum(deb)) {
		t.Fatalf("actions %s: %+v", kinds(st), st.Actions)
	}
	if last(st).Msg != st.Actions[0].Msg {
		t.Fatalf("done msg %q", last(st).Msg)
	}
	if after := snapshot(t, root); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Fatalf("dpkg root changed:\n%q\n%q", before, after)
	}
	if ents, _ := os.ReadDir(e.work); len(ents) != 0 {
		t.Fatalf("download left: %v", ents)
	}
}

// TestInstallArchive: archives fetched and unpacked, a file action per
// file (bounded), the seed-shaped status; hostile and mislabelled ones
// fail with the reason.
func TestInstallArchive(t *testing.T) {
	good := makeTar(t, []ent{dirEnt("bin/"), {name: "bin/tool", typ: '0', body: "#!/bin/sh\n", mode: 0o755}, file("a.txt", "a"), file("b.txt", "b")}, true)
	evil := makeTar(t, []ent{file("ok.txt", "fine"), symlink("l", ".."), file("l/evil", "x")}, true)
	srv := serve(t, map[string][]byte{"good.tar.gz": good, "evil.tgz": evil, "zip-in-disguise.deb": makeZip(t, []ent{file("a", "b")})})
	e := newTestEngine(t, Options{MaxFileActions: 2})
	parent := t.TempDir()
	dir := filepath.Join(parent, "app")

	st, err := e.Run(context.Background(), Request{ID: "tgz", Source: Source{URL: srv.URL + "/good.tar.gz", SHA256: sum(good)}, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if kinds(st) != "download install file file file done" {
		t.Fatalf("actions %s: %+v", kinds(st), st.Actions)
	}
	if st.Actions[2].Name != filepath.Join(dir, "bin/tool") || st.Actions[4].Msg != "1 more files not listed" {
		t.Fatalf("file actions: %+v", st.Actions[2:5])
	}
	if fi, err := os.Stat(filepath.Join(dir, "bin/tool")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("bin/tool: %v %v", fi, err)
	}
	stored, err := e.store.Status("tgz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(stored)
	var shape struct {
		Done    *bool `json:"done"`
		Actions []map[string]any
	}
	if err := json.Unmarshal(b, &shape); err != nil || shape.Done == nil || !*shape.Done {
		t.Fatalf("status body %s", b)
	}
	for _, a := range shape.Actions {
		if len(a) != 5 || a["action"] == nil || a["name"] == nil || a["time"] == nil || a["ok"] == nil || a["msg"] == nil {
			t.Fatalf("action not seed-shaped: %v", a)
		}
	}

	before := snapshot(t, parent)
	st, _ = e.Run(context.Background(), Request{ID: "evil", Source: Source{URL: srv.URL + "/evil.tgz"}, Dir: dir})
	if kinds(st) != "download install! done!" || !strings.Contains(st.Actions[1].Msg, "archive refused") {
		t.Fatalf("evil: %s %+v", kinds(st), st.Actions)
	}
	if after := snapshot(t, parent); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Fatalf("refused archive changed things:\n%q\n%q", before, after)
	}

	st, _ = e.Run(context.Background(), Request{ID: "disguise", Source: Source{URL: srv.URL + "/zip-in-disguise.deb"}})
	if kinds(st) != "download install! done!" || st.Actions[1].Msg != "package type: the content is not a deb file" {
		t.Fatalf("disguise: %s %+v", kinds(st), st.Actions)
	}
}

// TestInstallBadRequest: refused before anything is journaled, naming
// the parameter.
func TestInstallBadRequest(t *testing.T) {
	e := newTestEngine(t, Options{})
	u := "https://example.com/x"
	for _, c := range []struct {
		req  Request
		want string
	}{
		{Request{ID: "a", Source: Source{URL: u + ".bin"}}, `package type: "x.bin": want a name ending in`},
		{Request{ID: "a", Source: Source{URL: u + ".tar"}}, "dir: required to unpack a tar archive"},
		{Request{ID: "a", Source: Source{URL: u + ".zip"}, Dir: "rel/dir"}, `dir "rel/dir": not an absolute path`},
		{Request{ID: "a", Source: Source{URL: u + ".zip"}, Dir: "/opt/x", Auth: "su"}, "auth: this agent cannot unpack an archive as another user"},
		{Request{ID: "a", Source: Source{URL: u + ".msi"}, Deps: true}, "deps: only for deb and rpm"},
		{Request{ID: "a", Source: Source{URL: u + ".deb"}, Auth: "doas"}, `auth "doas"`},
		{Request{ID: "a", Source: Source{URL: u + ".deb"}, Auth: "sudo", User: "-x"}, `user "-x"`},
		{Request{ID: "a", Source: Source{URL: u + ".deb"}, Auth: "su", Pass: "plain"}, "pass: bad password encoding"},
		{Request{ID: "a", Source: Source{URL: u + ".deb"}, Timeout: 48 * time.Hour}, "timeout 48h0m0s: at most 24h0m0s"},
		{Request{ID: "a", Source: Source{URL: u}, Kind: "apk"}, `package type: "apk": want deb, rpm`},
		{Request{ID: "a/b", Source: Source{URL: u + ".deb"}}, `id "a/b"`},
		{Request{ID: "a", Source: Source{URL: "ftp://h/x.deb"}}, `scheme "ftp"`},
	} {
		_, err := e.Run(context.Background(), c.req)
		if !errors.Is(err, ErrRequest) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v, want %q", c.req, err, c.want)
		}
	}
	if ents, _ := os.ReadDir(e.journal); len(ents) != 0 {
		t.Fatalf("bad requests journaled: %v", ents)
	}
}

// TestInstallCommands: the command lines of the installers not run here.
func TestInstallCommands(t *testing.T) {
	none := func(string) (string, error) { return "", errors.New("not found") }
	yumOnly := func(p string) (string, error) {
		if p == "yum" {
			return "/usr/bin/yum", nil
		}
		return "", errors.New("not found")
	}
	for _, c := range []struct {
		in   Installers
		kind Kind
		dir  string
		deps bool
		want string
	}{
		{Installers{}, KindDeb, "", false, "DEBIAN_FRONTEND=noninteractive dpkg -i /w/p"},
		{Installers{}, KindDeb, "", true, "DEBIAN_FRONTEND=noninteractive apt-get install -y /w/p"},
		{Installers{RPMArgs: []string{"--dbpath=/d"}}, KindRPM, "", false, "rpm -U --replacepkgs --dbpath=/d /w/p"},
		{Installers{LookPath: yumOnly}, KindRPM, "", true, "yum install -y /w/p"},
		{Installers{LookPath: none}, KindRPM, "", true, "error: deps: neither dnf nor yum found"},
		{Installers{}, KindMSI, `C:\App`, false, `msiexec /i /w/p /qn /norestart /l*v /w/p.log TARGETDIR=C:\App`},
		{Installers{}, KindExe, "", false, "/w/p /S"},
		{Installers{ExeFlags: []string{"/VERYSILENT", "/NORESTART"}, ExeDirFlag: "/DIR="}, KindExe, `C:\App`, false, `/w/p /VERYSILENT /NORESTART /DIR=C:\App`},
	} {
		cmd, err := c.in.installCommand(c.kind, "/w/p", c.dir, c.deps)
		got := strings.TrimSpace(cmd.env + " " + strings.Join(append([]string{cmd.prog}, cmd.args...), " "))
		if err != nil {
			got = "error: " + err.Error()
		}
		if !strings.HasPrefix(got, c.want) {
			t.Errorf("%s deps=%v: %q, want %q", c.kind, c.deps, got, c.want)
		}
	}
}

// TestMain runs the helper agent of TestInstallKilled when asked to, and
// is the agent's executable for archives unpacked as another user.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == ExtractCommand {
		os.Exit(ExtractMain(os.Args[2:], os.Stdout))
	}
	if os.Getenv("INSTALL_TEST_HELPER") == "agent" {
		helperAgent()
		return
	}
	os.Exit(m.Run())
}

// helperAgent is an agent process that runs one install and is killed
// during it.
func helperAgent() {
	store, err := OpenStore(StoreOptions{Dir: os.Getenv("INSTALL_JOURNAL")})
	if err != nil {
		panic(err)
	}
	e, err := NewEngine(Options{Store: store, Runner: runner.New(runner.Options{}), WorkDir: os.Getenv("INSTALL_WORK"),
		Installers: Installers{DpkgArgs: strings.Split(os.Getenv("INSTALL_DPKG_ARGS"), "\n")}})
	if err != nil {
		panic(err)
	}
	st, err := e.Run(context.Background(), Request{ID: "killed", Source: Source{URL: os.Getenv("INSTALL_URL")}, Kind: KindDeb})
	panic(fmt.Sprintf("the install ended, it should have been killed: %+v %v", st, err))
}
