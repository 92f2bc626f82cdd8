package layout

import (
	"strings"
	"testing"
)

var condCases = []struct {
	in   string
	want Cond
	err  string
}{
	{"$installed > 0", Cond{"$installed", ">", "0"}, ""},
	{"$EVEN = 1", Cond{"$EVEN", "=", "1"}, ""},
	{"$a==b", Cond{"$a", "=", "b"}, ""},
	{"$a != 'x y'", Cond{"$a", "!=", "x y"}, ""},
	{`"a>b" <= $v`, Cond{"a>b", "<=", "$v"}, ""},
	{"1 >= 2", Cond{"1", ">=", "2"}, ""},
	{"1 < 2", Cond{"1", "<", "2"}, ""},
	{"x", Cond{}, `no comparison operator in "x" (want one of > < = != <= >=)`},
	{"", Cond{}, `no comparison operator in "" (want one of > < = != <= >=)`},
	{"= 1", Cond{}, "left operand: empty"},
	{"1 =", Cond{}, "right operand: empty"},
	{"1 = 2 = 3", Cond{}, "right operand: a second operator in 2 = 3"},
	{"'a = b", Cond{}, "unterminated quote"},
	{"a' = b", Cond{}, "unterminated quote"},
	{"a'x' = b", Cond{}, "left operand: quote inside a'x'"},
	{"1 = 'x'y'", Cond{}, "right operand: bad quoting in 'x'y'"},
}

func TestParseCond(t *testing.T) {
	for _, c := range condCases {
		got, err := ParseCond(c.in)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("ParseCond(%q) error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || *got != c.want {
			t.Errorf("ParseCond(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}

func TestEval(t *testing.T) {
	vars := map[string]string{"n": "10", "s": "abc", "neg": "-3", "empty": ""}
	for _, c := range []struct {
		expr string
		want bool
		err  string
	}{
		{"$n > 9", true, ""},      // numbers: 10 > 9
		{"$n > 09", true, ""},     // still numbers
		{"$n < 9", false, ""},     //
		{"$n > 9x", false, ""},    // strings: "10" < "9x"
		{"$s > abb", true, ""},    // strings
		{"$s = abc", true, ""},    //
		{"$s != abc", false, ""},  //
		{"$neg <= -3", true, ""},  //
		{"$neg >= -2", false, ""}, //
		{"$empty = ''", true, ""}, //
		{"$n = 10", true, ""},     //
		{"$x = 1", false, "unknown variable $x"},
	} {
		cond, err := ParseCond(c.expr)
		if err != nil {
			t.Fatalf("%q: %v", c.expr, err)
		}
		got, err := cond.Eval(vars)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("%q: error %v, want %q", c.expr, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q = %v, %v; want %v", c.expr, got, err, c.want)
		}
	}
}

func TestExpand(t *testing.T) {
	vars := Vars("agent-1", 3, 1700000000)
	vars["out"] = "v"
	for _, c := range []struct{ in, want, err string }{
		{"$ID/$IDX/$EVEN/$ODD/$DEADLINE", "agent-1/3/0/1/1700000000", ""},
		{"${out}x $outx", "", "unknown variable $outx"},
		{"${out}x", "vx", ""},
		{"$$ID $ $1 a$", "$ID $ $1 a$", ""},
		{"${bad", "", "unterminated ${ in \"${bad\""},
		{"${1x}", "", "bad variable name ${1x}"},
	} {
		got, err := Expand(c.in, vars)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("Expand(%q) error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("Expand(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func FuzzParseCond(f *testing.F) {
	for _, c := range condCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCond(s)
		if err != nil {
			return
		}
		again, err := ParseCond(quote(c.Left) + " " + c.Op + " " + quote(c.Right))
		if err != nil || *again != *c {
			t.Fatalf("%q: %+v does not parse back: %+v %v", s, c, again, err)
		}
		if _, err := c.Eval(map[string]string{}); err != nil && !containsVar(c.Left+c.Right) {
			t.Fatalf("%q: eval without variables failed: %v", s, err)
		}
	})
}

func quote(s string) string {
	if strings.Contains(s, "'") {
		return `"` + s + `"`
	}
	return "'" + s + "'"
}

func containsVar(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '$' {
			return true
		}
	}
	return false
}
