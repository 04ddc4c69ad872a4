package task

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/wasmabi"
	"github.com/weirstream/weir/worker/connector"
)

// Defaults of Job's buffer settings.
const (
	DefaultBufferSize = 32 << 10
	DefaultCredits    = 4
	DefaultBatchSize  = 1024
)

// Options configure a Run.
type Options struct {
	// Logger receives module logs and engine events; nil discards them.
	Logger *slog.Logger
	// LatencyInterval, when positive, makes every source subtask send a
	// latency marker that often: markers travel in band with the records,
	// skip the operators, and the sinks record how long they took (see
	// Run.Latencies). Flink's latency tracking works the same way.
	LatencyInterval time.Duration
}

// Run is a job running on this process: every subtask of every vertex.
type Run struct {
	job      *Job
	log      *slog.Logger
	counters counterSet
	logs     logBook // module logs per operator subtask (logs.go)
	subtasks []*subtask
	nodes    map[string]*NodeMetrics

	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup
	errMu  sync.Mutex
	err    error
	start  time.Time

	latencyEvery time.Duration
	latMu        sync.Mutex
	latencies    []time.Duration
}

// NodeMetrics are the live counters of one node over all its subtasks.
type NodeMetrics struct {
	UID         string
	Kind        NodeKind
	Parallelism int
	In, Out     atomic.Int64
	// Dropped counts late records a window dropped.
	Dropped atomic.Int64
	usage   usageMeters // of the operator's instances (usage.go)
}

// subtask is one parallel instance of a vertex.
type subtask struct {
	run       *Run
	job       *Job
	v         *Vertex
	index     int
	ctx       context.Context
	keyGroups keygroup.Range
	mailbox   chan message
	gate      []gateChannel
	writers   []*writer
	nodes     []*node
	wm        int64
	wmGauge   atomic.Int64
	blocked   atomic.Int64
	procTimer *time.Timer
	procAt    int64
	batch     connector.Batch
}

// node is the runtime of one Node in one subtask.
type node struct {
	t       *subtask
	spec    *Node
	metrics *NodeMetrics
	op      Operator
	direct  directOperator // op, when it can take input in place
	svc     *services
	win     *windowOp
	src     connector.Source
	sink    connector.Sink
	targets [][]target
	wm      int64 // input watermark
	outWm   int64 // last watermark sent on
	scratch []byte
	ports   []portBuf
	timers  []timer
	timerIn []byte
	seen    int64 // records received by this subtask's node
	ended   bool
}

type portBuf struct {
	b []byte
	n int
}

type target struct {
	node  *node
	input int
	w     *writer
}

// directOperator is an Operator that lets the host write the batch into
// its memory (see wasmhost.Instance.Input/Invoke), saving a copy.
type directOperator interface {
	Input(n int) ([]byte, error)
	Invoke(method wasmabi.Method, n int) ([]byte, error)
}

// Start sets a job up — channels, operator instances (opened), sources and
// sinks — and starts one goroutine per subtask. It returns an error, having
// released everything, when any part cannot be set up.
func Start(ctx context.Context, job *Job, o Options) (*Run, error) {
	if job.BufferSize <= 0 {
		job.BufferSize = DefaultBufferSize
	}
	if job.Credits <= 0 {
		job.Credits = DefaultCredits
	}
	if job.BatchSize <= 0 {
		job.BatchSize = DefaultBatchSize
	}
	if job.MaxParallelism <= 0 {
		job.MaxParallelism = keygroup.DefaultMaxParallelism
	}
	if job.State == nil {
		return nil, errors.New("task: job has no state backend")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rctx, cancel := context.WithCancelCause(ctx)
	r := &Run{job: job, log: log, ctx: rctx, cancel: cancel, nodes: map[string]*NodeMetrics{}, start: time.Now(), latencyEvery: o.LatencyInterval}
	if err := r.build(); err != nil {
		r.closeAll()
		cancel(err)
		return nil, err
	}
	for _, t := range r.subtasks {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			err := t.runLoop()
			t.close()
			if err != nil {
				r.fail(err)
			}
		}()
	}
	return r, nil
}

