package plan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/weirstream/weir/coordinator/jobspec"
	"github.com/weirstream/weir/internal/connspec"
	"github.com/weirstream/weir/wasmabi"
)

func init() {
	connspec.Register(&connspec.Spec{
		Name: "test-src", Kind: connspec.KindSource, Help: "test source",
		Options: []connspec.Option{{Name: "key", Type: connspec.TypeString, Help: "key field"}},
		Keyed:   func(o connspec.Options) bool { return o.String("key") != "" },
	})
	connspec.Register(&connspec.Spec{
		Name: "test-sink", Kind: connspec.KindSink, Help: "test sink",
	})
}

// modules are the descriptors the test jobs use, as a Resolver.
var modules = Descriptors{
	"m": {Operators: []wasmabi.OperatorDesc{
		{Name: "up", Kind: wasmabi.KindMap},
		{Name: "split", Kind: wasmabi.KindFlatMap},
		{Name: "keep", Kind: wasmabi.KindFilter},
		{Name: "count", Kind: wasmabi.KindProcess, SideOutputs: []string{"late", "audit"}},
		{Name: "sum", Kind: wasmabi.KindAggregate},
		{Name: "sumx", Kind: wasmabi.KindAggregate, SideOutputs: []string{"late"}},
		{Name: "join", Kind: wasmabi.KindCoProcess},
		{Name: "weird", Kind: wasmabi.KindMap, SideOutputs: []string{"errors"}},
		{Name: "tag", Kind: wasmabi.KindFlatMap, SideOutputs: []string{"audit"}},
	}},
}

// parseJob parses src as a job spec in a folder holding m.wasm.
func parseJob(t testing.TB, src string) *jobspec.Job {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "m.wasm"), []byte("\x00asm"), 0o644); err != nil {
		t.Fatal(err)
	}
	j, err := jobspec.Parse([]byte(src), filepath.Join(dir, "job.yaml"))
	if err != nil {
		t.Fatalf("parsing the test job: %v", err)
	}
	return j
}

func build(t testing.TB, src string) *Plan {
	t.Helper()
	p, err := Build(parseJob(t, src), modules)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	checkInvariants(t, p)
	return p
}

// checkInvariants checks what every plan must satisfy, computed from the
// spec rather than from the plan's own bookkeeping.
func checkInvariants(t testing.TB, p *Plan) {
	t.Helper()
	seen := map[string]bool{}
	slots := map[string]int{}
	for vi, v := range p.Vertices {
		if v.ID != vi || len(v.Nodes) == 0 || len(v.Subtasks) != v.Parallelism {
			t.Fatalf("vertex %d malformed: %+v", vi, v)
		}
		slots[v.SlotSharingGroup] = max(slots[v.SlotSharingGroup], v.Parallelism)
		for i, n := range v.Nodes {
			seen[n.UID] = true
			if n.Vertex != v.ID || n.Index != i || (i == 0) != (n.Parent == -1) || n.Parent >= i {
				t.Fatalf("node %s: vertex %d index %d parent %d", n.UID, n.Vertex, n.Index, n.Parent)
			}
			if n.Spec.Parallelism != v.Parallelism || n.Spec.SlotSharingGroup != v.SlotSharingGroup {
				t.Fatalf("node %s in vertex %d with another parallelism or group", n.UID, v.ID)
			}
			if len(n.Outputs) != len(n.Ports) {
				t.Fatalf("node %s: %d outputs for %d ports", n.UID, len(n.Outputs), len(n.Ports))
			}
			// Every input of the spec node arrives exactly once: chained
			// from its parent, or by an edge into the head.
			for in, sin := range n.Spec.Inputs {
				if i > 0 {
					if in != 0 || len(n.Spec.Inputs) != 1 || v.Nodes[n.Parent].UID != sin.Node {
						t.Fatalf("chained node %s does not hang under its input %s", n.UID, sin.Node)
					}
					continue
				}
				e := v.Inputs[in]
				from := p.Vertices[e.From].Nodes[e.FromNode]
				if e.To != v.ID || e.Input != in || from.UID != sin.Node || from.Ports[e.Port] != sin.Output || e.Partition != sin.Partition {
					t.Fatalf("edge into %s input %d: %+v does not match the spec %+v", n.UID, in, e, sin)
				}
				if e.From >= e.To {
					t.Fatalf("edge %d goes backwards: %d -> %d", e.ID, e.From, e.To)
				}
			}
		}
	}
	for _, sn := range p.Job.Nodes() {
		if !seen[sn.UID] {
			t.Fatalf("node %s is in no vertex", sn.UID)
		}
	}
	for i, e := range p.Edges {
		if e.ID != i {
			t.Fatalf("edge %d has ID %d", i, e.ID)
		}
	}
	total := 0
	for _, s := range slots {
		total += s
	}
	if p.Slots != total {
		t.Fatalf("Slots = %d, want %d", p.Slots, total)
	}
}

