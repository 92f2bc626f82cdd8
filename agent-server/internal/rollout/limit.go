package rollout

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/agentfleet/agent-server/internal/fault"
)

// ErrInvalid is what the errors of ParseLimit and Plan.Validate are
// (*fault.Error).
var ErrInvalid = errors.New("invalid limit")

// MaxCount bounds a Limit given as a count.
const MaxCount = 1 << 30

// Limit is a count ("10") or a percentage of the items ("10%"). The zero
// Limit is unset.
type Limit struct {
	N       int
	Percent bool
	Set     bool
}

// Count returns a set Limit of n.
func Count(n int) Limit { return Limit{N: n, Set: true} }

// Percent returns a set Limit of p percent.
func Percent(p int) Limit { return Limit{N: p, Percent: true, Set: true} }

// ParseLimit reads "N" or "N%" (N a non-negative integer, a percentage at
// most 100); "" is the unset Limit.
func ParseLimit(s string) (Limit, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Limit{}, nil
	}
	pct := strings.HasSuffix(s, "%")
	num := strings.TrimSpace(strings.TrimSuffix(s, "%"))
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 || strings.HasPrefix(num, "+") {
		return Limit{}, fault.Invalidf(ErrInvalid, "%q is not N or N%%", s)
	}
	if pct && n > 100 {
		return Limit{}, fault.Invalidf(ErrInvalid, "%q is over 100%%", s)
	}
	if n > MaxCount {
		return Limit{}, fault.Invalidf(ErrInvalid, "%q is too large", s)
	}
	return Limit{N: n, Percent: pct, Set: true}, nil
}

// String gives the Limit in the form ParseLimit reads ("" when unset).
func (l Limit) String() string {
	switch {
	case !l.Set:
		return ""
	case l.Percent:
		return strconv.Itoa(l.N) + "%"
	}
	return strconv.Itoa(l.N)
}

// Of resolves the Limit against total items: a count as it is, a
// percentage rounded down. An unset Limit gives -1.
func (l Limit) Of(total int) int {
	switch {
	case !l.Set:
		return -1
	case l.Percent:
		return total * l.N / 100
	}
	return l.N
}

// MarshalJSON writes a count as a number, a percentage as "N%", unset as null.
func (l Limit) MarshalJSON() ([]byte, error) {
	switch {
	case !l.Set:
		return []byte("null"), nil
	case l.Percent:
		return json.Marshal(l.String())
	}
	return []byte(strconv.Itoa(l.N)), nil
}

// UnmarshalJSON reads a number, a string ParseLimit accepts, or null.
func (l *Limit) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "null" {
		*l = Limit{}
		return nil
	}
	if strings.HasPrefix(s, `"`) {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	v, err := ParseLimit(s)
	if err != nil {
		return err
	}
	*l = v
	return nil
}
