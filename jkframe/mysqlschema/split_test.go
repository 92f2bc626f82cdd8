package mysqlschema

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

var splitTests = []struct {
	name string
	in   string
	want []statement
	err  string
}{
	{"empty", "", nil, ""},
	{"only comments", "-- a\n# b\n/* c; */\n", nil, ""},
	{"one without delimiter", "SELECT 1", []statement{{"SELECT 1", 1}}, ""},
	{"two", "SELECT 1;\nSELECT 2;\n", []statement{{"SELECT 1", 1}, {"SELECT 2", 2}}, ""},
	{"empty statements dropped", ";;SELECT 1;;", []statement{{"SELECT 1", 1}}, ""},
	{"semicolon in single quotes", "INSERT INTO t VALUES ('a;b');SELECT 2",
		[]statement{{"INSERT INTO t VALUES ('a;b')", 1}, {"SELECT 2", 1}}, ""},
	{"semicolon in double quotes", `SELECT "x;y"; SELECT 2`, []statement{{`SELECT "x;y"`, 1}, {"SELECT 2", 1}}, ""},
	{"semicolon in backticks", "CREATE TABLE `a;b` (x INT);", []statement{{"CREATE TABLE `a;b` (x INT)", 1}}, ""},
	{"doubled quote", "SELECT 'it''s;'; SELECT 2", []statement{{"SELECT 'it''s;'", 1}, {"SELECT 2", 1}}, ""},
	{"backslash escape", `SELECT 'a\';b'; SELECT 2`, []statement{{`SELECT 'a\';b'`, 1}, {"SELECT 2", 1}}, ""},
	{"backslash in backticks is literal", "SELECT `a\\`; SELECT 2", []statement{{"SELECT `a\\`", 1}, {"SELECT 2", 1}}, ""},
	{"line comment with semicolon", "SELECT 1 -- one; two\n;SELECT 2",
		[]statement{{"SELECT 1 -- one; two", 1}, {"SELECT 2", 2}}, ""},
	{"double dash without space is an operator", "SELECT 1--1;", []statement{{"SELECT 1--1", 1}}, ""},
	{"hash comment", "# c;\nSELECT 1;", []statement{{"SELECT 1", 2}}, ""},
	{"block comment with semicolon", "/* a;\nb; */ SELECT /* ; */ 1;",
		[]statement{{"SELECT /* ; */ 1", 2}}, ""},
	{"executable comment is code", "/*!40101 SET NAMES utf8 */;", []statement{{"/*!40101 SET NAMES utf8 */", 1}}, ""},
	{"multi-line string counts lines", "SELECT 'a\nb';\nSELECT 2;", []statement{{"SELECT 'a\nb'", 1}, {"SELECT 2", 3}}, ""},
	{"crlf", "SELECT 1;\r\nSELECT 2;\r\n", []statement{{"SELECT 1", 1}, {"SELECT 2", 2}}, ""},
	{"delimiter", "DELIMITER $$\nCREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW BEGIN SET NEW.a = 1; END$$\nDELIMITER ;\nSELECT 1;",
		[]statement{{"CREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW BEGIN SET NEW.a = 1; END", 2}, {"SELECT 1", 4}}, ""},
	{"delimiter lower case", "delimiter //\nSELECT 1//", []statement{{"SELECT 1", 2}}, ""},
	{"delimiter word inside statement", "SELECT 1 AS\ndelimiter;", []statement{{"SELECT 1 AS\ndelimiter", 1}}, ""},
	{"delimiter without argument", "DELIMITER\nSELECT 1", nil, "line 1: DELIMITER needs exactly one delimiter"},
	{"unterminated single quote", "SELECT 1;\nSELECT 'abc;", nil, "line 2: unterminated ' quote"},
	{"unterminated double quote", `SELECT "abc`, nil, `line 1: unterminated " quote`},
	{"unterminated backtick", "SELECT `abc", nil, "line 1: unterminated ` quote"},
	{"unterminated comment", "SELECT 1;\n\n/* never closed; SELECT 2;", nil, "line 3: unterminated /* comment"},
	{"escape at end", `SELECT 'a\`, nil, "line 1: unterminated ' quote"},
}

func TestSplitStatements(t *testing.T) {
	for _, tt := range splitTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := splitStatements(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, ErrSyntax) {
					t.Fatalf("error %v, want ErrSyntax containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// FuzzSplit checks that the splitter never panics, yields trimmed non-empty
// statements, and is stable: the statements joined again split into the same
// statements.
func FuzzSplit(f *testing.F) {
	for _, tt := range splitTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		stmts, err := splitStatements(in)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("error not ErrSyntax: %v", err)
			}
			return
		}
		texts := make([]string, len(stmts))
		for i, s := range stmts {
			if s.text == "" || s.text != strings.TrimSpace(s.text) {
				t.Fatalf("statement %d = %q: empty or not trimmed", i, s.text)
			}
			if s.line < 1 || s.line > strings.Count(in, "\n")+1 {
				t.Fatalf("statement %d line %d out of range", i, s.line)
			}
			texts[i] = s.text
		}
		if strings.Contains(strings.ToLower(in), "delimiter") {
			return // statements may hold ";" legitimately
		}
		for _, s := range texts {
			if strings.HasSuffix(s, "-") {
				return // "x--" + newline would become a comment when joined
			}
		}
		again, err := splitStatements(strings.Join(texts, "\n;\n"))
		if err != nil {
			t.Fatalf("re-split: %v", err)
		}
		if len(again) != len(stmts) {
			t.Fatalf("re-split gave %d statements, want %d: %q", len(again), len(stmts), texts)
		}
		for i := range again {
			if again[i].text != texts[i] {
				t.Fatalf("re-split statement %d = %q, want %q", i, again[i].text, texts[i])
			}
		}
	})
}
