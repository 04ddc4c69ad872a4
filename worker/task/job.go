// Package task is the worker side of the engine: it runs the tasks of a job
// — chains of sources, WebAssembly (or native) operators and sinks — each
// subtask on its own goroutine with a mailbox loop, connected by channels
// with credit-based flow control, with event time, keyed state, timers and
// windows kept by the host.
//
// The coordinator side (coordinator/plan) decides what runs where; a Job is
// what a worker is given to run: everything resolved, nothing left to look
// up. The embedded mini-cluster (internal/minicluster) joins the two in one
// process; the cluster joins them over the network, with the same Job.
package task

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/weirstream/weir/netstack"
	"github.com/weirstream/weir/wasmabi"
	"github.com/weirstream/weir/worker/connector"
	"github.com/weirstream/weir/worker/state"
)

// Job is a resolved job: vertices (tasks, each a chain of nodes) and the
// edges between them.
type Job struct {
	// ID, Attempt and Tenant identify the job attempt (channels between
	// workers are named by them).
	ID      string
	Attempt int
	Tenant  string

	Name           string
	MaxParallelism int
	Vertices       []*Vertex // topological order
	Edges          []*Edge
	// State is the keyed state backend shared by all tasks of the job on
	// this worker.
	State state.Backend
	// Buffer settings; zero values take the defaults.
	BufferSize int // bytes per network buffer (default 32 KiB)
	Credits    int // buffers in flight per channel (default 4)
	BatchSize  int // records a source reads per batch (default 1024)
	// FlushInterval is the longest a partly filled buffer waits while its
	// subtask is busy (default 5ms).
	FlushInterval time.Duration

	// Subtasks are the subtasks this process runs; nil runs them all.
	Subtasks []SubtaskRef
	// Network joins the channels whose other end is a subtask this process
	// does not run; it may be nil when it runs them all.
	Network Network
	// Checkpoints sets checkpointing up (checkpoint.go); nil takes none.
	Checkpoints *Checkpointing
}

// SubtaskRef names a subtask: a vertex and an index.
type SubtaskRef struct {
	Vertex, Index int
}

// Channel names one channel of a job attempt: edge, producer subtask and
// consumer subtask.
type Channel struct {
	Edge, From, To int
}

// Network joins a run's channels to subtasks that run elsewhere.
type Network interface {
	// Output returns the producer end of channel c, whose consumer runs
	// elsewhere.
	Output(ctx context.Context, c Channel) (netstack.Subpartition, error)
	// Inputs connects, all at once, the channels of gate whose producers
	// run elsewhere (so they can share the gate's floating buffers). The
	// returned closer releases them.
	Inputs(gate *netstack.InputGate, chans []RemoteInput) (io.Closer, error)
}

// RemoteInput is a channel of an input gate whose producer runs
// elsewhere: the channel, and its index in the gate.
type RemoteInput struct {
	Channel Channel
	Index   int
}

// Vertex is one task: a tree of chained nodes, run by Parallelism
// subtasks.
type Vertex struct {
	ID          int
	Name        string
	Parallelism int
	Nodes       []*Node // Nodes[0] is the head; each node's chained targets come later
	// Inputs are the edges into the head, by the head's input index (a
	// co_process head has inputs 0 and 1).
	Inputs []*Edge
}

// NodeKind says what a node is.
type NodeKind int

const (
	NodeSource NodeKind = iota
	NodeOperator
	NodeSink
)

func (k NodeKind) String() string {
	switch k {
	case NodeSource:
		return "source"
	case NodeOperator:
		return "operator"
	case NodeSink:
		return "sink"
	}
	return fmt.Sprintf("NodeKind(%d)", int(k))
}

