package e2e

import (
	"strings"
	"testing"
)

// TestUpgradeBadInput: POST /api/agents/upgrade answers bad requests with a
// clear 4xx naming the field, never a 500.
func TestUpgradeBadInput(t *testing.T) {
	ts := startServer(t, serverSpec{})
	startAgent(t, ts.addr, agentSpec{id: "ex-1"})
	ts.waitOnline("ex-1")
	sel := `"selector":{"ids":["ex-1"]},"agent_type":"example-agent",`
	checkAPI(t, ts, strings.HasPrefix, []apiCase{
		{"POST", "/api/agents/upgrade", ``, 400, "missing JSON body"},
		{"POST", "/api/agents/upgrade", `{`, 400, "invalid JSON body"},
		{"POST", "/api/agents/upgrade", `{"colour":1}`, 400, "unknown parameter colour"},
		{"POST", "/api/agents/upgrade", `{"selector":{"ids":["ex-1"]},"package":"p"}`, 400, "agent_type: missing"},
		{"POST", "/api/agents/upgrade", `{"selector":{"ids":["ex-1"]},"agent_type":"Example Agent","package":"p"}`, 400, `agent_type: "Example Agent" is not an agent type`},
		{"POST", "/api/agents/upgrade", `{` + sel + `"package":"p","version":"1"}`, 400, "package and version: give one"},
		{"POST", "/api/agents/upgrade", `{` + sel + `"deadline":5}`, 400, "package or version: give one"},
		{"POST", "/api/agents/upgrade", `{` + sel + `"package":"../x"}`, 400, `package: "../x" is not a package name`},
		{"POST", "/api/agents/upgrade", `{` + sel + `"version":"1 2"}`, 400, `version: "1 2" is not a version`},
		{"POST", "/api/agents/upgrade", `{` + sel + `"package":"p","signature":"zz"}`, 400, "signature: not a base64 signature"},
		{"POST", "/api/agents/upgrade", `{` + sel + `"package":"p","deadline":"48h"}`, 400, "deadline: must be between 0 and 24h0m0s"},
		{"POST", "/api/agents/upgrade", `{` + sel + `"package":"p","deadline":"soon"}`, 400, `invalid parameter deadline: must be seconds or a duration such as 1m30s (got string "soon")`},
		{"POST", "/api/agents/upgrade", `{` + sel + `"package":"p","deadline":4,"stay":5}`, 400, "stay: must be shorter than deadline (4s)"},
		{"POST", "/api/agents/upgrade", `{` + sel + `"package":"p","concurrency":"x%"}`, 400, `invalid JSON body: invalid limit: "x%" is not N or N%`},
		{"POST", "/api/agents/upgrade", `{"selector":{},"agent_type":"example-agent","package":"p"}`, 400, "selector: empty"},
		{"POST", "/api/agents/upgrade", `{"selector":{"ids":["nope"]},"agent_type":"example-agent","package":"p"}`, 404, "not found: agent nope"},
		{"POST", "/api/agents/upgrade", `{"selector":{"ids":["ex-1"]},"agent_type":"exec-agent","package":"p"}`, 424, "invalid agent type want [exec-agent] got [example-agent]"},
		{"POST", "/api/agents/upgrade", `{` + sel + `"package":"exec-agent_9.9.9_linux_amd64"}`, 404, `not found: package "exec-agent_9.9.9_linux_amd64": not in the repository`},
	})
}
