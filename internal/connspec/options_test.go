package connspec

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func testSpec() *Spec {
	return &Spec{
		Name: "test-opts",
		Kind: KindSource,
		Options: []Option{
			{Name: "path", Type: TypeString, Required: true, Help: "h"},
			{Name: "format", Type: TypeString, Default: "lines", Enum: []string{"lines", "jsonl"}, Help: "h"},
			{Name: "count", Type: TypeInt, Default: "7", Help: "h"},
			{Name: "verbose", Type: TypeBool, Default: "true", Help: "h"},
			{Name: "wait", Type: TypeDuration, Default: "250ms", Help: "h"},
			{Name: "label", Type: TypeString, Help: "h"},
		},
	}
}

func TestParseOptionsDefaults(t *testing.T) {
	o, err := testSpec().ParseOptions(map[string]any{"path": "x"})
	if err != nil {
		t.Fatal(err)
	}
	want := Options{"path": "x", "format": "lines", "count": int64(7), "verbose": true, "wait": 250 * time.Millisecond, "label": ""}
	if !reflect.DeepEqual(o, want) {
		t.Fatalf("got %#v\nwant %#v", o, want)
	}
	if o.String("format") != "lines" || o.Int("count") != 7 || !o.Bool("verbose") || o.Duration("wait") != 250*time.Millisecond {
		t.Fatalf("typed getters disagree with %v", o)
	}
}

func TestParseOptionsConversions(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  any
		want any
	}{
		{"count", int(3), int64(3)},
		{"count", int8(-3), int64(-3)},
		{"count", int16(300), int64(300)},
		{"count", int32(70000), int64(70000)},
		{"count", int64(1) << 40, int64(1) << 40},
		{"count", uint(5), int64(5)},
		{"count", uint8(5), int64(5)},
		{"count", uint16(5), int64(5)},
		{"count", uint32(5), int64(5)},
		{"count", uint64(math.MaxInt64), int64(math.MaxInt64)},
		{"count", float64(12), int64(12)},
		{"wait", "1m30s", 90 * time.Second},
		{"wait", 1500, 1500 * time.Millisecond},
		{"wait", int64(2), 2 * time.Millisecond},
		{"wait", float64(10), 10 * time.Millisecond},
		{"wait", "40", 40 * time.Millisecond},
		{"verbose", false, false},
		{"format", "jsonl", "jsonl"},
	} {
		o, err := testSpec().ParseOptions(map[string]any{"path": "p", tc.name: tc.raw})
		if err != nil {
			t.Errorf("%s=%#v: %v", tc.name, tc.raw, err)
			continue
		}
		if got := o[tc.name]; got != tc.want {
			t.Errorf("%s=%#v: got %#v, want %#v", tc.name, tc.raw, got, tc.want)
		}
	}
}

func TestParseOptionsErrors(t *testing.T) {
	for _, tc := range []struct {
		raw  map[string]any
		want []string // every fragment must appear
	}{
		{map[string]any{"path": "p", "cuont": 1}, []string{`option "cuont"`, "unknown", `did you mean "count"`, "count, format, label, path, verbose, wait"}},
		{map[string]any{"path": "p", "zzzzzzzz": 1}, []string{`option "zzzzzzzz"`, "unknown", "known: count"}},
		{map[string]any{}, []string{`option "path"`, "required"}},
		{map[string]any{"path": 5}, []string{`option "path"`, "want string", "got integer 5"}},
		{map[string]any{"path": "p", "count": "12"}, []string{`option "count"`, "want integer", `got string "12"`}},
		{map[string]any{"path": "p", "count": 1.5}, []string{`option "count"`, "want an integer", "1.5"}},
		{map[string]any{"path": "p", "count": uint64(math.MaxUint64)}, []string{`option "count"`, "too large"}},
		{map[string]any{"path": "p", "count": true}, []string{`option "count"`, "want integer", "got bool"}},
		{map[string]any{"path": "p", "verbose": "yes"}, []string{`option "verbose"`, "want bool", `got string "yes"`}},
		{map[string]any{"path": "p", "wait": "soon"}, []string{`option "wait"`, "not a duration"}},
		{map[string]any{"path": "p", "wait": -5}, []string{`option "wait"`, "negative"}},
		{map[string]any{"path": "p", "wait": "-5s"}, []string{`option "wait"`, "negative"}},
		{map[string]any{"path": "p", "wait": true}, []string{`option "wait"`, "want duration", "got bool"}},
		{map[string]any{"path": "p", "format": "csv"}, []string{`option "format"`, `"csv" is not one of lines, jsonl`}},
		{map[string]any{"path": "p", "label": nil}, []string{`option "label"`, "got null"}},
		{map[string]any{"path": "p", "label": []any{1}}, []string{`option "label"`, "got list"}},
		// Several mistakes: all reported.
		{map[string]any{"count": "x", "bogus": 1}, []string{`option "count"`, `option "bogus"`, `option "path"`}},
	} {
		_, err := testSpec().ParseOptions(tc.raw)
		if err == nil {
			t.Errorf("%v: no error", tc.raw)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q lacks %q", tc.raw, err, w)
			}
		}
	}
}

