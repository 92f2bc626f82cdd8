package manifest

import (
	"errors"
	"io"

	"github.com/agentfleet/jkframe/kvconf"
)

// CheckConfig checks a kvconf config file against the manifest: syntax
// (kvconf.Parse), unknown keys, invalid or out-of-range values, and required
// keys that are missing or empty while their enabled.when condition holds.
// Problems about a missing key have no line. An error is returned only when
// r cannot be read.
func (m *Manifest) CheckConfig(r io.Reader, file string) (Problems, error) {
	entries, err := kvconf.Parse(r, file)
	if err != nil {
		var ke *kvconf.Error
		if errors.As(err, &ke) {
			return Problems{{File: file, Line: ke.Line, Key: ke.Key, Msg: ke.Err.Error()}}, nil
		}
		return nil, err
	}
	var ps Problems
	values := make(map[string]string, len(entries))
	for _, e := range entries {
		values[e.Key] = e.Value
	}
	for _, e := range entries {
		it := m.Lookup(e.Key)
		if it == nil {
			ps = append(ps, Problem{File: file, Line: e.Line, Key: e.Key, Msg: "unknown key"})
			continue
		}
		if e.Value == "" {
			if it.Required && m.enabled(it, values) {
				ps = append(ps, Problem{File: file, Line: e.Line, Key: e.Key, Msg: "required key is empty"})
			}
			continue
		}
		if !e.Quoted && (it.Key == "basic.id" || it.Key == "basic.server") && e.Value[0] == '$' {
			continue // read from the environment when the agent starts
		}
		if err := it.checkValue(e.Value); err != nil {
			ps = append(ps, Problem{File: file, Line: e.Line, Key: e.Key, Msg: err.Error()})
		}
	}
	for i := range m.Items {
		it := &m.Items[i]
		if _, ok := values[it.Key]; !ok && it.Required && m.enabled(it, values) {
			ps = append(ps, Problem{File: file, Key: it.Key, Msg: "required key is missing"})
		}
	}
	return ps.sorted(), nil
}
