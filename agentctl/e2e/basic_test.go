//go:build linux

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLogin logs in with a token on stdin, checks the saved context (mode
// 0600, made current) and uses it without AGENTCTL_SERVER/TOKEN; a wrong
// token is refused with exit 3 and nothing is saved.
func TestLogin(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "cfg", "config.yaml")
	noEnv := []string{"AGENTCTL_SERVER=", "AGENTCTL_TOKEN=", "AGENTCTL_CONFIG=" + cfg}

	r := fleet.ctl(t, ctlOpts{env: noEnv, stdin: strings.NewReader("wrong-token\n")}, "login", fleet.url, "--token-stdin", "--name", "bad")
	if r.code != 3 || !strings.Contains(r.err, "401") || !strings.Contains(r.err, "token rejected — run agentctl login") {
		t.Errorf("wrong token: exit %d, stderr %q", r.code, r.err)
	}
	if _, err := os.Stat(cfg); err == nil {
		t.Error("config written for a refused token")
	}

	r = fleet.ctl(t, ctlOpts{env: noEnv, stdin: strings.NewReader(opToken + "\n")}, "login", fleet.url, "--token-stdin", "--name", "e2e")
	if r.code != 0 || !strings.Contains(r.out, `context "e2e" saved`) {
		t.Fatalf("login: exit %d\n%s%s", r.code, r.out, r.err)
	}
	fi, err := os.Stat(cfg)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config: %v %v", fi, err)
	}
	b, _ := os.ReadFile(cfg)
	if !strings.Contains(string(b), "current-context: e2e") || !strings.Contains(string(b), opToken) {
		t.Errorf("config:\n%s", b)
	}
	// A second context, then back.
	r = fleet.ctl(t, ctlOpts{env: noEnv, stdin: strings.NewReader(roToken + "\n")}, "login", fleet.url, "--token-stdin", "--name", "ro")
	if r.code != 0 {
		t.Fatalf("login ro: %s", r.err)
	}
	r = fleet.ctl(t, ctlOpts{env: noEnv}, "context", "ls", "-o", "json")
	if r.code != 0 {
		t.Fatalf("context ls: %s", r.err)
	}
	checkShape(t, "context_ls", r.out)
	if strings.Contains(r.out, opToken) || strings.Contains(r.out, roToken) {
		t.Error("context ls shows a token")
	}
	var ctxs []struct {
		Name    string `json:"name"`
		Current bool   `json:"current"`
	}
	_ = json.Unmarshal([]byte(r.out), &ctxs)
	if len(ctxs) != 2 || ctxs[0].Name != "e2e" || ctxs[0].Current || !ctxs[1].Current {
		t.Errorf("contexts %+v", ctxs)
	}
	// The read-only context may read, not write.
	if r := fleet.ctl(t, ctlOpts{env: noEnv}, "agents", "ls"); r.code != 0 || !strings.Contains(r.out, "e2e-a1") {
		t.Errorf("agents ls with the ro context: %d %s", r.code, r.err)
	}
	if r := fleet.ctl(t, ctlOpts{env: noEnv}, "agents", "label", "e2e-a1", "x=y"); r.code != 3 || !strings.Contains(r.err, "403") {
		t.Errorf("label with a read-only token: exit %d %s", r.code, r.err)
	}
	if r := fleet.ctl(t, ctlOpts{env: noEnv}, "context", "use", "e2e"); r.code != 0 {
		t.Fatal(r.err)
	}
	if r := fleet.ctl(t, ctlOpts{env: noEnv}, "--context", "ro", "version"); r.code != 0 || !strings.Contains(r.out, "agent-server") {
		t.Errorf("--context ro version: %d %s %s", r.code, r.out, r.err)
	}
	if r := fleet.ctl(t, ctlOpts{env: noEnv}, "context", "rm", "ro"); r.code != 0 {
		t.Fatal(r.err)
	}
	b, _ = os.ReadFile(cfg)
	if strings.Contains(string(b), roToken) {
		t.Error("removed context's token still in the file")
	}
}

