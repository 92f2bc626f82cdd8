package yaml_test

import (
	"fmt"
	"testing/fstest"

	"github.com/agentfleet/jkframe/yaml"
)

func ExampleDecode() {
	// On disk this would be yaml.Decode("/etc/demo/main.yaml", &cfg).
	fsys := fstest.MapFS{
		"main.yaml":        {Data: []byte("name: demo\nserver:\n  #include server.d/*.yaml\n")},
		"server.d/10.yaml": {Data: []byte("addr: 127.0.0.1\n")},
		"server.d/20.yaml": {Data: []byte("port: 8080\n")},
	}
	var cfg struct {
		Name   string `yaml:"name"`
		Server struct {
			Addr string `yaml:"addr"`
			Port int    `yaml:"port"`
		} `yaml:"server"`
	}
	if err := yaml.DecodeFS(fsys, "main.yaml", &cfg); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s %s:%d\n", cfg.Name, cfg.Server.Addr, cfg.Server.Port)
	// Output: demo 127.0.0.1:8080
}
