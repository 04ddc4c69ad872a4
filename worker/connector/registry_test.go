package connector

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weirstream/weir/internal/connspec"
)

// TestEverySpecHasAFactory: the worker can run every connector the
// coordinator accepts, and has no factory the coordinator cannot name.
func TestEverySpecHasAFactory(t *testing.T) {
	specs := map[string]bool{}
	for _, s := range connspec.All() {
		specs[string(s.Kind)+" "+s.Name] = true
	}
	facts := map[string]bool{}
	for _, f := range All() {
		facts[string(f.Kind)+" "+f.Name] = true
		if !specs[string(f.Kind)+" "+f.Name] {
			t.Errorf("%s %s: factory without a spec", f.Kind, f.Name)
		}
	}
	for k := range specs {
		if !facts[k] {
			t.Errorf("%s: spec without a factory", k)
		}
	}
	if len(facts) != 6 {
		t.Errorf("%d factories, want the 6 built-in connectors", len(facts))
	}
}

// TestOpenFromJSON opens connectors from options that came through JSON,
// as a worker gets them from a deployment descriptor.
func TestOpenFromJSON(t *testing.T) {
	var raw connspec.Raw
	if err := json.Unmarshal([]byte(`{"count":5,"keys":2,"seed":9223372036854775807}`), &raw); err != nil {
		t.Fatal(err)
	}
	f, o, err := Open(KindSource, "datagen", raw)
	if err != nil {
		t.Fatal(err)
	}
	if o.Int("seed") != 1<<63-1 || o.Int("max_value") != 100000 {
		t.Fatalf("options %v", o)
	}
	src, err := f.NewSource(o, Subtask{Parallelism: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	// The same source made from options parsed directly gives the same
	// records.
	direct := newSource(t, "datagen", map[string]any{"count": 5, "keys": 2, "seed": int64(1<<63 - 1)}, Subtask{Parallelism: 1})
	if a, b := readAll(t, src, 2), readAll(t, direct, 3); len(a) != 5 || !equalRecs(a, b) {
		t.Fatalf("through JSON %v, direct %v", a, b)
	}

	out := filepath.Join(t.TempDir(), "o.txt")
	if _, _, err := Open(KindSink, "file", connspec.Raw{"path": out, "format": "lines"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		kind Kind
		name string
		raw  connspec.Raw
		want string
	}{
		{KindSource, "datagne", nil, "unknown connector"},
		{KindSource, "stdout", nil, "unknown connector"},
		{KindSink, "file", connspec.Raw{"paht": "x"}, `did you mean "path"`},
		{KindSource, "datagen", connspec.Raw{"count": "many"}, "want integer"},
	} {
		_, _, err := Open(tc.kind, tc.name, tc.raw)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.name) {
			t.Errorf("%s %s %v: got %v, want %q", tc.kind, tc.name, tc.raw, err, tc.want)
		}
		if tc.want == "unknown connector" && !errors.Is(err, ErrUnknown) {
			t.Errorf("%s %s: %v is not ErrUnknown", tc.kind, tc.name, err)
		}
	}
}

func equalRecs(a, b []rec) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRegisterRefusesFactoriesWithoutSpecs: a factory must match a spec.
func TestRegisterRefusesFactoriesWithoutSpecs(t *testing.T) {
	for _, s := range []*Spec{
		{Name: "test-nospec", Kind: KindSource, NewSource: func(Options, Subtask) (Source, error) { return nil, nil }},
		{Name: "datagen", Kind: KindSource}, // no constructor
		{Name: "datagen", Kind: KindSource, NewSource: func(Options, Subtask) (Source, error) { return nil, nil }}, // duplicate
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%+v) did not panic", s)
				}
			}()
			Register(s)
		}()
	}
}
