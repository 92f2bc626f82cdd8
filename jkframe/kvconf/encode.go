package kvconf

import (
	"bytes"
	"encoding"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/agentfleet/jkframe/utils"
)

// Marshal writes the struct v (or the struct it points to) as "key = value"
// lines in struct order. The output decodes back to equal values with
// Unmarshal. Nil pointers and nil slices are left out.
func Marshal(v any) ([]byte, error) {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer && !rv.IsNil() {
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct {
		return nil, fmt.Errorf("kvconf: Marshal needs a struct or a non-nil pointer to one, not %T", v)
	}
	// An addressable copy, so that methods with pointer receivers are found.
	c := reflect.New(rv.Type()).Elem()
	c.Set(rv)
	fields, err := fieldsOf(c.Type())
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	for _, f := range fields {
		s, ok, err := formatValue(c.FieldByIndex(f.index))
		if err == nil && ok {
			s, err = quote(s, f.env && isEnvRef(s))
		}
		if err != nil {
			return nil, &Error{Key: f.key, Err: err}
		}
		if !ok {
			continue
		}
		buf.WriteString(f.key)
		buf.WriteString(" = ")
		buf.WriteString(s)
		buf.WriteByte('\n')
	}
	return buf.Bytes(), nil
}

func isEnvRef(s string) bool {
	_, ok := envName(s)
	return ok
}

// formatValue returns the text of the addressable value v; ok is false for
// values left out (nil pointers and slices).
func formatValue(v reflect.Value) (s string, ok bool, err error) {
	t := v.Type()
	switch m := v.Addr().Interface().(type) {
	case Marshaler:
		s, err = m.MarshalKV()
		return s, err == nil, err
	case encoding.TextMarshaler:
		b, err := m.MarshalText()
		return string(b), err == nil, err
	}
	if t == durationType {
		return utils.FormatDuration(time.Duration(v.Int())), true, nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return "", false, nil
		}
		return formatValue(v.Elem())
	case reflect.String:
		return v.String(), true, nil
	case reflect.Bool:
		return strconv.FormatBool(v.Bool()), true, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10), true, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(v.Uint(), 10), true, nil
	case reflect.Float32, reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, t.Bits()), true, nil
	case reflect.Slice:
		if v.IsNil() {
			return "", false, nil
		}
		items := make([]string, v.Len())
		for i := range items {
			it := v.Index(i).String()
			switch {
			case it == "":
				return "", false, fmt.Errorf("list item %d is empty", i)
			case strings.Contains(it, ","):
				return "", false, fmt.Errorf("list item %q contains a comma", it)
			case strings.TrimSpace(it) != it:
				return "", false, fmt.Errorf("list item %q has leading or trailing space", it)
			}
			items[i] = it
		}
		return strings.Join(items, ", "), true, nil
	}
	return "", false, fmt.Errorf("cannot encode type %s", t)
}
