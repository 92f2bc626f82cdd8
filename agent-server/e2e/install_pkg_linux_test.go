package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentfleet/jkframe/syncbuf"
	"github.com/agentfleet/jkframe/testuser"

	"github.com/agentfleet/agent-server/servertest"
)

// More installs through the server and the real exec-agent: an .rpm of the
// package repository installed by Debian's rpm, and installs as another
// user through su and sudo whose password shows up nowhere.

// mkpkg builds a .deb or .rpm (format) of one file with the exec-agent's
// test package builder (exec-agent/internal/pkgtest, nfpm), the one the
// install engine's own tests use, run as its mkpkg command.
func mkpkg(t *testing.T, format, name, dst, body string) []byte {
	t.Helper()
	const module = "exec-agent/internal/pkgtest/mkpkg"
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(module)), 0o755); err != nil {
		t.Fatal(err)
	}
	bin, err := servertest.Build(dir, module)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name+"."+format)
	if b, err := exec.Command(bin, "-format", format, "-name", name, "-version", "1.0.0", "-dst", dst, "-body", body, "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("mkpkg: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkSeedBody fails unless GET /api/install/status of id is the seed's
// body: done, and actions with every key.
func checkSeedBody(t *testing.T, ts *testServer, id string) {
	t.Helper()
	e := ts.get("/api/install/status?task_id=" + id)
	for _, key := range []string{`"done":true`, `"action":"download"`, `"action":"install"`, `"action":"done"`, `"name":`, `"time":`, `"ok":true`, `"msg":""`} {
		if !strings.Contains(string(e.Payload), key) {
			t.Errorf("status body lacks %s: %s", key, e.Payload)
		}
	}
}

// An .rpm built in the test, uploaded to the server's repository and
// installed through /api/install/run by Debian's rpm in a temporary root
// and database (install.rpm_args), then queried and removed.
func TestInstallRPMEndToEnd(t *testing.T) {
	testuser.Need(t, "rpm")
	const name = "agentfleet-e2e-rpm"
	pkg := mkpkg(t, "rpm", name, "/opt/e2e-rpm/hello.txt", "hello from an rpm\n")
	root := t.TempDir()
	rpmArgs := []string{"--root=" + root, "--dbpath=/rpmdb"}

	ts := startServer(t, serverSpec{})
	const file = name + "-1.0.0.noarch.rpm"
	if e := ts.do("PUT", "/api/packages/"+file, opToken, bytes.NewReader(pkg)); e.status != 200 && e.status != 201 {
		t.Fatalf("upload to the repository: %d %s", e.status, e.body)
	}
	bin := buildAgent(t, t.TempDir(), "exec-agent")
	startInstallAgent(t, ts, bin, "inst-rpm", "install.rpm_args = "+strings.Join(rpmArgs, " ")+"\n")

	id := ts.install(t, map[string]any{"id": "inst-rpm", "uri": file})
	st := ts.installDone(t, id, 60*time.Second)
	checkAllOK(t, st, "download", "install", "done")
	if st.Actions[0].Name != file || st.Actions[1].Name != file || st.Actions[2].Name != id {
		t.Errorf("names: %+v", st.Actions)
	}
	if len(st.Hosts) != 1 || st.Hosts[0].State != "ok" {
		t.Errorf("hosts: %+v", st.Hosts)
	}
	checkSeedBody(t, ts, id)
	if b, err := os.ReadFile(filepath.Join(root, "opt/e2e-rpm/hello.txt")); err != nil || string(b) != "hello from an rpm\n" {
		t.Errorf("installed file: %q %v", b, err)
	}
	out, err := exec.Command("rpm", append(rpmArgs, "-q", name)...).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), name+"-1.0.0") {
		t.Fatalf("rpm -q: %v %s", err, out)
	}
	if out, err := exec.Command("rpm", append(rpmArgs, "-e", name)...).CombinedOutput(); err != nil {
		t.Fatalf("rpm -e: %v %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(root, "opt/e2e-rpm/hello.txt")); err == nil {
		t.Error("the file is still there after rpm -e")
	}
}

