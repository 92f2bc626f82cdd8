package layout

import (
	"fmt"
	"strconv"
	"strings"
)

func validName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for i, r := range n {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// scan walks s, calling lit for literal text and ref for each variable.
func scan(s string, lit func(string), ref func(string) error) error {
	for {
		i := strings.IndexByte(s, '$')
		if i < 0 {
			lit(s)
			return nil
		}
		lit(s[:i])
		s = s[i+1:]
		switch {
		case strings.HasPrefix(s, "$"):
			lit("$")
			s = s[1:]
		case strings.HasPrefix(s, "{"):
			end := strings.IndexByte(s, '}')
			if end < 0 {
				return fmt.Errorf("unterminated ${ in %q", "$"+s)
			}
			name := s[1:end]
			if !validName(name) {
				return fmt.Errorf("bad variable name ${%s}", name)
			}
			if err := ref(name); err != nil {
				return err
			}
			s = s[end+1:]
		default:
			n := 0
			for n < len(s) && (s[n] == '_' || s[n] >= 'a' && s[n] <= 'z' || s[n] >= 'A' && s[n] <= 'Z' || n > 0 && s[n] >= '0' && s[n] <= '9') {
				n++
			}
			if n == 0 {
				lit("$")
				continue
			}
			if err := ref(s[:n]); err != nil {
				return err
			}
			s = s[n:]
		}
	}
}

// checkVars reports the first variable of s not in known.
func checkVars(s string, known map[string]bool) error {
	return scan(s, func(string) {}, func(name string) error {
		if !known[name] {
			return fmt.Errorf("unknown variable $%s", name)
		}
		return nil
	})
}

// Expand substitutes the variables of s from vars; an unknown one is an
// error.
func Expand(s string, vars map[string]string) (string, error) {
	var b strings.Builder
	err := scan(s, func(t string) { b.WriteString(t) }, func(name string) error {
		v, ok := vars[name]
		if !ok {
			return fmt.Errorf("unknown variable $%s", name)
		}
		b.WriteString(v)
		return nil
	})
	return b.String(), err
}

// Vars returns the built-in variables of the agent at position idx.
func Vars(id string, idx int, deadline int64) map[string]string {
	even, odd := "1", "0"
	if idx%2 == 1 {
		even, odd = "0", "1"
	}
	return map[string]string{
		"ID": id, "IDX": strconv.Itoa(idx), "EVEN": even, "ODD": odd,
		"DEADLINE": strconv.FormatInt(deadline, 10),
	}
}
