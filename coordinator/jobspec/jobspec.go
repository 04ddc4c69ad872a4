// Package jobspec reads and validates job specs: the YAML (or JSON) file
// that declares a job's sources, operators, sinks, the edges between them,
// parallelism, windows, state and restart settings. The format is
// documented in docs/jobspec.md.
//
// Parse keeps the line and column of every field, so each problem it finds
// — and each problem later code finds, through Job.Errorf — is reported as
//
//	job.yaml:14:9: operators[1].inputs[0].from: no node "splt" (nodes: lines, split, count)
//
// Parse checks everything that can be checked without loading operator
// modules: fields, names, references, cycles, parallelism, windows,
// connector options. coordinator/plan checks the rest against the modules'
// descriptors when it builds the execution plan.
package jobspec

import (
	"errors"
	"fmt"
	"time"

	"github.com/weirstream/weir/internal/barrier"
	"github.com/weirstream/weir/internal/connspec"
)

// Defaults of a job spec's optional fields.
const (
	DefaultMaxParallelism    = 128 // = keygroup.DefaultMaxParallelism
	DefaultParallelism       = 1
	DefaultSlotSharingGroup  = "default"
	DefaultWatermarkInterval = 200 * time.Millisecond
	DefaultRestartAttempts   = 3
	DefaultRestartDelay      = time.Second
)

// Job is a parsed and validated job spec. Every optional field holds its
// default when the spec leaves it out, and node parallelism, slot sharing
// groups and input partitions are resolved, so code reading a Job never
// applies defaults itself.
type Job struct {
	// File is the spec's file name as given to Parse (used in errors).
	File string `json:"file,omitempty"`
	// Dir is the folder relative paths in the spec are resolved against:
	// the folder of File.
	Dir string `json:"dir"`

	Name           string  `json:"name"`
	MaxParallelism int     `json:"max_parallelism"`
	Parallelism    int     `json:"parallelism"` // default of nodes that set none
	Chaining       bool    `json:"chaining"`
	State          State   `json:"state"`
	Restart        Restart `json:"restart"`
	// Checkpoints is the checkpointing of the job; Interval 0 (no
	// checkpoints block) means none.
	Checkpoints Checkpoints `json:"checkpoints"`
	// Modules are the operator modules by name, sorted by name.
	Modules []*Module `json:"modules"`

	// The nodes of the job in spec order, by kind. Every *Node is in
	// exactly one of these lists.
	Sources   []*Node `json:"sources"`
	Operators []*Node `json:"operators"`
	Sinks     []*Node `json:"sinks"`

	// pos holds the position of every field that was in the spec, by
	// field path ("operators[1].inputs[0].from").
	pos   map[string]Pos
	nodes map[string]*Node
}

// StateBackend names a keyed state backend.
type StateBackend string

// State backends.
const (
	BackendHeap   StateBackend = "heap"
	BackendPebble StateBackend = "pebble"
)

// State configures the job's keyed state.
type State struct {
	Backend StateBackend `json:"backend"` // default heap
	// Dir is the pebble directory, resolved against Job.Dir; "" means a
	// temporary directory removed when the job ends.
	Dir string `json:"dir,omitempty"`
	// TTL is the default time to live of keyed state; 0 keeps it forever.
	TTL time.Duration `json:"ttl"`
}

// RestartStrategy names what happens when a task fails.
type RestartStrategy string

// Restart strategies (coordinator/restart carries them out).
const (
	RestartNone             RestartStrategy = "none"
	RestartFixedDelay       RestartStrategy = "fixed-delay"
	RestartExponentialDelay RestartStrategy = "exponential-delay"
	RestartFailureRate      RestartStrategy = "failure-rate"
)

// Defaults of the exponential-delay and failure-rate restart strategies.
const (
	DefaultRestartInitialDelay = time.Second
	DefaultRestartMaxDelay     = time.Minute
	DefaultRestartMultiplier   = 2.0
	DefaultRestartResetAfter   = time.Hour
	DefaultRestartJitter       = 0.1
	DefaultRestartMaxFailures  = 1
	DefaultRestartInterval     = time.Minute
)

