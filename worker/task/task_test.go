package task_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	weir "github.com/weirstream/weir/sdk/go"
	"github.com/weirstream/weir/wasmabi"
	"github.com/weirstream/weir/worker/connector"
	"github.com/weirstream/weir/worker/native"
	"github.com/weirstream/weir/worker/state"
	"github.com/weirstream/weir/worker/task"
)

// Operators under test, linked natively (the WebAssembly path is covered
// end to end by cmd/weir's tests).
func init() {
	weir.FlatMap("t_split", func(r weir.Record, out weir.Emitter) error {
		for _, w := range strings.Fields(string(r.Value)) {
			out.Emit(weir.Record{Key: []byte(w), Value: []byte(w), Timestamp: r.Timestamp})
		}
		return nil
	})
	weir.Process("t_count", &counter{})
	weir.Aggregate("t_sum", sum{}, weir.Int64Codec)
	fail13 := func(r weir.Record) (weir.Record, error) {
		if string(r.Value) == "13" {
			return r, fmt.Errorf("unlucky")
		}
		return r, nil
	}
	weir.Map("t_fail13", fail13)
	// The same map with operator state, which skip would change twice.
	weir.Map("t_fail13_state", fail13, weir.OnOpen(func(o *weir.OpenContext) error {
		weir.NewOperatorListState(o, "seen", weir.Int64Codec)
		return nil
	}))
}

type counter struct {
	weir.BaseProcess
	n *weir.ValueState[int64]
}

func (c *counter) Open(o *weir.OpenContext) error {
	c.n = weir.NewValueState(o, "n", weir.Int64Codec)
	return nil
}

func (c *counter) ProcessElement(ctx *weir.Context, r weir.Record) error {
	n, _, err := c.n.Get(ctx)
	if err != nil {
		return err
	}
	n++
	c.n.Set(ctx, n)
	ctx.Emit(weir.Record{Key: ctx.Key(), Value: strconv.AppendInt(nil, n, 10), Timestamp: r.Timestamp})
	return nil
}

type sum struct{}

func (sum) Create() int64 { return 0 }
func (sum) Add(acc int64, r weir.Record) int64 {
	n, _ := strconv.ParseInt(string(r.Value), 10, 64)
	return acc + n
}
func (sum) Merge(a, b int64) int64 { return a + b }
func (sum) Result(key []byte, end int64, acc int64) weir.Record {
	return weir.Record{Value: []byte(fmt.Sprintf("%d@%d", acc, end))}
}

// rec is a test record.
type rec struct {
	key, value string
	ts         int64
}

// Test connectors: a source of given records (split over subtasks by
// index) and a sink that collects.
var (
	inputs  sync.Map // name -> []rec
	outputs sync.Map // name -> *collected
)

type collected struct {
	mu   sync.Mutex
	recs []rec
}

type recSource struct {
	recs []rec
	i    int
	step int
}

func (s *recSource) Read(ctx context.Context, b *connector.Batch, max int) (int, error) {
	n := 0
	for ; s.i < len(s.recs) && n < max; s.i += s.step {
		r := s.recs[s.i]
		b.Append([]byte(r.key), []byte(r.value), r.ts)
		n++
	}
	if s.i >= len(s.recs) {
		return n, io.EOF
	}
	return n, nil
}
func (s *recSource) Offset() []byte { return strconv.AppendInt(nil, int64(s.i), 10) }
func (s *recSource) Close() error   { return nil }

type recSink struct{ c *collected }

func (s *recSink) Write(entries []byte, count int) error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	for len(entries) > 0 {
		var e wasmabi.Entry
		var err error
		if entries, err = wasmabi.ReadEntry(entries, &e); err != nil {
			return err
		}
		s.c.recs = append(s.c.recs, rec{string(e.Key), string(e.Value), e.Timestamp})
	}
	return nil
}
func (s *recSink) Flush() error { return nil }
func (s *recSink) Close() error { return nil }

var testSource = &connector.Spec{Name: "test-records", Kind: connector.KindSource,
	NewSource: func(o connector.Options, sub connector.Subtask) (connector.Source, error) {
		v, _ := inputs.Load(o.String("name"))
		return &recSource{recs: v.([]rec), i: sub.Index, step: sub.Parallelism}, nil
	}}

var testSink = &connector.Spec{Name: "test-collect", Kind: connector.KindSink,
	NewSink: func(o connector.Options, sub connector.Subtask) (connector.Sink, error) {
		v, _ := outputs.LoadOrStore(o.String("name"), &collected{})
		return &recSink{c: v.(*collected)}, nil
	}}

