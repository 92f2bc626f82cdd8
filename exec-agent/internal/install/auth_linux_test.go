package install

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/agentfleet/jkframe/testuser"
)

// TestInstallAuth installs a .deb as another user through su and through
// sudo, with a password: the package is installed by that user (its files
// are that user's), and the password is nowhere in the logs, the journal or
// the status. As root neither su nor sudo asks for the password; the
// runner's tests cover how it is typed when they do.
func TestInstallAuth(t *testing.T) {
	need(t, "dpkg")
	u := testuser.Create(t, "afinst")
	name, pw, uid, gid := u.Name, u.Pass, u.UID, u.GID

	deb := buildPkg(t, "deb", pkgSpec{name: "agentfleet-authtest", version: "1.0.0", dst: "/opt/authtest/hello.txt", body: "as a user\n"})
	srv := serve(t, map[string][]byte{"a.deb": deb})
	for _, auth := range []string{"su", "sudo"} {
		t.Run(auth, func(t *testing.T) {
			need(t, auth)
			// Everything the user touches must be reachable by it.
			base := testuser.ReachableDir(t, "install-auth-")
			root := filepath.Join(base, "root")
			for _, d := range []string{"info", "updates", "triggers"} {
				os.MkdirAll(filepath.Join(root, "var/lib/dpkg", d), 0o755)
			}
			writeFile(t, root, "var/lib/dpkg/status", nil)
			filepath.Walk(root, func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, uid, gid) })
			args := []string{"--root=" + root, "--force-script-chrootless", "--force-not-root", "--force-bad-path", "--log=/dev/null"}
			e := newTestEngine(t, Options{WorkDir: filepath.Join(base, "work"), Installers: Installers{DpkgArgs: args}})

			st, err := e.Run(context.Background(), Request{ID: "auth-" + auth, Source: Source{URL: srv.URL + "/a.deb", SHA256: sum(deb)},
				Auth: auth, User: name, Pass: "$0$" + pw})
			if err != nil {
				t.Fatal(err)
			}
			if kinds(st) != "download install done" {
				t.Fatalf("actions %s: %+v", kinds(st), st.Actions)
			}
			fi, err := os.Stat(filepath.Join(root, "opt/authtest/hello.txt"))
			if err != nil {
				t.Fatal(err)
			}
			if owner := fi.Sys().(*syscall.Stat_t).Uid; int(owner) != uid {
				t.Fatalf("installed file belongs to uid %d, want %s's %d", owner, name, uid)
			}
			b, _ := json.Marshal(st)
			journal, _ := os.ReadFile(filepath.Join(e.journal, "auth-"+auth+".journal"))
			for what, s := range map[string]string{"logs": e.logs.String(), "status": string(b), "journal": string(journal)} {
				if strings.Contains(s, pw) {
					t.Fatalf("the password is in the %s:\n%s", what, s)
				}
			}
			// The request was logged, without its password.
			if logs := e.logs.String(); !strings.Contains(logs, "user="+name) || !strings.Contains(logs, "pass=true") {
				t.Fatalf("the request is not in the logs:\n%s", logs)
			}
		})
	}
}

