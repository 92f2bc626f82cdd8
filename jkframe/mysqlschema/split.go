package mysqlschema

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrSyntax reports a file the statement splitter cannot cut into statements
// (an unterminated string, quoted identifier or comment, or a bad DELIMITER).
var ErrSyntax = errors.New("mysqlschema: syntax")

// statement is one SQL statement of a file.
type statement struct {
	text string // without the delimiter, leading comments and surrounding space
	line int    // 1-based line of its first character in the file
}

// splitStatements cuts a SQL script into statements the way the mysql command
// line client does: the delimiter (";" unless changed by a DELIMITER line)
// ends a statement except inside '…', "…" and `…` quotes (with backslash
// escapes in strings and doubled quote characters) and inside "-- ", "#" and
// "/* */" comments. Statements that hold only comments are dropped; comments
// inside a statement are kept (they may be MySQL /*! … */ version comments).
func splitStatements(src string) ([]statement, error) {
	var (
		out       []statement
		delim     = ";"
		line      = 1
		start     = -1 // offset of the first code byte of the current statement
		startLine = 0
	)
	emit := func(end int) {
		if start >= 0 {
			if text := strings.TrimSpace(src[start:end]); text != "" {
				out = append(out, statement{text: text, line: startLine})
			}
		}
		start = -1
	}
	mark := func(i int) {
		if start < 0 {
			start, startLine = i, line
		}
	}
	i := 0
	for i < len(src) {
		c := src[i]
		// A DELIMITER command is a client directive: recognised only where a
		// statement may begin, it runs to the end of its line.
		if start < 0 && atLineStart(src, i) && hasPrefixFold(src[i:], "delimiter") &&
			(i+9 == len(src) || src[i+9] <= ' ') {
			eol := strings.IndexByte(src[i:], '\n')
			if eol < 0 {
				eol = len(src) - i
			}
			fields := strings.Fields(src[i+9 : i+eol])
			if len(fields) != 1 {
				return nil, fmt.Errorf("%w: line %d: DELIMITER needs exactly one delimiter", ErrSyntax, line)
			}
			delim = fields[0]
			i += eol
			continue
		}
		switch {
		case c == '\n':
			line++
			i++
		case c == '\'' || c == '"' || c == '`':
			mark(i)
			end, lines, ok := skipQuoted(src, i)
			if !ok {
				return nil, fmt.Errorf("%w: line %d: unterminated %c quote", ErrSyntax, line, c)
			}
			line += lines
			i = end
		case c == '#' || (c == '-' && strings.HasPrefix(src[i:], "--") && (i+2 == len(src) || src[i+2] <= ' ')):
			eol := strings.IndexByte(src[i:], '\n')
			if eol < 0 {
				i = len(src)
			} else {
				i += eol
			}
		case c == '/' && strings.HasPrefix(src[i:], "/*"):
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("%w: line %d: unterminated /* comment", ErrSyntax, line)
			}
			if src[i+2:min(i+3, len(src))] == "!" || strings.HasPrefix(src[i:], "/*M!") {
				mark(i) // executable comment: code, not commentary
			}
			line += strings.Count(src[i:i+2+end+2], "\n")
			i += 2 + end + 2
		case strings.HasPrefix(src[i:], delim):
			emit(i)
			i += len(delim)
		default:
			// Whitespace as strings.TrimSpace sees it is not code, so a
			// statement never starts with a space that is later trimmed.
			r, size := utf8.DecodeRuneInString(src[i:])
			if !unicode.IsSpace(r) {
				mark(i)
			}
			i += size
		}
	}
	emit(len(src))
	return out, nil
}

// skipQuoted returns the offset just past the quoted token starting at
// src[i], the number of newlines inside it, and false if it never ends.
func skipQuoted(src string, i int) (end, lines int, ok bool) {
	q := src[i]
	for j := i + 1; j < len(src); j++ {
		switch src[j] {
		case '\n':
			lines++
		case '\\':
			if q != '`' {
				if j+1 < len(src) && src[j+1] == '\n' {
					lines++
				}
				j++
			}
		case q:
			if j+1 < len(src) && src[j+1] == q {
				j++ // doubled quote stands for itself
				continue
			}
			return j + 1, lines, true
		}
	}
	return len(src), lines, false
}

func atLineStart(src string, i int) bool {
	for j := i - 1; j >= 0; j-- {
		switch src[j] {
		case '\n':
			return true
		case ' ', '\t', '\r':
		default:
			return false
		}
	}
	return true
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