// pipeline builds source(p1) -> op1 (chained) [-> key_by -> op2 (p2)] -> sink.
type stage struct {
	op          string
	parallelism int
	partition   task.Partition
	window      *task.WindowSpec
	onError     task.ErrorPolicy
	side        []string
}

func build(t *testing.T, name string, in []rec, srcPar int, wm task.WatermarkSpec, stages ...stage) (*task.Job, *collected) {
	t.Helper()
	inputs.Store(name, in)
	out := &collected{}
	outputs.Store(name, out)
	job := &task.Job{Name: name, MaxParallelism: 16, State: state.NewHeap(func() int64 { return time.Now().UnixMilli() }), BufferSize: 256, Credits: 2, BatchSize: 7}
	src := &task.Vertex{ID: 0, Name: "src", Parallelism: srcPar}
	src.Nodes = []*task.Node{{UID: "src", Kind: task.NodeSource, Source: testSource, SourceOptions: connector.Options{"name": name}, Watermark: wm, Outputs: [][]task.Target{nil}}}
	job.Vertices = append(job.Vertices, src)
	prev, prevNode := src, src.Nodes[0]
	for i, s := range stages {
		f, desc, err := native.Factory(s.op)
		if err != nil {
			t.Fatal(err)
		}
		n := &task.Node{UID: fmt.Sprintf("op%d", i), Kind: task.NodeOperator, Desc: desc, New: f, Window: s.window, OnError: s.onError,
			SideOutputs: append(slices.Clone(desc.SideOutputs), s.side...)}
		n.Outputs = make([][]task.Target, 1+len(n.SideOutputs))
		if s.partition == task.Forward && s.parallelism == prev.Parallelism {
			prevNode.Outputs[0] = append(prevNode.Outputs[0], task.Target{Node: len(prev.Nodes)})
			prev.Nodes = append(prev.Nodes, n)
		} else {
			v := &task.Vertex{ID: len(job.Vertices), Name: n.UID, Parallelism: s.parallelism, Nodes: []*task.Node{n}}
			e := &task.Edge{ID: len(job.Edges), From: prev, FromNode: slices.Index(prev.Nodes, prevNode), To: v, Partition: s.partition}
			v.Inputs = []*task.Edge{e}
			prevNode.Outputs[0] = append(prevNode.Outputs[0], task.Target{Edge: e})
			job.Vertices = append(job.Vertices, v)
			job.Edges = append(job.Edges, e)
			prev = v
		}
		prevNode = n
	}
	sink := &task.Node{UID: "sink", Kind: task.NodeSink, Sink: testSink, SinkOptions: connector.Options{"name": name}}
	prevNode.Outputs[0] = append(prevNode.Outputs[0], task.Target{Node: len(prev.Nodes)})
	prev.Nodes = append(prev.Nodes, sink)
	return job, out
}

func run(t *testing.T, job *task.Job) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := task.Start(ctx, job, task.Options{})
	if err != nil {
		return err
	}
	return r.Wait()
}

func TestWordCountKeyBy(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	words := []string{"a", "bb", "ccc", "dd", "e", "ff", "g", "hhh"}
	var in []rec
	want := map[string]int{}
	for i := range 500 {
		var line []string
		for range rnd.IntN(6) {
			w := words[rnd.IntN(len(words))]
			line = append(line, w)
			want[w]++
		}
		in = append(in, rec{"", strings.Join(line, " "), int64(i)})
	}
	for _, par := range []int{1, 3} {
		t.Run(fmt.Sprint("parallelism", par), func(t *testing.T) {
			job, out := build(t, fmt.Sprint("wc", par), in, par, task.WatermarkSpec{Strategy: task.WatermarkBounded},
				stage{op: "t_split", parallelism: par, partition: task.Forward},
				stage{op: "t_count", parallelism: 2, partition: task.KeyBy})
			if err := run(t, job); err != nil {
				t.Fatal(err)
			}
			// Per word, the counts emitted are exactly 1..n.
			got := map[string][]int{}
			for _, r := range out.recs {
				n, _ := strconv.Atoi(r.value)
				got[r.key] = append(got[r.key], n)
			}
			for w, n := range want {
				c := got[w]
				sort.Ints(c)
				if len(c) != n || c[0] != 1 || c[n-1] != n {
					t.Errorf("word %q: counts %v, want 1..%d", w, c, n)
				}
			}
			if len(got) != len(want) {
				t.Errorf("%d words counted, want %d", len(got), len(want))
			}
		})
	}
}