func names(p *Plan) []string {
	var out []string
	for _, v := range p.Vertices {
		out = append(out, v.Name)
	}
	return out
}

const head = "name: t\nmodules: {m: m.wasm}\n"

func TestWordcountPlan(t *testing.T) {
	p := build(t, head+`parallelism: 2
sources:
  - {uid: lines, connector: test-src, parallelism: 1}
operators:
  - {uid: split, module: m, operator: split, input: lines, on_error: divert}
  - uid: count
    module: m
    operator: count
    inputs: [{from: split, partition: key_by}]
sinks:
  - {uid: out, connector: test-sink, input: count}
  - {uid: bad, connector: test-sink, input: split.errors, parallelism: 1}
`)
	type nodeWant struct {
		uid     string
		parent  int
		ports   []string
		outputs [][]string // per port: "n<index>" chained or "e<edge id>"
	}
	type vertexWant struct {
		name  string
		par   int
		keyed bool
		nodes []nodeWant
	}
	want := []vertexWant{
		{"lines", 1, false, []nodeWant{{"lines", -1, []string{""}, [][]string{{"e0"}}}}},
		{"split", 2, false, []nodeWant{{"split", -1, []string{"", "errors"}, [][]string{{"e1"}, {"e2"}}}}},
		{"count -> out", 2, true, []nodeWant{
			{"count", -1, []string{"", "late", "audit"}, [][]string{{"n1"}, nil, nil}},
			{"out", 0, nil, [][]string{}},
		}},
		{"bad", 1, false, []nodeWant{{"bad", -1, nil, [][]string{}}}},
	}
	wantEdges := []Edge{
		{ID: 0, From: 0, FromNode: 0, Port: 0, To: 1, ToNode: 0, Input: 0, Partition: jobspec.Rebalance},
		{ID: 1, From: 1, FromNode: 0, Port: 0, To: 2, ToNode: 0, Input: 0, Partition: jobspec.KeyBy},
		{ID: 2, From: 1, FromNode: 0, Port: 1, To: 3, ToNode: 0, Input: 0, Partition: jobspec.Rebalance},
	}
	var got []vertexWant
	for _, v := range p.Vertices {
		vw := vertexWant{v.Name, v.Parallelism, v.Keyed, nil}
		for _, n := range v.Nodes {
			nw := nodeWant{n.UID, n.Parent, n.Ports, [][]string{}}
			for _, ts := range n.Outputs {
				var s []string
				for _, t := range ts {
					if t.Edge != nil {
						s = append(s, fmt.Sprintf("e%d", t.Edge.ID))
					} else {
						s = append(s, fmt.Sprintf("n%d", t.Node))
					}
				}
				nw.outputs = append(nw.outputs, s)
			}
			vw.nodes = append(vw.nodes, nw)
		}
		got = append(got, vw)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("vertices:\n got %+v\nwant %+v", got, want)
	}
	var gotEdges []Edge
	for _, e := range p.Edges {
		gotEdges = append(gotEdges, *e)
	}
	if !reflect.DeepEqual(gotEdges, wantEdges) {
		t.Errorf("edges:\n got %+v\nwant %+v", gotEdges, wantEdges)
	}
	if p.Slots != 2 || len(p.SlotSharingGroups) != 1 || !reflect.DeepEqual(p.SlotSharingGroups[0].Vertices, []int{0, 1, 2, 3}) {
		t.Errorf("slots %d groups %+v", p.Slots, p.SlotSharingGroups)
	}
	count := p.Vertices[2]
	if count.Inputs[0] != p.Edges[1] || count.Nodes[0].Desc.Name != "count" {
		t.Errorf("count vertex inputs %+v", count.Inputs)
	}
	if r := count.Subtasks[1].KeyGroups; r == nil || r.Start != 64 || r.End != 127 {
		t.Errorf("count subtask 1 key groups %v, want 64-127", r)
	}
	if p.Vertices[1].Subtasks[0].KeyGroups != nil {
		t.Errorf("unkeyed vertex has key groups")
	}
	c := count.Nodes[0]
	if c.ErrorsPort() != -1 || c.LatePort() != -1 || c.Port("audit") != 2 || c.Port("nope") != -1 {
		t.Errorf("ports: errors %d late %d audit %d", c.ErrorsPort(), c.LatePort(), c.Port("audit"))
	}
	if sp := p.Vertices[1].Nodes[0]; sp.ErrorsPort() != 1 {
		t.Errorf("split's errors port %d, want 1", sp.ErrorsPort())
	}
}