func (r *Run) fail(err error) {
	r.errMu.Lock()
	if r.err == nil || errors.Is(r.err, context.Canceled) && !errors.Is(err, context.Canceled) {
		r.err = err
	}
	r.errMu.Unlock()
	r.cancel(err)
}

// Wait waits until every subtask has ended and returns the first error.
func (r *Run) Wait() error {
	r.wg.Wait()
	r.cancel(nil)
	r.errMu.Lock()
	defer r.errMu.Unlock()
	return r.err
}

// Cancel stops the job; Wait then returns.
func (r *Run) Cancel() { r.cancel(context.Canceled) }

// Metrics returns the live metrics of every node, in vertex order.
func (r *Run) Metrics() []*NodeMetrics {
	var out []*NodeMetrics
	for _, v := range r.job.Vertices {
		for _, n := range v.Nodes {
			out = append(out, r.nodes[n.UID])
		}
	}
	return out
}

// Counters returns the modules' counters, named "uid.counter".
func (r *Run) Counters() map[string]int64 { return r.counters.snapshot() }

// Latencies returns the source-to-sink latencies the markers measured.
func (r *Run) Latencies() []time.Duration {
	r.latMu.Lock()
	defer r.latMu.Unlock()
	return slices.Clone(r.latencies)
}

// latencyMarker records a marker at a sink of t's chain, if it has one,
// and sends it on over every outgoing edge.
func (t *subtask) latencyMarker(ns int64) error {
	for _, n := range t.nodes {
		if n.spec.Kind == NodeSink {
			d := time.Duration(time.Now().UnixNano() - ns)
			t.run.latMu.Lock()
			t.run.latencies = append(t.run.latencies, d)
			t.run.latMu.Unlock()
			break
		}
	}
	for _, w := range t.writers {
		if err := w.marker(ns); err != nil {
			return err
		}
	}
	return nil
}

// TaskMetrics are the live figures of one vertex over its subtasks.
type TaskMetrics struct {
	Name      string
	Watermark int64   // min over subtasks
	Backpress float64 // share of time its subtasks waited for credits
}

// Tasks returns per-vertex figures.
func (r *Run) Tasks() []TaskMetrics {
	elapsed := float64(time.Since(r.start))
	var out []TaskMetrics
	for _, v := range r.job.Vertices {
		tm := TaskMetrics{Name: v.Name, Watermark: math.MaxInt64}
		var blocked int64
		n := 0
		for _, t := range r.subtasks {
			if t.v != v {
				continue
			}
			tm.Watermark = min(tm.Watermark, t.wmGauge.Load())
			blocked += t.blocked.Load()
			n++
		}
		if n > 0 && elapsed > 0 {
			tm.Backpress = float64(blocked) / float64(n) / elapsed
		}
		out = append(out, tm)
	}
	return out
}

