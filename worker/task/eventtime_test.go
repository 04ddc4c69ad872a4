package task_test

import (
	"context"
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
	recs  []rec
	i     int
	delay time.Duration
	ended time.Time
}

func (s *listSource) Read(ctx context.Context, b *connector.Batch, max int) (int, error) {
	if s.i < len(s.recs) {
		r := s.recs[s.i]
		s.i++
		b.Append([]byte(r.key), []byte(r.value), r.ts)
		return 1, nil
	}
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return 0, ctx.Err()
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
		{"k", "10", 4},                                 // late by 3 <= 5: fires again: 13
		{"", "wm:20", 0}, {"k", "100", 2},              // past lateness: late output
		{"k", "7", 15},                                 // [10,20) is due but within lateness: fires now: 7
		{"k", "5", 25},                                 // [20,30) fires at the end: 5
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