func TestChaining(t *testing.T) {
	line := `sources: [{uid: src, connector: test-src, options: {key: k}}]
operators:
  - {uid: a, module: m, operator: up, input: src%s}
  - {uid: b, module: m, operator: up, input: a%s}
sinks: [{uid: out, connector: test-sink, input: b}]
`
	cases := []struct {
		name, src string
		want      []string
	}{
		{"all chained", head + fmt.Sprintf(line, "", ""), []string{"src -> a -> b -> out"}},
		{"chaining off", head + "chaining: false\n" + fmt.Sprintf(line, "", ""), []string{"src", "a", "b", "out"}},
		{"node chain false", head + fmt.Sprintf(line, ", chain: false", ""), []string{"src", "a", "b -> out"}},
		{"parallelism change", head + fmt.Sprintf(line, "", ", parallelism: 2"), []string{"src -> a", "b", "out"}},
		{"slot sharing group", head + fmt.Sprintf(line, "", ", slot_sharing_group: g2"), []string{"src -> a", "b", "out"}},
		{"rebalance", head + strings.Replace(fmt.Sprintf(line, "", ""), "input: a}", "inputs: [{from: a, partition: rebalance}]}", 1), []string{"src -> a", "b -> out"}},
		{"broadcast", head + strings.Replace(fmt.Sprintf(line, "", ""), "input: a}", "inputs: [{from: a, partition: broadcast}]}", 1), []string{"src -> a", "b -> out"}},
		{"key_by", head + `sources: [{uid: src, connector: test-src}]
operators:
  - {uid: a, module: m, operator: up, input: src}
  - {uid: c, module: m, operator: count, inputs: [{from: a, partition: key_by}]}
sinks: [{uid: out, connector: test-sink, input: c}]
`, []string{"src -> a", "c -> out"}},
		{"tree", head + `sources: [{uid: src, connector: test-src}]
operators:
  - {uid: a, module: m, operator: up, input: src}
  - {uid: b, module: m, operator: up, input: a}
  - {uid: c, module: m, operator: keep, input: a}
sinks:
  - {uid: o1, connector: test-sink, input: b}
  - {uid: o2, connector: test-sink, input: c}
  - {uid: o3, connector: test-sink, input: src}
`, []string{"src -> (a -> (b -> o1, c -> o2), o3)"}},
		{"side output chains", head + `sources: [{uid: src, connector: test-src, options: {key: k}}]
operators:
  - {uid: c, module: m, operator: count, inputs: [{from: src, partition: key_by}]}
sinks:
  - {uid: late, connector: test-sink, input: c.late}
  - {uid: main, connector: test-sink, input: c}
`, []string{"src", "c -> (main, late)"}},
		{"two inputs never chain", head + `sources:
  - {uid: s1, connector: test-src, options: {key: k}}
  - {uid: s2, connector: test-src, options: {key: k}}
operators:
  - {uid: j, module: m, operator: join, inputs: [{from: s1, partition: key_by}, {from: s2, partition: key_by}]}
sinks: [{uid: out, connector: test-sink, input: j}]
`, []string{"s1", "s2", "j -> out"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := build(t, c.src)
			if got := names(p); !reflect.DeepEqual(got, c.want) {
				t.Errorf("tasks = %q, want %q", got, c.want)
			}
		})
	}
}

func TestTreeStructure(t *testing.T) {
	p := build(t, head+`sources: [{uid: src, connector: test-src}]
operators:
  - {uid: a, module: m, operator: up, input: src}
  - {uid: b, module: m, operator: up, input: a}
  - {uid: c, module: m, operator: up, input: a}
sinks:
  - {uid: o1, connector: test-sink, input: b}
  - {uid: o2, connector: test-sink, input: c}
`)
	if len(p.Vertices) != 1 || len(p.Edges) != 0 || p.Slots != 1 {
		t.Fatalf("want one task and no edges, got %q, %d edges", names(p), len(p.Edges))
	}
	v := p.Vertices[0]
	parent := map[string]string{}
	for _, n := range v.Nodes {
		if n.Parent >= 0 {
			parent[n.UID] = v.Nodes[n.Parent].UID
		}
	}
	if want := map[string]string{"a": "src", "b": "a", "c": "a", "o1": "b", "o2": "c"}; !reflect.DeepEqual(parent, want) {
		t.Errorf("parents %v, want %v", parent, want)
	}
	a := v.Nodes[1]
	if a.UID != "a" || len(a.Outputs[0]) != 2 {
		t.Fatalf("a chains %+v", a.Outputs)
	}
	for _, tg := range a.Outputs[0] {
		if tg.Edge != nil || v.Nodes[tg.Node].Parent != a.Index || tg.Input != 0 {
			t.Errorf("a's target %+v is not a chained child", tg)
		}
	}
}

