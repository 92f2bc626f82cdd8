package service

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestKardianosConfig(t *testing.T) {
	c := Config{
		Name:        "exec-agent",
		Description: "runs tasks",
		Executable:  "/opt/exec-agent/exec-agent",
		Args:        []string{"run", "--conf", "/opt/exec-agent/conf/agent.conf"},
	}
	kc, err := kardianosConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	if kc.Name != "exec-agent" || kc.DisplayName != "exec-agent" || kc.Description != "runs tasks" ||
		kc.Executable != c.Executable || kc.WorkingDirectory != "/opt/exec-agent" ||
		!reflect.DeepEqual(kc.Arguments, c.Args) {
		t.Fatalf("mapped %+v", kc)
	}
	for k, want := range map[string]any{
		"Restart":                "always",
		"OnFailure":              "restart",
		"OnFailureDelayDuration": "5s",
		"OnFailureResetPeriod":   86400,
		"KeepAlive":              true,
	} {
		if got := kc.Option[k]; got != want {
			t.Errorf("Option[%s] = %v, want %v", k, got, want)
		}
	}
	unit, _ := kc.Option["SystemdScript"].(string)
	for _, line := range []string{"Restart={{Restart}}", "RestartSec=5", "StartLimitIntervalSec=0", "WorkingDirectory={{WorkingDirectory | cmdEscape}}"} {
		if !strings.Contains(unit, line) {
			t.Errorf("systemd unit lacks %q", line)
		}
	}
	c.Args[0] = "changed"
	if kc.Arguments[0] != "run" {
		t.Error("Arguments alias the caller's slice")
	}
	c.DisplayName, c.WorkingDir = "Exec Agent", "/var/lib/exec-agent"
	kc, _ = kardianosConfig(c)
	if kc.DisplayName != "Exec Agent" || kc.WorkingDirectory != "/var/lib/exec-agent" {
		t.Fatalf("explicit fields not kept: %+v", kc)
	}
	// Default executable: this test binary.
	kc, err = kardianosConfig(Config{Name: "x"})
	if err != nil || kc.Executable == "" {
		t.Fatalf("default executable: %v %q", err, kc.Executable)
	}
}

func TestBadConfigAndActions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		c      Config
		action string
		want   string
	}{
		{"unknown action", Config{Name: "a"}, "reload", `service a: unknown service action "reload" (valid: install, uninstall, start, stop, restart, status)`},
		{"empty action", Config{Name: "a"}, "", `service a: unknown service action "" (valid: install, uninstall, start, stop, restart, status)`},
		{"no name", Config{Executable: "/bin/true"}, "install", `service: bad name "" (want a non-empty name without spaces or slashes)`},
		{"space in name", Config{Name: "my agent"}, "start", `service: bad name "my agent" (want a non-empty name without spaces or slashes)`},
		{"relative exe", Config{Name: "a", Executable: "bin/agent"}, "install", `service a: executable "bin/agent" is not an absolute path`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Control(tc.c, tc.action)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got %v\nwant %s", err, tc.want)
			}
		})
	}
	if err := Control(Config{Name: "a"}, "bogus"); !errors.Is(err, ErrUnknownAction) {
		t.Fatalf("not ErrUnknownAction: %v", err)
	}
}

func TestStatusNotInstalled(t *testing.T) {
	c := Config{Name: "agentfleet-test-never-installed", Executable: "/bin/true"}
	st, err := Status(c)
	if err != nil {
		t.Skipf("no usable service manager here: %v", err)
	}
	if st != StateNotInstalled || st.String() != "not installed" {
		t.Fatalf("state %v", st)
	}
	if err := Control(c, "status"); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("Control status: %v", err)
	}
}

func TestSupervise(t *testing.T) {
	boom := errors.New("boom")
	t.Run("start returns", func(t *testing.T) {
		err := supervise(context.Background(), nil, time.Second, func(context.Context) error { return boom })
		if !errors.Is(err, boom) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("stop cancels", func(t *testing.T) {
		stop := make(chan struct{})
		close(stop)
		err := supervise(context.Background(), stop, time.Minute, func(ctx context.Context) error {
			<-ctx.Done()
			return nil
		})
		if err != nil {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("stop timeout", func(t *testing.T) {
		stop, release := make(chan struct{}), make(chan struct{})
		close(stop)
		err := supervise(context.Background(), stop, 10*time.Millisecond, func(context.Context) error {
			<-release // ignores ctx
			return nil
		})
		close(release)
		if !errors.Is(err, ErrStopTimeout) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("panic", func(t *testing.T) {
		err := supervise(context.Background(), nil, time.Second, func(context.Context) error { panic("oops") })
		if err == nil || err.Error() != "service: start panicked: oops" {
			t.Fatalf("got %v", err)
		}
	})
}
