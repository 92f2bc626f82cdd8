package manifest

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Validate checks the manifest itself: keys, types, Chinese names and
// descriptions, that each constraint fits the type, that defaults are valid
// values, that enabled.when targets exist with the right type, and that no
// key is defined twice. Problems come sorted by file and line.
func (m *Manifest) Validate() Problems {
	var ps Problems
	first := map[string]*Item{}
	for i := range m.Items {
		it := &m.Items[i]
		if it.Key == "" {
			ps = append(ps, it.problem("missing key"))
			continue
		}
		if !keyRE.MatchString(it.Key) {
			ps = append(ps, it.problem("bad key (want lower-case dotted words: a-z, 0-9, _)"))
		}
		if f, dup := first[it.Key]; dup {
			ps = append(ps, it.problem("duplicate key (first defined at %s:%d)", f.File, f.Line))
			continue
		}
		first[it.Key] = it
		ps = append(ps, it.validate()...)
	}
	for i := range m.Items {
		it := &m.Items[i]
		if it.When == nil || it.Key == "" {
			continue
		}
		ps = append(ps, it.validateWhen(first)...)
	}
	return ps.sorted()
}

func (it *Item) validate() Problems {
	var ps Problems
	add := func(format string, args ...any) { ps = append(ps, it.problem(format, args...)) }
	if it.Type == "" {
		add("missing type")
		return ps
	}
	if !slices.Contains(Types, it.Type) {
		add("unknown type %q (want one of %s)", it.Type, strings.Join(Types, ", "))
		return ps
	}
	if strings.TrimSpace(it.Name.Zh) == "" {
		add("missing name.zh")
	}
	if strings.TrimSpace(it.Desc.Zh) == "" {
		add("missing desc.zh")
	}
	valid := true // constraints usable for checking the default
	if it.Type == "enum" && len(it.EnumValid) == 0 {
		add("type enum needs enum_valid")
		valid = false
	}
	if it.Type != "enum" && len(it.EnumValid) > 0 {
		add("enum_valid is only for type enum, not %s", it.Type)
	}
	if it.Type != "csv" && len(it.CSVValid) > 0 {
		add("csv_valid is only for type csv, not %s", it.Type)
	}
	for _, list := range []struct {
		name  string
		items []string
	}{{"enum_valid", it.EnumValid}, {"csv_valid", it.CSVValid}} {
		seen := map[string]bool{}
		for _, v := range list.items {
			if strings.TrimSpace(v) == "" || (list.name == "csv_valid" && strings.Contains(v, ",")) {
				add("%s: bad value %q", list.name, v)
			} else if seen[v] {
				add("%s: %q listed twice", list.name, v)
			}
			seen[v] = true
		}
	}
	if it.StrValid != "" {
		if it.Type != "string" {
			add("str_valid is only for type string, not %s", it.Type)
		} else if _, err := regexp.Compile(`^(?:` + it.StrValid + `)$`); err != nil {
			add("str_valid: %v", err)
			valid = false
		}
	}
	for _, b := range []struct {
		name string
		v    *string
	}{{"min", it.Min}, {"max", it.Max}} {
		if b.v == nil {
			continue
		}
		if !rangeType[it.Type] {
			add("%s is only for int, uint, float, bytes and duration, not %s", b.name, it.Type)
			continue
		}
		if _, err := number(it.Type, *b.v); err != nil {
			add("%s: %v", b.name, err)
			valid = false
		}
	}
	if it.Min != nil && it.Max != nil && rangeType[it.Type] {
		lo, err1 := number(it.Type, *it.Min)
		hi, err2 := number(it.Type, *it.Max)
		if err1 == nil && err2 == nil && lo > hi {
			add("min %s is above max %s", *it.Min, *it.Max)
		}
	}
	if it.Len != nil {
		if !lenType[it.Type] {
			add("len is only for string, csv and path, not %s", it.Type)
		} else if *it.Len <= 0 {
			add("len must be positive, got %d", *it.Len)
		}
	}
	if it.AllowRelative && it.Type != "path" {
		add("allow_relative is only for type path, not %s", it.Type)
	}
	if valid && it.Default != nil && *it.Default != "" {
		if err := it.checkValue(*it.Default); err != nil {
			add("default: %v", err)
		}
	}
	return ps
}

func (it *Item) validateWhen(items map[string]*Item) Problems {
	w := it.When
	var ps Problems
	add := func(format string, args ...any) { ps = append(ps, it.problem(format, args...)) }
	switch {
	case w.Target == "":
		add("enabled.when: missing target")
		return ps
	case w.Target == it.Key:
		add("enabled.when: target is the key itself")
		return ps
	case (w.Contain == nil) == (w.Equal == nil):
		add("enabled.when: want exactly one of contain and equal")
		return ps
	}
	t, ok := items[w.Target]
	if !ok {
		add("enabled.when: target %s is not in the manifest", w.Target)
		return ps
	}
	if w.Contain != nil {
		if t.Type != "csv" {
			add("enabled.when: contain needs a csv target, %s is %s", w.Target, t.Type)
		} else if len(t.CSVValid) > 0 && !slices.Contains(t.CSVValid, *w.Contain) {
			add("enabled.when: %q is not in the csv_valid of %s", *w.Contain, w.Target)
		}
	}
	if w.Equal != nil && t.Type != "bool" {
		add("enabled.when: equal needs a bool target, %s is %s", w.Target, t.Type)
	}
	return ps
}

// enabled reports whether it matters given the config values (falling back
// to the target's default).
func (m *Manifest) enabled(it *Item, values map[string]string) bool {
	if it.When == nil {
		return true
	}
	t := m.Lookup(it.When.Target)
	if t == nil {
		return true
	}
	v, ok := values[t.Key]
	if !ok && t.Default != nil {
		v = *t.Default
	}
	if it.When.Contain != nil {
		return slices.Contains(splitCSV(v), *it.When.Contain)
	}
	b, _ := strconv.ParseBool(strings.TrimSpace(v))
	return b == *it.When.Equal
}
