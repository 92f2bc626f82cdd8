module github.com/agentfleet/libagent

go 1.26.0

replace github.com/agentfleet/jkframe => ../jkframe

require (
	github.com/agentfleet/jkframe v0.0.0
	github.com/containerd/cgroups/v3 v3.1.3 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/gorilla/websocket v1.5.3 // indirect
	github.com/kardianos/service v1.3.0 // indirect
	github.com/moby/sys/userns v0.1.0 // indirect
	github.com/shirou/gopsutil/v4 v4.26.10 // indirect
	go.uber.org/goleak v1.3.0 // indirect
	golang.org/x/sync v0.25.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)
