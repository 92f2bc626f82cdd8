package kvconf_test

import (
	"fmt"

	"github.com/agentfleet/jkframe/kvconf"
	"github.com/agentfleet/jkframe/utils"
)

func ExampleLoad() {
	var c agentConf
	c.Basic.Log.Level = "info" // defaults are set before loading
	env := kvconf.Env(fakeEnv(map[string]string{"AGENT_ID": "db-7"}))
	if err := kvconf.Load("testdata/agent.conf", &c, env); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.Basic.ID, c.Basic.Token)
	fmt.Printf("%q\n", c.Basic.Labels)
	fmt.Println(c.Basic.Log.Size, uint64(c.Basic.Log.Size), c.Basic.Monitor.Interval, c.Task.Static.Interval)

	err := kvconf.Load("testdata/agent.conf", &c) // AGENT_ID is not set in the real environment
	fmt.Println(err)
	// Output:
	// db-7 9f2c#tok en
	// ["role=db" "dc=par1" "rack=r12"]
	// 10M 10485760 30s 24h0m0s
	// testdata/agent.conf:3: basic.id: environment variable AGENT_ID is not set
}

func ExampleMarshal() {
	type conf struct {
		Server string `kv:"server,env"`
		Pass   string `kv:"pass"`
		Note   string `kv:"note"`
		Log    struct {
			Size   utils.Bytes    `kv:"size"`
			MaxAge utils.Duration `kv:"max_age"`
			Target []string       `kv:"target"`
		} `kv:"log"`
	}
	var c conf
	c.Server = "$SERVER"
	c.Pass = "ab#cd"
	c.Note = " padded # not a comment"
	c.Log.Size = 1536 << 10
	c.Log.MaxAge = utils.Duration(36 * 3600e9)
	c.Log.Target = []string{"stdout", "file"}
	out, err := kvconf.Marshal(c)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(string(out))
	// Output:
	// server = "$SERVER"
	// pass = ab#cd
	// note = " padded # not a comment"
	// log.size = 1536K
	// log.max_age = 1d12h
	// log.target = stdout, file
}
