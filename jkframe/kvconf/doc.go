// Package kvconf reads and writes "key = value" configuration files into and
// from Go structs.
//
// # Format
//
// One setting per line:
//
//	# agent.conf
//	basic.id     = $HOSTNAME
//	basic.server = 127.0.0.1:13081
//	basic.log.size = 10M          # binary units: 10 × 2²⁰ bytes
//	basic.token  = "abc #1"       # quoted: the # is part of the value
//
// The rules:
//
//   - Whitespace around the key and around the value is ignored. Empty lines
//     are ignored. Lines may be of any length; CRLF line ends are accepted and
//     a UTF-8 byte order mark at the start of the file is skipped.
//   - "#" starts a comment at the start of a line, at the start of a value, or
//     after whitespace. Elsewhere it is part of the value: "pass = ab#cd" sets
//     "ab#cd".
//   - A value that starts with a double quote is quoted: it runs to the
//     closing quote and may hold anything but a line break, including
//     leading or trailing spaces and " #". Inside, \" is a quote and \\ a
//     backslash; any other backslash escape is an error. After the closing
//     quote only whitespace and a comment may follow.
//   - Keys are made of letters, digits, "_", "-" and "."; they are
//     case-sensitive. A line without "=" and a key set twice are errors.
//   - Every error is an *Error carrying the file, the line and the key.
//
// # Mapping to structs
//
// A field's key is its `kv:"name"` tag, or its lower-cased name when untagged;
// `kv:"-"` skips the field. A struct field adds its key and a dot in front of
// its own fields' keys (basic → log → dir gives "basic.log.dir"); an untagged
// embedded struct adds nothing. The tag option env (`kv:"server,env"`) makes a
// bare value of the form $NAME or ${NAME} be read from the environment
// through the Env option; a quoted value is always taken literally.
//
// Field types: string, bool (strconv.ParseBool forms), signed and unsigned
// integers (base 10; a value out of the type's range is an error, never
// truncated), float32 and float64, time.Duration (also with the "d" unit,
// see utils.ParseDuration), utils.Bytes (binary units, see utils.ParseBytes),
// utils.Duration, []string (comma-separated, items trimmed, empty items
// dropped, an empty value gives an empty slice), pointers to these, and types
// implementing Unmarshaler / Marshaler or encoding.TextUnmarshaler /
// encoding.TextMarshaler.
//
// Decoding only sets the fields whose keys appear, so defaults are set by
// filling the struct before decoding. Unknown keys are an error wrapping
// ErrUnknownKey, or only a warning with Strict(false).
//
// Marshal writes one line per field in struct order, quoting a value when it
// would not read back the same bare, so that its output decodes to equal
// values. Nil pointers and nil slices are left out. A value holding a line
// break cannot be written.
package kvconf
