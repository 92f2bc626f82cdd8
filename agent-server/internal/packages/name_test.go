package packages

import (
	"strings"
	"testing"

	"github.com/agentfleet/agent-server/internal/casetest"
	"github.com/agentfleet/agent-server/internal/fault"
)

type nameCase = casetest.Case[string, bool]

func nameErr(name, msg string) string { return `invalid package: "` + name + `": ` + msg }

var nameCases = []nameCase{
	{In: "app_1.2.3_amd64.deb", Want: true},
	{In: "app_1.2.3+dfsg-1~bpo12_amd64.deb", Want: true},
	{In: "exec-agent", Want: true},
	{In: "App-2.0.x86_64.rpm", Want: true},
	{In: "a", Want: true},
	{In: strings.Repeat("a", MaxNameBytes), Want: true},
	{In: "console.deb", Want: true},
	{In: "", Err: "invalid package: empty"},
	{In: strings.Repeat("a", MaxNameBytes+1), Err: nameErr(strings.Repeat("a", 64)+"…", "longer than 200 bytes")},
	{In: "../x", Err: nameErr("../x", "must not start with '.'")},
	{In: "..", Err: nameErr("..", "must not start with '.'")},
	{In: ".hidden.deb", Err: nameErr(".hidden.deb", "must not start with '.'")},
	{In: "-rf.deb", Err: nameErr("-rf.deb", "must not start with '-'")},
	{In: "a/b.deb", Err: nameErr("a/b.deb", "a path separator is not allowed: a package name is a plain file name")},
	{In: `a\b.deb`, Err: nameErr(`a\\b.deb`, "a path separator is not allowed: a package name is a plain file name")},
	{In: "x/../../etc/passwd", Err: nameErr("x/../../etc/passwd", "a path separator is not allowed: a package name is a plain file name")},
	{In: "app.deb.", Err: nameErr("app.deb.", `must not end with "."`)},
	{In: "a b.deb", Err: nameErr("a b.deb", "character ' ' at byte 1 not allowed: use letters, digits and ._-+~")},
	{In: "a\x00b", Err: nameErr(`a\x00b`, `character '\x00' at byte 1 not allowed: use letters, digits and ._-+~`)},
	{In: "a:b.deb", Err: nameErr("a:b.deb", "character ':' at byte 1 not allowed: use letters, digits and ._-+~")},
	{In: "é.deb", Err: nameErr("é.deb", "character 'é' at byte 0 not allowed: use letters, digits and ._-+~")},
	{In: "con", Err: nameErr("con", `"con" is a reserved device name on Windows`)},
	{In: "NUL.deb", Err: nameErr("NUL.deb", `"nul" is a reserved device name on Windows`)},
	{In: "com1.tar.gz", Err: nameErr("com1.tar.gz", `"com1" is a reserved device name on Windows`)},
}

func validName(name string) (bool, error) { return true, ValidName(name) }

func TestValidName(t *testing.T) {
	casetest.Run(t, "ValidName", validName, nameCases)
	// Every refusal is an invalid parameter "name" (the API's 400).
	for _, c := range nameCases {
		if err := ValidName(c.In); err != nil {
			if fe, ok := fault.As(err); !ok || fe.Kind != fault.Invalid || fe.Param != "name" {
				t.Errorf("ValidName(%q) = %#v, want a fault.Invalid in parameter name", c.In, err)
			}
		}
	}
}

func FuzzValidName(f *testing.F) {
	casetest.Seed(f, nameCases)
	f.Fuzz(func(t *testing.T, name string) {
		if ValidName(name) != nil {
			return
		}
		// A valid name is one safe path element everywhere.
		if name == "" || len(name) > MaxNameBytes || strings.ContainsAny(name, "/\\:\x00") ||
			name[0] == '.' || name[0] == '-' || strings.HasSuffix(name, ".") {
			t.Fatalf("ValidName(%q) = nil", name)
		}
		for i := 0; i < len(name); i++ {
			if name[i] < 0x21 || name[i] > 0x7e {
				t.Fatalf("ValidName(%q) = nil with byte %#x", name, name[i])
			}
		}
	})
}