func TestTopologicalOrder(t *testing.T) {
	// Operators listed downstream first; a diamond with rebalances so
	// nothing chains.
	p := build(t, head+`parallelism: 2
sources: [{uid: src, connector: test-src, parallelism: 1}]
operators:
  - {uid: d, module: m, operator: up, parallelism: 3, inputs: [{from: c, partition: rebalance}]}
  - {uid: c, module: m, operator: join, parallelism: 2, inputs: [{from: a, partition: key_by}, {from: b, partition: key_by}]}
  - {uid: b, module: m, operator: up, input: src}
  - {uid: a, module: m, operator: up, input: src}
sinks: [{uid: out, connector: test-sink, input: d, parallelism: 3}]
`)
	// checkInvariants checked that every edge goes forward; the order
	// among free nodes follows the spec.
	if got, want := names(p), []string{"src", "b", "a", "c", "d -> out"}; !reflect.DeepEqual(got, want) {
		t.Errorf("tasks %q, want %q", got, want)
	}
	c := p.Vertices[3]
	if !c.Keyed || len(c.Inputs) != 2 || p.Vertices[c.Inputs[0].From].Name != "a" || p.Vertices[c.Inputs[1].From].Name != "b" {
		t.Errorf("join inputs %+v", c.Inputs)
	}
}

func TestPorts(t *testing.T) {
	p := build(t, head+`sources: [{uid: src, connector: test-src, options: {key: k}}]
operators:
  - {uid: t, module: m, operator: tag, on_error: divert, input: src, chain: false}
  - uid: agg
    module: m
    operator: sumx
    window: {type: tumbling, size: 1s, late_output: tooLate}
    inputs: [{from: t, partition: key_by}]
sinks:
  - {uid: main, connector: test-sink, input: agg, parallelism: 1, chain: false}
  - {uid: l1, connector: test-sink, input: agg.late, chain: false}
  - {uid: e, connector: test-sink, input: t.errors, chain: false}
  - {uid: a, connector: test-sink, input: t.audit, chain: false}
  - {uid: l2, connector: test-sink, input: agg.tooLate, chain: false}
`)
	node := func(uid string) *Node {
		for _, v := range p.Vertices {
			for _, n := range v.Nodes {
				if n.UID == uid {
					return n
				}
			}
		}
		t.Fatalf("no node %s", uid)
		return nil
	}
	// The module's own side outputs come first, then "errors", then the
	// window's late output.
	tag, agg := node("t"), node("agg")
	if want := []string{"", "audit", "errors"}; !reflect.DeepEqual(tag.Ports, want) {
		t.Fatalf("ports of t %q, want %q", tag.Ports, want)
	}
	if want := []string{"", "late", "tooLate"}; !reflect.DeepEqual(agg.Ports, want) {
		t.Fatalf("ports of agg %q, want %q", agg.Ports, want)
	}
	if tag.ErrorsPort() != 2 || tag.LatePort() != -1 || agg.ErrorsPort() != -1 || agg.LatePort() != 2 {
		t.Errorf("errors ports %d %d, late ports %d %d", tag.ErrorsPort(), agg.ErrorsPort(), tag.LatePort(), agg.LatePort())
	}
	byTarget := map[string]int{}
	for _, e := range p.Edges {
		byTarget[p.Vertices[e.To].Name] = e.Port
	}
	if want := map[string]int{"t": 0, "agg": 0, "main": 0, "l1": 1, "e": 2, "a": 1, "l2": 2}; !reflect.DeepEqual(byTarget, want) {
		t.Errorf("edge ports %v, want %v", byTarget, want)
	}
}

func TestSlots(t *testing.T) {
	p := build(t, head+`sources: [{uid: src, connector: test-src, parallelism: 3}]
operators:
  - {uid: a, module: m, operator: up, input: src, parallelism: 5, slot_sharing_group: heavy}
  - {uid: b, module: m, operator: up, input: a, parallelism: 2, slot_sharing_group: heavy}
sinks: [{uid: out, connector: test-sink, input: b, parallelism: 4}]
`)
	if p.Slots != 4+5 {
		t.Errorf("slots %d, want 9 (default 4 + heavy 5)", p.Slots)
	}
	if len(p.SlotSharingGroups) != 2 || p.SlotSharingGroups[0].Name != "default" || p.SlotSharingGroups[0].Slots != 4 ||
		p.SlotSharingGroups[1].Name != "heavy" || p.SlotSharingGroups[1].Slots != 5 {
		t.Errorf("groups %+v", p.SlotSharingGroups)
	}
}