// Restart is the job's restart strategy. Only the fields of Strategy are
// set (with their defaults); the others are zero, except that strategy
// none keeps the fixed-delay defaults of Attempts and Delay.
type Restart struct {
	Strategy RestartStrategy `json:"strategy"` // default none
	// Attempts is, for fixed-delay, the restarts before the job fails
	// (default 3); for exponential-delay, the restarts since the delay was
	// last reset before the job fails, 0 for no limit (the default).
	Attempts int `json:"attempts"`
	// Delay is the wait before each restart of fixed-delay and
	// failure-rate (default 1s).
	Delay time.Duration `json:"delay"`

	// exponential-delay: the first restart waits InitialDelay, each next
	// one Multiplier times longer, at most MaxDelay, each spread by
	// ±Jitter (a fraction of the delay); after ResetAfter without a
	// failure the delay (and the attempt count) start over.
	InitialDelay time.Duration `json:"initial_delay,omitempty"`
	MaxDelay     time.Duration `json:"max_delay,omitempty"`
	Multiplier   float64       `json:"multiplier,omitempty"`
	ResetAfter   time.Duration `json:"reset_after,omitempty"`
	Jitter       float64       `json:"jitter,omitempty"`

	// failure-rate: the job fails when more than MaxFailures failures
	// fall within Interval; each restart waits Delay.
	MaxFailures int           `json:"max_failures,omitempty"`
	Interval    time.Duration `json:"interval,omitempty"`
}

// Defaults and limits of the checkpoints block.
const (
	DefaultCheckpointTimeout       = 10 * time.Minute
	DefaultCheckpointMaxConcurrent = 1
	DefaultCheckpointRetained      = 1
	DefaultCheckpointMode          = barrier.Aligned
	// MinCheckpointInterval bounds how often checkpoints can be taken:
	// more often, the barriers and acknowledgements alone would be most
	// of the work.
	MinCheckpointInterval = 10 * time.Millisecond
	// MaxCheckpointConcurrent and MaxCheckpointsRetained bound what a
	// spec may ask the coordinator to track at once.
	MaxCheckpointConcurrent = 100
	MaxCheckpointsRetained  = 100
)

// Checkpoints configures the job's periodic checkpoints (coordinator/
// checkpoint runs them). Every field holds its default when the spec
// leaves it out. The block is parsed and validated; the runtime does not
// act on it yet.
type Checkpoints struct {
	// Interval is the time from one checkpoint's start to the next; 0
	// when the spec has no checkpoints block: no periodic checkpoints.
	Interval time.Duration `json:"interval"`
	// Timeout is how long a checkpoint may take before it is aborted
	// (default 10m).
	Timeout time.Duration `json:"timeout"`
	// MinPause is the least time between the end of one checkpoint and
	// the start of the next; more than 0 implies one at a time.
	MinPause time.Duration `json:"min_pause"`
	// MaxConcurrent is how many checkpoints may be in progress at once
	// (default 1).
	MaxConcurrent int `json:"max_concurrent"`
	// TolerableFailures is how many checkpoints in a row may fail
	// before the job fails (default 0).
	TolerableFailures int `json:"tolerable_failures"`
	// Mode is how barriers align (default aligned).
	Mode barrier.Mode `json:"mode"`
	// AlignmentTimeout switches an aligned checkpoint to unaligned at a
	// task still aligning this long after the sources injected its
	// barriers; 0 never does (the default).
	AlignmentTimeout time.Duration `json:"alignment_timeout"`
	// Retained is how many completed checkpoints are kept (default 1).
	Retained int `json:"retained"`
	// Dir is the checkpoint folder, resolved against Job.Dir; "" leaves
	// the choice to the runtime.
	Dir string `json:"dir,omitempty"`
	// Incremental has a job on the pebble backend take its periodic
	// checkpoints incrementally: each uploads only the sstables that no
	// earlier retained checkpoint of its database did (default false:
	// see docs/jobspec.md for when it pays; savepoints are always full and
	// canonical). Other backends ignore it.
	Incremental bool `json:"incremental"`
}

// Enabled reports whether the job takes periodic checkpoints.
func (c Checkpoints) Enabled() bool { return c.Interval > 0 }

// Module is an operator module the spec names: a local path, or a module
// in a coordinator's registry (name@version).
type Module struct {
	Name string `json:"name"`
	// Path is the path as written in the spec; "" for a registry module.
	Path string `json:"path"`
	// Resolved is Path resolved against Job.Dir.
	Resolved string `json:"resolved"`
	// IsDir is true when Resolved is a folder holding Go or C operator
	// sources, to be built (internal/modbuild); false for a .wasm file.
	IsDir bool `json:"is_dir"`
	// Registry is the registry module the spec names instead of a path
	// ("modules: {wc: wordcount@1.0}"); nil for a local path.
	Registry *ModuleRef `json:"registry,omitempty"`
	// Field is the spec path of the module ("modules.wc").
	Field string `json:"-"`
}

// ModuleRef names one version of a registry module.
type ModuleRef struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Digest is the sha256 of the module's bytes, set when the reference
	// is resolved against a registry (the Dispatcher does at submit).
	Digest string `json:"digest,omitempty"`
}

