package manifest

import (
	"errors"
	"strings"
	"testing"
)

func parse(t *testing.T, src string) *Manifest {
	t.Helper()
	m, err := Parse(strings.NewReader(src), "m.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func lines(ps Problems) string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return strings.Join(out, "\n")
}

const names = "\n  name: {zh: 名}\n  desc: {zh: 述}"

func TestBasicValid(t *testing.T) {
	m := Basic()
	if ps := m.Validate(); len(ps) > 0 {
		t.Fatalf("basic.yaml:\n%s", lines(ps))
	}
	for _, it := range m.Items {
		if !strings.HasPrefix(it.Key, "basic.") || it.Name.En == "" || it.Desc.En == "" || it.Default == nil {
			t.Errorf("%s:%d %s: want a basic.* key with English texts and a default", it.File, it.Line, it.Key)
		}
	}
	for key, want := range map[string]string{"basic.monitor.interval": "5s", "basic.log.rotate": "1", "basic.log.size": "1M"} {
		if it := m.Lookup(key); it == nil || it.Min == nil || *it.Min != want {
			t.Errorf("%s: min not %s", key, want)
		}
	}
	if w := m.Lookup("basic.log.dir").When; w == nil || w.Target != "basic.log.target" || *w.Contain != "file" {
		t.Errorf("basic.log.dir enabled.when %+v", w)
	}
	if w := m.Lookup("basic.monitor.interval").When; w == nil || w.Target != "basic.monitor.enabled" || !*w.Equal {
		t.Errorf("basic.monitor.interval enabled.when %+v", w)
	}
	// Basic returns independent copies.
	m.Items[0].Key = "changed"
	if Basic().Items[0].Key == "changed" {
		t.Error("Basic shares its items")
	}
}

func TestDottedSpellings(t *testing.T) {
	m := parse(t, `
- key: a.mode
  type: csv
  name.zh: 模式
  desc.zh: 说明
  name.en: Mode
- key: a.x
  type: bool
  name.zh: 开关
  desc.zh: 说明
  enabled.when: {target: a.mode, contain: x}
`)
	if ps := m.Validate(); len(ps) > 0 {
		t.Fatal(lines(ps))
	}
	if m.Items[0].Name != (Text{Zh: "模式", En: "Mode"}) || m.Items[1].When == nil || m.Items[1].Line != 7 {
		t.Fatalf("%+v", m.Items)
	}
}

var parseErrors = []struct {
	name, src, want string
}{
	{"not a list", "key: a", "m.yaml:1: manifest syntax: want a list of items"},
	{"bad yaml", "- key: [a", "m.yaml:1: manifest syntax: did not find expected ',' or ']'"},
	{"unknown field", "- key: a\n  typ: string", "m.yaml:2: manifest syntax: field typ not found"},
	{"list default", "- key: a\n  default: [1]", "m.yaml:2: manifest syntax: cannot unmarshal !!seq into string"},
	{"len not int", "- key: a\n  len: ten", "m.yaml:2: manifest syntax: cannot unmarshal !!str `ten` into int"},
	{"two errors", "- key: a\n  typo: 1\n  len: x", "m.yaml:2: manifest syntax: field typo not found\nm.yaml:3: manifest syntax: cannot unmarshal !!str `x` into int"},
	{"name twice", "- key: a\n  name: {zh: x}\n  name.zh: y", "m.yaml:1: manifest syntax: name.zh given twice"},
	{"when twice", "- key: a\n  enabled: {when: {target: b}}\n  enabled.when: {target: b}", "m.yaml:1: manifest syntax: enabled.when given twice"},
	{"equal not bool", "- key: a\n  enabled: {when: {target: b, equal: maybe}}", "m.yaml:2: manifest syntax: cannot unmarshal !!str `maybe` into bool"},
}

func TestParseErrors(t *testing.T) {
	for _, tc := range parseErrors {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tc.src), "m.yaml")
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got  %v\nwant %s", err, tc.want)
			}
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("not ErrSyntax: %v", err)
			}
		})
	}
	if m, err := Parse(strings.NewReader(""), "m.yaml"); err != nil || len(m.Items) != 0 {
		t.Fatalf("empty manifest: %v %v", m, err)
	}
}