func TestKeyGroups(t *testing.T) {
	for _, maxP := range []int{1, 7, 128, 1000} {
		for _, par := range []int{1, 2, 3, 7, 64, 128} {
			if par > maxP {
				continue
			}
			p := build(t, fmt.Sprintf(head+`max_parallelism: %d
sources: [{uid: src, connector: test-src, options: {key: k}}]
operators:
  - {uid: c, module: m, operator: count, parallelism: %d, inputs: [{from: src, partition: key_by}]}
sinks: [{uid: out, connector: test-sink, input: c, parallelism: %[2]d}]
`, maxP, par))
			v := p.Vertices[1]
			if !v.Keyed || len(v.Subtasks) != par {
				t.Fatalf("max %d par %d: vertex %+v", maxP, par, v)
			}
			owner := make([]int, maxP)
			for i := range owner {
				owner[i] = -1
			}
			next := 0
			for _, s := range v.Subtasks {
				r := s.KeyGroups
				if r == nil || r.Start != next || r.End < r.Start {
					t.Fatalf("max %d par %d: subtask %d range %v, want it to start at %d", maxP, par, s.Index, r, next)
				}
				for kg := r.Start; kg <= r.End; kg++ {
					if owner[kg] != -1 {
						t.Fatalf("key group %d owned twice", kg)
					}
					owner[kg] = s.Index
				}
				next = r.End + 1
			}
			for kg, o := range owner {
				if o == -1 {
					t.Fatalf("max %d par %d: key group %d owned by nobody", maxP, par, kg)
				}
			}
			if p.Vertices[0].Keyed || p.Vertices[0].Subtasks[0].KeyGroups != nil {
				t.Fatalf("the source vertex is not keyed")
			}
		}
	}
}

// TestBuildErrors checks each error of Build at the line its "# want:"
// comment marks.
func TestBuildErrors(t *testing.T) {
	cases := map[string]string{
		"unknown operator": head + `sources: [{uid: src, connector: test-src}]
operators:
  - uid: a
    module: m
    operator: splt # want: operators[0].operator: module "m" has no operator "splt" (it has: up, split, keep, count, sum, sumx, join, weird, tag)
    input: src
sinks: [{uid: out, connector: test-sink, input: a}]
`,
		"unknown side output": head + `sources: [{uid: src, connector: test-src, options: {key: k}}]
operators:
  - {uid: c, module: m, operator: count, inputs: [{from: src, partition: key_by}]}
  - {uid: u, module: m, operator: up, input: u0}
  - {uid: u0, module: m, operator: up, input: src}
sinks:
  - {uid: o1, connector: test-sink, input: c.lat} # want: sinks[0].input: c has no side output "lat" (it has: late, audit)
  - {uid: o2, connector: test-sink, input: c.errors} # want: sinks[1].input: c has no side output "errors"
  - uid: o3
    connector: test-sink
    inputs:
      - from: u.x # want: sinks[2].inputs[0].from: u has no side output "x" (it has none)
`,
		"window on non-aggregate": head + `sources: [{uid: src, connector: test-src}]
operators:
  - uid: a
    module: m
    operator: up
    input: src
    window: {type: tumbling, size: 1s} # want: operators[0].window: only aggregate operators have windows, and m.up is a map
sinks: [{uid: out, connector: test-sink, input: a}]
`,
		"input counts": head + `sources: [{uid: src, connector: test-src, options: {key: k}}]
operators:
  - uid: j
    module: m
    operator: join
    inputs: [{from: src, partition: key_by}] # want: operators[0].inputs: a co_process operator has exactly 2 input(s), got 1
  - uid: a
    module: m
    operator: up
    inputs: [src, j] # want: operators[1].inputs: a map operator has exactly 1 input(s), got 2
sinks: [{uid: out, connector: test-sink, input: a}]
`,
		"keyed kinds need key_by": head + `sources: [{uid: src, connector: test-src, options: {key: k}}]
operators:
  - uid: c
    module: m
    operator: count
    inputs:
      - from: src
        partition: rebalance # want: operators[0].inputs[0].partition: c is a process operator, which keeps state per key: its inputs need partition: key_by (got rebalance;
  - uid: s
    module: m
    operator: sum
    input: src # want: operators[1].input: s is a aggregate operator && (got forward;
  - uid: j
    module: m
    operator: join
    inputs:
      - {from: src, partition: broadcast} # want: operators[2].inputs[0].partition: j is a co_process operator
      - {from: src, partition: broadcast} # want: operators[2].inputs[1].partition: j is a co_process operator
  - uid: j2 # a keyed input and a broadcast one: fine
    module: m
    operator: join
    inputs:
      - {from: src, partition: key_by}
      - {from: src, partition: broadcast}
sinks: [{uid: out, connector: test-sink, input: c}, {uid: out2, connector: test-sink, input: j2}]
`,
		"key_by from keyless filter": head + `sources: [{uid: src, connector: test-src}]
operators:
  - {uid: f, module: m, operator: keep, input: src}
  - {uid: f2, module: m, operator: keep, input: f}
  - uid: c
    module: m
    operator: count
    inputs:
      - from: f2
        partition: key_by # want: operators[2].inputs[0].partition: key_by on f2, a filter whose input comes from source src, which emits no keys
sinks: [{uid: out, connector: test-sink, input: c}]
`,
		"skip on a keyed operator": head + `sources: [{uid: src, connector: test-src, options: {key: k}}]
operators:
  - uid: c
    module: m
    operator: count
    inputs: [{from: src, partition: key_by}]
    on_error: skip # want: operators[0].on_error: on_error: skip needs a map, filter or flat_map operator, and m.count is a process
sinks: [{uid: out, connector: test-sink, input: c}]
`,
		"port name clashes": head + `sources: [{uid: src, connector: test-src, options: {key: k}}]
operators:
  - uid: w
    module: m
    operator: weird
    input: src
    on_error: divert # want: operators[0].on_error: operator m.weird has its own side output "errors"
  - uid: s
    module: m
    operator: sumx
    inputs: [{from: src, partition: key_by}]
    window:
      type: global
      late_output: late # want: operators[1].window.late_output: side output "late" already exists on s
sinks: [{uid: out, connector: test-sink, input: src}]
`,
	}
	for name, src := range cases {
		t.Run(name, func(t *testing.T) {
			j := parseJob(t, src)
			p, err := Build(j, modules)
			if p != nil || err == nil {
				t.Fatalf("Build succeeded")
			}
			checkWants(t, src, j.File, err)
		})
	}
}

