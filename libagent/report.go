package libagent

import (
	"context"
	"time"

	"github.com/agentfleet/libagent/buildinfo"
	"github.com/agentfleet/libagent/protocol"
	"github.com/agentfleet/libagent/selfstat"
)

// Extra keys of the self-report ("ai" object) beyond v1's: counters of the
// queue and input policies since start.
const (
	KeyTelemetryDropped = "tdrop"  // self-reports replaced unsent by a newer one
	KeyBusyRefused      = "busy"   // requests refused because every worker was busy
	KeyBadFrames        = "badf"   // malformed frames dropped
	KeyJournalNoSpace   = "jnospc" // reliable replies that waited for the journal's disk to have space
)

func newSampler() *selfstat.Sampler { return selfstat.New(0) }

// reportLoop sends the type-7 self-report every monitor interval while
// connected.
func (rt *Runtime) reportLoop(ctx context.Context) {
	d := rt.opts.MonitorInterval
	if d <= 0 {
		d = time.Duration(rt.basic.Monitor.Interval)
	}
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Sample even while disconnected, so cu is always over one interval.
		ai := rt.selfReport()
		s := rt.current()
		if s == nil {
			continue
		}
		b, err := protocol.Encode(&protocol.Msg{Type: protocol.TypeAgentInfo, Payload: ai})
		if err == nil {
			extra := map[string]any{}
			if rt.report != nil {
				rt.report(extra)
			}
			// Queue policy counters (extension keys; v1 servers ignore them).
			extra[KeyTelemetryDropped] = rt.st.droppedTelemetry.Load()
			extra[KeyBusyRefused] = rt.st.busyRejected.Load()
			extra[KeyBadFrames] = rt.st.malformed.Load()
			extra[KeyJournalNoSpace] = rt.st.journalNoSpace.Load()
			b, err = mergeExtra(b, extra)
		}
		if err != nil {
			rt.log.Error("self-report", "err", err)
			continue
		}
		s.sendTelemetry(b)
	}
}

// selfReport takes a sample and fills the report.
func (rt *Runtime) selfReport() *protocol.AgentInfo {
	ai := &protocol.AgentInfo{
		Version:        rt.agent.Version,
		GoVersion:      buildinfo.GoVersion(),
		InPackets:      rt.st.inPackets.Load(),
		InBytes:        rt.st.inBytes.Load(),
		OutPackets:     rt.st.outPackets.Load(),
		OutBytes:       rt.st.outBytes.Load(),
		ReconnectCount: int(rt.st.reconnects.Load()),
		ReadChanSize:   len(rt.pool),
		WriteChanSize:  int(rt.st.queued.Load()),
	}
	smp, err := rt.sampler.Sample()
	if err != nil {
		rt.log.Debug("self-monitor sample", "err", err)
	}
	ai.CPUUsage = float32(smp.CPUPercent)
	ai.MemoryUsage = float32(smp.MemPercent)
	ai.Threads = smp.Threads
	ai.Routines = smp.Goroutines
	ai.Startup = smp.StartTime
	ai.HeapInuse = smp.HeapInuse
	ai.GC = make(map[string]float64, len(smp.GCPause))
	for i, k := range selfstat.GCPauseKeys {
		ai.GC[k] = smp.GCPause[i]
	}
	return ai
}
