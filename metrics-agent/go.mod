module github.com/agentfleet/metrics-agent

go 1.26.0

require (
	github.com/agentfleet/jkframe v0.0.0
	github.com/agentfleet/libagent v0.0.0
)

require (
	github.com/shirou/gopsutil/v4 v4.26.10 // indirect
	go.uber.org/goleak v1.3.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	golang.org/x/time v0.16.0 // indirect
)

replace (
	github.com/agentfleet/jkframe => ../jkframe
	github.com/agentfleet/libagent => ../libagent
)