// TestVersion shows client and server versions.
func TestVersion(t *testing.T) {
	r := fleet.ok(t, "version")
	if !strings.HasPrefix(r.out, "agentctl ") || !strings.Contains(r.out, "agent-server ") || !strings.Contains(r.out, fleet.url) {
		t.Errorf("version:\n%s", r.out)
	}
	r = fleet.ok(t, "version", "-o", "json")
	checkShape(t, "version", r.out)
	r = fleet.ctl(t, ctlOpts{env: []string{"AGENTCTL_SERVER=", "AGENTCTL_TOKEN="}}, "version", "--client")
	if r.code != 0 || strings.Contains(r.out, "agent-server") {
		t.Errorf("version --client: %d %s %s", r.code, r.out, r.err)
	}
	// An unreachable server: the client's version, then exit 3.
	r = fleet.ctl(t, ctlOpts{env: []string{"AGENTCTL_SERVER=http://127.0.0.1:1"}}, "version")
	if r.code != 3 || !strings.HasPrefix(r.out, "agentctl ") || !strings.Contains(r.err, "cannot reach") || !strings.Contains(r.err, "is agent-server running") {
		t.Errorf("unreachable: exit %d\n%s\n%s", r.code, r.out, r.err)
	}
}

// TestWhoami asks the server about the token; a server without
// /api/whoami gets a clear message.
func TestWhoami(t *testing.T) {
	r := fleet.ctl(t, ctlOpts{}, "whoami", "-o", "json")
	switch {
	case r.code == 0:
		checkShape(t, "whoami", r.out)
		if !strings.Contains(r.out, `"ops"`) {
			t.Errorf("whoami: %s", r.out)
		}
	case strings.Contains(r.err, "has no /api/whoami"):
		t.Log("this server predates /api/whoami: checked the fallback message only")
		if r.code != 1 {
			t.Errorf("exit %d", r.code)
		}
	default:
		t.Errorf("whoami: exit %d %s", r.code, r.err)
	}
}

// TestAgents lists, filters, shows and labels agents.
func TestAgents(t *testing.T) {
	r := fleet.ok(t, "agents", "ls")
	for _, id := range append(fleet.ids, metricsAgent) {
		if !strings.Contains(r.out, id) {
			t.Errorf("agents ls lacks %s:\n%s", id, r.out)
		}
	}
	if !strings.HasPrefix(r.out, "ID ") {
		t.Errorf("no header:\n%s", r.out)
	}
	r = fleet.ok(t, "agents", "ls", "-l", "role=web", "--online", "-o", "json")
	checkShape(t, "agents_ls", r.out)
	var list []struct {
		ID       string            `json:"id"`
		Type     string            `json:"type"`
		IsOnline bool              `json:"is_online"`
		Labels   map[string]string `json:"labels"`
	}
	if err := json.Unmarshal([]byte(r.out), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != "e2e-a1" || list[1].ID != "e2e-a2" || !list[0].IsOnline || list[0].Labels["role"] != "web" {
		t.Errorf("-l role=web: %+v", list)
	}
	r = fleet.ok(t, "agents", "ls", "--type", "metrics-agent", "-o", "wide")
	if !strings.Contains(r.out, metricsAgent) || strings.Contains(r.out, "e2e-a1") || !strings.Contains(r.out, "CONNECTED") {
		t.Errorf("--type metrics-agent -o wide:\n%s", r.out)
	}
	r = fleet.ok(t, "agents", "ls", "-o", "yaml")
	if !strings.Contains(r.out, "- id: e2e-a1") && !strings.Contains(r.out, "id: e2e-a1") {
		t.Errorf("yaml:\n%s", r.out)
	}

	r = fleet.ok(t, "agents", "get", "e2e-a3", "-o", "json")
	checkShape(t, "agents_get", r.out)
	r = fleet.ok(t, "agents", "get", "e2e-a3")
	if !strings.Contains(r.out, "exec-agent") || !strings.Contains(r.out, "role=db") {
		t.Errorf("get:\n%s", r.out)
	}
	r = fleet.ctl(t, ctlOpts{}, "agents", "get", "nosuch-agent")
	if r.code != 1 || !strings.Contains(r.err, "404: not found: agent") || !strings.Contains(r.err, "agentctl agents ls") {
		t.Errorf("unknown agent: exit %d %s", r.code, r.err)
	}

	r = fleet.ok(t, "agents", "label", "e2e-a3", "tier=gold", "zone=b")
	if !strings.Contains(r.out, "tier=gold\n") || !strings.Contains(r.out, "role=db\n") {
		t.Errorf("label:\n%s", r.out)
	}
	fleet.ok(t, "agents", "label", "e2e-a3", "tier-", "zone-")
	var a struct {
		Labels map[string]string `json:"labels"`
	}
	if err := fleet.api("GET", "/api/agents/e2e-a3", nil, &a); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Labels["tier"]; ok || a.Labels["role"] != "db" || a.Labels["e2e"] != "yes" {
		t.Errorf("labels after removal: %v", a.Labels)
	}
	r = fleet.ok(t, "audit", "--target", "e2e-a3", "--action", "PUT /api/agents/{id}/labels", "--limit", "2", "-o", "json")
	checkShape(t, "audit", r.out)
	var entries []struct {
		Actor  string `json:"actor"`
		Result string `json:"result"`
	}
	_ = json.Unmarshal([]byte(r.out), &entries)
	if len(entries) != 2 || entries[0].Actor != "ops" || entries[0].Result != "ok" {
		t.Errorf("audit: %s", r.out)
	}
	r = fleet.ok(t, "audit", "--target", "e2e-a3", "--limit", "1")
	if !strings.Contains(r.out, "PUT /api/agents/{id}/labels") || !strings.Contains(r.out, "ops") {
		t.Errorf("audit table:\n%s", r.out)
	}
}

// TestCompletion checks the generated scripts and the dynamic completion
// of agent ids, label keys and values, and remote paths.
func TestCompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		r := fleet.ok(t, "completion", sh)
		if !strings.Contains(r.out, "agentctl") || len(r.out) < 1000 {
			t.Errorf("completion %s: %d bytes", sh, len(r.out))
		}
	}
	r := fleet.ok(t, "__complete", "agents", "get", "e2e-a")
	for _, id := range fleet.ids {
		if !strings.Contains(r.out, id+"\texec-agent") {
			t.Errorf("agent ids: no %s in\n%s", id, r.out)
		}
	}
	r = fleet.ok(t, "__complete", "metrics", "e2e-")
	if !strings.Contains(r.out, metricsAgent) || strings.Contains(r.out, "e2e-a1") {
		t.Errorf("metrics agent ids:\n%s", r.out)
	}
	r = fleet.ok(t, "__complete", "run", "-l", "ro")
	if !strings.Contains(r.out, "role=\n") {
		t.Errorf("label keys:\n%s", r.out)
	}
	r = fleet.ok(t, "__complete", "run", "-l", "e2e=yes,role=")
	if !strings.Contains(r.out, "e2e=yes,role=db\n") || !strings.Contains(r.out, "e2e=yes,role=web\n") {
		t.Errorf("label values:\n%s", r.out)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "file.txt"), nil, 0o644)
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	r = fleet.ok(t, "__complete", "cp", "e2e-a1:"+dir+"/")
	if !strings.Contains(r.out, "e2e-a1:"+dir+"/file.txt\n") || !strings.Contains(r.out, "e2e-a1:"+dir+"/sub/\n") {
		t.Errorf("remote paths:\n%s", r.out)
	}
	r = fleet.ok(t, "__complete", "cp", "e2e-a")
	if !strings.Contains(r.out, "e2e-a1:\t") {
		t.Errorf("cp agent prefixes:\n%s", r.out)
	}
	// No server: no completions, no error.
	r = fleet.ctl(t, ctlOpts{env: []string{"AGENTCTL_SERVER=http://127.0.0.1:1"}}, "__complete", "agents", "get", "")
	if r.code != 0 || strings.Contains(r.out, "e2e-a1") {
		t.Errorf("unreachable: %d %s %s", r.code, r.out, r.err)
	}
}