// Node is one source, operator or sink of a chain.
type Node struct {
	UID  string
	Kind NodeKind

	// Sources.
	Source        *connector.Spec
	SourceOptions connector.Options
	Watermark     WatermarkSpec

	// Operators.
	Desc     *wasmabi.OperatorDesc
	New      OperatorFactory // one instance per subtask
	Params   []byte          // JSON for open
	Window   *WindowSpec     // aggregate operators; nil = global window
	StateTTL time.Duration
	OnError  ErrorPolicy
	// SideOutputs names the node's output ports after 0 (main): the
	// operator's own side outputs in descriptor order, then the host's
	// ("errors" for OnError divert, the window's late output).
	SideOutputs []string

	// Sinks.
	Sink        *connector.Spec
	SinkOptions connector.Options

	// Outputs lists, per output port (0 main, then SideOutputs), where the
	// records of that port go.
	Outputs [][]Target
}

// Target is where an output port sends records: a chained node of the same
// vertex (Node >= 0, by index in Vertex.Nodes, with the input index it
// feeds) or an edge to another vertex (Edge != nil).
type Target struct {
	Node  int
	Input int
	Edge  *Edge
}

// Partition says how an edge spreads records over the downstream subtasks.
type Partition string

const (
	Forward   Partition = "forward"
	KeyBy     Partition = "key_by"
	Rebalance Partition = "rebalance"
	Broadcast Partition = "broadcast"
)

// Edge connects an output port of a node to an input of another vertex's
// head.
type Edge struct {
	ID        int
	From      *Vertex
	FromNode  int // index in From.Nodes
	Port      int
	To        *Vertex
	Input     int // input index of To's head
	Partition Partition
}

// WatermarkStrategy names how a source makes watermarks.
type WatermarkStrategy string

const (
	WatermarkBounded    WatermarkStrategy = "bounded"
	WatermarkPunctuated WatermarkStrategy = "punctuated"
	WatermarkNone       WatermarkStrategy = "none"
)

// WatermarkSpec is a source's watermark strategy.
type WatermarkSpec struct {
	Strategy          WatermarkStrategy
	MaxOutOfOrderness time.Duration
	Interval          time.Duration // periodic emission; default 200ms
	IdleTimeout       time.Duration // 0: never idle
}

// WindowType names a window assigner.
type WindowType string

const (
	WindowGlobal   WindowType = "global"
	WindowTumbling WindowType = "tumbling"
	WindowSliding  WindowType = "sliding"
	WindowSession  WindowType = "session"
)

// WindowSpec is the window of an aggregate operator.
type WindowSpec struct {
	Type            WindowType
	Size            time.Duration
	Slide           time.Duration
	Gap             time.Duration
	AllowedLateness time.Duration
	// LatePort is the output port of late records, 0 when they are dropped.
	LatePort int
}

// ErrorPolicy says what a record that makes the module fail does.
type ErrorPolicy string

const (
	OnErrorFail   ErrorPolicy = "fail"
	OnErrorSkip   ErrorPolicy = "skip"
	OnErrorDivert ErrorPolicy = "divert"
)

// Operator is one instance of a user operator: a WebAssembly instance
// (*wasmhost.Instance satisfies it) or the same code compiled natively.
type Operator interface {
	// Open runs the operator's open with its parameters.
	Open(params []byte) error
	// Call runs a method over an encoded batch (header and entries) and
	// returns the output entries, owned by the operator until the next
	// call.
	Call(method wasmabi.Method, in []byte) ([]byte, error)
	Close() error
}

// Services is what an operator instance reaches on the host: it is
// wasmhost.Services, restated here so native operators need not import the
// WebAssembly host.
type Services interface {
	StateRegister(name string, kind wasmabi.StateKind) (uint32, error)
	State(op wasmabi.StateOp, id uint32, key, userKey, value, out []byte) (int64, error)
	Timer(op wasmabi.TimerOp, domain wasmabi.TimeDomain, ts int64, key []byte) error
	Log(level int, msg string)
	Counter(name string, delta int64)
}

// OperatorFactory makes the instance of one subtask.
type OperatorFactory func(ctx context.Context, subtask int, svc Services) (Operator, error)
