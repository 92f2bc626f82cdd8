package logging

import (
	"fmt"
	"regexp"

	"github.com/agentfleet/libagent/logship"
	"github.com/agentfleet/libagent/protocol"
)

// Limits of what a batch may hold (outside input).
const (
	MaxSources = 1 << 12
	MaxBlock   = 64 << 20
	maxNameLen = 4096
)

// ErrCorrupt wraps every decoding error of a batch and of a segment file
// (logship's sentinel: the record codec's errors are ErrCorrupt too).
var ErrCorrupt = logship.ErrCorrupt

var sourceIDRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// CheckBatch validates a log_batch's envelope: project name, sources.
func CheckBatch(b *protocol.LogBatch) error {
	if !nameRE.MatchString(b.Project) {
		return fmt.Errorf("%w: project %q", ErrCorrupt, b.Project)
	}
	if len(b.Sources) == 0 && b.Lines > 0 {
		return fmt.Errorf("%w: lines without sources", ErrCorrupt)
	}
	if len(b.Sources) > MaxSources {
		return fmt.Errorf("%w: %d sources, at most %d", ErrCorrupt, len(b.Sources), MaxSources)
	}
	for i, s := range b.Sources {
		if !sourceIDRE.MatchString(s.ID) {
			return fmt.Errorf("%w: sources[%d].id %q", ErrCorrupt, i, s.ID)
		}
		if len(s.Name) > maxNameLen {
			return fmt.Errorf("%w: sources[%d].name longer than %d", ErrCorrupt, i, maxNameLen)
		}
		if s.First < 0 || s.End < s.First {
			return fmt.Errorf("%w: sources[%d] range [%d, %d)", ErrCorrupt, i, s.First, s.End)
		}
	}
	return nil
}

// DecodeBatch decompresses and parses a batch's record block (the codec
// the log-agent encodes it with: libagent/logship).
func DecodeBatch(b *protocol.LogBatch) ([]logship.Record, error) {
	if err := CheckBatch(b); err != nil {
		return nil, err
	}
	if len(b.Data) == 0 {
		return nil, nil
	}
	block, err := logship.Decompress(b.Data, MaxBlock)
	if err != nil {
		return nil, err
	}
	// Room for the records the batch says it holds (bounded by the
	// smallest record, 6 bytes): growing the slice was 15 % of ingest.
	return logship.AppendRecords(make([]logship.Record, 0, min(max(b.Lines, 0), len(block)/6)), block, len(b.Sources))
}
