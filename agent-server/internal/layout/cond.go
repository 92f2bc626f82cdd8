package layout

import (
	"cmp"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Cond is a parsed if: Left Op Right, each operand a literal that may hold
// variables. Operands may be quoted with ' or " (the quotes are removed).
type Cond struct {
	Left, Op, Right string
}

// Comparison operators, longest first (the order ParseCond tries them).
var ops = []string{"<=", ">=", "!=", "==", "=", "<", ">"}

// MaxCond bounds the length of an if expression.
const MaxCond = 4096

// ParseCond reads "<left> <op> <right>" with op one of > < = != <= >=
// ("==" is taken as "="). The operator is the first one outside quotes.
func ParseCond(s string) (*Cond, error) {
	if len(s) > MaxCond {
		return nil, fmt.Errorf("longer than %d bytes", MaxCond)
	}
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
			continue
		case c == '"' || c == '\'':
			quote = c
			continue
		}
		for _, op := range ops {
			if !strings.HasPrefix(s[i:], op) {
				continue
			}
			left, err := operand(s[:i])
			if err != nil {
				return nil, fmt.Errorf("left operand: %v", err)
			}
			right, err := operand(s[i+len(op):])
			if err != nil {
				return nil, fmt.Errorf("right operand: %v", err)
			}
			if op == "==" {
				op = "="
			}
			return &Cond{Left: left, Op: op, Right: right}, nil
		}
	}
	if quote != 0 {
		return nil, errors.New("unterminated quote")
	}
	return nil, fmt.Errorf("no comparison operator in %q (want one of > < = != <= >=)", s)
}

func operand(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("empty")
	}
	if q := s[0]; q == '"' || q == '\'' {
		if len(s) < 2 || s[len(s)-1] != q || strings.IndexByte(s[1:len(s)-1], q) >= 0 {
			return "", fmt.Errorf("bad quoting in %s", s)
		}
		return s[1 : len(s)-1], nil
	}
	if strings.ContainsAny(s, `"'`) {
		return "", fmt.Errorf("quote inside %s", s)
	}
	for _, op := range ops {
		if strings.Contains(s, op) {
			return "", fmt.Errorf("a second operator in %s", s)
		}
	}
	return s, nil
}

// String gives the condition back.
func (c *Cond) String() string { return c.Left + " " + c.Op + " " + c.Right }

// Eval substitutes vars into both operands and compares them: as integers
// when both are integers, as strings otherwise (stdout is trimmed of
// surrounding space when stored, operands are compared as they are).
func (c *Cond) Eval(vars map[string]string) (bool, error) {
	l, err := Expand(c.Left, vars)
	if err != nil {
		return false, err
	}
	r, err := Expand(c.Right, vars)
	if err != nil {
		return false, err
	}
	var order int
	li, lerr := strconv.ParseInt(strings.TrimSpace(l), 10, 64)
	ri, rerr := strconv.ParseInt(strings.TrimSpace(r), 10, 64)
	if lerr == nil && rerr == nil {
		order = cmp.Compare(li, ri)
	} else {
		order = strings.Compare(l, r)
	}
	switch c.Op {
	case "=":
		return order == 0, nil
	case "!=":
		return order != 0, nil
	case "<":
		return order < 0, nil
	case "<=":
		return order <= 0, nil
	case ">":
		return order > 0, nil
	case ">=":
		return order >= 0, nil
	}
	return false, fmt.Errorf("unknown operator %q", c.Op)
}