var wantRE = regexp.MustCompile(`#\s*want:\s*(.*)$`)

func checkWants(t *testing.T, src, file string, err error) {
	t.Helper()
	wants := map[int][]string{}
	for i, line := range strings.Split(src, "\n") {
		if m := wantRE.FindStringSubmatch(line); m != nil {
			for _, w := range strings.Split(m[1], " && ") {
				wants[i+1] = append(wants[i+1], strings.TrimSpace(w))
			}
		}
	}
	errs := jobspec.Errors(err)
	if len(errs) == 0 {
		t.Fatalf("error is not a *jobspec.Error: %v", err)
	}
	matched := map[string]bool{}
	for _, e := range errs {
		if e.File != file || !strings.HasPrefix(e.Error(), fmt.Sprintf("%s:%d:%d: ", file, e.Line, e.Col)) {
			t.Errorf("error without its position: %v", e)
		}
		found := false
		for _, w := range wants[e.Line] {
			if strings.Contains(e.Error(), w) {
				found, matched[w] = true, true
			}
		}
		if !found {
			t.Errorf("unexpected error at line %d: %v", e.Line, e)
		}
	}
	for line, ws := range wants {
		for _, w := range ws {
			if !matched[w] {
				t.Errorf("line %d: no error containing %q; got:\n%v", line, w, err)
			}
		}
	}
}

func TestKeyedUpstreams(t *testing.T) {
	// key_by after a filter of a keyed source, after a map of a keyless
	// one, and after a filter of such a map are all fine.
	build(t, head+`sources:
  - {uid: keyed, connector: test-src, options: {key: k}}
  - {uid: plain, connector: test-src}
operators:
  - {uid: f1, module: m, operator: keep, input: keyed}
  - {uid: c1, module: m, operator: count, inputs: [{from: f1, partition: key_by}]}
  - {uid: m2, module: m, operator: up, input: plain}
  - {uid: f2, module: m, operator: keep, input: m2}
  - {uid: c2, module: m, operator: count, inputs: [{from: f2, partition: key_by}]}
  - {uid: c3, module: m, operator: count, inputs: [{from: c2.late, partition: key_by}]}
sinks:
  - {uid: o1, connector: test-sink, input: c1}
  - {uid: o2, connector: test-sink, input: c3}
`)
}

func TestResolverErrors(t *testing.T) {
	j := parseJob(t, head+`sources: [{uid: src, connector: test-src}]
operators: [{uid: a, module: m, operator: up, input: src}]
sinks: [{uid: out, connector: test-sink, input: a}]
`)
	_, err := Build(j, Descriptors{})
	errs := jobspec.Errors(err)
	if len(errs) != 1 || errs[0].Field != "operators[0].operator" || errs[0].Line != 4 || !strings.Contains(errs[0].Msg, `no module "m"`) {
		t.Fatalf("got %v", err)
	}
}

