package kvconf

import (
	"encoding"
	"fmt"
	"reflect"
	"strings"
	"time"
)

// Unmarshaler is implemented by types that decode their own value text.
type Unmarshaler interface {
	UnmarshalKV(value string) error
}

// Marshaler is implemented by types that write their own value text.
type Marshaler interface {
	MarshalKV() (string, error)
}

var (
	unmarshalerType     = reflect.TypeFor[Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	durationType        = reflect.TypeFor[time.Duration]()
)

// field is a struct field holding one configuration value.
type field struct {
	key   string
	index []int // for reflect.Value.FieldByIndex
	env   bool
}

// fieldsOf lists the value fields of struct type t in struct order.
func fieldsOf(t reflect.Type) ([]field, error) {
	var out []field
	if err := walk(t, "", nil, t.Name(), &out); err != nil {
		return nil, err
	}
	seen := make(map[string]bool, len(out))
	for _, f := range out {
		if seen[f.key] {
			return nil, fmt.Errorf("kvconf: %s: two fields have the key %q", t, f.key)
		}
		seen[f.key] = true
	}
	return out, nil
}

func walk(t reflect.Type, prefix string, index []int, path string, out *[]field) error {
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("kv")
		if tag == "-" || !sf.IsExported() {
			continue
		}
		fpath := path + "." + sf.Name
		name, opts, _ := strings.Cut(tag, ",")
		env := false
		for o := range strings.SplitSeq(opts, ",") {
			switch o {
			case "":
			case "env":
				env = true
			default:
				return fmt.Errorf("kvconf: field %s: unknown tag option %q", fpath, o)
			}
		}
		if name != "" && !validKey(name) {
			return fmt.Errorf("kvconf: field %s: %w", fpath, invalidKeyError(name))
		}
		idx := append(index[:len(index):len(index)], i)
		switch {
		case isValueType(sf.Type):
			if name == "" {
				name = strings.ToLower(sf.Name)
			}
			*out = append(*out, field{key: prefix + name, index: idx, env: env})
		case sf.Type.Kind() == reflect.Struct:
			if env {
				return fmt.Errorf("kvconf: field %s: option env on a struct", fpath)
			}
			p := prefix
			if name != "" || !sf.Anonymous {
				if name == "" {
					name = strings.ToLower(sf.Name)
				}
				p += name + "."
			}
			if err := walk(sf.Type, p, idx, fpath, out); err != nil {
				return err
			}
		default:
			return fmt.Errorf("kvconf: field %s: unsupported type %s", fpath, sf.Type)
		}
	}
	return nil
}

// isValueType reports whether t holds one value, as opposed to a struct of
// values.
func isValueType(t reflect.Type) bool {
	if pt := reflect.PointerTo(t); pt.Implements(unmarshalerType) || pt.Implements(textUnmarshalerType) {
		return true
	}
	if t == durationType {
		return true
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	case reflect.Slice:
		return t.Elem().Kind() == reflect.String
	case reflect.Pointer:
		return t.Elem().Kind() != reflect.Pointer && isValueType(t.Elem())
	}
	return false
}
