package ckptmeta

import (
	"strings"
	"testing"
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
	shape := Shape{MaxParallelism: 4, Operators: map[string]ShapeOperator{"src": {KindSource, 3}, "count": {KindOperator, 2}}}
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
	shape = Shape{MaxParallelism: 4, Operators: map[string]ShapeOperator{"src": {KindSource, 2}, "count": {KindOperator, 2}}}
	if err := p.CheckRestore(shape, false); err == nil || !strings.Contains(err.Error(), "in-flight") {
		t.Fatalf("in-flight data at another parallelism: %v", err)
	}
	p.Operators[0].Subtasks[1].Finished = true
	if err := p.Restorable(); err == nil || !strings.Contains(err.Error(), "subtask 1 of src") {
		t.Fatalf("a checkpoint with a finished subtask: %v", err)
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