// windowModel computes window sums independently: every window a record
// falls into gets its value.
func windowModel(in []rec, size, slide int64) map[string]int64 {
	out := map[string]int64{}
	for _, r := range in {
		v, _ := strconv.ParseInt(r.value, 10, 64)
		first := r.ts - r.ts%slide
		for s := first; s > r.ts-size; s -= slide {
			out[fmt.Sprintf("%s|%d@%d", r.key, 0, s+size-1)] += v
		}
	}
	res := map[string]int64{}
	for k, v := range out {
		res[k] = v
	}
	return res
}

func TestWindows(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	var in []rec
	for i := range 2000 {
		// Slightly out of order timestamps, within the bound.
		ts := int64(i*5) + int64(rnd.IntN(40))
		in = append(in, rec{fmt.Sprint("k", rnd.IntN(7)), fmt.Sprint(rnd.IntN(100)), ts})
	}
	cases := []struct {
		name        string
		w           task.WindowSpec
		size, slide int64
	}{
		{"tumbling", task.WindowSpec{Type: task.WindowTumbling, Size: 100 * time.Millisecond}, 100, 100},
		{"sliding", task.WindowSpec{Type: task.WindowSliding, Size: 100 * time.Millisecond, Slide: 20 * time.Millisecond}, 100, 20},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := c.w
			job, out := build(t, "win-"+c.name, in, 2, task.WatermarkSpec{Strategy: task.WatermarkBounded, MaxOutOfOrderness: 50 * time.Millisecond, Interval: time.Millisecond},
				stage{op: "t_sum", parallelism: 2, partition: task.KeyBy, window: &w})
			if err := run(t, job); err != nil {
				t.Fatal(err)
			}
			want := map[string]int64{}
			for k, v := range windowModel(in, c.size, c.slide) {
				key, end, _ := strings.Cut(k, "|0@")
				want[fmt.Sprintf("%s %d@%s", key, v, end)]++
			}
			got := map[string]int64{}
			for _, r := range out.recs {
				got[r.key+" "+r.value]++
				if !strings.HasSuffix(r.value, "@"+strconv.FormatInt(r.ts, 10)) {
					t.Fatalf("result %q has timestamp %d, want its window end", r.value, r.ts)
				}
			}
			if len(got) != len(want) {
				t.Errorf("%d results, want %d", len(got), len(want))
			}
			for k, n := range want {
				if got[k] != n {
					t.Errorf("missing or duplicated result %q (got %d)", k, got[k])
					break
				}
			}
		})
	}
}

// sessionModel computes session sums independently.
func sessionModel(in []rec, gap int64) map[string]int {
	byKey := map[string][]rec{}
	for _, r := range in {
		byKey[r.key] = append(byKey[r.key], r)
	}
	out := map[string]int{}
	for k, rs := range byKey {
		sort.Slice(rs, func(i, j int) bool { return rs[i].ts < rs[j].ts })
		var sum, end int64
		for i, r := range rs {
			v, _ := strconv.ParseInt(r.value, 10, 64)
			if i > 0 && r.ts >= end {
				out[fmt.Sprintf("%s %d@%d", k, sum, end-1)]++
				sum = 0
			}
			sum += v
			end = max(end, r.ts+gap)
		}
		out[fmt.Sprintf("%s %d@%d", k, sum, end-1)]++
	}
	return out
}

func TestSessionWindows(t *testing.T) {
	rnd := rand.New(rand.NewPCG(5, 6))
	var in []rec
	ts := int64(0)
	for range 1500 {
		ts += int64(rnd.IntN(30))
		// Out of order within 40 ms: sessions merge when a late record
		// bridges two of them.
		in = append(in, rec{fmt.Sprint("k", rnd.IntN(3)), fmt.Sprint(1 + rnd.IntN(9)), ts + int64(rnd.IntN(40))})
	}
	w := task.WindowSpec{Type: task.WindowSession, Gap: 50 * time.Millisecond}
	job, out := build(t, "session", in, 1, task.WatermarkSpec{Strategy: task.WatermarkBounded, MaxOutOfOrderness: 40 * time.Millisecond, Interval: time.Millisecond},
		stage{op: "t_sum", parallelism: 2, partition: task.KeyBy, window: &w})
	if err := run(t, job); err != nil {
		t.Fatal(err)
	}
	want := sessionModel(in, 50)
	got := map[string]int{}
	for _, r := range out.recs {
		got[r.key+" "+r.value]++
	}
	if len(got) != len(want) {
		t.Errorf("%d sessions, want %d", len(got), len(want))
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("session %q: got %d, want %d", k, got[k], n)
			break
		}
	}
}

