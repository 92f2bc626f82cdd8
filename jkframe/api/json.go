package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
)

// DecodeJSON decodes the request body, one JSON value of at most maxBytes
// bytes, into v (a pointer). Unknown fields are rejected. The errors are
// *Error values ready for [Fail]:
//
//	400 missing JSON body
//	400 invalid JSON body at offset 12: invalid character '}' looking for beginning of value
//	400 invalid JSON body: unexpected end of input
//	400 invalid JSON body: data after the JSON value
//	400 invalid parameter timeout: must be an integer (got string)
//	400 unknown parameter colour
//	413 request body too large (limit 1048576 bytes)
//
// A v that is not a non-nil pointer is a bug and yields a plain error (500).
func DecodeJSON(r *http.Request, v any, maxBytes int64) error {
	if rv := reflect.ValueOf(v); rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("api: DecodeJSON needs a non-nil pointer, got %T", v)
	}
	if r.ContentLength > maxBytes {
		return tooLarge(maxBytes)
	}
	body := r.Body
	if body == nil {
		body = http.NoBody
	}
	lr := &limitedReader{r: body, n: maxBytes}
	dec := json.NewDecoder(lr)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err, lr, maxBytes)
	}
	// Exactly one value: anything but white space after it is an error.
	var extra json.RawMessage
	if err := dec.Decode(&extra); err != io.EOF {
		if err == nil || !lr.over {
			return &Error{Code: http.StatusBadRequest, Msg: "invalid JSON body: data after the JSON value"}
		}
		return jsonError(err, lr, maxBytes)
	}
	return nil
}

// limitedReader reads at most n bytes and notes an attempt to read more.
type limitedReader struct {
	r    io.Reader
	n    int64
	over bool
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		// Probe one byte so that a body of exactly n bytes is not over.
		var one [1]byte
		k, err := l.r.Read(one[:])
		if k > 0 {
			l.over = true
			return 0, errTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	k, err := l.r.Read(p)
	l.n -= int64(k)
	return k, err
}

var errTooLarge = errors.New("body too large")

func jsonError(err error, lr *limitedReader, maxBytes int64) error {
	var (
		mbe  *http.MaxBytesError
		syn  *json.SyntaxError
		typ  *json.UnmarshalTypeError
		inv  *json.InvalidUnmarshalError
		bad  = func(msg string) error { return &Error{Code: http.StatusBadRequest, Msg: msg, Err: err} }
		name string
	)
	switch {
	case lr.over || errors.Is(err, errTooLarge):
		return tooLarge(maxBytes)
	case errors.As(err, &mbe):
		return tooLarge(mbe.Limit)
	case errors.As(err, &inv):
		return fmt.Errorf("api: decode JSON: %w", err)
	case err == io.EOF:
		return bad("missing JSON body")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return bad("invalid JSON body: unexpected end of input")
	case errors.As(err, &syn):
		return bad("invalid JSON body at offset " + strconv.FormatInt(syn.Offset, 10) + ": " + syn.Error())
	case errors.As(err, &typ):
		name = typ.Field
		if name == "" {
			return bad("invalid JSON body: must be " + describe(typ.Type) + " (got " + typ.Value + ")")
		}
		return bad("invalid parameter " + name + ": must be " + describe(typ.Type) + " (got " + typ.Value + ")")
	case strings.HasPrefix(err.Error(), `json: unknown field "`):
		name = strings.TrimSuffix(strings.TrimPrefix(err.Error(), `json: unknown field "`), `"`)
		return bad("unknown parameter " + name)
	}
	// An UnmarshalJSON/UnmarshalText method refused the value.
	return bad("invalid JSON body: " + strings.TrimPrefix(err.Error(), "json: "))
}

// A Describer names the JSON values its type accepts, for the 400 that
// names the field ("invalid parameter timeout: must be <DescribeJSON()>
// (got string "soon")"). An UnmarshalJSON method that refuses a value
// returns [TypeError] so that the decoder adds the field's name: encoding/json
// names the field only for a *json.UnmarshalTypeError.
type Describer interface{ DescribeJSON() string }

// TypeError is the error an UnmarshalJSON method of a [Describer] returns
// for a value it refuses: raw is the JSON it was given, t its own type.
func TypeError(raw []byte, t reflect.Type) error {
	got := strings.TrimSpace(string(raw))
	switch {
	case got == "":
		got = "nothing"
	case got[0] == '"':
		got = "string " + shorten(got)
	case got[0] == '{':
		got = "object"
	case got[0] == '[':
		got = "array"
	case got == "true" || got == "false":
		got = "bool"
	default:
		got = "number " + shorten(got)
	}
	return &json.UnmarshalTypeError{Value: got, Type: t}
}

// shorten cuts a refused value to what an error message can repeat.
func shorten(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

// describe names a Go type the way a JSON client thinks of it.
func describe(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for _, c := range []reflect.Type{t, reflect.PointerTo(t)} {
		if c.Implements(reflect.TypeFor[Describer]()) {
			return reflect.New(t).Interface().(Describer).DescribeJSON()
		}
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "a " + t.String()
}
