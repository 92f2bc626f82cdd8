package kvconf

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"

	"github.com/agentfleet/jkframe/utils"
)

// Option changes how Load and Unmarshal decode.
type Option func(*options)

type options struct {
	strict bool
	warn   func(error)
	file   string
	lookup func(string) (string, bool)
}

// Strict sets whether an unknown key is an error (true, the default) or only
// a warning passed to the Warn function.
func Strict(on bool) Option { return func(o *options) { o.strict = on } }

// Warn sets the function receiving non-fatal problems, each an *Error (an
// unknown key when not strict). Without it they are dropped.
func Warn(f func(error)) Option { return func(o *options) { o.warn = f } }

// File sets the file name Unmarshal uses in errors; Load uses its path.
func File(name string) Option { return func(o *options) { o.file = name } }

// Env sets the lookup for $NAME values of env fields; the default is
// os.LookupEnv. Special names (such as an agent's $HOSTNAME or $IP) are the
// lookup's to provide.
func Env(lookup func(string) (string, bool)) Option {
	return func(o *options) { o.lookup = lookup }
}

// Load decodes the configuration file at path into the struct v points to.
// Errors name path and the line.
func Load(path string, v any, opts ...Option) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("kvconf: %w", err)
	}
	defer f.Close()
	entries, err := Parse(f, path)
	if err != nil {
		return err
	}
	return decode(entries, v, append(opts, File(path)))
}

// Unmarshal decodes configuration text into the struct v points to. Keys
// that do not appear leave their fields as they were.
func Unmarshal(data []byte, v any, opts ...Option) error {
	o := buildOptions(opts)
	entries, err := Parse(bytes.NewReader(data), o.file)
	if err != nil {
		return err
	}
	return decode(entries, v, opts)
}

func buildOptions(opts []Option) options {
	o := options{strict: true, lookup: os.LookupEnv}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

func decode(entries []Entry, v any, opts []Option) error {
	o := buildOptions(opts)
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("kvconf: decoding needs a non-nil pointer to a struct, not %T", v)
	}
	rv = rv.Elem()
	fields, err := fieldsOf(rv.Type())
	if err != nil {
		return err
	}
	byKey := make(map[string]*field, len(fields))
	for i := range fields {
		byKey[fields[i].key] = &fields[i]
	}
	for _, e := range entries {
		f := byKey[e.Key]
		if f == nil {
			err := &Error{File: o.file, Line: e.Line, Key: e.Key, Err: ErrUnknownKey}
			if o.strict {
				return err
			}
			if o.warn != nil {
				o.warn(err)
			}
			continue
		}
		value := e.Value
		if f.env && !e.Quoted {
			if name, ok := envName(value); ok {
				env, set := o.lookup(name)
				if !set {
					return &Error{File: o.file, Line: e.Line, Key: e.Key,
						Err: fmt.Errorf("environment variable %s is not set", name)}
				}
				value = env
			}
		}
		if err := setValue(rv.FieldByIndex(f.index), value); err != nil {
			return &Error{File: o.file, Line: e.Line, Key: e.Key, Err: err}
		}
	}
	return nil
}

// envName returns NAME for a value "$NAME" or "${NAME}".
func envName(v string) (string, bool) {
	name, ok := strings.CutPrefix(v, "$")
	if !ok {
		return "", false
	}
	if inner, ok := strings.CutPrefix(name, "{"); ok {
		if name, ok = strings.CutSuffix(inner, "}"); !ok {
			return "", false
		}
	}
	if name == "" || name[0] >= '0' && name[0] <= '9' {
		return "", false
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return "", false
		}
	}
	return name, true
}

// setValue decodes s into the addressable value v.
func setValue(v reflect.Value, s string) error {
	t := v.Type()
	switch u := v.Addr().Interface().(type) {
	case Unmarshaler:
		return u.UnmarshalKV(s)
	case encoding.TextUnmarshaler:
		return u.UnmarshalText([]byte(s))
	}
	if t == durationType {
		d, err := utils.ParseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		p := reflect.New(t.Elem())
		if err := setValue(p.Elem(), s); err != nil {
			return err
		}
		v.Set(p)
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("invalid %s value %q (want true or false)", t, s)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, t.Bits())
		if err != nil {
			return numberError(t, s, err)
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(s, 10, t.Bits())
		if err != nil {
			return numberError(t, s, err)
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(s, t.Bits())
		if err != nil {
			return numberError(t, s, err)
		}
		v.SetFloat(f)
	case reflect.Slice:
		items := splitList(s)
		sl := reflect.MakeSlice(t, len(items), len(items))
		for i, it := range items {
			sl.Index(i).SetString(it)
		}
		v.Set(sl)
	default:
		// fieldsOf admits only the kinds above.
		return fmt.Errorf("unsupported type %s", t)
	}
	return nil
}

func numberError(t reflect.Type, s string, err error) error {
	if errors.Is(err, strconv.ErrRange) {
		return fmt.Errorf("value %q out of range for %s", s, t)
	}
	return fmt.Errorf("invalid %s value %q", t, s)
}

// splitList splits a comma-separated list, trimming items and dropping empty
// ones.
func splitList(s string) []string {
	items := make([]string, 0, strings.Count(s, ",")+1)
	for it := range strings.SplitSeq(s, ",") {
		if it = strings.TrimSpace(it); it != "" {
			items = append(items, it)
		}
	}
	return items
}
