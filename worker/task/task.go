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

	"github.com/weirstream/weir/internal/barrier"
	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/netstack"
	"github.com/weirstream/weir/wasmabi"
	"github.com/weirstream/weir/worker/connector"
)

// Defaults of Job's buffer settings.
const (
	DefaultBufferSize = 32 << 10
	DefaultCredits    = 4
	DefaultBatchSize  = 1024
	// DefaultFlushInterval bounds how long a partly filled buffer waits
	// while its subtask is busy (an idle subtask flushes at once).
	DefaultFlushInterval = 5 * time.Millisecond
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

	stopSources atomic.Bool

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
	gate      *netstack.InputGate
	inputs    []gateChannel // by gate channel
	remoteIn  io.Closer     // the inputs from other processes, if any
	writers   []*writer
	nodes     []*node
	wm        int64
	wmGauge   atomic.Int64
	blocked   atomic.Int64 // ns waiting for output credits
	idle      atomic.Int64 // ns waiting for input
	recIn     atomic.Int64
	recOut    atomic.Int64
	procTimer *time.Timer
	procAt    int64
	batch     connector.Batch

	// Checkpoints (checkpoint.go).
	mail             mailbox
	mailBuf          []mail
	aligner          *barrier.Aligner // nil without checkpoints or inputs
	ckpt             *ckptState       // the unaligned checkpoint collecting in-flight data
	barrierSavepoint bool
	barrierAhead     int
	barrierInjected  uint32 // when the barrier being handled was injected (wallMillis)
	alignTimer       *time.Timer
	deferred         []deferredEvent // barriers taken while blocked on credits
	ended            bool            // the end of input went out on every output
	incr             incrState       // incremental checkpoints (incremental.go)
	// lastSnap is the newest checkpoint the subtask snapshotted (or
	// declined); noted are the triggers a subtask that is not a source
	// received before it ended, by id (their barriers come in band,
	// unless every input ends first); final is set by the final
	// checkpoint's completion, which ends a subtask that ended its input.
	lastSnap uint64
	noted    []mail
	final    bool
}

