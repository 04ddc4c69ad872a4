package deploy

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/weirstream/weir/internal/keygroup"
)

func sample() *Descriptor {
	return &Descriptor{
		Version: Version, Job: "j1", Name: "wc", Attempt: 2, Tenant: "default", MaxParallelism: 128,
		Buffers: Buffers{Size: 1 << 15, Credits: 4, FlushInterval: Duration(5e6)},
		State:   State{Backend: "heap"},
		Vertices: []Vertex{
			{ID: 0, Name: "gen", Parallelism: 2, Nodes: []Node{{UID: "gen", Kind: KindSource, Connector: "datagen", Options: map[string]any{"count": json.Number("10")}, Watermark: &Watermark{Strategy: "bounded", Interval: Duration(2e8)}, Outputs: [][]Target{{{Node: -1, Edge: 0}}}}}},
			{ID: 1, Name: "count -> out", Parallelism: 3, Inputs: []int{0}, Nodes: []Node{
				{UID: "count", Kind: KindOperator, Module: &ModuleRef{Digest: strings.Repeat("ab", 32), Operator: "count"}, Params: json.RawMessage(`{"x":1}`), Outputs: [][]Target{{{Node: 1, Edge: -1}}}},
				{UID: "out", Kind: KindSink, Connector: "stdout"},
			}},
		},
		Edges: []Edge{{ID: 0, From: 0, To: 1, Partition: "key_by"}},
		Subtasks: []Subtask{
			{Vertex: 1, Index: 2, KeyGroups: keygroup.RangeFor(2, 3, 128)},
		},
	}
}

func TestRoundTrip(t *testing.T) {
	d := sample()
	b, err := d.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, d) {
		t.Fatalf("round trip changed the descriptor:\n got %+v\nwant %+v", got, d)
	}
}

func TestDecodeRefuses(t *testing.T) {
	for name, c := range map[string]struct {
		edit func(m map[string]any)
		want string
	}{
		"newer version":        {func(m map[string]any) { m["version"] = Version + 1; m["future"] = true }, "descriptor version 2 is newer than this worker's 1"},
		"unknown field":        {func(m map[string]any) { m["surprise"] = 1 }, `unknown field "surprise"`},
		"no job":               {func(m map[string]any) { m["job"] = "" }, "no job id"},
		"bad backend":          {func(m map[string]any) { m["state"] = map[string]any{"backend": "rocks"} }, `state backend "rocks"`},
		"bad duration":         {func(m map[string]any) { m["buffers"].(map[string]any)["flush_interval"] = 5 }, "duration must be a string"},
		"subtask out of range": {func(m map[string]any) { m["subtasks"] = []any{map[string]any{"vertex": 1, "index": 3}} }, "subtask 3 of vertex 1 out of range"},
		"wrong key groups": {func(m map[string]any) {
			m["subtasks"] = []any{map[string]any{"vertex": 1, "index": 0, "key_groups": map[string]any{"Start": 0, "End": 127}}}
		}, "key groups 0-127, want 0-42"},
		"edge backwards": {func(m map[string]any) { m["edges"].([]any)[0].(map[string]any)["from"] = 1 }, "edge 0 joins vertices 1 -> 1"},
		"bad digest": {func(m map[string]any) {
			n := m["vertices"].([]any)[1].(map[string]any)["nodes"].([]any)[0].(map[string]any)
			n["module"].(map[string]any)["digest"] = "../etc"
		}, `module digest "../etc" is not a hex sha256`},
	} {
		t.Run(name, func(t *testing.T) {
			b, _ := sample().Encode()
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			c.edit(m)
			b, _ = json.Marshal(m)
			_, err := Decode(b)
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an ErrInvalid containing %q", err, c.want)
			}
		})
	}
}

func TestPlace(t *testing.T) {
	d := sample()
	d.Subtasks = nil
	for _, v := range d.Vertices {
		for i := range v.Parallelism {
			d.Subtasks = append(d.Subtasks, Subtask{Vertex: v.ID, Index: i, KeyGroups: keygroup.RangeFor(i, v.Parallelism, d.MaxParallelism)})
		}
	}
	parts := d.Place(func(v, i int) string { return []string{"a", "b"}[i%2] })
	if len(parts["a"].Subtasks) != 3 || len(parts["b"].Subtasks) != 2 {
		t.Fatalf("a runs %d, b runs %d subtasks; want 3 and 2", len(parts["a"].Subtasks), len(parts["b"].Subtasks))
	}
	for addr, p := range parts {
		if len(p.Peers) != 5 {
			t.Fatalf("%s knows %d peers, want 5", addr, len(p.Peers))
		}
		if err := p.Validate(); err != nil {
			t.Fatal(err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	b, _ := sample().Encode()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Decode(b)
		if err == nil {
			if err := d.Validate(); err != nil {
				t.Fatalf("decoded but invalid: %v", err)
			}
		}
	})
}