// failingResolver fails as a resolver that cannot load a module does:
// with an error placed at the module's entry.
type failingResolver struct{ j *jobspec.Job }

func (f failingResolver) Operator(module, operator string) (*wasmabi.OperatorDesc, error) {
	return nil, fmt.Errorf("loading: %w", f.j.Errorf("modules."+module, "module %s does not build", module))
}

func TestResolverPlacedErrors(t *testing.T) {
	j := parseJob(t, head+`sources: [{uid: src, connector: test-src}]
operators:
  - {uid: a, module: m, operator: up, input: src}
  - {uid: b, module: m, operator: keep, input: a}
sinks: [{uid: out, connector: test-sink, input: b}]
`)
	_, err := Build(j, failingResolver{j})
	errs := jobspec.Errors(err)
	if len(errs) != 1 || errs[0].Field != "modules.m" || errs[0].Line != 2 || errs[0].Msg != "module m does not build" {
		t.Fatalf("want the module's error once, at line 2; got %v", err)
	}
}

var (
	dotNodeRE = regexp.MustCompile(`^("(?:[^"\\]|\\.)*") \[(.*)\];$`)
	dotEdgeRE = regexp.MustCompile(`^("(?:[^"\\]|\\.)*") -> ("(?:[^"\\]|\\.)*") \[(.*)\];$`)
	dotAttrRE = regexp.MustCompile(`^[a-z]+=("(?:[^"\\]|\\.)*"|[A-Za-z0-9]+)(, [a-z]+=("(?:[^"\\]|\\.)*"|[A-Za-z0-9]+))*$`)
	dotSetRE  = regexp.MustCompile(`^([a-z]+=("(?:[^"\\]|\\.)*"|[A-Za-z0-9]+);)$|^(node|edge) \[.*\];$`)
)

func TestDot(t *testing.T) {
	p := build(t, head+`parallelism: 2
sources: [{uid: src, connector: test-src, parallelism: 1}]
operators:
  - {uid: a, module: m, operator: split, input: src}
  - {uid: "b-1", module: m, operator: count, inputs: [{from: a, partition: key_by}]}
sinks:
  - {uid: out, connector: test-sink, input: b-1}
  - {uid: late, connector: test-sink, input: b-1.late}
`)
	var buf bytes.Buffer
	if err := p.Dot(&buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if !strings.HasPrefix(lines[0], `digraph "t" {`) || lines[len(lines)-1] != "}" {
		t.Fatalf("not a digraph:\n%s", buf.String())
	}
	depth, clusters := 0, 0
	declared := map[string]string{} // node -> cluster
	cluster := ""
	var edges [][2]string
	var labels []string
	for i, l := range lines {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasSuffix(l, "{"):
			depth++
			if strings.HasPrefix(l, "subgraph ") {
				clusters++
				cluster = l
			}
		case l == "}":
			depth--
			cluster = ""
			if depth < 0 {
				t.Fatalf("line %d: unbalanced }", i+1)
			}
		case dotEdgeRE.MatchString(l):
			m := dotEdgeRE.FindStringSubmatch(l)
			if !dotAttrRE.MatchString(m[3]) {
				t.Errorf("line %d: bad attributes %q", i+1, m[3])
			}
			edges = append(edges, [2]string{m[1], m[2]})
			labels = append(labels, m[3])
		case dotNodeRE.MatchString(l):
			m := dotNodeRE.FindStringSubmatch(l)
			if !dotAttrRE.MatchString(m[2]) {
				t.Errorf("line %d: bad attributes %q", i+1, m[2])
			}
			if cluster == "" {
				t.Errorf("line %d: node outside a cluster", i+1)
			}
			declared[m[1]] = cluster
		case dotSetRE.MatchString(l):
		default:
			t.Errorf("line %d: not a statement: %q", i+1, l)
		}
	}
	if depth != 0 {
		t.Fatalf("unbalanced braces: depth %d at the end", depth)
	}
	if clusters != len(p.Vertices) {
		t.Errorf("%d clusters for %d tasks", clusters, len(p.Vertices))
	}
	if len(declared) != len(p.Job.Nodes()) {
		t.Errorf("%d nodes declared, want %d", len(declared), len(p.Job.Nodes()))
	}
	// One edge per input of the spec, each between declared nodes.
	inputs := 0
	for _, n := range p.Job.Nodes() {
		inputs += len(n.Inputs)
	}
	if len(edges) != inputs {
		t.Errorf("%d edges, want %d", len(edges), inputs)
	}
	for i, e := range edges {
		if _, ok := declared[e[0]]; !ok {
			t.Errorf("edge from undeclared node %s", e[0])
		}
		if _, ok := declared[e[1]]; !ok {
			t.Errorf("edge to undeclared node %s", e[1])
		}
		if e == [2]string{`"a"`, `"b-1"`} && !strings.Contains(labels[i], `label="key_by"`) {
			t.Errorf("a -> b-1 label %s", labels[i])
		}
	}
	if declared[`"b-1"`] != declared[`"out"`] || declared[`"b-1"`] == declared[`"a"`] {
		t.Errorf("clusters do not follow the chains: %v", declared)
	}
}

