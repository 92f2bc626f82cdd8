package manifest

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/agentfleet/jkframe/utils"
)

var (
	uuidRE    = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	winAbsRE  = regexp.MustCompile(`^([A-Za-z]:[\\/]|\\\\)`)
	keyRE     = regexp.MustCompile(`^[a-z0-9_]+(\.[a-z0-9_]+)*$`)
	rangeType = map[string]bool{"int": true, "uint": true, "float": true, "bytes": true, "duration": true}
	lenType   = map[string]bool{"string": true, "csv": true, "path": true}
)

// number parses v of a ranged type into a comparable float64 (bytes and
// durations in bytes and nanoseconds; int64/uint64 beyond 2^53 lose
// precision, far beyond any config range).
func number(typ, v string) (float64, error) {
	switch typ {
	case "int":
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("not an int: %q", v)
		}
		return float64(n), nil
	case "uint":
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("not a uint: %q", v)
		}
		return float64(n), nil
	case "float":
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("not a float: %q", v)
		}
		return n, nil
	case "bytes":
		n, err := utils.ParseBytes(v)
		if err != nil {
			return 0, fmt.Errorf("not a byte size: %q", v)
		}
		return float64(n), nil
	case "duration":
		d, err := utils.ParseDuration(v)
		if err != nil {
			return 0, fmt.Errorf("not a duration: %q", v)
		}
		return float64(d), nil
	}
	return 0, fmt.Errorf("type %s has no range", typ)
}

// splitCSV splits a csv value the way kvconf does: items trimmed, empty
// items dropped.
func splitCSV(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// checkValue checks a non-empty value against the item. The item itself must
// have passed Validate's own checks (type known, bounds parse).
func (it *Item) checkValue(v string) error {
	if it.Len != nil && lenType[it.Type] && utf8.RuneCountInString(v) > *it.Len {
		return fmt.Errorf("longer than %d characters", *it.Len)
	}
	switch it.Type {
	case "string":
		if it.StrValid != "" {
			re, err := regexp.Compile(`^(?:` + it.StrValid + `)$`)
			if err == nil && !re.MatchString(v) {
				return fmt.Errorf("%q does not match str_valid %q", v, it.StrValid)
			}
		}
	case "enum":
		if !slices.Contains(it.EnumValid, v) {
			return fmt.Errorf("%q is not one of %s", v, strings.Join(it.EnumValid, ", "))
		}
	case "csv":
		if len(it.CSVValid) > 0 {
			for _, s := range splitCSV(v) {
				if !slices.Contains(it.CSVValid, s) {
					return fmt.Errorf("item %q is not one of %s", s, strings.Join(it.CSVValid, ", "))
				}
			}
		}
	case "bool":
		if _, err := strconv.ParseBool(v); err != nil {
			return fmt.Errorf("not a bool: %q", v)
		}
	case "naddr":
		host, port, err := net.SplitHostPort(v)
		if err != nil {
			return fmt.Errorf("not host:port: %q", v)
		}
		if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
			return fmt.Errorf("bad port %q in %q", port, v)
		}
		if strings.ContainsAny(host, " /") {
			return fmt.Errorf("bad host %q in %q", host, v)
		}
	case "path":
		if !it.AllowRelative && !strings.HasPrefix(v, "/") && !winAbsRE.MatchString(v) {
			return fmt.Errorf("relative path %q not allowed (want an absolute path)", v)
		}
	case "uuid":
		if !uuidRE.MatchString(v) {
			return fmt.Errorf("not a uuid: %q", v)
		}
	case "int", "uint", "float", "bytes", "duration":
		n, err := number(it.Type, v)
		if err != nil {
			return err
		}
		if it.Min != nil {
			if lo, err := number(it.Type, *it.Min); err == nil && n < lo {
				return fmt.Errorf("%s is below the minimum %s", v, *it.Min)
			}
		}
		if it.Max != nil {
			if hi, err := number(it.Type, *it.Max); err == nil && n > hi {
				return fmt.Errorf("%s is above the maximum %s", v, *it.Max)
			}
		}
	}
	return nil
}
