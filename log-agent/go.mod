module github.com/agentfleet/log-agent

go 1.26.0

replace github.com/agentfleet/libagent => ../libagent

replace github.com/agentfleet/jkframe => ../jkframe

require (
	github.com/agentfleet/libagent v0.0.0-00010101000000-000000000000
	github.com/klauspost/compress v1.20.5
	go.uber.org/goleak v1.3.0
	golang.org/x/sync v0.25.0
)