func TestJSONAndText(t *testing.T) {
	p := build(t, head+`parallelism: 2
sources: [{uid: src, connector: test-src, parallelism: 1}]
operators:
  - {uid: a, module: m, operator: split, input: src}
  - {uid: c, module: m, operator: count, inputs: [{from: a, partition: key_by}]}
sinks: [{uid: out, connector: test-sink, input: c}]
`)
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Name     string
		Slots    int
		Vertices []struct {
			ID       int
			Keyed    bool
			Subtasks []struct {
				Index     int
				KeyGroups *struct{ Start, End int } `json:"key_groups"`
			}
			Nodes []struct {
				UID       string
				Kind      string
				Module    string
				Operator  string
				Connector string
				Outputs   [][]map[string]int
			}
		}
		Edges []struct{ ID, From, To, Port int }
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if got.Name != "t" || len(got.Vertices) != 3 || len(got.Edges) != 2 || got.Slots != 2 {
		t.Fatalf("json: %s", b)
	}
	c := got.Vertices[2]
	if !c.Keyed || c.Subtasks[1].KeyGroups == nil || c.Subtasks[1].KeyGroups.Start != 64 || c.Nodes[0].Module != "m" || c.Nodes[0].Operator != "count" {
		t.Errorf("json vertex: %+v", c)
	}
	if got.Vertices[0].Nodes[0].Connector != "test-src" {
		t.Errorf("json source: %+v", got.Vertices[0].Nodes[0])
	}
	if e := got.Vertices[1].Nodes[0].Outputs[0][0]; len(e) != 1 || e["edge"] != 1 {
		t.Errorf("json target of a: %v", e)
	}
	if n := got.Vertices[2].Nodes[0].Outputs[0][0]; n["node"] != 1 || n["input"] != 0 {
		t.Errorf("json chained target of c: %v", n)
	}
	var text bytes.Buffer
	if err := p.Text(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"job t: 3 tasks, 2 edges, 2 slots", "task 2: c -> out", "subtasks: 0[0-63] 1[64-127]", "1: task 1 a.main -> task 2 c input 0, key_by"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
}

func BenchmarkBuild(b *testing.B) {
	// A job of 200 operators in a line, alternating chained and keyed.
	var s strings.Builder
	s.WriteString(head + "sources: [{uid: o0, connector: test-src, options: {key: k}}]\noperators:\n")
	for i := 1; i <= 200; i++ {
		if i%2 == 0 {
			fmt.Fprintf(&s, "  - {uid: o%d, module: m, operator: count, inputs: [{from: o%d, partition: key_by}]}\n", i, i-1)
		} else {
			fmt.Fprintf(&s, "  - {uid: o%d, module: m, operator: up, input: o%d}\n", i, i-1)
		}
	}
	s.WriteString("sinks: [{uid: out, connector: test-sink, input: o200}]\n")
	j := parseJob(b, s.String())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(j, modules); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDocExample plans the full example of docs/jobspec.md and checks the
// text the page shows, so the page cannot drift from the code.
func TestDocExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/jobspec.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i := strings.Index(s, "## A full example")
	block := func(fence string) string {
		a := strings.Index(s[i:], fence) + i + len(fence)
		b := strings.Index(s[a:], "```\n") + a
		i = b + 4
		return s[a:b]
	}
	spec, shown := block("```yaml\n"), block("```\n")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "job.yaml"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	j, err := jobspec.Load(filepath.Join(dir, "job.yaml"))
	if err != nil {
		t.Fatalf("the doc's example does not parse: %v", err)
	}
	wc := Descriptors{"wc": {Operators: []wasmabi.OperatorDesc{
		{Name: "split", Kind: wasmabi.KindFlatMap},
		{Name: "count", Kind: wasmabi.KindProcess},
	}}}
	p, err := Build(j, wc)
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, p)
	var text bytes.Buffer
	if err := p.Text(&text); err != nil {
		t.Fatal(err)
	}
	if text.String() != shown {
		t.Errorf("docs/jobspec.md shows another plan than Text prints:\n%s", text.String())
	}
}