// String is name@version.
func (r *ModuleRef) String() string { return r.Name + "@" + r.Version }

// LocalOnly reports every module of the job that names a registry module,
// for the commands that run a job locally (weir run, weir job plan).
func (j *Job) LocalOnly() error {
	var errs []error
	for _, m := range j.Modules {
		if m.Registry != nil {
			errs = append(errs, j.Errorf(m.Field, "names the registry module %s; this command loads local modules only: give the path of a .wasm file or an operator folder, or submit the job to a coordinator with `weir job submit`", m.Registry))
		}
	}
	return errors.Join(errs...)
}

// NodeKind says whether a node is a source, an operator or a sink.
type NodeKind string

// Node kinds.
const (
	KindSource   NodeKind = "source"
	KindOperator NodeKind = "operator"
	KindSink     NodeKind = "sink"
)

// Node is one source, operator or sink of the job. Common fields come
// first; the kind-specific ones are in exactly one of Source, Operator and
// Sink.
type Node struct {
	Kind NodeKind `json:"kind"`
	// UID is the node's stable id, unique among all nodes: state in
	// savepoints is kept by it.
	UID string `json:"uid"`
	// Parallelism is the number of parallel subtasks (the job's
	// parallelism when the spec sets none).
	Parallelism int `json:"parallelism"`
	// Chain is false when the spec forbids chaining this node with its
	// neighbours.
	Chain            bool   `json:"chain"`
	SlotSharingGroup string `json:"slot_sharing_group"`
	// Inputs are the node's inputs in order (input 0, input 1). Sources
	// have none, sinks exactly one, operators one or two.
	Inputs []*Input `json:"inputs,omitempty"`
	// Field is the node's spec path ("operators[1]"); Job.Pos(Field) is
	// where it starts.
	Field string `json:"-"`

	Source   *Source   `json:"source,omitempty"`
	Operator *Operator `json:"operator,omitempty"`
	Sink     *Sink     `json:"sink,omitempty"`
}

// Partition says how an edge spreads records over the downstream subtasks.
type Partition string

// Partitions.
const (
	// Forward sends subtask i's records to subtask i downstream; both
	// sides must have the same parallelism.
	Forward Partition = "forward"
	// KeyBy sends each record to the subtask owning its key's key group.
	KeyBy Partition = "key_by"
	// Rebalance spreads records round-robin.
	Rebalance Partition = "rebalance"
	// Broadcast sends every record to every downstream subtask.
	Broadcast Partition = "broadcast"
)

// Input is one input of a node: the node (and output) it reads, and how.
type Input struct {
	// From is the reference as written: "uid" or "uid.output".
	From string `json:"from"`
	// Node is the uid of the upstream node.
	Node string `json:"node"`
	// Output is the name of the upstream side output, "" for its main
	// output. Which names exist is checked by coordinator/plan.
	Output string `json:"output,omitempty"`
	// Partition is the spec's partition, or the default: forward when
	// both sides have the same parallelism, else rebalance.
	Partition Partition `json:"partition"`
	// PartitionSet is true when the spec set Partition explicitly.
	PartitionSet bool `json:"-"`
	// Field is the input's spec path ("operators[1].inputs[0]").
	Field string `json:"-"`
}

// Source holds the fields of a source node.
type Source struct {
	Connector string `json:"connector"`
	// RawOptions are the options as written (for display).
	RawOptions map[string]any `json:"options,omitempty"`
	// Spec is the connector's spec (internal/connspec); Options its
	// validated options, typed, with defaults applied. Spec.Encode(Options)
	// is their serialisable form, for deployment descriptors.
	Spec      *connspec.Spec   `json:"-"`
	Options   connspec.Options `json:"-"`
	Watermark Watermark        `json:"watermark"`
}

// WatermarkStrategy names how a source makes watermarks.
type WatermarkStrategy string

// Watermark strategies. "ascending" in a spec is read as WatermarkBounded
// with no out-of-orderness.
const (
	// WatermarkBounded emits, every Interval, the largest timestamp seen
	// minus MaxOutOfOrderness.
	WatermarkBounded WatermarkStrategy = "bounded"
	// WatermarkPunctuated emits none at the source: a module downstream
	// emits watermarks.
	WatermarkPunctuated WatermarkStrategy = "punctuated"
	// WatermarkNone emits no watermarks (processing time only).
	WatermarkNone WatermarkStrategy = "none"
)

// Watermark is a source's watermark strategy.
type Watermark struct {
	Strategy          WatermarkStrategy `json:"strategy"` // default bounded
	MaxOutOfOrderness time.Duration     `json:"max_out_of_orderness"`
	Interval          time.Duration     `json:"interval"`     // default 200ms
	IdleTimeout       time.Duration     `json:"idle_timeout"` // 0: never idle
}

