package logship

// Project types: the "type" of a log collection project, as the server's
// /api/logging/config takes it and log-agent's project JSON carries it.
const (
	TypeLogtail = "logtail"
	TypeDocker  = "docker"
	TypeK8s     = "k8s"
)

// A project's batching: the seed's defaults, and the bounds log-agent
// accepts, which the server checks before it pushes a project (so that
// what it accepts an agent takes).
const (
	DefaultBatch    = 1000
	DefaultBuffer   = 4096 // bytes
	DefaultInterval = 30   // seconds

	MaxBatch    = 100_000
	MinBuffer   = 256
	MaxBuffer   = 16 << 20
	MaxInterval = 3600 // seconds
)
