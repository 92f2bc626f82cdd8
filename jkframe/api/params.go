package api

import (
	"errors"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ParamReader reads typed request parameters and keeps the first error, so
// a handler reads them all and checks once:
//
//	p := api.Params(r)
//	page := p.Int("page", 1, 1, 10000)
//	if err := p.Err(); err != nil {
//		return err
//	}
//
// Named parameters come from the query string and, for url-encoded POST,
// PUT and PATCH bodies, from the form (r.Form); from the multipart form too
// when the handler parsed one with r.ParseMultipartForm before. An empty
// value (`?page=`) counts as absent, as 1.5 clients send empty filters. After
// an error every getter returns its default. Use from one goroutine.
type ParamReader struct {
	r   *http.Request
	err *Error
}

// Params returns a reader of r's parameters.
func Params(r *http.Request) *ParamReader {
	p := &ParamReader{r: r}
	if r.Form == nil {
		if err := r.ParseForm(); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				p.err = tooLarge(mbe.Limit)
			} else {
				p.err = &Error{Code: http.StatusBadRequest, Msg: "invalid query or form: " + err.Error(), Err: err}
			}
		}
	}
	return p
}

// Err returns the first parameter error, an *Error with code 400 (413 for
// an oversize form body), or nil.
func (p *ParamReader) Err() error {
	if p.err == nil {
		return nil
	}
	return p.err
}

func (p *ParamReader) fail(e *Error) {
	if p.err == nil {
		p.err = e
	}
}

// values returns the non-empty values of name.
func (p *ParamReader) values(name string) []string {
	vs := p.r.Form[name]
	if p.r.MultipartForm != nil {
		vs = append(slices.Clip(vs), p.r.MultipartForm.Value[name]...)
	}
	out := vs[:0:0]
	for _, v := range vs {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

func (p *ParamReader) value(name string) (string, bool) {
	if vs := p.values(name); len(vs) > 0 {
		return vs[0], true
	}
	return "", false
}

// Has reports whether name has a non-empty value.
func (p *ParamReader) Has(name string) bool {
	_, ok := p.value(name)
	return ok
}

// String returns the first value of name, or def.
func (p *ParamReader) String(name, def string) string {
	if v, ok := p.value(name); ok && p.err == nil {
		return v
	}
	return def
}

// Required returns the first value of name; absent is an error
// "missing parameter <name>".
func (p *ParamReader) Required(name string) string {
	v, ok := p.value(name)
	if !ok {
		p.fail(MissingParam(name))
	}
	if p.err != nil {
		return ""
	}
	return v
}

// Strings returns every non-empty value of name (`ids=a&ids=b`), or nil.
func (p *ParamReader) Strings(name string) []string {
	vs := p.values(name)
	if len(vs) == 0 || p.err != nil {
		return nil
	}
	return vs
}

// OneOf returns the value of name, which must be one of allowed, or def.
// Error: "invalid parameter type: must be one of sh, bash".
func (p *ParamReader) OneOf(name, def string, allowed ...string) string {
	v, ok := p.value(name)
	if !ok || p.err != nil {
		return def
	}
	if !slices.Contains(allowed, v) {
		p.fail(BadParam(name, "must be one of "+strings.Join(allowed, ", ")))
		return def
	}
	return v
}

// Int returns name as an integer in [min, max], or def when absent.
// Errors: "invalid parameter page: must be an integer between 1 and 100",
// or "... >= 1" when max is math.MaxInt ("<= 100" when min is math.MinInt).
func (p *ParamReader) Int(name string, def, min, max int) int {
	v, ok := p.value(name)
	if !ok || p.err != nil {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		p.fail(BadParam(name, "must be an integer"+bounds(strconv.Itoa(min), strconv.Itoa(max), min == math.MinInt, max == math.MaxInt)))
		return def
	}
	return n
}

func bounds(lo, hi string, noLo, noHi bool) string {
	switch {
	case noLo && noHi:
		return ""
	case noHi:
		return " >= " + lo
	case noLo:
		return " <= " + hi
	}
	return " between " + lo + " and " + hi
}

// Bool returns name as a boolean, or def when absent. It accepts true,
// false, 1, 0 (and the other strconv.ParseBool forms).
// Error: "invalid parameter online: must be true or false".
func (p *ParamReader) Bool(name string, def bool) bool {
	v, ok := p.value(name)
	if !ok || p.err != nil {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		p.fail(BadParam(name, "must be true or false"))
		return def
	}
	return b
}

// Duration returns name as a duration in [min, max], or def when absent. A
// bare number is seconds (`timeout=60`, the 1.5 form, fractions allowed);
// Go forms (`90s`, `1m30s`, `500ms`) are accepted too. Error: "invalid
// parameter timeout: must be a duration (seconds or e.g. 1m30s) between 1s
// and 10m0s".
func (p *ParamReader) Duration(name string, def, min, max time.Duration) time.Duration {
	v, ok := p.value(name)
	if !ok || p.err != nil {
		return def
	}
	d, ok := parseDuration(v)
	if !ok || d < min || d > max {
		p.fail(BadParam(name, "must be a duration (seconds or e.g. 1m30s)"+
			bounds(min.String(), max.String(), min == math.MinInt64, max == math.MaxInt64)))
		return def
	}
	return d
}

func parseDuration(v string) (time.Duration, bool) {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		// ParseFloat also accepts "inf", "nan" and hex forms; keep to
		// plain decimal numbers that fit a Duration.
		if strings.ContainsAny(v, "xXpPiInN_") || f != f || math.Abs(f) > math.MaxInt64/float64(time.Second) {
			return 0, false
		}
		return time.Duration(f * float64(time.Second)), true
	}
	d, err := time.ParseDuration(v)
	return d, err == nil
}

// Path returns the ServeMux path wildcard name (`{id}` in the pattern);
// empty is an error "missing parameter <name>".
func (p *ParamReader) Path(name string) string {
	v := p.r.PathValue(name)
	if v == "" {
		p.fail(MissingParam(name))
	}
	if p.err != nil {
		return ""
	}
	return v
}

// PathInt returns the path wildcard name as an integer in [min, max].
// Errors: "missing parameter pid", "invalid parameter pid: must be an
// integer between 1 and 100" (see [ParamReader.Int]).
func (p *ParamReader) PathInt(name string, min, max int) int {
	v := p.Path(name)
	if p.err != nil {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		p.fail(BadParam(name, "must be an integer"+bounds(strconv.Itoa(min), strconv.Itoa(max), min == math.MinInt, max == math.MaxInt)))
		return 0
	}
	return n
}
