package kvconf_test

import (
	"time"

	"github.com/agentfleet/jkframe/utils"
)

// agentConf is the shape of an agent's configuration (spec/config.md), used
// by the examples and the benchmark.
type agentConf struct {
	Basic struct {
		ID     string   `kv:"id,env"`
		Server string   `kv:"server,env"`
		Token  string   `kv:"token"`
		Labels []string `kv:"labels"`
		TLS    struct {
			CA                 string `kv:"ca"`
			InsecureSkipVerify bool   `kv:"insecure_skip_verify"`
		} `kv:"tls"`
		Log struct {
			Target []string    `kv:"target"`
			Dir    string      `kv:"dir"`
			Size   utils.Bytes `kv:"size"`
			Rotate uint        `kv:"rotate"`
			Level  string      `kv:"level"`
		} `kv:"log"`
		Monitor struct {
			Enabled  bool          `kv:"enabled"`
			Interval time.Duration `kv:"interval"`
		} `kv:"monitor"`
		Limit struct {
			CPUQuota    uint        `kv:"cpu_quota"`
			MemoryLimit utils.Bytes `kv:"memory_limit"`
			DiskLimit   string      `kv:"disk_limit"`
		} `kv:"limit"`
	} `kv:"basic"`
	Task struct {
		Jobs   []string `kv:"jobs"`
		Static struct {
			Interval time.Duration `kv:"interval"`
		} `kv:"static"`
		Usage struct {
			Interval time.Duration `kv:"interval"`
		} `kv:"usage"`
	} `kv:"task"`
}

// fakeEnv is an Env lookup over a fixed set of variables.
func fakeEnv(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}
