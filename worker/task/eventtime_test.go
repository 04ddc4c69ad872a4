package task_test

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	weir "github.com/weirstream/weir/sdk/go"
	"github.com/weirstream/weir/worker/connector"
	"github.com/weirstream/weir/worker/native"
	"github.com/weirstream/weir/worker/state"
	"github.com/weirstream/weir/worker/task"
)

func init() {
	// t_punct passes records on and turns a record "wm:N" into watermark N
	// (a punctuated watermark strategy, in the module).
	weir.FlatMap("t_punct", func(r weir.Record, out weir.Emitter) error {
		if v, ok := strings.CutPrefix(string(r.Value), "wm:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return err
			}
			out.EmitWatermark(n)
			return nil
		}
		out.Emit(r)
		return nil
	})
	weir.Process("t_ptimer", &procTimer{})
}

// procTimer sets a processing-time timer 50 ms ahead per record and emits,
// when it fires, the processing time it fired at.
type procTimer struct{ weir.BaseProcess }

func (p *procTimer) ProcessElement(ctx *weir.Context, r weir.Record) error {
	ctx.RegisterProcessingTimer(ctx.ProcessingTime() + 50)
	return nil
}

func (p *procTimer) OnTimer(ctx *weir.Context, t weir.Timer) error {
	ctx.Emit(weir.Record{Key: ctx.Key(), Value: []byte(strconv.FormatInt(ctx.ProcessingTime(), 10) + "/" + strconv.FormatInt(t.Timestamp, 10))})
	return nil
}

// chain builds source -> (chained) ops... where stage i > 0 after a key_by
// edge when keyed[i]; sinks[p] collects output port p of the last node.
func chainJob(t *testing.T, name string, src connector.Source, ops []string, keyed []bool, window *task.WindowSpec, sidePorts int) (*task.Job, []*collected) {
	t.Helper()
	job := &task.Job{Name: name, MaxParallelism: 8, State: state.NewHeap(nil), BatchSize: 4, BufferSize: 128, Credits: 2}
	v := &task.Vertex{Name: "v0", Parallelism: 1}
	v.Nodes = []*task.Node{{UID: "src", Kind: task.NodeSource, Source: &connector.Spec{Name: "test-once", Kind: connector.KindSource,
		NewSource: func(connector.Options, connector.Subtask) (connector.Source, error) { return src, nil }},
		Watermark: task.WatermarkSpec{Strategy: task.WatermarkPunctuated}, Outputs: [][]task.Target{nil}}}
	job.Vertices = []*task.Vertex{v}
	prev := v.Nodes[0]
	for i, op := range ops {
		f, desc, err := native.Factory(op)
		if err != nil {
			t.Fatal(err)
		}
		n := &task.Node{UID: op, Kind: task.NodeOperator, Desc: desc, New: f}
		if window != nil && i == len(ops)-1 {
			n.Window = window
		}
		for range sidePorts {
			n.SideOutputs = append(n.SideOutputs, "side")
		}
		n.Outputs = make([][]task.Target, 1+len(n.SideOutputs))
		if keyed[i] {
			nv := &task.Vertex{ID: len(job.Vertices), Name: op, Parallelism: 1, Nodes: []*task.Node{n}}
			e := &task.Edge{ID: len(job.Edges), From: v, FromNode: len(v.Nodes) - 1, To: nv, Partition: task.KeyBy}
			nv.Inputs = []*task.Edge{e}
			prev.Outputs[0] = append(prev.Outputs[0], task.Target{Edge: e})
			job.Vertices = append(job.Vertices, nv)
			job.Edges = append(job.Edges, e)
			v = nv
		} else {
			prev.Outputs[0] = append(prev.Outputs[0], task.Target{Node: len(v.Nodes)})
			v.Nodes = append(v.Nodes, n)
		}
		prev = n
	}
	var outs []*collected
	for p := range prev.Outputs {
		c := &collected{}
		outs = append(outs, c)
		prev.Outputs[p] = append(prev.Outputs[p], task.Target{Node: len(v.Nodes)})
		v.Nodes = append(v.Nodes, &task.Node{UID: "sink" + strconv.Itoa(p), Kind: task.NodeSink, Sink: &connector.Spec{Name: "test-c", Kind: connector.KindSink,
			NewSink: func(connector.Options, connector.Subtask) (connector.Sink, error) { return &recSink{c: c}, nil }}})
	}
	return job, outs
}

