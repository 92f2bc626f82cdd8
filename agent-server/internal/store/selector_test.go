package store

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

var selectorCases = []struct {
	in      string
	want    []LabelMatch
	wantErr string
}{
	{in: "", want: nil},
	{in: "   ", want: nil},
	{in: "env=prod", want: []LabelMatch{{Key: "env", Op: LabelEq, Value: "prod"}}},
	{in: " env = prod , role!=db,gpu, !spot ", want: []LabelMatch{
		{Key: "env", Op: LabelEq, Value: "prod"}, {Key: "role", Op: LabelNotEq, Value: "db"},
		{Key: "gpu", Op: LabelExists}, {Key: "spot", Op: LabelNotExists}}},
	{in: "zone=eu-1/a", want: []LabelMatch{{Key: "zone", Op: LabelEq, Value: "eu-1/a"}}},
	{in: "k=", want: []LabelMatch{{Key: "k", Op: LabelEq, Value: ""}}},
	{in: "k=a=b", want: []LabelMatch{{Key: "k", Op: LabelEq, Value: "a=b"}}},
	{in: "example.com/team=infra", want: []LabelMatch{{Key: "example.com/team", Op: LabelEq, Value: "infra"}}},
	{in: "owner=张三", want: []LabelMatch{{Key: "owner", Op: LabelEq, Value: "张三"}}},
	{in: "a,,b", wantErr: "empty term"},
	{in: "a,", wantErr: "empty term"},
	{in: "=v", wantErr: `term "=v": empty key`},
	{in: "!", wantErr: `term "!": empty key`},
	{in: "!=v", wantErr: `term "!=v": empty key`},
	{in: "k k=v", wantErr: `key has character ' '`},
	{in: "_k=v", wantErr: `key has character '_'`},
	{in: "k'=v", wantErr: `key has character '\''`},
	{in: "ключ=v", wantErr: `key has character 'к'`},
	{in: strings.Repeat("k", 64) + "=v", wantErr: "key longer than 63"},
	{in: "k=" + strings.Repeat("v", 256), wantErr: "value longer than 255 bytes"},
	{in: "k=a\tb", wantErr: `value has character '\t'`},
	{in: "k=\xff", wantErr: "value is not UTF-8"},
	{in: strings.Repeat("a,", 64) + "a", wantErr: "more than 64 terms"},
}

func TestParseSelector(t *testing.T) {
	for _, tc := range selectorCases {
		got, err := ParseSelector(tc.in)
		if tc.wantErr != "" {
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseSelector(%q) error %v, want ErrInvalid with %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParseSelector(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestValidateLabels(t *testing.T) {
	for _, tc := range []struct {
		labels  map[string]string
		wantErr string
	}{
		{nil, ""},
		{map[string]string{"env": "prod", "a.b/c-d_e": "x y"}, ""},
		{map[string]string{"env": " prod"}, "leading or trailing space"},
		{map[string]string{"-x": "v"}, `key has character '-'`},
		{map[string]string{"k": "a\nb"}, `value has character '\n'`},
	} {
		err := ValidateLabels(tc.labels)
		if tc.wantErr == "" {
			if err != nil {
				t.Errorf("ValidateLabels(%v): %v", tc.labels, err)
			}
			continue
		}
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("ValidateLabels(%v) error %v, want %q", tc.labels, err, tc.wantErr)
		}
	}
}

// FuzzParseSelector checks that any input parses or fails cleanly, and
// that what parses prints back to a selector that parses the same.
func FuzzParseSelector(f *testing.F) {
	for _, tc := range selectorCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		ms, err := ParseSelector(in)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		terms := make([]string, len(ms))
		for i, m := range ms {
			if err := checkLabel(m.Key, m.Value); err != nil {
				t.Fatalf("parsed an invalid term %+v: %v", m, err)
			}
			terms[i] = m.String()
		}
		again, err := ParseSelector(strings.Join(terms, ","))
		if err != nil || !slices.Equal(again, ms) {
			t.Fatalf("round trip of %q: %v, %v; want %v", in, again, err, ms)
		}
	})
}

func TestPagingLimitOffset(t *testing.T) {
	for _, tc := range []struct {
		p                   Paging
		wantLimit, wantOffs int
	}{
		{Paging{}, DefaultPageSize, 0},
		{Paging{Page: 3, Size: 10}, 10, 20},
		{Paging{Page: -1, Size: -1}, DefaultPageSize, 0},
		{Paging{Page: 2, Size: MaxPageSize + 1}, MaxPageSize, MaxPageSize},
		{Paging{Page: math.MaxInt, Size: 1000}, 1000, math.MaxInt32},
	} {
		l, o := tc.p.limitOffset()
		if l != tc.wantLimit || o != tc.wantOffs {
			t.Errorf("%+v: limit %d offset %d, want %d %d", tc.p, l, o, tc.wantLimit, tc.wantOffs)
		}
	}
}
