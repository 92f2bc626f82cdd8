package store

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/agentfleet/agent-server/internal/fault"
)

// LabelOp is how a LabelMatch compares.
type LabelOp int

// Label match operators.
const (
	LabelEq        LabelOp = iota // key=value
	LabelNotEq                    // key!=value (also true when the key is absent)
	LabelExists                   // key
	LabelNotExists                // !key
)

// LabelMatch is one term of a label selector.
type LabelMatch struct {
	Key   string
	Op    LabelOp
	Value string // for LabelEq and LabelNotEq
}

// String gives the term back in the syntax ParseSelector reads.
func (m LabelMatch) String() string {
	switch m.Op {
	case LabelNotEq:
		return m.Key + "!=" + m.Value
	case LabelExists:
		return m.Key
	case LabelNotExists:
		return "!" + m.Key
	default:
		return m.Key + "=" + m.Value
	}
}

// MatchLabels reports whether labels satisfy every term of sel, with the
// semantics ListAgents applies in SQL (an empty selector matches all; k!=v
// also holds when k is absent).
func MatchLabels(sel []LabelMatch, labels map[string]string) bool {
	for _, m := range sel {
		v, ok := labels[m.Key]
		switch m.Op {
		case LabelEq:
			if !ok || v != m.Value {
				return false
			}
		case LabelNotEq:
			if ok && v == m.Value {
				return false
			}
		case LabelExists:
			if !ok {
				return false
			}
		case LabelNotExists:
			if ok {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// Limits on labels, checked by ValidateLabels and ParseSelector.
const (
	MaxLabelKey   = 63
	MaxLabelValue = 255
	MaxLabels     = 64 // per agent
)

// ParseSelector reads a label selector: comma-separated terms "k=v", "k!=v",
// "k" (has the key) and "!k" (lacks it), spaces around terms ignored. An
// empty selector matches everything. Errors wrap ErrInvalid.
func ParseSelector(s string) ([]LabelMatch, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	terms := strings.Split(s, ",")
	if len(terms) > MaxLabels {
		return nil, fault.Invalidf(ErrInvalid, "label selector: more than %d terms", MaxLabels)
	}
	out := make([]LabelMatch, 0, len(terms))
	for _, term := range terms {
		term = strings.TrimSpace(term)
		var m LabelMatch
		switch {
		case term == "":
			return nil, fault.Invalidf(ErrInvalid, "label selector: empty term")
		case strings.Contains(term, "!="):
			k, v, _ := strings.Cut(term, "!=")
			m = LabelMatch{Key: strings.TrimSpace(k), Op: LabelNotEq, Value: strings.TrimSpace(v)}
		case strings.Contains(term, "="):
			k, v, _ := strings.Cut(term, "=")
			m = LabelMatch{Key: strings.TrimSpace(k), Op: LabelEq, Value: strings.TrimSpace(v)}
		case strings.HasPrefix(term, "!"):
			m = LabelMatch{Key: strings.TrimSpace(term[1:]), Op: LabelNotExists}
		default:
			m = LabelMatch{Key: term, Op: LabelExists}
		}
		if err := checkLabel(m.Key, m.Value); err != nil {
			return nil, fault.Invalidf(ErrInvalid, "label selector term %q: %v", term, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// ValidateLabels checks a label set: at most MaxLabels entries, keys of 1 to
// MaxLabelKey characters from [A-Za-z0-9._/-] starting with a letter or
// digit, values of at most MaxLabelValue bytes of printable UTF-8 without ',' or
// leading and trailing space.
// Errors wrap ErrInvalid.
func ValidateLabels(labels map[string]string) error {
	if len(labels) > MaxLabels {
		return fault.Invalidf(ErrInvalid, "labels: more than %d", MaxLabels)
	}
	for k, v := range labels {
		if err := checkLabel(k, v); err != nil {
			return fault.Invalidf(ErrInvalid, "label %q: %v", k, err)
		}
	}
	return nil
}

func checkLabel(k, v string) error {
	if k == "" {
		return fmt.Errorf("empty key")
	}
	if len(k) > MaxLabelKey {
		return fmt.Errorf("key longer than %d", MaxLabelKey)
	}
	for i, r := range k {
		ok := r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			i > 0 && (r == '.' || r == '_' || r == '-' || r == '/'))
		if !ok {
			return fmt.Errorf("key has character %q", r)
		}
	}
	if len(v) > MaxLabelValue {
		return fmt.Errorf("value longer than %d bytes", MaxLabelValue)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("value is not UTF-8")
	}
	if strings.TrimSpace(v) != v {
		return fmt.Errorf("value has leading or trailing space")
	}
	for _, r := range v {
		if r == ',' || !unicode.IsPrint(r) {
			return fmt.Errorf("value has character %q", r)
		}
	}
	return nil
}
