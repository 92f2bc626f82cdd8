package runner

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
)

func TestParsePasswdLine(t *testing.T) {
	tests := []struct {
		line, uid string
		want      passwdEntry
		ok        bool
	}{
		{"root:x:0:0:root:/root:/bin/bash", "0", passwdEntry{"/root", "/bin/bash"}, true},
		{"deploy:x:1000:1000:Deploy,,,:/home/deploy:/usr/bin/zsh", "1000", passwdEntry{"/home/deploy", "/usr/bin/zsh"}, true},
		{"deploy:x:1000:1000::/home/deploy:", "1000", passwdEntry{"/home/deploy", ""}, true},
		{"svc:x:999:999::relative/home:nologin", "999", passwdEntry{}, true},
		{"root:x:0:0:root:/root:/bin/bash", "1000", passwdEntry{}, false},
		{"root:x:0:0:root:/root", "0", passwdEntry{}, false},
		{"root:x:0:0:root:/root:/bin/sh:extra", "0", passwdEntry{}, false},
		{"+::::::", "", passwdEntry{}, false},
		{"", "0", passwdEntry{}, false},
	}
	for _, tt := range tests {
		got, ok := parsePasswdLine(tt.line, tt.uid)
		if ok != tt.ok || got != tt.want {
			t.Errorf("parsePasswdLine(%q, %q) = %+v, %v; want %+v, %v", tt.line, tt.uid, got, ok, tt.want, tt.ok)
		}
	}
}

// The login shell comes from the password database; a missing or
// unusable one falls back to Options.Shell. The session starts in the
// home directory with HOME, USER, LOGNAME and SHELL set.
func TestStartShellLogin(t *testing.T) {
	self, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	for _, tc := range []struct{ shell, want string }{
		{"/bin/sh", "/bin/sh"},
		{"/nonexistent/shell", "/bin/sh"},
	} {
		passwd := filepath.Join(t.TempDir(), "passwd")
		line := fmt.Sprintf("someone:x:%s:0::%s:%s\n", self.Uid, home, tc.shell)
		if err := os.WriteFile(passwd, []byte("other:x:4242:0::/:/bin/false\n"+line), 0o644); err != nil {
			t.Fatal(err)
		}
		r := New(Options{BaseEnv: []string{"PATH=/usr/bin:/bin", "HOME=/wrong"}})
		sh, err := r.StartShell(ShellSpec{Cols: 80, Rows: 24, Passwd: passwd, Env: []string{"PS1=$ "}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sh.Write([]byte(`echo "<$0|$(pwd)|$HOME|$USER|$SHELL>"; exit 5` + "\r")); err != nil {
			t.Fatal(err)
		}
		out, err := io.ReadAll(sh)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("<-sh|%s|%s|%s|%s>", home, home, self.Username, tc.want)
		if !strings.Contains(string(out), want) {
			t.Errorf("shell %s: output %q, want %q", tc.shell, out, want)
		}
		if code := sh.Close(); code != 5 {
			t.Errorf("exit code %d, want 5", code)
		}
		if n := r.Running(); n != 0 {
			t.Errorf("%d slots still taken after Close", n)
		}
	}
}

func TestStartShellLimits(t *testing.T) {
	r := New(Options{MaxTasks: 1})
	sh, err := r.StartShell(ShellSpec{Cmd: "cat", Cols: 80, Rows: 24})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.StartShell(ShellSpec{Cmd: "cat", Cols: 80, Rows: 24}); !errors.Is(err, ErrBusy) {
		t.Errorf("second shell: %v, want ErrBusy", err)
	}
	sh.Hangup()
	if code := sh.Close(); code != 128+1 {
		t.Errorf("hung-up cat: code %d, want 129", code)
	}
	for _, spec := range []ShellSpec{
		{Cols: 0, Rows: 24},
		{Cols: 80, Rows: 24, Env: []string{"=x"}},
		{Cols: 80, Rows: 24, User: "a b"},
	} {
		if _, err := r.StartShell(spec); !errors.Is(err, ErrSpec) {
			t.Errorf("%+v: %v, want ErrSpec", spec, err)
		}
	}
	if n := r.Running(); n != 0 {
		t.Errorf("%d slots taken", n)
	}
}