func TestParseOptionsNoOptions(t *testing.T) {
	s := &Spec{Name: "test-none", Kind: KindSink}
	if o, err := s.ParseOptions(nil); err != nil || len(o) != 0 {
		t.Fatalf("got %v, %v", o, err)
	}
	_, err := s.ParseOptions(map[string]any{"x": 1})
	if err == nil || !strings.Contains(err.Error(), "takes no options") {
		t.Fatalf("got %v", err)
	}
}

func TestParseOptionsCheck(t *testing.T) {
	s := testSpec()
	called := 0
	s.Check = func(o Options) error {
		called++
		if o.Int("count") > 10 {
			return errorf(`option "count": at most 10`)
		}
		return nil
	}
	if _, err := s.ParseOptions(map[string]any{"path": "p"}); err != nil || called != 1 {
		t.Fatalf("err %v, Check called %d times", err, called)
	}
	if _, err := s.ParseOptions(map[string]any{"path": "p", "count": 11}); err == nil || !strings.Contains(err.Error(), "at most 10") {
		t.Fatalf("Check error not returned: %v", err)
	}
	// Check does not run on options that failed their types.
	if _, err := s.ParseOptions(map[string]any{"path": 1, "count": 11}); err == nil || strings.Contains(err.Error(), "at most 10") {
		t.Fatalf("got %v", err)
	}
}

type stringError string

func (e stringError) Error() string { return string(e) }
func errorf(s string) error         { return stringError(s) }

func TestSpecValidate(t *testing.T) {
	for _, s := range All() {
		if err := s.Validate(); err != nil {
			t.Errorf("%s %s: %v", s.Kind, s.Name, err)
		}
		// Every connector accepts its defaults when given its required
		// options.
		raw := map[string]any{}
		for _, o := range s.Options {
			if o.Required {
				raw[o.Name] = "x"
			}
		}
		if _, err := s.ParseOptions(raw); err != nil {
			t.Errorf("%s %s with defaults: %v", s.Kind, s.Name, err)
		}
	}
	bad := &Spec{Name: "test-bad", Kind: KindSource,
		Options: []Option{
			{Name: "a", Type: TypeInt, Default: "x", Help: "h"},
			{Name: "b", Type: TypeString, Default: "z", Enum: []string{"y"}, Help: "h"},
			{Name: "a", Type: "float", Help: "h"},
			{Name: "c", Type: TypeBool},
		}}
	err := bad.Validate()
	for _, w := range []string{`option "a": default`, `option "b": default`, "listed twice", `unknown type "float"`, `option "c" has no help`} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Validate error %v lacks %q", err, w)
		}
	}
}

func TestRegistryKinds(t *testing.T) {
	src, _ := LookupKind(KindSource, "file")
	snk, _ := LookupKind(KindSink, "file")
	if src == nil || snk == nil || src == snk || src.Kind != KindSource || snk.Kind != KindSink {
		t.Fatal("file source and sink must be distinct specs")
	}
	if s, ok := Lookup("file"); !ok || s != src {
		t.Fatal("Lookup of a shared name must give the source")
	}
	if s, ok := Lookup("stdout"); !ok || s.Kind != KindSink {
		t.Fatal("Lookup of a sink-only name must give the sink")
	}
	if _, ok := LookupKind(KindSource, "stdout"); ok {
		t.Fatal("stdout is no source")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("duplicate Register did not panic")
		}
	}()
	Register(&Spec{Name: "datagen", Kind: KindSource})
}
