package ckptmeta

import (
	"strings"
	"testing"

	"github.com/weirstream/weir/internal/deploy"
)

func payload() *Payload {
	return &Payload{Version: Version, Job: "j", Checkpoint: 3, MaxParallelism: 4, Operators: []Operator{
		{UID: "src", Kind: KindSource, Parallelism: 2, Subtasks: []Subtask{
			{Index: 0, KeyGroups: [2]int{0, 2}, Files: []File{{Role: RoleSplits, Name: "src.0.splits", Size: 10}}},
			{Index: 1, KeyGroups: [2]int{2, 4}, Files: []File{{Role: RoleSplits, Name: "src.1.splits", Size: 10}}}}},
		{UID: "count", Kind: KindOperator, Parallelism: 1, States: []State{{"count", "value"}},
			Subtasks: []Subtask{{Index: 0, KeyGroups: [2]int{0, 4}, Files: []File{{Role: RoleState, Name: "count.0.state", Size: 99}}}}},
	}}
}

func TestDecodeRoundTripAndRefusals(t *testing.T) {
	b, err := Encode(payload())
	if err != nil {
		t.Fatal(err)
	}
	p, err := Decode(b)
	if err != nil || p.Operator("count").Size() != 99 || p.Operator("src").Files(RoleSplits)[1].Name != "src.1.splits" {
		t.Fatalf("round trip: %+v, %v", p, err)
	}
	for _, c := range []struct{ name, json, want string }{
		{"not json", `{`, "invalid payload"},
		{"newer version", `{"version": 99, "max_parallelism": 4}`, "newer than this build"},
		{"no version", `{"max_parallelism": 4}`, "version 0"},
		{"max parallelism", `{"version": 1, "max_parallelism": 0}`, "max parallelism 0"},
		{"subtasks", `{"version": 1, "max_parallelism": 4, "operators": [{"uid": "a", "parallelism": 2, "subtasks": [{"index": 0, "key_groups": [0, 2]}]}]}`, "parallelism 2 with 1 subtasks"},
		{"key groups", `{"version": 1, "max_parallelism": 4, "operators": [{"uid": "a", "parallelism": 1, "subtasks": [{"index": 0, "key_groups": [0, 9]}]}]}`, "key groups [0 9]"},
		{"repeated uid", `{"version": 1, "max_parallelism": 4, "operators": [{"uid": "a", "parallelism": 1, "subtasks": [{"index": 0, "key_groups": [0, 4]}]}, {"uid": "a", "parallelism": 1, "subtasks": [{"index": 0, "key_groups": [0, 4]}]}]}`, "empty or repeated"},
	} {
		if _, err := Decode([]byte(c.json)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}
}

func TestCheckRestore(t *testing.T) {
	p := payload()
	shape := Shape{MaxParallelism: 4, Operators: map[string]ShapeOperator{"src": {Kind: KindSource, Parallelism: 3}, "count": {Kind: KindOperator, Parallelism: 2}}}
	if err := p.CheckRestore(shape, false); err != nil {
		t.Fatalf("a rescale of the same operators: %v", err)
	}
	delete(shape.Operators, "count")
	if err := p.CheckRestore(shape, false); err == nil || !strings.Contains(err.Error(), "uid count") {
		t.Fatalf("a job without count: %v", err)
	}
	if err := p.CheckRestore(shape, true); err != nil {
		t.Fatalf("allowed to drop count: %v", err)
	}
	shape.MaxParallelism = 8
	if err := p.CheckRestore(shape, true); err == nil || !strings.Contains(err.Error(), "max parallelism 4 and the job has 8") {
		t.Fatalf("another max parallelism: %v", err)
	}
	p.Operators[1].Subtasks[0].Files = append(p.Operators[1].Subtasks[0].Files, File{Role: RoleInFlight, Name: "x", Size: 5})
	// In-flight data of a keyed (or rebalanced) input are redistributed;
	// those of a broadcast input restore only at their parallelism.
	// In-flight data of a keyed (or rebalanced) input are redistributed;
	// those of a broadcast input restore only at their parallelism, and
	// none restore into an operator that no longer heads its task or
	// whose inputs changed.
	head := func(par int, inputs ...string) ShapeOperator {
		return ShapeOperator{Kind: KindOperator, Parallelism: par, Head: true, Inputs: inputs}
	}
	p.Operators[1].Inputs = []string{"key_by"}
	shape = Shape{MaxParallelism: 4, Operators: map[string]ShapeOperator{"src": {Kind: KindSource, Parallelism: 2, Head: true}, "count": head(2, "key_by")}}
	if err := p.CheckRestore(shape, false); err != nil {
		t.Fatalf("in-flight data of a keyed input at another parallelism: %v", err)
	}
	for name, c := range map[string]struct {
		inputs []string // in the checkpoint
		now    ShapeOperator
		want   string
	}{
		"broadcast":     {[]string{"broadcast"}, head(2, "broadcast"), "broadcast edge"},
		"not a head":    {[]string{"key_by"}, ShapeOperator{Kind: KindOperator, Parallelism: 1}, "no longer heads its task"},
		"other inputs":  {[]string{"key_by", "broadcast"}, head(1, "key_by", "key_by"), "came on inputs [key_by broadcast], and its inputs are now [key_by key_by]"},
		"fewer inputs":  {[]string{"key_by", "key_by"}, head(1, "key_by"), "its inputs are now [key_by]"},
		"not recorded":  {nil, head(2, "rebalance"), ""},
		"same, rescale": {[]string{"rebalance"}, head(3, "rebalance"), ""},
	} {
		p.Operators[1].Inputs = c.inputs
		shape.Operators["count"] = c.now
		err := p.CheckRestore(shape, false)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
	for part, want := range map[string][2]bool{"key_by": {true, true}, "forward": {false, true}, "rebalance": {false, true}, "broadcast": {false, false}, "": {false, false}} {
		if byKey, ok := InFlightByKey(part); byKey != want[0] || ok != want[1] {
			t.Errorf("InFlightByKey(%q) = %v, %v; want %v", part, byKey, ok, want)
		}
	}
	p.Operators[0].Subtasks[1].Finished = true
	if err := p.Restorable(); err == nil || !strings.Contains(err.Error(), "subtask 1 of src") {
		t.Fatalf("a checkpoint with a finished subtask: %v", err)
	}
}

// ShapeOf names the heads of tasks and their inputs' partitions, which a
// checkpoint records the same way (HeadInputs).
func TestShapeOfHeads(t *testing.T) {
	d := &deploy.Descriptor{MaxParallelism: 4,
		Vertices: []deploy.Vertex{
			{ID: 0, Parallelism: 1, Nodes: []deploy.Node{{UID: "rules", Kind: KindSource}}},
			{ID: 1, Parallelism: 1, Nodes: []deploy.Node{{UID: "events", Kind: KindSource}}},
			{ID: 2, Parallelism: 2, Inputs: []int{0, 1}, Nodes: []deploy.Node{{UID: "match", Kind: KindOperator}, {UID: "out", Kind: KindSink}}},
			{ID: 3, Parallelism: 3, Inputs: []int{2}, Nodes: []deploy.Node{{UID: "count", Kind: KindOperator}}},
		},
		Edges: []deploy.Edge{{ID: 0, From: 0, To: 2, Input: 0, Partition: "key_by"}, {ID: 1, From: 1, To: 2, Input: 1, Partition: "broadcast"},
			{ID: 2, From: 2, To: 3, Input: 0, Partition: "rebalance"}},
	}
	s := ShapeOf(d)
	if m := s.Operators["match"]; !m.Head || strings.Join(m.Inputs, ",") != "key_by,broadcast" || !strings.Contains(fixedInFlight(m.Inputs), "input 1 is a broadcast edge") {
		t.Errorf("match: %+v, want a head on key_by and broadcast, its broadcast input named", m)
	}
	if o := s.Operators["out"]; o.Head || o.Inputs != nil {
		t.Errorf("out: %+v, want no head", o)
	}
	if c := s.Operators["count"]; !c.Head || strings.Join(c.Inputs, ",") != "rebalance" || fixedInFlight(c.Inputs) != "" {
		t.Errorf("count: %+v, want a head on rebalance", c)
	}
}

func TestStateDiff(t *testing.T) {
	old := []State{{"a", "value"}, {"b", "list"}}
	if d := StateDiff(old, []State{{"a", "value"}, {"b", "list"}}); len(d) != 0 {
		t.Fatalf("equal states differ: %v", d)
	}
	d := StateDiff(old, []State{{"a", "map"}, {"c", "value"}})
	want := []string{`state "a" was value, is now map`, `state "b" (list) is not declared by the new module`, `state "c" (value) is new`}
	if strings.Join(d, "|") != strings.Join(want, "|") {
		t.Fatalf("diff %q, want %q", d, want)
	}
}

func FuzzDecode(f *testing.F) {
	b, _ := Encode(payload())
	f.Add([]byte(b))
	f.Add([]byte(`{"version":1,"max_parallelism":1,"operators":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("Decode accepted what Validate refuses: %v", err)
		}
		for _, o := range p.Operators {
			o.Files(RoleState) // must not panic on what Decode accepted
			o.Size()
		}
	})
}
