//go:build linux

package e2e

import (
	"archive/zip"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestMetrics prints a snapshot of a metrics-agent's host and its JSON.
func TestMetrics(t *testing.T) {
	r := fleet.ok(t, "metrics", metricsAgent, "--once", "--top", "3")
	for _, want := range []string{metricsAgent, "\ncpu ", "\nmem ", "PID", "COMMAND"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("metrics lacks %q:\n%s", want, r.out)
		}
	}
	if rows := strings.Count(r.out[strings.Index(r.out, "PID"):], "\n"); rows > 4 {
		t.Errorf("--top 3 gave %d rows", rows-1)
	}
	// Not a terminal: one snapshot even without --once.
	r = fleet.ok(t, "metrics", metricsAgent)
	if strings.Count(r.out, "PID") != 1 {
		t.Errorf("snapshot:\n%s", r.out)
	}
	r = fleet.ok(t, "metrics", metricsAgent, "-o", "json")
	var v struct {
		Static  map[string]any `json:"static"`
		Dynamic map[string]any `json:"dynamic"`
	}
	if err := json.Unmarshal([]byte(r.out), &v); err != nil || v.Static["host"] == nil || v.Dynamic["usage"] == nil {
		t.Errorf("json: %v\n%s", err, clip(r.out))
	}
	r = fleet.ctl(t, ctlOpts{}, "metrics", "e2e-a1", "--once")
	if r.code != 1 || !strings.Contains(r.err, "424") {
		t.Errorf("an exec-agent: %d %s", r.code, r.err)
	}
}

// TestLogs lists an agent's log files, prints the newest and saves a zip.
func TestLogs(t *testing.T) {
	r := fleet.ok(t, "logs", "e2e-a1", "--ls", "-o", "json")
	checkShape(t, "logs_ls", r.out)
	var files []struct {
		Name string `json:"name"`
		Size int64  `json:"size"`
	}
	if err := json.Unmarshal([]byte(r.out), &files); err != nil || len(files) == 0 {
		t.Fatalf("%v %s", err, r.out)
	}
	r = fleet.ok(t, "logs", "e2e-a1", "--tail", "3")
	if n := strings.Count(r.out, "\n"); n == 0 || n > 3 {
		t.Errorf("--tail 3 printed %d lines:\n%s", n, r.out)
	}
	r = fleet.ok(t, "logs", "e2e-a1")
	if !strings.Contains(r.out, "e2e-a1") && !strings.Contains(r.out, "level=") {
		t.Errorf("log:\n%s", clip(r.out))
	}
	out := filepath.Join(t.TempDir(), "logs.zip")
	fleet.ok(t, "logs", "e2e-a1", "--file", files[0].Name, "--zip", out)
	zr, err := zip.OpenReader(out)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	if len(zr.File) != 1 || filepath.Base(zr.File[0].Name) != files[0].Name {
		t.Errorf("zip holds %d files", len(zr.File))
	}
	r = fleet.ctl(t, ctlOpts{}, "logs", "e2e-a1", "--file", "nosuch.log")
	if r.code != 1 {
		t.Errorf("unknown file: %d %s", r.code, r.err)
	}
}
