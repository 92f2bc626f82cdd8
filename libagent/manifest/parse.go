package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// rawItem is the YAML form of an item, with the dotted spellings.
type rawItem struct {
	Item    `yaml:",inline"`
	NameZh  *string `yaml:"name.zh"`
	NameEn  *string `yaml:"name.en"`
	DescZh  *string `yaml:"desc.zh"`
	DescEn  *string `yaml:"desc.en"`
	Enabled *struct {
		When *When `yaml:"when"`
	} `yaml:"enabled"`
	EnabledWhen *When `yaml:"enabled.when"`
}

// ErrSyntax is wrapped by Parse errors about the YAML itself.
var ErrSyntax = errors.New("manifest syntax")

// Parse reads a manifest; file names it in problems and errors. It checks
// the YAML shape (a list of items, known fields, value kinds); Validate
// checks the meaning.
func Parse(r io.Reader, file string) (*Manifest, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, syntaxError(file, err)
	}
	if doc.Kind == 0 { // empty document
		return &Manifest{}, nil
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%s:%d: %w: want a list of items", file, max(doc.Line, 1), ErrSyntax)
	}
	seq := doc.Content[0]
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var raws []rawItem
	if err := dec.Decode(&raws); err != nil {
		return nil, syntaxError(file, err)
	}
	if len(raws) != len(seq.Content) {
		return nil, fmt.Errorf("%s: %w: %d items decoded of %d", file, ErrSyntax, len(raws), len(seq.Content))
	}
	m := &Manifest{Items: make([]Item, 0, len(raws))}
	for i, r := range raws {
		it := r.Item
		it.File, it.Line = file, seq.Content[i].Line
		for _, d := range []struct {
			dotted *string
			dst    *string
			name   string
		}{{r.NameZh, &it.Name.Zh, "name.zh"}, {r.NameEn, &it.Name.En, "name.en"}, {r.DescZh, &it.Desc.Zh, "desc.zh"}, {r.DescEn, &it.Desc.En, "desc.en"}} {
			if d.dotted == nil {
				continue
			}
			if *d.dst != "" {
				return nil, fmt.Errorf("%s:%d: %w: %s given twice", file, it.Line, ErrSyntax, d.name)
			}
			*d.dst = *d.dotted
		}
		if r.Enabled != nil {
			it.When = r.Enabled.When
		}
		if r.EnabledWhen != nil {
			if it.When != nil {
				return nil, fmt.Errorf("%s:%d: %w: enabled.when given twice", file, it.Line, ErrSyntax)
			}
			it.When = r.EnabledWhen
		}
		m.Items = append(m.Items, it)
	}
	return m, nil
}

// lineRE matches the position yaml.v3 puts in its messages.
var lineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)

// syntaxError rewrites a yaml.v3 error into "file:line: manifest syntax:
// message" lines, one per problem.
func syntaxError(file string, err error) error {
	msgs := []string{err.Error()}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	lines := make([]string, len(msgs))
	for i, msg := range msgs {
		msg = strings.ReplaceAll(msg, " in type manifest.rawItem", "")
		if m := lineRE.FindStringSubmatch(msg); m != nil {
			lines[i] = fmt.Sprintf("%s:%s: %s: %s", file, m[1], ErrSyntax, msg[len(m[0]):])
		} else {
			lines[i] = fmt.Sprintf("%s: %s: %s", file, ErrSyntax, strings.TrimPrefix(msg, "yaml: "))
		}
	}
	return &multiLine{lines}
}

// multiLine is an error of several lines that wraps ErrSyntax.
type multiLine struct{ lines []string }

func (e *multiLine) Error() string { return strings.Join(e.lines, "\n") }
func (e *multiLine) Unwrap() error { return ErrSyntax }
