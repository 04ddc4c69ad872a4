//go:build !wasip1

package queries_test

import (
	"math"
	"sort"
	"testing"

	"github.com/weirstream/weir/examples/nexmark/reference"
	"github.com/weirstream/weir/internal/nexmark"
	weir "github.com/weirstream/weir/sdk/go"
	"github.com/weirstream/weir/sdk/go/weirtest"
)

// This file runs each query's operators over generated events on a small
// simulated engine made of weirtest harnesses — records flow through the
// operators in chunks, the watermark follows the chunks, timers and windows
// fire as the watermark passes them — and compares the output with package
// reference. It checks the operators before (and independently of) the
// engine; nexmark_test.go in the parent folder runs the real engine.

// simNode is one operator of a simulated job.
type simNode struct {
	name   string
	h      *weirtest.Harness
	window *simWindow // aggregates only
	// out lists, per output port, the nodes (and their input index) that
	// consume it; a nil node is the job's sink.
	out map[int][]simTarget
}

type simTarget struct {
	n     *simNode
	input int
}

// simWindow is a window assigner (tumbling: slide == size) and the
// accumulators the host keeps for an aggregate.
type simWindow struct {
	size, slide int64
	accs        map[accKey][]byte
}

type accKey struct {
	key   string
	start int64
}

// simJob is a job: nodes in topological order, the first fed by the source.
type simJob struct {
	t *testing.T
	// sidesFirst delivers a node's side outputs before its main output, so
	// that a join sees, within a chunk, the records of its second input
	// before those of its first, as may happen between the two edges in the
	// engine.
	sidesFirst bool
	nodes      []*simNode
	sink       []reference.Record
}

func (j *simJob) node(name string, window *simWindow) *simNode {
	h, err := weirtest.New(name)
	if err != nil {
		j.t.Fatal(err)
	}
	if err := h.Open(nil); err != nil {
		j.t.Fatalf("opening %s: %v", name, err)
	}
	n := &simNode{name: name, h: h, window: window, out: map[int][]simTarget{}}
	j.nodes = append(j.nodes, n)
	return n
}

// connect sends port of from to input of to (to == nil: the sink).
func (j *simJob) connect(from *simNode, port int, to *simNode, input int) {
	from.out[port] = append(from.out[port], simTarget{to, input})
}

func (j *simJob) deliver(n *simNode, input int, recs []weir.Record) {
	if len(recs) == 0 {
		return
	}
	if n.window != nil {
		j.aggregate(n, recs)
		return
	}
	outs, err := n.h.ProcessPort(input, recs...)
	if err != nil {
		j.t.Fatalf("%s: %v", n.name, err)
	}
	j.route(n, outs)
}

func (j *simJob) route(n *simNode, outs []weirtest.Output) {
	byPort := map[int][]weir.Record{}
	for _, o := range outs {
		if o.Watermark {
			continue
		}
		byPort[o.Port] = append(byPort[o.Port], o.Record)
	}
	ports := make([]int, 0, len(byPort))
	for port := range byPort {
		ports = append(ports, port)
	}
	sort.Ints(ports)
	if j.sidesFirst {
		sort.Sort(sort.Reverse(sort.IntSlice(ports)))
	}
	for _, port := range ports {
		recs := byPort[port]
		targets, ok := n.out[port]
		if !ok {
			j.t.Fatalf("%s emitted to port %d, which goes nowhere", n.name, port)
		}
		for _, tg := range targets {
			if tg.n == nil {
				for _, r := range recs {
					j.sink = append(j.sink, reference.Record{Key: string(r.Key), Value: string(r.Value), Timestamp: r.Timestamp})
				}
				continue
			}
			j.deliver(tg.n, tg.input, recs)
		}
	}
}

// aggregate adds records to the accumulators of their windows, one
// AggAdd call with a group per (key, window).
func (j *simJob) aggregate(n *simNode, recs []weir.Record) {
	w := n.window
	var order []accKey
	groups := map[accKey][]weir.Record{}
	for _, r := range recs {
		last := r.Timestamp - ((r.Timestamp%w.slide)+w.slide)%w.slide
		for s := last; s > r.Timestamp-w.size; s -= w.slide {
			k := accKey{string(r.Key), s}
			if _, ok := groups[k]; !ok {
				order = append(order, k)
			}
			groups[k] = append(groups[k], r)
		}
	}
	var gs []weirtest.AggGroup
	for _, k := range order {
		gs = append(gs, weirtest.AggGroup{Acc: weirtest.Accumulator{Key: []byte(k.key), Timestamp: k.start + w.size - 1, Value: w.accs[k]}, Records: groups[k]})
	}
	accs, err := n.h.AggAdd(gs...)
	if err != nil {
		j.t.Fatalf("%s: %v", n.name, err)
	}
	if len(accs) != len(order) {
		j.t.Fatalf("%s: %d accumulators for %d groups", n.name, len(accs), len(order))
	}
	for i, k := range order {
		w.accs[k] = accs[i].Value
	}
}