var badManifests = []struct {
	name, src, want string
}{
	{"missing key", "- type: string" + names, "m.yaml:1: missing key"},
	{"bad key", "- key: Basic.ID\n  type: string" + names, "m.yaml:1: Basic.ID: bad key (want lower-case dotted words: a-z, 0-9, _)"},
	{"missing type", "- key: a\n  name: {zh: 名}", "m.yaml:1: a: missing type"},
	{"unknown type", "- key: a\n  type: text" + names, "m.yaml:1: a: unknown type \"text\" (want one of string, enum, csv, int, uint, float, bool, naddr, path, bytes, duration, uuid)"},
	{"missing zh", "- key: a\n  type: string\n  name: {en: A}", "m.yaml:1: a: missing name.zh\nm.yaml:1: a: missing desc.zh"},
	{"duplicate", "- key: a\n  type: bool" + names + "\n- key: a\n  type: bool" + names, "m.yaml:5: a: duplicate key (first defined at m.yaml:1)"},
	{"enum without values", "- key: a\n  type: enum" + names, "m.yaml:1: a: type enum needs enum_valid"},
	{"enum_valid on string", "- key: a\n  type: string\n  enum_valid: [x]" + names, "m.yaml:1: a: enum_valid is only for type enum, not string"},
	{"csv_valid on enum", "- key: a\n  type: enum\n  enum_valid: [x]\n  csv_valid: [x]" + names, "m.yaml:1: a: csv_valid is only for type csv, not enum"},
	{"csv_valid dup and comma", "- key: a\n  type: csv\n  csv_valid: [x, x, 'y,z']" + names, "m.yaml:1: a: csv_valid: \"x\" listed twice\nm.yaml:1: a: csv_valid: bad value \"y,z\""},
	{"bad regexp", "- key: a\n  type: string\n  str_valid: '[a'" + names, "m.yaml:1: a: str_valid: error parsing regexp: missing closing ]: `[a)$`"},
	{"str_valid on int", "- key: a\n  type: int\n  str_valid: x" + names, "m.yaml:1: a: str_valid is only for type string, not int"},
	{"min on string", "- key: a\n  type: string\n  min: 1" + names, "m.yaml:1: a: min is only for int, uint, float, bytes and duration, not string"},
	{"bad max", "- key: a\n  type: duration\n  max: 5x" + names, "m.yaml:1: a: max: not a duration: \"5x\""},
	{"min above max", "- key: a\n  type: bytes\n  min: 1G\n  max: 1M" + names, "m.yaml:1: a: min 1G is above max 1M"},
	{"len on int", "- key: a\n  type: int\n  len: 3" + names, "m.yaml:1: a: len is only for string, csv and path, not int"},
	{"len zero", "- key: a\n  type: string\n  len: 0" + names, "m.yaml:1: a: len must be positive, got 0"},
	{"allow_relative on string", "- key: a\n  type: string\n  allow_relative: true" + names, "m.yaml:1: a: allow_relative is only for type path, not string"},
	{"default below min", "- key: a\n  type: duration\n  min: 5s\n  default: 1s" + names, "m.yaml:1: a: default: 1s is below the minimum 5s"},
	{"default above max", "- key: a\n  type: uint\n  max: 100\n  default: 101" + names, "m.yaml:1: a: default: 101 is above the maximum 100"},
	{"default wrong type", "- key: a\n  type: int\n  default: 1.5" + names, "m.yaml:1: a: default: not an int: \"1.5\""},
	{"default negative uint", "- key: a\n  type: uint\n  default: -1" + names, "m.yaml:1: a: default: not a uint: \"-1\""},
	{"default not in enum", "- key: a\n  type: enum\n  enum_valid: [x, y]\n  default: z" + names, "m.yaml:1: a: default: \"z\" is not one of x, y"},
	{"default not in csv", "- key: a\n  type: csv\n  csv_valid: [x, y]\n  default: x, z" + names, "m.yaml:1: a: default: item \"z\" is not one of x, y"},
	{"default str_valid", "- key: a\n  type: string\n  str_valid: '[a-z]+'\n  default: abc1" + names, "m.yaml:1: a: default: \"abc1\" does not match str_valid \"[a-z]+\""},
	{"default too long", "- key: a\n  type: path\n  len: 3\n  default: /abcd" + names, "m.yaml:1: a: default: longer than 3 characters"},
	{"default relative", "- key: a\n  type: path\n  default: logs" + names, "m.yaml:1: a: default: relative path \"logs\" not allowed (want an absolute path)"},
	{"default bad bool", "- key: a\n  type: bool\n  default: yes" + names, "m.yaml:1: a: default: not a bool: \"yes\""},
	{"default bad naddr", "- key: a\n  type: naddr\n  default: 1.2.3.4:99999" + names, "m.yaml:1: a: default: bad port \"99999\" in \"1.2.3.4:99999\""},
	{"default bad uuid", "- key: a\n  type: uuid\n  default: 123" + names, "m.yaml:1: a: default: not a uuid: \"123\""},
	{"when no target", "- key: a\n  type: bool\n  enabled: {when: {equal: true}}" + names, "m.yaml:1: a: enabled.when: missing target"},
	{"when self", "- key: a\n  type: bool\n  enabled: {when: {target: a, equal: true}}" + names, "m.yaml:1: a: enabled.when: target is the key itself"},
	{"when both", "- key: a\n  type: bool\n  enabled: {when: {target: b, equal: true, contain: x}}" + names, "m.yaml:1: a: enabled.when: want exactly one of contain and equal"},
	{"when missing target", "- key: a\n  type: bool\n  enabled: {when: {target: b, equal: true}}" + names, "m.yaml:1: a: enabled.when: target b is not in the manifest"},
	{"when contain on bool", "- key: b\n  type: bool" + names + "\n- key: a\n  type: bool\n  enabled: {when: {target: b, contain: x}}" + names, "m.yaml:5: a: enabled.when: contain needs a csv target, b is bool"},
	{"when equal on csv", "- key: b\n  type: csv" + names + "\n- key: a\n  type: bool\n  enabled: {when: {target: b, equal: false}}" + names, "m.yaml:5: a: enabled.when: equal needs a bool target, b is csv"},
	{"when contain not valid", "- key: b\n  type: csv\n  csv_valid: [x]" + names + "\n- key: a\n  type: bool\n  enabled: {when: {target: b, contain: y}}" + names, "m.yaml:6: a: enabled.when: \"y\" is not in the csv_valid of b"},
}

func TestValidate(t *testing.T) {
	for _, tc := range badManifests {
		t.Run(tc.name, func(t *testing.T) {
			got := lines(parse(t, tc.src).Validate())
			if got != tc.want {
				t.Fatalf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestMergeDuplicate(t *testing.T) {
	own := parse(t, "- key: basic.log.level\n  type: string"+names)
	got := lines(Merge(Basic(), own).Validate())
	if !strings.HasPrefix(got, "m.yaml:1: basic.log.level: duplicate key (first defined at basic.yaml:") {
		t.Fatalf("got %s", got)
	}
	if err := Merge(Basic(), nil).Validate().Err(); err != nil {
		t.Fatal(err)
	}
}

func FuzzParse(f *testing.F) {
	for _, tc := range badManifests {
		f.Add(tc.src)
	}
	for _, tc := range parseErrors {
		f.Add(tc.src)
	}
	f.Add(string(basicYAML))
	f.Fuzz(func(t *testing.T, src string) {
		m, err := Parse(strings.NewReader(src), "f.yaml")
		if err != nil {
			return
		}
		m.Validate()
		m.CheckConfig(strings.NewReader("a = 1\nb.c = x\n"), "f.conf")
	})
}
