module github.com/agentfleet/agentctl

go 1.26.0

require (
	github.com/agentfleet/agent-server v0.0.0
	github.com/agentfleet/jkframe v0.0.0
	github.com/agentfleet/libagent v0.0.0
	github.com/gorilla/websocket v1.5.3
	github.com/schollz/progressbar/v3 v3.19.1
	github.com/spf13/cobra v1.10.2
	github.com/tmaxmax/go-sse v0.12.0
	go.uber.org/goleak v1.3.0
	golang.org/x/sys v0.50.0
	golang.org/x/term v0.48.0
	gopkg.in/yaml.v3 v3.0.1
)

require (
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/kardianos/service v1.3.0 // indirect
	github.com/mitchellh/colorstring v0.0.0-20190213212951-d06e56a500db // indirect
	github.com/rivo/uniseg v0.4.7 // indirect
	github.com/spf13/pflag v1.0.10 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
)

replace (
	github.com/agentfleet/agent-server => ../agent-server
	github.com/agentfleet/jkframe => ../jkframe
	github.com/agentfleet/libagent => ../libagent
)