// advance moves every node's watermark to wm in topological order, firing
// its due timers or windows.
func (j *simJob) advance(wm int64) {
	for _, n := range j.nodes {
		n.h.Watermark = wm
		if w := n.window; w != nil {
			var due []accKey
			for k := range w.accs {
				if k.start+w.size-1 <= wm {
					due = append(due, k)
				}
			}
			sort.Slice(due, func(a, b int) bool { return due[a].start < due[b].start })
			var accs []weirtest.Accumulator
			for _, k := range due {
				accs = append(accs, weirtest.Accumulator{Key: []byte(k.key), Timestamp: k.start + w.size - 1, Value: w.accs[k]})
				delete(w.accs, k)
			}
			if len(accs) > 0 {
				outs, err := n.h.AggResult(accs...)
				if err != nil {
					j.t.Fatalf("%s: %v", n.name, err)
				}
				j.route(n, outs)
			}
			continue
		}
		for {
			outs, err := n.h.FireTimers()
			if err != nil {
				j.t.Fatalf("%s timers: %v", n.name, err)
			}
			if outs == nil {
				break
			}
			j.route(n, outs)
		}
	}
}

// run feeds the events to the first node in chunks, advancing the
// watermark after each chunk to just before the next chunk's first event.
func (j *simJob) run(events []nexmark.Event, chunk int) []reference.Record {
	var recs []weir.Record
	for i := range events {
		recs = append(recs, weir.Record{Value: nexmark.AppendBinary(nil, &events[i]), Timestamp: events[i].DateTime()})
	}
	for start := 0; start < len(recs); start += chunk {
		end := min(start+chunk, len(recs))
		j.deliver(j.nodes[0], 0, recs[start:end])
		if end < len(recs) {
			j.advance(recs[end].Timestamp - 1)
		}
	}
	j.advance(math.MaxInt64)
	return j.sink
}

// simulate builds the job of a query as the q*.yaml specs do.
func simulate(t *testing.T, query string, events []nexmark.Event, sidesFirst bool) []reference.Record {
	j := &simJob{t: t, sidesFirst: sidesFirst}
	chain := func(names ...string) {
		var prev *simNode
		for _, name := range names {
			n := j.node(name, nil)
			if prev != nil {
				j.connect(prev, 0, n, 0)
			}
			prev = n
		}
		j.connect(prev, 0, nil, 0)
	}
	join := func(split, joiner string) *simNode {
		s, jn := j.node(split, nil), j.node(joiner, nil)
		j.connect(s, 0, jn, 0)
		j.connect(s, 1, jn, 1)
		return jn
	}
	switch query {
	case "q0", "q1", "q2":
		chain(query)
	case "q3":
		j.connect(join("q3_split", "q3_join"), 0, nil, 0)
	case "q4":
		m := join("q4_split", "q4_max")
		avg := j.node("q4_average", nil)
		j.connect(m, 0, avg, 0)
		j.connect(avg, 0, nil, 0)
	case "q5":
		bids := j.node("q5_bids", nil)
		count := j.node("q5_count", &simWindow{size: reference.Q5Size, slide: reference.Q5Slide, accs: map[accKey][]byte{}})
		hot := j.node("q5_hot", nil)
		j.connect(bids, 0, count, 0)
		j.connect(count, 0, hot, 0)
		j.connect(hot, 0, nil, 0)
	case "q7":
		bids := j.node("q7_bids", nil)
		mx := j.node("q7_max", &simWindow{size: reference.Q7Size, slide: reference.Q7Size, accs: map[accKey][]byte{}})
		j.connect(bids, 0, mx, 0)
		j.connect(mx, 0, nil, 0)
	case "q8":
		j.connect(join("q8_split", "q8_join"), 0, nil, 0)
	default:
		t.Fatalf("no query %s", query)
	}
	return j.run(events, 997)
}

// generate returns the events of the nexmark source with options seed,
// count and rate.
func generate(t testing.TB, seed uint64, count, rate int64) []nexmark.Event {
	t.Helper()
	g, err := nexmark.NewGenerator(nexmark.Config{Seed: seed, Count: count, EventsPerSecond: rate}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	var events []nexmark.Event
	var e nexmark.Event
	for g.Next(&e) {
		events = append(events, e)
	}
	return events
}

func TestQueriesSimulated(t *testing.T) {
	n := int64(20000)
	if testing.Short() {
		n = 8000
	}
	events := generate(t, 1, n, 200) // 100 s of event time: 10 q7 windows

	for _, q := range []string{"q0", "q1", "q2", "q3", "q4", "q5", "q7", "q8"} {
		t.Run(q, func(t *testing.T) {
			want := reference.Queries[q](events)
			if len(want) == 0 {
				t.Fatalf("the reference expects no output from %d events: the test would prove nothing", len(events))
			}
			for _, sidesFirst := range []bool{false, true} {
				got := simulate(t, q, events, sidesFirst)
				if d := reference.Diff(want, got, 5); d != "" {
					t.Errorf("%s over %d events (side outputs first: %v):\n%s", q, len(events), sidesFirst, d)
				}
			}
			t.Logf("%s: %d records", q, len(want))
		})
	}
}