// listSource emits its records one batch each, then waits, then ends.
type listSource struct {
	recs       []rec
	i          int
	delay      time.Duration // quiet time after the last record, before the end
	pace       time.Duration // wait before each record
	quietUntil time.Time
	ended      time.Time
}

func (s *listSource) Read(ctx context.Context, b *connector.Batch, max int) (int, error) {
	if s.i < len(s.recs) {
		if s.pace > 0 {
			select {
			case <-time.After(s.pace):
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		r := s.recs[s.i]
		s.i++
		b.Append([]byte(r.key), []byte(r.value), r.ts)
		return 1, nil
	}
	// Idle until the delay is over, returning now and then as the Source
	// contract asks, then end.
	if s.quietUntil.IsZero() {
		s.quietUntil = time.Now().Add(s.delay)
	}
	if wait := time.Until(s.quietUntil); wait > 0 {
		select {
		case <-time.After(min(wait, 50*time.Millisecond)):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		return 0, nil
	}
	s.ended = time.Now()
	return 0, io.EOF
}
func (s *listSource) Offset() []byte { return nil }
func (s *listSource) Close() error   { return nil }

// TestLatenessAndPunctuatedWatermarks drives a tumbling window with
// allowed lateness by watermarks a module emits, so the order of records
// and watermarks is exact: on-time records fire once, records within the
// lateness fire the window again, later ones go to the late output.
func TestLatenessAndPunctuatedWatermarks(t *testing.T) {
	src := &listSource{recs: []rec{
		{"k", "1", 1}, {"k", "2", 3}, {"", "wm:12", 0}, // [0,10) fires: 3
		{"k", "10", 4},                    // late by 3 <= 5: fires again: 13
		{"", "wm:20", 0}, {"k", "100", 2}, // past lateness: late output
		{"k", "7", 15}, // [10,20) is due but within lateness: fires now: 7
		{"k", "5", 25}, // [20,30) fires at the end: 5
	}}
	w := &task.WindowSpec{Type: task.WindowTumbling, Size: 10 * time.Millisecond, AllowedLateness: 5 * time.Millisecond, LatePort: 1}
	job, outs := chainJob(t, "late", src, []string{"t_punct", "t_sum"}, []bool{false, true}, w, 1)
	if err := run(t, job); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range outs[0].recs {
		got = append(got, r.value)
	}
	want := []string{"3@9", "13@9", "7@19", "5@29"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("results %q, want %q", got, want)
	}
	if len(outs[1].recs) != 1 || outs[1].recs[0].value != "100" || outs[1].recs[0].ts != 2 {
		t.Errorf("late output %+v, want the record 100 at 2", outs[1].recs)
	}
}

// TestProcessingTimeTimers checks that processing-time timers fire on the
// wall clock while the job runs, not only at the end of input.
func TestProcessingTimeTimers(t *testing.T) {
	src := &listSource{recs: []rec{{"a", "x", 1}, {"b", "y", 2}}, delay: 1500 * time.Millisecond}
	job, outs := chainJob(t, "ptime", src, []string{"t_ptimer"}, []bool{true}, nil, 0)
	if err := run(t, job); err != nil {
		t.Fatal(err)
	}
	if len(outs[0].recs) != 2 {
		t.Fatalf("%d timer outputs, want 2", len(outs[0].recs))
	}
	for _, r := range outs[0].recs {
		at, ts, _ := strings.Cut(r.value, "/")
		firedAt, _ := strconv.ParseInt(at, 10, 64)
		due, _ := strconv.ParseInt(ts, 10, 64)
		if firedAt < due {
			t.Errorf("timer due at %d fired early, at %d", due, firedAt)
		}
		if firedAt >= src.ended.UnixMilli() {
			t.Errorf("timer due at %d fired at %d, not before the input ended at %d", due, firedAt, src.ended.UnixMilli())
		}
	}
}

func init() { weir.CoProcess("t_rules", &rules{}) }

// rules keeps broadcast rules (input 1) in broadcast state and counts the
// keyed events (input 0) of its subtask in operator list state; at the end
// each subtask reports both.
type rules struct {
	weir.BaseProcess
	rules *weir.MapState[string, int64]
	seen  *weir.ListState[int64]
}

func (p *rules) Open(o *weir.OpenContext) error {
	p.rules = weir.NewBroadcastState(o, "rules", weir.StringCodec, weir.Int64Codec)
	p.seen = weir.NewOperatorListState(o, "seen", weir.Int64Codec)
	return nil
}

func (p *rules) ProcessElement1(ctx *weir.Context, r weir.Record) error {
	p.seen.Add(ctx, r.Timestamp)
	return nil
}

func (p *rules) ProcessElement2(ctx *weir.Context, r weir.Record) error {
	p.rules.Put(ctx, string(r.Value), r.Timestamp)
	return nil
}

func (p *rules) Finish(ctx *weir.Context) error {
	nr := 0
	if err := p.rules.Range(ctx, func(string, int64) bool { nr++; return true }); err != nil {
		return err
	}
	seen, err := p.seen.Get(ctx)
	if err != nil {
		return err
	}
	ctx.Emit(weir.Record{Key: []byte("report"), Value: []byte(fmt.Sprintf("%d %d", nr, len(seen)))})
	return nil
}

// TestOperatorAndBroadcastState runs a co_process with a keyed input and a
// broadcast input at parallelism 3: every subtask must hold every rule in
// its broadcast state, and the subtasks' operator lists must together hold
// every event once.
func TestOperatorAndBroadcastState(t *testing.T) {
	for _, backend := range []string{"heap", "pebble"} {
		t.Run(backend, func(t *testing.T) {
			var events, ruleRecs []rec
			for i := range 300 {
				events = append(events, rec{fmt.Sprint("k", i%17), "e", int64(i)})
			}
			for i := range 11 {
				ruleRecs = append(ruleRecs, rec{"", fmt.Sprint("rule", i), int64(i)})
			}
			inputs.Store("bc-events-"+backend, events)
			inputs.Store("bc-rules-"+backend, ruleRecs)
			out := &collected{}
			var st state.Backend = state.NewHeap(nil)
			if backend == "pebble" {
				p, err := state.OpenPebble(t.TempDir(), nil, state.PebbleOptions{})
				if err != nil {
					t.Fatal(err)
				}
				st = p
			}
			defer st.Close()
			job := &task.Job{Name: "bc", MaxParallelism: 16, State: st}
			f, desc, err := native.Factory("t_rules")
			if err != nil {
				t.Fatal(err)
			}
			src := func(id int, uid, name string) *task.Vertex {
				return &task.Vertex{ID: id, Name: uid, Parallelism: 2, Nodes: []*task.Node{{UID: uid, Kind: task.NodeSource, Source: testSource,
					SourceOptions: connector.Options{"name": name}, Watermark: task.WatermarkSpec{Strategy: task.WatermarkBounded}, Outputs: [][]task.Target{nil}}}}
			}
			ev, rl := src(0, "events", "bc-events-"+backend), src(1, "rules", "bc-rules-"+backend)
			co := &task.Vertex{ID: 2, Name: "co", Parallelism: 3}
			co.Nodes = []*task.Node{
				{UID: "co", Kind: task.NodeOperator, Desc: desc, New: f, Outputs: [][]task.Target{{{Node: 1}}}},
				{UID: "sink", Kind: task.NodeSink, Sink: &connector.Spec{Name: "c", Kind: connector.KindSink,
					NewSink: func(connector.Options, connector.Subtask) (connector.Sink, error) { return &recSink{c: out}, nil }}},
			}
			e0 := &task.Edge{ID: 0, From: ev, To: co, Input: 0, Partition: task.KeyBy}
			e1 := &task.Edge{ID: 1, From: rl, To: co, Input: 1, Partition: task.Broadcast}
			ev.Nodes[0].Outputs[0] = []task.Target{{Edge: e0}}
			rl.Nodes[0].Outputs[0] = []task.Target{{Edge: e1}}
			co.Inputs = []*task.Edge{e0, e1}
			job.Vertices, job.Edges = []*task.Vertex{ev, rl, co}, []*task.Edge{e0, e1}
			if err := run(t, job); err != nil {
				t.Fatal(err)
			}
			if len(out.recs) != 3 {
				t.Fatalf("%d reports, want one per subtask (3)", len(out.recs))
			}
			total := 0
			for _, r := range out.recs {
				var nr, ne int
				fmt.Sscanf(r.value, "%d %d", &nr, &ne)
				if nr != len(ruleRecs) {
					t.Errorf("a subtask holds %d rules, want all %d", nr, len(ruleRecs))
				}
				total += ne
			}
			if total != len(events) {
				t.Errorf("the subtasks' operator lists hold %d events, want %d", total, len(events))
			}
		})
	}
}

// TestIdleSource checks that a source that goes quiet is left out of the
// watermark: windows fire from the busy source's watermark while the idle
// one is still open, not only at the end of input.
func TestIdleSource(t *testing.T) {
	var busy []rec
	for i := range 50 {
		busy = append(busy, rec{"k", "1", int64(i * 10)})
	}
	sources := []*listSource{
		// The busy source keeps sending for about a second, so it never
		// goes idle while the test watches; the other goes quiet at once.
		{recs: busy, pace: 20 * time.Millisecond, delay: time.Second},
		{recs: []rec{{"k", "1", 0}}, delay: 3 * time.Second},
	}
	out := &collected{}
	f, desc, err := native.Factory("t_sum")
	if err != nil {
		t.Fatal(err)
	}
	job := &task.Job{Name: "idle", MaxParallelism: 8, State: state.NewHeap(nil), BatchSize: 8}
	agg := &task.Vertex{ID: 2, Name: "agg", Parallelism: 1}
	agg.Nodes = []*task.Node{
		{UID: "agg", Kind: task.NodeOperator, Desc: desc, New: f, Window: &task.WindowSpec{Type: task.WindowTumbling, Size: 100 * time.Millisecond}, Outputs: [][]task.Target{{{Node: 1}}}},
		{UID: "sink", Kind: task.NodeSink, Sink: &connector.Spec{Name: "c", Kind: connector.KindSink,
			NewSink: func(connector.Options, connector.Subtask) (connector.Sink, error) { return &recSink{c: out}, nil }}},
	}
	for i, s := range sources {
		v := &task.Vertex{ID: i, Name: fmt.Sprint("src", i), Parallelism: 1, Nodes: []*task.Node{{UID: fmt.Sprint("src", i), Kind: task.NodeSource,
			Source:    &connector.Spec{Name: "l", Kind: connector.KindSource, NewSource: func(connector.Options, connector.Subtask) (connector.Source, error) { return s, nil }},
			Watermark: task.WatermarkSpec{Strategy: task.WatermarkBounded, Interval: 10 * time.Millisecond, IdleTimeout: 100 * time.Millisecond}}}}
		e := &task.Edge{ID: i, From: v, To: agg, Partition: task.KeyBy}
		v.Nodes[0].Outputs = [][]task.Target{{{Edge: e}}}
		agg.Inputs = append(agg.Inputs, e)
		job.Vertices = append(job.Vertices, v)
		job.Edges = append(job.Edges, e)
	}
	job.Vertices = append(job.Vertices, agg)
	r, err := task.Start(context.Background(), job, task.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Cancel()
	deadline := time.Now().Add(2 * time.Second)
	fired := false
	for time.Now().Before(deadline) && !fired {
		for _, m := range r.Metrics() {
			if m.UID == "sink" && m.In.Load() > 0 {
				fired = true
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !fired {
		t.Fatal("no window fired while one source was idle: idle channels still hold the watermark back")
	}
	if err := r.Wait(); err != nil {
		t.Fatal(err)
	}
	if got := len(out.recs); got != 5 {
		t.Errorf("%d windows, want 5", got)
	}
}
