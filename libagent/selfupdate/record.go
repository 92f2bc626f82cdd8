package selfupdate

import (
	"encoding/json"

	"github.com/agentfleet/libagent/statefile"
)

func writeRecord(path string, p Plan) error {
	b, _ := json.MarshalIndent(p, "", "  ")
	return statefile.WriteAtomic(path, b, 0o600)
}
