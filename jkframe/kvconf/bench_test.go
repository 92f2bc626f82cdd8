package kvconf_test

import (
	"os"
	"testing"

	"github.com/agentfleet/jkframe/kvconf"
)

func BenchmarkUnmarshal(b *testing.B) {
	data, err := os.ReadFile("testdata/agent.conf")
	if err != nil {
		b.Fatal(err)
	}
	env := kvconf.Env(fakeEnv(map[string]string{"AGENT_ID": "db-7"}))
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		var c agentConf
		if err := kvconf.Unmarshal(data, &c, env); err != nil {
			b.Fatal(err)
		}
	}
}
