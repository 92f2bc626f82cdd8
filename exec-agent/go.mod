module github.com/agentfleet/exec-agent

go 1.26.0

require (
	github.com/agentfleet/jkframe v0.0.0
	github.com/agentfleet/libagent v0.0.0
)

require (
	github.com/creack/pty v1.1.24 // indirect
	go.uber.org/goleak v1.3.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	golang.org/x/text v0.44.0 // indirect
)

replace (
	github.com/agentfleet/jkframe => ../jkframe
	github.com/agentfleet/libagent => ../libagent
)