// TestErrors checks the exit codes and the fixes named for common
// failures.
func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		args []string
		code int
		want []string
	}{
		{[]string{"AGENTCTL_TOKEN=nope"}, []string{"agents", "ls"}, 3, []string{"401", "token rejected — run agentctl login"}},
		{[]string{"AGENTCTL_SERVER=http://127.0.0.1:1"}, []string{"agents", "ls"}, 3, []string{"cannot reach", "connection refused"}},
		{[]string{"AGENTCTL_SERVER=https://" + strings.TrimPrefix(fleet.url, "http://")}, []string{"agents", "ls"}, 3, []string{"use an http:// URL"}},
		{[]string{"AGENTCTL_TOKEN=" + roToken}, []string{"run", "e2e-a1", "--", "true"}, 3, []string{"403", "forbidden"}},
		{nil, []string{"run", metricsAgent, "--", "true"}, 1, []string{"424", "agentctl agents get"}},
		{nil, []string{"run", "nosuch", "--", "true"}, 1, []string{"404: not found: agent"}},
		{nil, []string{"tasks", "get", "nosuchtask"}, 1, []string{"404", "not found"}},
		{nil, []string{"nosuch"}, 2, []string{"unknown command"}},
	} {
		r := fleet.ctl(t, ctlOpts{env: tc.env}, tc.args...)
		if r.code != tc.code {
			t.Errorf("%v: exit %d, want %d (%s)", tc.args, r.code, tc.code, r.err)
		}
		for _, w := range tc.want {
			if !strings.Contains(r.err, w) {
				t.Errorf("%v: stderr %q lacks %q", tc.args, r.err, w)
			}
		}
	}
}