// ErrorPolicy says what a record that makes the module fail does.
type ErrorPolicy string

// Error policies.
const (
	OnErrorFail   ErrorPolicy = "fail"   // fail the task (default)
	OnErrorSkip   ErrorPolicy = "skip"   // drop the record, count it
	OnErrorDivert ErrorPolicy = "divert" // send it to side output "errors"
)

// ErrorsOutput is the host side output that on_error: divert sends failing
// records to.
const ErrorsOutput = "errors"

// Operator holds the fields of an operator node.
type Operator struct {
	Module   string `json:"module"`   // a Job.Modules name
	Operator string `json:"operator"` // an operator the module exports
	// Params are the operator's parameters as JSON, passed to its open;
	// nil when the spec sets none.
	Params   []byte        `json:"-"`
	StateTTL time.Duration `json:"state_ttl"` // default: State.TTL
	OnError  ErrorPolicy   `json:"on_error"`  // default fail
	// Window is the window of an aggregate operator; nil when the spec
	// sets none, which means the global window.
	Window *Window `json:"window,omitempty"`
}

// WindowType names a window assigner.
type WindowType string

// Window types.
const (
	WindowGlobal   WindowType = "global"
	WindowTumbling WindowType = "tumbling"
	WindowSliding  WindowType = "sliding"
	WindowSession  WindowType = "session"
)

// Window is the window of an aggregate operator. Only the fields of its
// Type are set.
type Window struct {
	Type            WindowType    `json:"type"`
	Size            time.Duration `json:"size,omitempty"`  // tumbling, sliding
	Slide           time.Duration `json:"slide,omitempty"` // sliding; Size is a multiple of it
	Gap             time.Duration `json:"gap,omitempty"`   // session
	AllowedLateness time.Duration `json:"allowed_lateness"`
	// LateOutput is the side output of records later than the allowed
	// lateness; "" drops them (they are counted).
	LateOutput string `json:"late_output,omitempty"`
}

// Sink holds the fields of a sink node.
type Sink struct {
	Connector  string           `json:"connector"`
	RawOptions map[string]any   `json:"options,omitempty"`
	Spec       *connspec.Spec   `json:"-"`
	Options    connspec.Options `json:"-"`
}

// Node returns the node with the given uid, or nil.
func (j *Job) Node(uid string) *Node { return j.nodes[uid] }

// Nodes returns every node: sources, operators, sinks, each in spec order.
func (j *Job) Nodes() []*Node {
	out := make([]*Node, 0, len(j.Sources)+len(j.Operators)+len(j.Sinks))
	out = append(out, j.Sources...)
	out = append(out, j.Operators...)
	return append(out, j.Sinks...)
}

// Module returns the module with the given name, or nil.
func (j *Job) Module(name string) *Module {
	for _, m := range j.Modules {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// Pos is a position in a job spec file. Line and Col are 1-based; 0 means
// unknown.
type Pos struct {
	File string `json:"file,omitempty"`
	Line int    `json:"line"`
	Col  int    `json:"col"`
}

// String formats p as file:line:col, leaving out what is unknown.
func (p Pos) String() string {
	switch {
	case p.Line == 0 && p.File == "":
		return ""
	case p.Line == 0:
		return p.File
	case p.File == "":
		return fmt.Sprintf("%d:%d", p.Line, p.Col)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Pos returns where a field is in the spec. field is a path as in errors:
// "name", "state.backend", "operators[1]", "operators[1].inputs[0].from",
// "sources[0].options.path"; a Node's or Input's Field gives its own path.
// For a field the spec left out (a default), Pos returns the position of
// the closest enclosing field that is there, so an error about a default
// still points at the right node; for an unknown path, the file's start.
func (j *Job) Pos(field string) Pos {
	for f := field; f != ""; f = parentField(f) {
		if p, ok := j.pos[f]; ok {
			return p
		}
	}
	return Pos{File: j.File, Line: 1, Col: 1}
}

// Errorf returns an *Error at the position of field: the way for code
// that works on a parsed Job (the planner, the runtime) to report a
// problem in the spec.
func (j *Job) Errorf(field, format string, args ...any) *Error {
	p := j.Pos(field)
	return &Error{File: p.File, Line: p.Line, Col: p.Col, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// parentField strips the last element of a field path: "a.b[2].c" ->
// "a.b[2]" -> "a.b" -> "a" -> "".
func parentField(f string) string {
	for i := len(f) - 1; i >= 0; i-- {
		switch f[i] {
		case '.':
			return f[:i]
		case '[':
			return f[:i]
		}
	}
	return ""
}