// TestInstallArchiveAuth unpacks archives as another user through su and
// sudo: the agent's executable (here the test binary, whose TestMain runs
// ExtractCommand) runs as that user and unpacks with its rights. The
// files and the directory it creates are the user's; a directory the user
// may not write fails; a hostile archive is refused with nothing written;
// the password is in no log, journal or status.
func TestInstallArchiveAuth(t *testing.T) {
	u := testuser.Create(t, "afinst")
	name, pw, uid, gid := u.Name, u.Pass, u.UID, u.GID
	base := testuser.ReachableDir(t, "install-auth-")
	self := filepath.Join(base, "agent")
	me, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	runCmd(t, "", "cp", me, self)
	if err := os.Chmod(self, 0o755); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(base, "home")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(home, uid, gid); err != nil {
		t.Fatal(err)
	}
	good := makeTar(t, []ent{{name: "bin/tool", typ: '0', body: "#!/bin/sh\n", mode: 0o750}, file("a.txt", "a"), file("b.txt", "b")}, true)
	evil := makeTar(t, []ent{file("ok.txt", "fine"), symlink("l", ".."), file("l/evil", "x")}, true)
	srv := serve(t, map[string][]byte{"good.tar.gz": good, "evil.tgz": evil, "good.zip": makeZip(t, []ent{file("z.txt", "z")})})

	for _, auth := range []string{"su", "sudo"} {
		t.Run(auth, func(t *testing.T) {
			need(t, auth)
			e := newTestEngine(t, Options{WorkDir: filepath.Join(base, "work-"+auth), Self: self, MaxFileActions: 2})
			run := func(id, pkg, dir string) Status {
				t.Helper()
				st, err := e.Run(context.Background(), Request{ID: id + "-" + auth, Source: Source{URL: srv.URL + "/" + pkg},
					Dir: dir, Auth: auth, User: name, Pass: "$0$" + pw})
				if err != nil {
					t.Fatal(err)
				}
				return st
			}
			dir := filepath.Join(home, "app-"+auth) // the user creates it
			st := run("tgz", "good.tar.gz", dir)
			if kinds(st) != "download install file file file done" || st.Actions[2].Name != filepath.Join(dir, "bin/tool") ||
				st.Actions[4].Msg != "1 more files not listed" {
				t.Fatalf("actions %s: %+v", kinds(st), st.Actions)
			}
			for _, p := range []string{"", "bin", "bin/tool", "a.txt"} {
				fi, err := os.Stat(filepath.Join(dir, p))
				if err != nil {
					t.Fatal(err)
				}
				if owner := fi.Sys().(*syscall.Stat_t).Uid; int(owner) != uid {
					t.Errorf("%s belongs to uid %d, want %s's %d", filepath.Join(dir, p), owner, name, uid)
				}
				if p == "bin/tool" && fi.Mode().Perm() != 0o750 {
					t.Errorf("bin/tool mode %v", fi.Mode())
				}
			}
			if st := run("zip", "good.zip", dir); kinds(st) != "download install file done" {
				t.Errorf("zip: %s %+v", kinds(st), st.Actions)
			}

			// Where the user may not write (base is root's, 0755).
			st = run("denied", "good.tar.gz", filepath.Join(base, "denied-"+auth))
			if kinds(st) != "download install! done!" || !strings.Contains(st.Actions[1].Msg, "permission denied") {
				t.Errorf("a directory the user may not write: %s %+v", kinds(st), st.Actions)
			}
			if _, err := os.Stat(filepath.Join(base, "denied-"+auth)); err == nil {
				t.Error("the directory the user may not write was created")
			}

			// A hostile archive, refused as when the agent unpacks it.
			before := snapshot(t, home)
			st = run("evil", "evil.tgz", dir)
			if kinds(st) != "download install! done!" || !strings.HasPrefix(st.Actions[1].Msg, "archive refused: entry") {
				t.Errorf("hostile archive: %s %+v", kinds(st), st.Actions)
			}
			if after := snapshot(t, home); strings.Join(after, "\n") != strings.Join(before, "\n") {
				t.Errorf("the hostile archive changed things:\n%q\n%q", before, after)
			}

			for _, id := range []string{"tgz", "zip", "denied", "evil"} {
				journal, _ := os.ReadFile(filepath.Join(e.journal, id+"-"+auth+".journal"))
				if len(journal) == 0 || strings.Contains(string(journal), pw) {
					t.Errorf("journal of %s: empty, or holds the password", id)
				}
			}
			if logs := e.logs.String(); strings.Contains(logs, pw) || !strings.Contains(logs, "pass=true") {
				t.Errorf("logs: the password is there, or the requests are not:\n%s", logs)
			}
		})
	}
}