// build makes the subtasks, channels, writers and nodes.
func (r *Run) build() error {
	job := r.job
	byVertex := map[*Vertex][]*subtask{}
	for _, v := range job.Vertices {
		if v.Parallelism <= 0 {
			return fmt.Errorf("task: vertex %s has parallelism %d", v.Name, v.Parallelism)
		}
		for i := range v.Parallelism {
			t := &subtask{run: r, job: job, v: v, index: i, ctx: r.ctx, wm: wasmabi.NoWatermark,
				keyGroups: keygroup.RangeFor(i, v.Parallelism, job.MaxParallelism)}
			t.wmGauge.Store(wasmabi.NoWatermark)
			byVertex[v] = append(byVertex[v], t)
			r.subtasks = append(r.subtasks, t)
		}
		for _, n := range v.Nodes {
			r.nodes[n.UID] = &NodeMetrics{UID: n.UID, Kind: n.Kind, Parallelism: v.Parallelism}
		}
	}
	// Channels: for each edge, upstream subtask u -> downstream subtask d.
	type chKey struct {
		e    *Edge
		u, d int
	}
	chans := map[chKey]*channel{}
	for _, v := range job.Vertices {
		for _, t := range byVertex[v] {
			slots := 0
			for _, e := range v.Inputs {
				if e.Partition == Forward {
					slots++
				} else {
					slots += e.From.Parallelism
				}
			}
			t.mailbox = make(chan message, slots*(job.Credits+8)+1)
			for _, e := range v.Inputs {
				if e.Partition == Forward && e.From.Parallelism != v.Parallelism {
					return fmt.Errorf("task: forward edge %s -> %s joins parallelisms %d and %d", e.From.Name, v.Name, e.From.Parallelism, v.Parallelism)
				}
				for u := range e.From.Parallelism {
					if e.Partition == Forward && u != t.index {
						continue
					}
					c := newChannel(int32(len(t.gate)), t.mailbox, job.Credits, job.BufferSize)
					t.gate = append(t.gate, gateChannel{input: e.Input, free: c.free, wm: wasmabi.NoWatermark})
					chans[chKey{e, u, t.index}] = c
				}
			}
		}
	}
	for _, v := range job.Vertices {
		for _, t := range byVertex[v] {
			writers := map[*Edge]*writer{}
			for _, e := range job.Edges {
				if e.From != v {
					continue
				}
				w := &writer{edge: e, size: job.BufferSize, part: e.Partition, maxPar: job.MaxParallelism, ctx: r.ctx, blocked: &t.blocked, fromName: v.Nodes[e.FromNode].UID, rr: t.index}
				if e.Partition == Forward {
					w.chans = []*channel{chans[chKey{e, t.index, t.index}]}
				} else {
					for d := range e.To.Parallelism {
						w.chans = append(w.chans, chans[chKey{e, t.index, d}])
					}
				}
				if e.Partition == KeyBy {
					w.kgToSub = make([]uint16, job.MaxParallelism)
					for kg := range job.MaxParallelism {
						w.kgToSub[kg] = uint16(keygroup.Subtask(kg, e.To.Parallelism, job.MaxParallelism))
					}
				}
				writers[e] = w
				t.writers = append(t.writers, w)
			}
			t.nodes = make([]*node, len(v.Nodes))
			for i, ns := range v.Nodes {
				t.nodes[i] = &node{t: t, spec: ns, metrics: r.nodes[ns.UID], wm: wasmabi.NoWatermark, outWm: wasmabi.NoWatermark}
			}
			for i, ns := range v.Nodes {
				n := t.nodes[i]
				n.targets = make([][]target, len(ns.Outputs))
				n.ports = make([]portBuf, len(ns.Outputs))
				for p, ts := range ns.Outputs {
					for _, tg := range ts {
						if tg.Edge != nil {
							n.targets[p] = append(n.targets[p], target{w: writers[tg.Edge]})
						} else {
							n.targets[p] = append(n.targets[p], target{node: t.nodes[tg.Node], input: tg.Input})
						}
					}
				}
			}
			for _, n := range t.nodes {
				if err := n.open(); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (r *Run) closeAll() {
	for _, t := range r.subtasks {
		t.close()
	}
}

// open creates the node's instance, source or sink.
func (n *node) open() error {
	sub := connector.Subtask{Index: n.t.index, Parallelism: n.t.v.Parallelism}
	var err error
	switch n.spec.Kind {
	case NodeSource:
		n.src, err = n.spec.Source.NewSource(n.spec.SourceOptions, sub)
	case NodeSink:
		n.sink, err = n.spec.Sink.NewSink(n.spec.SinkOptions, sub)
	case NodeOperator:
		kind := n.spec.Desc.Kind
		keyed := kind.Keyed() || kind == wasmabi.KindAggregate
		n.svc = newServices(n, keyed)
		if n.op, err = n.spec.New(n.t.ctx, n.t.index, n.svc); err != nil {
			return n.annotate(err)
		}
		n.direct, _ = n.op.(directOperator)
		n.meter()
		if err = n.op.Open(n.spec.Params); err != nil {
			return n.annotate(err)
		}
		if kind == wasmabi.KindAggregate {
			n.win, err = newWindowOp(n, n.svc)
		}
	}
	if err != nil {
		return fmt.Errorf("%s subtask %d: %w", n.spec.UID, n.t.index, err)
	}
	return nil
}

func (t *subtask) close() {
	for _, n := range t.nodes {
		if n == nil {
			continue
		}
		if n.op != nil {
			n.op.Close()
			n.op = nil
		}
		if n.src != nil {
			n.src.Close()
			n.src = nil
		}
		if n.sink != nil {
			n.sink.Close()
			n.sink = nil
		}
	}
	if t.procTimer != nil {
		t.procTimer.Stop()
	}
}

// runLoop is the subtask's goroutine. A panic (a bug of the engine or of
// a native operator) fails the job, not the process.
func (t *subtask) runLoop() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("task %s subtask %d: internal error: %v\n%s", t.v.Name, t.index, r, debug.Stack())
		}
	}()
	if t.nodes[0].spec.Kind == NodeSource {
		err = t.runSource()
	} else {
		err = t.runGate()
	}
	if err != nil {
		return err
	}
	return t.endOfInput()
}

// runSource reads the head source until it ends.
func (t *subtask) runSource() error {
	head := t.nodes[0]
	ws := head.spec.Watermark
	interval := ws.Interval
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	ooo := ws.MaxOutOfOrderness.Milliseconds()
	maxTs := int64(math.MinInt64)
	nextWm := time.Now().Add(interval)
	lastData := time.Now()
	nextMarker := time.Now()
	idle := false
	for {
		if err := t.ctx.Err(); err != nil {
			return context.Cause(t.ctx)
		}
		t.batch.Reset()
		n, err := head.src.Read(t.ctx, &t.batch, t.job.BatchSize)
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("source %s subtask %d: %w", head.spec.UID, t.index, err)
		}
		now := time.Now()
		if n > 0 {
			lastData = now
			if idle {
				idle = false
				if err := t.eventAll(msgActive, 0); err != nil {
					return err
				}
			}
			for off := 0; off < len(t.batch.Buf); off += entrySize(t.batch.Buf[off:]) {
				maxTs = max(maxTs, le64(t.batch.Buf[off+8:]))
			}
			head.metrics.Out.Add(int64(n))
			if err := head.deliver(0, t.batch.Buf, n); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if ws.Strategy == WatermarkBounded && maxTs != math.MinInt64 && !now.Before(nextWm) {
			nextWm = now.Add(interval)
			if err := head.advance(maxTs - ooo - 1); err != nil {
				return err
			}
		}
		if t.run.latencyEvery > 0 && !now.Before(nextMarker) {
			nextMarker = now.Add(t.run.latencyEvery)
			if err := t.latencyMarker(now.UnixNano()); err != nil {
				return err
			}
		}
		if ws.IdleTimeout > 0 && !idle && n == 0 && now.Sub(lastData) >= ws.IdleTimeout {
			idle = true
			if err := t.eventAll(msgIdle, 0); err != nil {
				return err
			}
		}
		if err := t.fireProcessing(); err != nil {
			return err
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
}

// runGate processes the mailbox until every input channel has ended.
func (t *subtask) runGate() error {
	ended := 0
	for ended < len(t.gate) {
		var m message
		select {
		case m = <-t.mailbox:
		case <-t.ctx.Done():
			return context.Cause(t.ctx)
		case <-t.procC():
			t.procAt = 0
			if err := t.fireProcessing(); err != nil {
				return err
			}
			continue
		}
		g := &t.gate[m.ch]
		switch m.kind {
		case msgData:
			err := t.nodes[0].receive(g.input, m.buf.b, m.buf.count)
			m.buf.b, m.buf.count = m.buf.b[:0], 0
			g.free <- m.buf
			if err != nil {
				return err
			}
		case msgWatermark:
			if m.wm > g.wm {
				g.wm = m.wm
				if err := t.inputWatermark(); err != nil {
					return err
				}
			}
		case msgIdle, msgActive:
			g.idle = m.kind == msgIdle
			if err := t.inputWatermark(); err != nil {
				return err
			}
		case msgLatency:
			if err := t.latencyMarker(m.wm); err != nil {
				return err
			}
		case msgEnd:
			g.ended = true
			ended++
			if ended < len(t.gate) {
				if err := t.inputWatermark(); err != nil {
					return err
				}
			}
		}
		if len(t.mailbox) == 0 {
			if err := t.fireProcessing(); err != nil {
				return err
			}
			if err := t.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// inputWatermark recomputes the task's clock: the minimum watermark over
// the channels that are neither idle nor ended.
func (t *subtask) inputWatermark() error {
	wm, live := int64(math.MaxInt64), false
	for i := range t.gate {
		g := &t.gate[i]
		if g.ended || g.idle {
			continue
		}
		live = true
		wm = min(wm, g.wm)
	}
	if !live || wm <= t.wm {
		return nil
	}
	t.wm = wm
	t.wmGauge.Store(wm)
	return t.nodes[0].advance(wm)
}

// endOfInput fires everything and finishes every node, parents before
// their chained children, then ends the outgoing channels.
func (t *subtask) endOfInput() error {
	t.wm = math.MaxInt64
	t.wmGauge.Store(math.MaxInt64)
	for _, n := range t.nodes {
		if err := n.finish(); err != nil {
			return err
		}
	}
	for _, w := range t.writers {
		if err := w.event(msgWatermark, math.MaxInt64); err != nil {
			return err
		}
		if err := w.event(msgEnd, 0); err != nil {
			return err
		}
	}
	return nil
}

func (t *subtask) flush() error {
	for _, w := range t.writers {
		if err := w.flush(); err != nil {
			return err
		}
	}
	return nil
}

func (t *subtask) eventAll(kind msgKind, wm int64) error {
	for _, w := range t.writers {
		if err := w.event(kind, wm); err != nil {
			return err
		}
	}
	return nil
}

// procC returns the channel of the processing-time timer, armed for the
// earliest processing-time timer of the subtask's nodes (nil if none).
func (t *subtask) procC() <-chan time.Time {
	earliest := int64(math.MaxInt64)
	for _, n := range t.nodes {
		if n.svc != nil && n.svc.proc != nil {
			if tm, ok := n.svc.proc.next(); ok {
				earliest = min(earliest, tm.ts)
			}
		}
	}
	if earliest == math.MaxInt64 {
		return nil
	}
	if t.procTimer == nil {
		t.procTimer = time.NewTimer(time.Hour)
		t.procTimer.Stop()
	}
	if t.procAt != earliest {
		t.procAt = earliest
		t.procTimer.Reset(time.Until(time.UnixMilli(earliest)))
	}
	return t.procTimer.C
}

// fireProcessing fires the due processing-time timers of every node.
func (t *subtask) fireProcessing() error {
	now := time.Now().UnixMilli()
	for _, n := range t.nodes {
		if n.svc == nil || n.svc.proc == nil || n.svc.proc.len() == 0 {
			continue
		}
		if err := n.fireTimers(n.svc.proc, wasmabi.ProcessingTime, now); err != nil {
			return err
		}
	}
	return nil
}

// receive processes records arriving on input.
func (n *node) receive(input int, entries []byte, count int) error {
	n.metrics.In.Add(int64(count))
	n.seen += int64(count)
	switch n.spec.Kind {
	case NodeSink:
		return n.sink.Write(entries, count)
	case NodeOperator:
		if n.win != nil {
			if err := n.win.add(entries); err != nil {
				return err
			}
			if d := n.win.dropped; d > 0 {
				n.metrics.Dropped.Add(d)
				n.win.dropped = 0
			}
			return nil
		}
		out, err := n.invoke(wasmabi.MethodProcess, entries, count, input)
		if err != nil {
			return n.recordError(err, input, entries, count)
		}
		return n.route(out)
	}
	return fmt.Errorf("%s: a %s node has no input", n.spec.UID, n.spec.Kind)
}

// invoke runs a method of the node's operator over entries.
func (n *node) invoke(method wasmabi.Method, entries []byte, count int, input int) ([]byte, error) {
	h := wasmabi.BatchHeader{Count: uint32(count), Watermark: n.wm, ProcessingTime: time.Now().UnixMilli()}
	size := wasmabi.BatchHeaderSize + len(entries)
	var buf []byte
	if n.direct != nil {
		b, err := n.direct.Input(size)
		if err != nil {
			return nil, n.annotate(err)
		}
		buf = b
	} else {
		buf = n.scratch[:0]
	}
	buf = wasmabi.AppendBatchHeader(buf, h)
	buf = append(buf, entries...)
	if input != 0 {
		setPorts(buf[wasmabi.BatchHeaderSize:], uint16(input))
	}
	var out []byte
	var err error
	if n.direct != nil {
		out, err = n.direct.Invoke(method, size)
	} else {
		n.scratch = buf
		out, err = n.op.Call(method, buf)
	}
	return n.checked(method, entries, count, out, err)
}

func (n *node) portOf(name string) int {
	for i, s := range n.spec.SideOutputs {
		if s == name {
			return i + 1
		}
	}
	return 0
}

// route sends an operator's output on: records to their port's targets,
// watermarks (punctuated, from the module) downstream.
func (n *node) route(out []byte) error {
	if len(out) == 0 {
		return nil
	}
	count, simple := 0, true
	for off := 0; off < len(out); off += entrySize(out[off:]) {
		if out[off] != byte(wasmabi.EntryRecord) || out[off+2]|out[off+3] != 0 {
			simple = false
			break
		}
		count++
	}
	if simple {
		return n.deliver(0, out, count)
	}
	wm := int64(wasmabi.NoWatermark)
	for i := range n.ports {
		n.ports[i].b, n.ports[i].n = n.ports[i].b[:0], 0
	}
	for off := 0; off < len(out); {
		size := entrySize(out[off:])
		e := out[off : off+size]
		off += size
		switch wasmabi.EntryKind(e[0]) {
		case wasmabi.EntryWatermark:
			wm = max(wm, le64(e[8:]))
		case wasmabi.EntryRecord:
			p := int(e[2]) | int(e[3])<<8
			if p >= len(n.ports) {
				return fmt.Errorf("%s: output to port %d, which does not exist", n.spec.UID, p)
			}
			pb := &n.ports[p]
			start := len(pb.b)
			pb.b = append(pb.b, e...)
			pb.b[start+2], pb.b[start+3] = 0, 0
			pb.n++
		}
	}
	for p := range n.ports {
		if n.ports[p].n > 0 {
			if err := n.deliver(p, n.ports[p].b, n.ports[p].n); err != nil {
				return err
			}
		}
	}
	if wm != wasmabi.NoWatermark {
		return n.emitWatermark(wm)
	}
	return nil
}

// deliver hands records of one port to its targets.
func (n *node) deliver(port int, entries []byte, count int) error {
	if port == 0 && n.spec.Kind != NodeSource {
		n.metrics.Out.Add(int64(count))
	}
	for _, tg := range n.targets[port] {
		var err error
		if tg.w != nil {
			err = tg.w.write(entries, count)
		} else {
			err = tg.node.receive(tg.input, entries, count)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// advance moves the node's input watermark: due event-time timers and
// windows fire, then the watermark goes on downstream.
func (n *node) advance(wm int64) error {
	if wm <= n.wm {
		return nil
	}
	n.wm = wm
	if n.svc != nil && n.svc.event != nil {
		if err := n.fireTimers(n.svc.event, wasmabi.EventTime, wm); err != nil {
			return err
		}
	}
	return n.emitWatermark(wm)
}

// emitWatermark sends a watermark to every target.
func (n *node) emitWatermark(wm int64) error {
	if wm <= n.outWm || n.spec.Kind == NodeSink {
		return nil
	}
	n.outWm = wm
	for _, ts := range n.targets {
		for _, tg := range ts {
			var err error
			if tg.w != nil {
				err = tg.w.event(msgWatermark, wm)
			} else {
				err = tg.node.advance(wm)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// fireTimers fires the timers of q due at ts; timers that fire may set
// new ones, so it repeats until none is due.
func (n *node) fireTimers(q *timerQueue, domain wasmabi.TimeDomain, ts int64) error {
	for round := 0; ; round++ {
		n.timers = q.popDue(ts, n.timers[:0])
		if len(n.timers) == 0 {
			return nil
		}
		if round == 10000 {
			return fmt.Errorf("%s: timers keep setting due timers (10000 rounds at time %d)", n.spec.UID, ts)
		}
		var user, wins, expired []timer
		for _, tm := range n.timers {
			switch tm.ns {
			case 0:
				user = append(user, tm)
			case 1:
				wins = append(wins, tm)
			default:
				expired = append(expired, tm)
			}
		}
		// Fire in batches, so that the end of input (everything due at
		// once) is many calls, each well within the time limit.
		for len(wins) > 0 {
			k := min(len(wins), n.t.job.BatchSize)
			if err := n.win.fire(wins[:k], true); err != nil {
				return err
			}
			wins = wins[k:]
		}
		if len(expired) > 0 {
			if err := n.win.expire(expired); err != nil {
				return err
			}
		}
		for len(user) > 0 {
			k := min(len(user), n.t.job.BatchSize)
			batch := user[:k]
			user = user[k:]
			in := n.timerIn[:0]
			for _, tm := range batch {
				e := wasmabi.Entry{Kind: wasmabi.EntryTimer, Flags: uint8(domain), Key: []byte(tm.key), Timestamp: tm.ts}
				in = wasmabi.AppendEntry(in, &e)
			}
			n.timerIn = in
			out, err := n.invoke(wasmabi.MethodTimers, in, len(batch), 0)
			if err != nil {
				return err
			}
			if err := n.route(out); err != nil {
				return err
			}
		}
	}
}

// finish fires everything that is left and ends the node.
func (n *node) finish() error {
	if n.ended {
		return nil
	}
	n.ended = true
	n.wm = math.MaxInt64 - 1
	switch n.spec.Kind {
	case NodeOperator:
		if n.svc != nil && n.svc.event != nil {
			if err := n.fireTimers(n.svc.event, wasmabi.EventTime, math.MaxInt64); err != nil {
				return err
			}
		}
		if n.svc != nil && n.svc.proc != nil {
			if err := n.fireTimers(n.svc.proc, wasmabi.ProcessingTime, math.MaxInt64); err != nil {
				return err
			}
		}
		out, err := n.invoke(wasmabi.MethodFinish, nil, 0, 0)
		if err != nil {
			return err
		}
		if err := n.route(out); err != nil {
			return err
		}
	case NodeSink:
		if err := n.sink.Flush(); err != nil {
			return fmt.Errorf("sink %s subtask %d: %w", n.spec.UID, n.t.index, err)
		}
	}
	n.wm = math.MaxInt64
	return nil
}
