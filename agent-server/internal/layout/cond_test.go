package layout

import (
	"strings"
	"testing"

	"github.com/agentfleet/agent-server/internal/casetest"
)

var condCases = []casetest.Case[string, Cond]{
	{In: "$installed > 0", Want: Cond{"$installed", ">", "0"}},
	{In: "$EVEN = 1", Want: Cond{"$EVEN", "=", "1"}},
	{In: "$a==b", Want: Cond{"$a", "=", "b"}},
	{In: "$a != 'x y'", Want: Cond{"$a", "!=", "x y"}},
	{In: `"a>b" <= $v`, Want: Cond{"a>b", "<=", "$v"}},
	{In: "1 >= 2", Want: Cond{"1", ">=", "2"}},
	{In: "1 < 2", Want: Cond{"1", "<", "2"}},
	{In: "x", Err: `no comparison operator in "x" (want one of > < = != <= >=)`},
	{In: "", Err: `no comparison operator in "" (want one of > < = != <= >=)`},
	{In: "= 1", Err: "left operand: empty"},
	{In: "1 =", Err: "right operand: empty"},
	{In: "1 = 2 = 3", Err: "right operand: a second operator in 2 = 3"},
	{In: "'a = b", Err: "unterminated quote"},
	{In: "a' = b", Err: "unterminated quote"},
	{In: "a'x' = b", Err: "left operand: quote inside a'x'"},
	{In: "1 = 'x'y'", Err: "right operand: bad quoting in 'x'y'"},
}

func TestParseCond(t *testing.T) {
	casetest.Run(t, "ParseCond", func(s string) (Cond, error) {
		c, err := ParseCond(s)
		if c == nil {
			return Cond{}, err
		}
		return *c, err
	}, condCases)
}

func TestEval(t *testing.T) {
	vars := map[string]string{"n": "10", "s": "abc", "neg": "-3", "empty": ""}
	eval := func(expr string) (bool, error) {
		cond, err := ParseCond(expr)
		if err != nil {
			t.Fatalf("%q: %v", expr, err)
		}
		return cond.Eval(vars)
	}
	casetest.Run(t, "Eval", eval, []casetest.Case[string, bool]{
		{In: "$n > 9", Want: true},      // numbers: 10 > 9
		{In: "$n > 09", Want: true},     // still numbers
		{In: "$n < 9", Want: false},     //
		{In: "$n > 9x", Want: false},    // strings: "10" < "9x"
		{In: "$s > abb", Want: true},    // strings
		{In: "$s = abc", Want: true},    //
		{In: "$s != abc", Want: false},  //
		{In: "$neg <= -3", Want: true},  //
		{In: "$neg >= -2", Want: false}, //
		{In: "$empty = ''", Want: true}, //
		{In: "$n = 10", Want: true},     //
		{In: "$x = 1", Err: "unknown variable $x"},
	})
}

func TestExpand(t *testing.T) {
	vars := Vars("agent-1", 3, 1700000000)
	vars["out"] = "v"
	expand := func(s string) (string, error) { return Expand(s, vars) }
	casetest.Run(t, "Expand", expand, []casetest.Case[string, string]{
		{In: "$ID/$IDX/$EVEN/$ODD/$DEADLINE", Want: "agent-1/3/0/1/1700000000"},
		{In: "${out}x $outx", Err: "unknown variable $outx"},
		{In: "${out}x", Want: "vx"},
		{In: "$$ID $ $1 a$", Want: "$ID $ $1 a$"},
		{In: "${bad", Err: "unterminated ${ in \"${bad\""},
		{In: "${1x}", Err: "bad variable name ${1x}"},
	})
}

func FuzzParseCond(f *testing.F) {
	casetest.Seed(f, condCases)
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