type deferredEvent struct {
	ch int
	e  netstack.Event
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
	if job.FlushInterval <= 0 {
		job.FlushInterval = DefaultFlushInterval
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

// Fail ends the run with err, as a failing subtask would.
func (r *Run) Fail(err error) { r.fail(err) }

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

// StopSources ends the run's sources after the batch they are reading,
// as if their input had ended: everything downstream drains and finishes.
func (r *Run) StopSources() { r.stopSources.Store(true) }

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

// SubtaskMetrics are the live figures of one subtask.
type SubtaskMetrics struct {
	Vertex, Index int
	// RecordsIn counts the records its inputs delivered (a source: the
	// records it read); RecordsOut the records it wrote to its outputs.
	RecordsIn, RecordsOut int64
	BytesIn, BytesOut     int64
	// Idle and Backpressured are the time spent waiting for input and for
	// output credits since the run started; Elapsed is that time.
	Idle, Backpressured, Elapsed time.Duration
	Watermark                    int64
	Inputs, Outputs              []netstack.ChannelStats
}

// Subtasks returns the figures of every subtask this run has.
func (r *Run) Subtasks() []SubtaskMetrics {
	elapsed := time.Since(r.start)
	out := make([]SubtaskMetrics, 0, len(r.subtasks))
	for _, t := range r.subtasks {
		m := SubtaskMetrics{Vertex: t.v.ID, Index: t.index, RecordsIn: t.recIn.Load(), RecordsOut: t.recOut.Load(),
			Idle: time.Duration(t.idle.Load()), Backpressured: time.Duration(t.blocked.Load()), Elapsed: elapsed, Watermark: t.wmGauge.Load()}
		if t.gate != nil {
			for ch := range t.inputs {
				s := t.gate.Stats(ch)
				m.BytesIn += s.Bytes
				m.Inputs = append(m.Inputs, s)
			}
		}
		for _, w := range t.writers {
			for _, sp := range w.subs {
				s := sp.Stats()
				m.BytesOut += s.Bytes
				m.Outputs = append(m.Outputs, s)
			}
		}
		out = append(out, m)
	}
	return out
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

// build makes the subtasks this process runs, their channels, writers and
// nodes. A channel between two of them is in-process; one whose other end
// runs elsewhere goes through the job's Network.
func (r *Run) build() error {
	job := r.job
	runs := func(v *Vertex, i int) bool { return true }
	if job.Subtasks != nil {
		set := map[SubtaskRef]bool{}
		for _, s := range job.Subtasks {
			if s.Vertex < 0 || s.Vertex >= len(job.Vertices) || s.Index < 0 || s.Index >= job.Vertices[s.Vertex].Parallelism {
				return fmt.Errorf("task: no subtask %d of vertex %d", s.Index, s.Vertex)
			}
			set[s] = true
		}
		runs = func(v *Vertex, i int) bool { return set[SubtaskRef{v.ID, i}] }
	}
	byVertex := map[*Vertex][]*subtask{}
	for _, v := range job.Vertices {
		if v.Parallelism <= 0 {
			return fmt.Errorf("task: vertex %s has parallelism %d", v.Name, v.Parallelism)
		}
		byVertex[v] = make([]*subtask, v.Parallelism)
		for i := range v.Parallelism {
			if !runs(v, i) {
				continue
			}
			t := &subtask{run: r, job: job, v: v, index: i, ctx: r.ctx, wm: wasmabi.NoWatermark,
				keyGroups: keygroup.RangeFor(i, v.Parallelism, job.MaxParallelism)}
			t.mail.wake = make(chan struct{}, 1)
			t.wmGauge.Store(wasmabi.NoWatermark)
			byVertex[v][i] = t
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
	chans := map[chKey]netstack.Subpartition{}
	for _, v := range job.Vertices {
		for _, t := range byVertex[v] {
			if t == nil {
				continue
			}
			t.gate = netstack.NewInputGate()
			var remote []RemoteInput
			for _, e := range v.Inputs {
				if e.Partition == Forward && e.From.Parallelism != v.Parallelism {
					return fmt.Errorf("task: forward edge %s -> %s joins parallelisms %d and %d", e.From.Name, v.Name, e.From.Parallelism, v.Parallelism)
				}
				for u := range e.From.Parallelism {
					if e.Partition == Forward && u != t.index {
						continue
					}
					ch := t.gate.AddChannel(nil)
					t.inputs = append(t.inputs, gateChannel{input: e.Input, wm: wasmabi.NoWatermark})
					if byVertex[e.From][u] != nil {
						chans[chKey{e, u, t.index}] = netstack.NewLocal(t.gate, ch, job.Credits, job.BufferSize)
						continue
					}
					remote = append(remote, RemoteInput{Channel: Channel{Edge: e.ID, From: u, To: t.index}, Index: ch})
				}
			}
			if job.Checkpoints != nil && len(t.inputs) > 0 {
				a, err := barrier.New(barrier.Config{Channels: len(t.inputs)})
				if err != nil {
					return fmt.Errorf("task: %s subtask %d: %w", v.Name, t.index, err)
				}
				t.aligner = a
			}
			if len(remote) == 0 {
				continue
			}
			if job.Network == nil {
				c := remote[0].Channel
				return fmt.Errorf("task: subtask %d of %s reads subtask %d of %s, which runs elsewhere, and the job has no network", t.index, v.Name, c.From, job.Edges[c.Edge].From.Name)
			}
			closer, err := job.Network.Inputs(t.gate, remote)
			if err != nil {
				return fmt.Errorf("task: connecting the inputs of %s subtask %d: %w", v.Name, t.index, err)
			}
			t.remoteIn = closer
		}
	}
	output := func(e *Edge, u, d int) (netstack.Subpartition, error) {
		if sp := chans[chKey{e, u, d}]; sp != nil {
			return sp, nil
		}
		if job.Network == nil {
			return nil, fmt.Errorf("task: subtask %d of %s writes to subtask %d of %s, which runs elsewhere, and the job has no network", u, e.From.Name, d, e.To.Name)
		}
		sp, err := job.Network.Output(r.ctx, Channel{Edge: e.ID, From: u, To: d})
		if err != nil {
			return nil, fmt.Errorf("task: connecting output of %s subtask %d: %w", e.From.Name, u, err)
		}
		return sp, nil
	}
	for _, v := range job.Vertices {
		for _, t := range byVertex[v] {
			if t == nil {
				continue
			}
			writers := map[*Edge]*writer{}
			for _, e := range job.Edges {
				if e.From != v {
					continue
				}
				w := &writer{t: t, edge: e, size: job.BufferSize, part: e.Partition, maxPar: job.MaxParallelism, blocked: &t.blocked, fromName: v.Nodes[e.FromNode].UID, rr: t.index}
				for d := range e.To.Parallelism {
					if e.Partition == Forward && d != t.index {
						continue
					}
					sp, err := output(e, t.index, d)
					if err != nil {
						return err
					}
					w.subs = append(w.subs, sp)
				}
				w.cur = make([]*netstack.Buffer, len(w.subs))
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
	var restore *Restore
	if cp := n.t.job.Checkpoints; cp != nil {
		sub.Exactly = true
		restore = cp.Restore
	}
	if restore != nil {
		// An operator that had finished stays so: its end of input (timers,
		// the module's finish, a sink's flush) ran before the checkpoint.
		if op := restore.Payload.Operator(n.spec.UID); op != nil && op.Ended() {
			n.ended = true
		}
	}
	var err error
	switch n.spec.Kind {
	case NodeSource:
		if restore != nil {
			if err := n.restoreSource(restore, &sub); err != nil {
				return err
			}
		}
		n.src, err = n.spec.Source.NewSource(n.spec.SourceOptions, sub)
	case NodeSink:
		if restore != nil {
			if err := n.restoreSink(restore, &sub); err != nil {
				return err
			}
		}
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
			if n.win, err = newWindowOp(n, n.svc); err != nil {
				break
			}
		}
		// The state is restored once the module declared its states
		// (in open), so that a module whose states differ from the
		// checkpoint's is refused with every difference.
		if restore != nil {
			if err := n.checkUpgrade(restore); err != nil {
				return err
			}
			if err := n.restoreOperator(restore); err != nil {
				return err
			}
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
	if t.alignTimer != nil {
		t.alignTimer.Stop()
	}
	if t.ckpt != nil {
		t.finishInFlight(t.ckpt)
		t.ckpt = nil
	}
	// Outputs drain after the end of input; after a failure or a cancel
	// they are dropped at once (a dead consumer would never grant the
	// credit a drain waits for).
	abort := t.ctx.Err() != nil || !t.ended
	for _, w := range t.writers {
		for _, sp := range w.subs {
			if a, ok := sp.(netstack.Aborter); ok && abort {
				a.Abort()
			} else {
				sp.Close()
			}
		}
	}
	if t.remoteIn != nil {
		t.remoteIn.Close()
	}
	if t.gate != nil {
		t.gate.Close()
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
	if err := t.endOfInput(); err != nil {
		return err
	}
	t.ended = true
	return t.awaitFinal()
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
				if err := t.eventAll(evActive, 0); err != nil {
					return err
				}
			}
			for off := 0; off < len(t.batch.Buf); off += entrySize(t.batch.Buf[off:]) {
				maxTs = max(maxTs, le64(t.batch.Buf[off+8:]))
			}
			head.metrics.Out.Add(int64(n))
			t.recIn.Add(int64(n))
			if err := head.deliver(0, t.batch.Buf, n); err != nil {
				return err
			}
		}
		if t.mail.has.Load() {
			if err := t.handleMail(); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) || t.run.stopSources.Load() {
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
			if err := t.eventAll(evIdle, 0); err != nil {
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

// runGate processes the input gate until every input channel has ended.
// Output buffers go out when full, when the gate runs dry, and at the
// latest FlushInterval after the last flush.
func (t *subtask) runGate() error {
	if err := t.replayInFlight(); err != nil {
		return err
	}
	ended := 0
	lastFlush := time.Now()
	for ended < len(t.inputs) {
		if t.mail.has.Load() {
			if err := t.handleMail(); err != nil {
				return err
			}
		}
		for len(t.deferred) > 0 {
			d := t.deferred[0]
			t.deferred = t.deferred[1:]
			if err := t.onEvent(d.ch, d.e, true); err != nil {
				return err
			}
		}
		ch, m, ok := t.gate.Next()
		if !ok {
			if err := t.fireProcessing(); err != nil {
				return err
			}
			if err := t.flush(); err != nil {
				return err
			}
			lastFlush = time.Now()
			select {
			case <-t.gate.Notify():
			case <-t.ctx.Done():
				return context.Cause(t.ctx)
			case <-t.procC():
				t.procAt = 0
			case <-t.mail.wake:
			case <-t.alignC():
				acts, err := t.aligner.Step(barrier.AlignmentTimeout{Now: t.now()})
				if err != nil {
					return err
				}
				if err := t.barrierActions(acts); err != nil {
					return err
				}
			}
			t.idle.Add(int64(time.Since(lastFlush)))
			continue
		}
		if m.Err != nil {
			return fmt.Errorf("task %s subtask %d: input channel %d: %w", t.v.Name, t.index, ch, m.Err)
		}
		if m.Buf != nil {
			t.recIn.Add(int64(m.Buf.Count))
			input := t.inputs[ch].input
			if t.aligner != nil {
				v, err := t.aligner.Admit(ch)
				if err != nil {
					return fmt.Errorf("task %s subtask %d: input channel %d: %w", t.v.Name, t.index, ch, err)
				}
				if v.Hold {
					return fmt.Errorf("task %s subtask %d: internal error: the gate delivered a buffer of held input channel %d", t.v.Name, t.index, ch)
				}
				if v.Persist != 0 {
					t.persist(v.Persist, input, m.Buf.B, m.Buf.Count)
				}
			}
			err := t.nodes[0].receive(input, m.Buf.B, m.Buf.Count)
			t.gate.Release(ch, m.Buf)
			if err != nil {
				return err
			}
		} else {
			if m.Event.Kind == evEnd {
				ended++
			}
			if err := t.onEvent(ch, m.Event, ended < len(t.inputs)); err != nil {
				return err
			}
		}
		if now := time.Now(); now.Sub(lastFlush) >= t.job.FlushInterval {
			lastFlush = now
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

// onEvent handles an event from input channel ch. more says whether other
// channels are still open after an end of stream.
func (t *subtask) onEvent(ch int, e netstack.Event, more bool) error {
	g := &t.inputs[ch]
	switch e.Kind {
	case evWatermark:
		if e.Value > g.wm {
			g.wm = e.Value
			return t.inputWatermark()
		}
	case evIdle, evActive:
		g.idle = e.Kind == evIdle
		return t.inputWatermark()
	case evLatency:
		return t.latencyMarker(e.Value)
	case evBarrier:
		return t.onBarrier(ch, e.Value, e.Ahead)
	case evEnd:
		g.ended = true
		if t.aligner != nil {
			acts, err := t.aligner.Step(barrier.EndOfStream{Channel: ch})
			if err != nil {
				return fmt.Errorf("task %s subtask %d: input channel %d: %w", t.v.Name, t.index, ch, err)
			}
			if err := t.barrierActions(acts); err != nil {
				return err
			}
		}
		if more {
			return t.inputWatermark()
		}
	default:
		return fmt.Errorf("task %s subtask %d: unknown event kind %d on input channel %d", t.v.Name, t.index, e.Kind, ch)
	}
	return nil
}

// gateNotify is the subtask's input signal (nil for a source, which has
// no inputs).
func (t *subtask) gateNotify() <-chan struct{} {
	if t.gate == nil || len(t.inputs) == 0 {
		return nil
	}
	return t.gate.Notify()
}

// priorityEvents handles the priority events queued on the inputs while
// the subtask waits for credits. None of today's events is a priority
// one; checkpoint barriers in unaligned mode will be, and they must reach
// a subtask that is backpressured.
func (t *subtask) priorityEvents() error {
	// The gate's signal was consumed: pass it on, so the main loop still
	// sees the ordinary messages that came with it.
	defer func() {
		if t.gate.Queued() > 0 {
			t.gate.Rearm()
		}
	}()
	for {
		ch, e, ok := t.gate.NextPriority()
		if !ok {
			return nil
		}
		if e.Kind == evBarrier {
			// The subtask is in the middle of writing a batch's output:
			// its snapshot waits until the batch is out, so nothing the
			// state already holds is missing downstream.
			t.deferred = append(t.deferred, deferredEvent{ch, e})
			continue
		}
		if err := t.onEvent(ch, e, true); err != nil {
			return err
		}
	}
}

// inputWatermark recomputes the task's clock: the minimum watermark over
// the channels that are neither idle nor ended.
func (t *subtask) inputWatermark() error {
	wm, live := int64(math.MaxInt64), false
	for i := range t.inputs {
		g := &t.inputs[i]
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
		if err := w.event(evWatermark, math.MaxInt64); err != nil {
			return err
		}
		if err := w.event(evEnd, 0); err != nil {
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

func (t *subtask) eventAll(kind uint8, wm int64) error {
	for _, w := range t.writers {
		if err := w.event(kind, wm); err != nil {
			return err
		}
	}
	return nil
}

// alignC returns a channel that fires at the alignment deadline of the
// checkpoint aligning now (nil if none).
func (t *subtask) alignC() <-chan time.Time {
	if t.aligner == nil {
		return nil
	}
	d, ok := t.aligner.Deadline()
	if !ok {
		return nil
	}
	if t.alignTimer == nil {
		t.alignTimer = time.NewTimer(time.Hour)
	}
	t.alignTimer.Reset(max(d-t.now(), 0))
	return t.alignTimer.C
}

// procC returns the channel of the processing-time timer, armed for the
// earliest processing-time timer of the subtask's nodes (nil if none).
func (t *subtask) procC() <-chan time.Time {
	earliest := int64(math.MaxInt64)
	for _, n := range t.nodes {
		if n.svc != nil && n.svc.proc != nil {
			if ts, ok := n.svc.proc.earliest(); ok { // cached: no walk over the key groups
				earliest = min(earliest, ts)
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
		if n.svc == nil || n.svc.proc == nil {
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
				err = tg.w.event(evWatermark, wm)
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
// new ones, so it repeats until none is due. q's cached earliest time
// makes the common case, nothing due, a comparison.
func (n *node) fireTimers(q *timerSet, domain wasmabi.TimeDomain, ts int64) error {
	for round := 0; ; round++ {
		var err error
		if n.timers, err = q.popDue(ts, n.timers[:0]); err != nil {
			return err
		}
		if len(n.timers) == 0 {
			return nil
		}
		if round == 10000 {
			return fmt.Errorf("%s: timers keep setting due timers (10000 rounds at time %d)", n.spec.UID, ts)
		}
		if n.win == nil {
			for _, tm := range n.timers {
				if tm.ns != nsUser {
					return fmt.Errorf("%s subtask %d: a window timer of key %q at %d, but the operator is no window aggregate: the state it was restored from is of another operator", n.spec.UID, n.t.index, tm.key, tm.ts)
				}
			}
		}
		wins, expired, user := q.byKind(n.timers)
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
				e := wasmabi.Entry{Kind: wasmabi.EntryTimer, Flags: uint8(domain), Key: tm.key, Timestamp: tm.ts}
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