// findIn fails when any file under dir holds secret.
func findIn(t *testing.T, what, dir, secret string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil // gone meanwhile, or not a file
		}
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(secret)) {
			t.Errorf("the password is in the %s: %s", what, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Installs as another user through su and sudo (auth, user, pass): a .deb
// installed by that user's dpkg and a tar.gz unpacked by the agent run as
// that user (the files are the user's), a hostile tar.gz refused; the
// password is in none of the API's answers, the server's log, the
// server's store (audit, install actions, tasks: every file of its data
// directory) and the agent's files and log. As root neither su nor sudo
// asks for the password; the runner's tests cover how it is typed.
func TestInstallAuthEndToEnd(t *testing.T) {
	u := testuser.Create(t, "afe2e")
	name, pw, uid, gid := u.Name, u.Pass, u.UID, u.GID
	testuser.Need(t, "dpkg")
	base := testuser.ReachableDir(t, "install-auth-e2e-")
	// A dpkg root the user owns: the user's dpkg writes there.
	root := filepath.Join(base, "root")
	for _, d := range []string{"info", "updates", "triggers"} {
		if err := os.MkdirAll(filepath.Join(root, "var/lib/dpkg", d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_ = filepath.WalkDir(root, func(p string, _ fs.DirEntry, _ error) error { return os.Lchown(p, uid, gid) })
	dpkgArgs := "--root=" + root + " --force-script-chrootless --force-not-root --force-bad-path --log=/dev/null"

	// Archives are unpacked by the agent's executable run as the user: it
	// must be reachable, and so must the directory the user unpacks into.
	home := filepath.Join(base, "home")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(home, uid, gid); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"app.tar.gz":  tarGz(t, map[string]string{"app/run.sh": "#!/bin/sh\n", "app/README": "readme\n"}),
		"evil.tar.gz": hostileTarGz(t),
	}
	for _, auth := range []string{"su", "sudo"} {
		files[auth+".deb"] = buildDeb(t, "agentfleet-e2e-"+auth, "/opt/e2e-"+auth+"/hello.txt", "as "+auth+"\n", "")
	}
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b, ok := files[strings.TrimPrefix(r.URL.Path, "/")]; ok {
			_, _ = w.Write(b)
			return
		}
		http.NotFound(w, r)
	}))
	defer web.Close()

	var logs syncbuf.Buffer
	data := t.TempDir()
	ts := startServer(t, serverSpec{dataDir: data, log: &logs})
	built := buildAgent(t, t.TempDir(), "exec-agent")
	bin := filepath.Join(base, "exec-agent")
	if b, err := os.ReadFile(built); err != nil || os.WriteFile(bin, b, 0o755) != nil {
		t.Fatalf("copy the agent: %v", err)
	}
	a := startInstallAgentIn(t, ts, bin, "inst-auth", "install.dpkg_args = "+dpkgArgs+"\n", base, ts.addr)

	var answers []string // every API answer the test saw
	install := func(t *testing.T, auth, pkg, dir string) installStatus {
		t.Helper()
		body := map[string]any{"id": "inst-auth", "url": web.URL + "/" + pkg, "sha256": sum256(files[pkg]),
			"auth": auth, "user": name, "pass": "$0$" + pw}
		if dir != "" {
			body["dir"] = dir
		}
		e := ts.json("POST", "/api/install/run", body)
		answers = append(answers, string(e.body))
		var created struct{ ID string }
		if e.status != 200 || json.Unmarshal(e.Payload, &created) != nil || created.ID == "" {
			t.Fatalf("install run: %d %s", e.status, e.body)
		}
		st := ts.installDone(t, created.ID, 60*time.Second)
		for _, p := range []string{"/api/install/status?task_id=" + created.ID, "/api/tasks/" + created.ID} {
			answers = append(answers, string(ts.get(p).body))
		}
		return st
	}
	owned := func(t *testing.T, p string) {
		t.Helper()
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if owner := fi.Sys().(*syscall.Stat_t).Uid; int(owner) != uid {
			t.Errorf("%s belongs to uid %d, want %s's %d", p, owner, name, uid)
		}
	}
	for _, auth := range []string{"su", "sudo"} {
		t.Run(auth, func(t *testing.T) {
			testuser.Need(t, auth)
			st := install(t, auth, auth+".deb", "")
			if len(st.Actions) != 3 || st.Hosts[0].State != "ok" {
				t.Fatalf("deb as %s through %s: %+v", name, auth, st)
			}
			checkSeedBody(t, ts, st.ID)
			owned(t, filepath.Join(root, "opt/e2e-"+auth+"/hello.txt"))

			// A tar.gz unpacked by the user, into a directory it creates.
			dir := filepath.Join(home, "app-"+auth)
			st = install(t, auth, "app.tar.gz", dir)
			if st.Hosts[0].State != "ok" || len(st.Actions) != 5 || st.Actions[2].Action != "file" {
				t.Fatalf("tar.gz as %s through %s: %+v", name, auth, st)
			}
			for _, p := range []string{"", "app", "app/run.sh", "app/README"} {
				owned(t, filepath.Join(dir, p))
			}
			if fi, err := os.Stat(filepath.Join(dir, "app/README")); err != nil || fi.Mode().Perm() != 0o640 {
				t.Errorf("README: %v %v", fi, err)
			}

			// A hostile one is refused as when the agent unpacks it.
			evil := filepath.Join(home, "evil-"+auth)
			st = install(t, auth, "evil.tar.gz", evil)
			if st.Hosts[0].State != "failed" || len(st.Actions) != 3 || st.Actions[1].OK || !strings.HasPrefix(st.Actions[1].Msg, "archive refused: entry") {
				t.Fatalf("hostile tar.gz as %s through %s: %+v", name, auth, st)
			}
			if ents, _ := os.ReadDir(evil); len(ents) != 0 {
				t.Errorf("the hostile archive wrote %v", ents)
			}
		})
	}
	audit := ts.get("/api/audit?size=100&action=" + strings.ReplaceAll("POST /api/install/run", " ", "%20"))
	answers = append(answers, string(audit.body))
	// The password was sent: the audit says so, without it.
	if n := strings.Count(string(audit.body), `"pass":true`); n != 6 {
		t.Errorf("audit entries with pass: %d, want 6: %s", n, audit.body)
	}
	for i, s := range answers {
		if strings.Contains(s, pw) {
			t.Errorf("the password is in API answer %d: %s", i, s)
		}
	}
	if strings.Contains(logs.String(), pw) {
		t.Errorf("the password is in the server's log")
	}
	// The request reached the server's log, without its password.
	if l := logs.String(); !strings.Contains(l, "user="+name) || !strings.Contains(l, "auth=sudo") {
		t.Errorf("the installs are not in the server's log")
	}
	ts.stop() // the store's files complete (WAL checkpointed)
	findIn(t, "server's data directory", data, pw)
	findIn(t, "agent's files", a.stateDir, pw)
	if b, err := os.ReadFile(a.stdout); err != nil || !bytes.Contains(b, []byte("user="+name)) {
		t.Errorf("the agent's log lacks the installs: %v", err)
	}
}

// hostileTarGz is a tar.gz whose second entry would be written through
// its first, a symlink out of the directory.
func hostileTarGz(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, h := range []*tar.Header{
		{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/etc", Mode: 0o777},
		{Name: "l/agentfleet-evil", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			_, _ = tw.Write([]byte("x"))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