func TestRecordErrorPolicies(t *testing.T) {
	var in []rec
	for i := range 30 {
		in = append(in, rec{"", strconv.Itoa(i), int64(i)})
	}
	job, _ := build(t, "fail", in, 1, task.WatermarkSpec{Strategy: task.WatermarkBounded},
		stage{op: "t_fail13", parallelism: 1, partition: task.Forward})
	err := run(t, job)
	if err == nil || !strings.Contains(err.Error(), "op0") || !strings.Contains(err.Error(), "record 13") || !strings.Contains(err.Error(), "unlucky") {
		t.Fatalf("error = %v; want it to name the operator, the record offset and the reason", err)
	}
	job, out := build(t, "skip", in, 1, task.WatermarkSpec{Strategy: task.WatermarkBounded},
		stage{op: "t_fail13", parallelism: 1, partition: task.Forward, onError: task.OnErrorSkip})
	if err := run(t, job); err != nil {
		t.Fatal(err)
	}
	if len(out.recs) != 29 || slices.ContainsFunc(out.recs, func(r rec) bool { return r.value == "13" }) {
		t.Fatalf("skip: got %d records, want 29 without 13", len(out.recs))
	}
	job, _ = build(t, "skip-state", in, 1, task.WatermarkSpec{Strategy: task.WatermarkBounded},
		stage{op: "t_fail13_state", parallelism: 1, partition: task.Forward, onError: task.OnErrorSkip})
	if err := run(t, job); err == nil || !strings.Contains(err.Error(), "record 13") || !strings.Contains(err.Error(), "operator state") {
		t.Fatalf("skip on a map with operator state: error = %v; want the job to fail at record 13 and say why skip does not apply", err)
	}
}

func TestCancel(t *testing.T) {
	// An endless source: Cancel must end the job promptly.
	in := make([]rec, 0)
	inputs.Store("endless", in)
	job, _ := build(t, "endless", nil, 1, task.WatermarkSpec{Strategy: task.WatermarkBounded}, stage{op: "t_split", parallelism: 1, partition: task.Forward})
	job.Vertices[0].Nodes[0].Source = &connector.Spec{Name: "test-endless", Kind: connector.KindSource,
		NewSource: func(connector.Options, connector.Subtask) (connector.Source, error) { return &endless{}, nil }}
	r, err := task.Start(context.Background(), job, task.Options{})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	r.Cancel()
	done := make(chan error, 1)
	go func() { done <- r.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the job did not end after Cancel")
	}
	if m := r.Metrics(); m[0].Out.Load() == 0 {
		t.Error("the source produced nothing before Cancel")
	}
}

type endless struct{ n int64 }

func (e *endless) Read(ctx context.Context, b *connector.Batch, max int) (int, error) {
	for range max {
		e.n++
		b.Append(nil, bytes.Repeat([]byte("x "), 3), e.n)
	}
	return max, nil
}
func (e *endless) Offset() []byte { return nil }
func (e *endless) Close() error   { return nil }

func TestBroadcastAndRebalance(t *testing.T) {
	var in []rec
	for i := range 100 {
		in = append(in, rec{"", fmt.Sprintf("w%d", i), int64(i)})
	}
	for _, c := range []struct {
		p     task.Partition
		times int
	}{{task.Broadcast, 3}, {task.Rebalance, 1}} {
		t.Run(string(c.p), func(t *testing.T) {
			job, out := build(t, "part-"+string(c.p), in, 2, task.WatermarkSpec{Strategy: task.WatermarkBounded},
				stage{op: "t_split", parallelism: 3, partition: c.p})
			if err := run(t, job); err != nil {
				t.Fatal(err)
			}
			got := map[string]int{}
			for _, r := range out.recs {
				got[r.value]++
			}
			if len(got) != len(in) {
				t.Fatalf("%d distinct records, want %d", len(got), len(in))
			}
			for _, r := range in {
				if got[r.value] != c.times {
					t.Fatalf("record %q arrived %d times, want %d", r.value, got[r.value], c.times)
				}
			}
		})
	}
}
