package tasks

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

const goodSig = "c2lnbmF0dXJlIG9mIDY0IGJ5dGVzISEhISEhISEhISEhISEhISEhISEhISEhISEhISEhISEhISEhISEhISEhIQ=="

func TestUpgradeRequestBadInput(t *testing.T) {
	for _, c := range []struct {
		body, want string
	}{
		{`{"package":"p"}`, "agent_type: missing"},
		{`{"agent_type":"Exec Agent","package":"p"}`, "agent_type: \"Exec Agent\" is not an agent type"},
		{`{"agent_type":"exec-agent"}`, "package or version: give one"},
		{`{"agent_type":"exec-agent","package":"p","version":"1"}`, "package and version: give one"},
		{`{"agent_type":"exec-agent","package":"../etc/passwd"}`, "package: \"../etc/passwd\" is not a package name"},
		{`{"agent_type":"exec-agent","version":"1.0 beta"}`, "version: \"1.0 beta\" is not a version"},
		{`{"agent_type":"exec-agent","version":"1.0","signature":"` + goodSig + `"}`, "signature: only with package"},
		{`{"agent_type":"exec-agent","package":"p","signature":"not base64!"}`, "signature: not a base64 signature"},
		{`{"agent_type":"exec-agent","version":"1","signatures":{"a/b":"` + goodSig + `"}}`, "signatures: \"a/b\" is not a package name"},
		{`{"agent_type":"exec-agent","version":"1","signatures":{"p":"xx"}}`, "signatures: p: not a base64 signature"},
		{`{"agent_type":"exec-agent","package":"p","deadline":-1}`, "deadline: must be between 0 and 24h0m0s"},
		{`{"agent_type":"exec-agent","package":"p","deadline":"48h"}`, "deadline: must be between 0 and 24h0m0s"},
		{`{"agent_type":"exec-agent","package":"p","stay":-1}`, "stay: must not be negative"},
		{`{"agent_type":"exec-agent","package":"p","deadline":10,"stay":10}`, "stay: must be shorter than deadline (10s)"},
		{`{"agent_type":"exec-agent","package":"p","deadline":"10.5s"}`, "deadline and stay: whole seconds"},
		{`{"agent_type":"exec-agent","package":"p","canary":-1}`, "canary -1 is negative"},
		{`{"agent_type":"exec-agent","package":"p","wait_offline":-1}`, "wait_offline: must be between"},
	} {
		var r UpgradeRequest
		if err := json.Unmarshal([]byte(c.body), &r); err != nil {
			t.Fatalf("%s: %v", c.body, err)
		}
		_, err := r.spec()
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want ErrInvalid with %q", c.body, err, c.want)
		}
	}
}

func TestUpgradeRequestDefaults(t *testing.T) {
	r := UpgradeRequest{AgentType: "exec-agent", Version: "v2.0.0", Signatures: map[string]string{"exec-agent_2.0.0_linux_amd64": goodSig}}
	sp, err := r.spec()
	if err != nil {
		t.Fatal(err)
	}
	if sp.Deadline != DefaultUpgradeDeadline || sp.Stay != DefaultUpgradeStay || sp.Signatures["exec-agent_2.0.0_linux_amd64"] != goodSig {
		t.Errorf("spec %+v", sp)
	}
	r = UpgradeRequest{AgentType: "exec-agent", Package: "p", Deadline: Seconds(6 * time.Second)}
	if sp, err = r.spec(); err != nil || sp.Stay != 3*time.Second {
		t.Errorf("short deadline: stay %s, err %v (want half the deadline)", sp.Stay, err)
	}
}

// FuzzUpgradeRequest: any body either fails validation with ErrInvalid or
// gives a spec within the limits.
func FuzzUpgradeRequest(f *testing.F) {
	f.Add(`{"agent_type":"exec-agent","package":"p"}`)
	f.Add(`{"agent_type":"exec-agent","version":"1","signatures":{"p":"` + goodSig + `"},"deadline":"1h","stay":5}`)
	f.Add(`{"agent_type":"exec-agent","package":"p","deadline":10,"stay":10}`)
	f.Fuzz(func(t *testing.T, body string) {
		var r UpgradeRequest
		if json.Unmarshal([]byte(body), &r) != nil {
			return
		}
		sp, err := r.spec()
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("%s: error %v is not ErrInvalid", body, err)
			}
			return
		}
		if sp.Deadline <= 0 || sp.Deadline > MaxUpgradeDeadline || sp.Stay <= 0 || sp.Stay >= sp.Deadline || (sp.Package == "") == (sp.Version == "") {
			t.Fatalf("%s: spec out of limits: %+v", body, sp)
		}
	})
}
