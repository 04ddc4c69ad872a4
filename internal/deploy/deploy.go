// Package deploy defines the task deployment descriptor: what a
// coordinator hands a worker to run part of a job. It is plain, versioned
// data that survives JSON — the job's graph, the subtasks to run, where
// the other subtasks are, options in their raw form, modules by content
// digest — so the embedded mini-cluster (in memory) and the cluster (over
// the network) deploy the same thing.
//
// The coordinator builds descriptors from a plan (coordinator/plan); the
// worker resolves them into running tasks (worker/task). This package
// imports neither.
package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/weirstream/weir/internal/connspec"
	"github.com/weirstream/weir/internal/keygroup"
)

// Version is the descriptor version this build writes and reads. A worker
// refuses a descriptor of a newer version.
const Version = 1

// MaxSize bounds an encoded descriptor.
const MaxSize = 16 << 20

// ErrInvalid marks a descriptor that is malformed or inconsistent.
var ErrInvalid = errors.New("deploy: invalid descriptor")

// Descriptor is one deployment: a job attempt's graph and the subtasks of
// it that one worker runs.
type Descriptor struct {
	Version int    `json:"version"`
	Job     string `json:"job"` // job id
	Name    string `json:"name"`
	Attempt int    `json:"attempt"`
	Tenant  string `json:"tenant"`

	MaxParallelism int     `json:"max_parallelism"`
	Buffers        Buffers `json:"buffers"`
	State          State   `json:"state"`

	Vertices []Vertex `json:"vertices"` // topological order, Vertices[i].ID == i
	Edges    []Edge   `json:"edges"`    // Edges[i].ID == i

	// Subtasks are the subtasks this deployment runs.
	Subtasks []Subtask `json:"subtasks"`
	// Peers says where every subtask of the attempt runs: its worker's
	// data address. A channel between two subtasks of the same address is
	// in-process.
	Peers []Peer `json:"peers,omitempty"`
	// Restore is the state to start from; nil starts empty.
	Restore *Restore `json:"restore,omitempty"`
	// Checkpoints sets checkpointing up; nil when the job takes none.
	Checkpoints *Checkpoints `json:"checkpoints,omitempty"`
}

// Checkpoints is where a deployment's subtasks write their snapshots.
type Checkpoints struct {
	// Dir is the checkpoint folder the cluster's processes share: the
	// subtasks write Dir/<job>/chk-<n>/ files, the coordinator the
	// metadata.
	Dir string `json:"dir"`
	// AlignmentTimeout switches an aligned checkpoint to unaligned at a
	// subtask that aligned this long (0: never).
	AlignmentTimeout Duration `json:"alignment_timeout,omitempty"`
	// Incremental has subtasks on the pebble backend take periodic
	// checkpoints as native pebble checkpoints whose sstables go to the
	// job's shared area once (savepoints stay canonical).
	Incremental bool `json:"incremental,omitempty"`
}

// Buffers are the data plane's settings; zero values take the engine's
// defaults.
type Buffers struct {
	Size          int      `json:"size,omitempty"`
	Credits       int      `json:"credits,omitempty"`
	BatchSize     int      `json:"batch_size,omitempty"`
	FlushInterval Duration `json:"flush_interval,omitempty"`
}

// State names the keyed state backend.
type State struct {
	Backend string `json:"backend"` // "heap" or "pebble"
	Dir     string `json:"dir,omitempty"`
}

// Restore points at the snapshot a deployment starts from. It is filled
// by checkpoint recovery and savepoints.
type Restore struct {
	// Checkpoint is the folder of the checkpoint or savepoint
	// (<dir>/<job>/chk-<n>).
	Checkpoint string `json:"checkpoint,omitempty"`
	// AllowNonRestored drops the state of operators the job no longer
	// has.
	AllowNonRestored bool `json:"allow_non_restored,omitempty"`
}

// Vertex is a task: a chain of nodes run by Parallelism subtasks.
type Vertex struct {
	ID          int    `json:"id"`
	Name        string `json:"name"`
	Parallelism int    `json:"parallelism"`
	Nodes       []Node `json:"nodes"`
	// Inputs are the IDs of the edges into the head, by input index.
	Inputs []int `json:"inputs,omitempty"`
}

// Node kinds.
const (
	KindSource   = "source"
	KindOperator = "operator"
	KindSink     = "sink"
)

// Node is a source, operator or sink of a chain.
type Node struct {
	UID  string `json:"uid"`
	Kind string `json:"kind"`

	// Sources and sinks: the connector and its options, canonical.
	Connector string       `json:"connector,omitempty"`
	Options   connspec.Raw `json:"options,omitempty"`
	Watermark *Watermark   `json:"watermark,omitempty"`

	// Operators.
	Module      *ModuleRef      `json:"module,omitempty"`
	Params      json.RawMessage `json:"params,omitempty"`
	Window      *Window         `json:"window,omitempty"`
	StateTTL    Duration        `json:"state_ttl,omitempty"`
	OnError     string          `json:"on_error,omitempty"`
	SideOutputs []string        `json:"side_outputs,omitempty"`

	// Outputs lists, per output port, where its records go.
	Outputs [][]Target `json:"outputs,omitempty"`
}

// ModuleRef names an operator of a module by the module's content.
type ModuleRef struct {
	// Digest is the hex sha256 of the module's bytes, or "native" for an
	// operator linked into the worker binary (benchmarks).
	Digest   string `json:"digest"`
	Operator string `json:"operator"`
	// Name is the module's name for people (a registry name@version or a
	// file name); nothing resolves by it.
	Name string `json:"name,omitempty"`
}

// Native is the digest of operators linked into the worker.
const Native = "native"

// Watermark is a source's watermark strategy.
type Watermark struct {
	Strategy          string   `json:"strategy"`
	MaxOutOfOrderness Duration `json:"max_out_of_orderness,omitempty"`
	Interval          Duration `json:"interval,omitempty"`
	IdleTimeout       Duration `json:"idle_timeout,omitempty"`
}

// Window is an aggregate operator's window.
type Window struct {
	Type            string   `json:"type"`
	Size            Duration `json:"size,omitempty"`
	Slide           Duration `json:"slide,omitempty"`
	Gap             Duration `json:"gap,omitempty"`
	AllowedLateness Duration `json:"allowed_lateness,omitempty"`
	LatePort        int      `json:"late_port,omitempty"`
}

// Target is where an output port sends records: a chained node (Edge < 0;
// Node is its index in the vertex) or an edge to another vertex.
type Target struct {
	Node  int `json:"node"`
	Input int `json:"input,omitempty"`
	Edge  int `json:"edge"`
}

// Edge connects an output port of a node to an input of another vertex's
// head.
type Edge struct {
	ID        int    `json:"id"`
	From      int    `json:"from"`
	FromNode  int    `json:"from_node"`
	Port      int    `json:"port"`
	To        int    `json:"to"`
	Input     int    `json:"input"`
	Partition string `json:"partition"`
}

// Subtask is one subtask a deployment runs, with the key groups it owns.
type Subtask struct {
	Vertex    int            `json:"vertex"`
	Index     int            `json:"index"`
	KeyGroups keygroup.Range `json:"key_groups"`
}

// Peer says which data address runs a subtask.
type Peer struct {
	Vertex int    `json:"vertex"`
	Index  int    `json:"index"`
	Addr   string `json:"addr"`
}

// Duration is a time.Duration that travels as a Go duration string.
type Duration time.Duration

// MarshalJSON writes d as "1m30s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration must be a string like \"1.5s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Encode writes d as JSON.
func (d *Descriptor) Encode() ([]byte, error) {
	if d.Version == 0 {
		d.Version = Version
	}
	return json.Marshal(d)
}

// Decode reads and validates a descriptor. Unknown fields are refused, so
// a descriptor from another build fails loudly rather than losing parts.
func Decode(b []byte) (*Descriptor, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, over the %d-byte limit", ErrInvalid, len(b), MaxSize)
	}
	// The version first, so a newer descriptor is refused for what it is
	// rather than for a field this build does not know.
	var v struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if v.Version > Version {
		return nil, fmt.Errorf("%w: descriptor version %d is newer than this worker's %d; upgrade the worker", ErrInvalid, v.Version, Version)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var d Descriptor
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return &d, nil
}

// Validate checks that the descriptor is consistent: versions, IDs and
// references in range, parallelisms, key groups.
func (d *Descriptor) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	if d.Version < 1 || d.Version > Version {
		return bad("version %d; this build reads 1 to %d", d.Version, Version)
	}
	if d.Job == "" {
		return bad("no job id")
	}
	if d.Attempt < 0 {
		return bad("attempt %d", d.Attempt)
	}
	if d.MaxParallelism < 1 || d.MaxParallelism > keygroup.MaxMaxParallelism {
		return bad("max parallelism %d, want 1 to %d", d.MaxParallelism, keygroup.MaxMaxParallelism)
	}
	if d.Buffers.Size < 0 || d.Buffers.Credits < 0 || d.Buffers.BatchSize < 0 || d.Buffers.FlushInterval < 0 {
		return bad("negative buffer settings %+v", d.Buffers)
	}
	switch d.State.Backend {
	case "heap", "pebble":
	default:
		return bad("state backend %q, want heap or pebble", d.State.Backend)
	}
	for i, e := range d.Edges {
		if e.ID != i {
			return bad("edge %d has id %d", i, e.ID)
		}
		if e.From < 0 || e.From >= len(d.Vertices) || e.To <= e.From || e.To >= len(d.Vertices) {
			return bad("edge %d joins vertices %d -> %d", i, e.From, e.To)
		}
		if e.FromNode < 0 || e.FromNode >= len(d.Vertices[e.From].Nodes) {
			return bad("edge %d: from node %d out of range", i, e.FromNode)
		}
		switch e.Partition {
		case "forward":
			if d.Vertices[e.From].Parallelism != d.Vertices[e.To].Parallelism {
				return bad("forward edge %d joins parallelisms %d and %d", i, d.Vertices[e.From].Parallelism, d.Vertices[e.To].Parallelism)
			}
		case "key_by", "rebalance", "broadcast":
		default:
			return bad("edge %d: partition %q", i, e.Partition)
		}
	}
	for i, v := range d.Vertices {
		if v.ID != i {
			return bad("vertex %d has id %d", i, v.ID)
		}
		if v.Parallelism < 1 || v.Parallelism > d.MaxParallelism {
			return bad("vertex %d (%s): parallelism %d, want 1 to max parallelism %d", i, v.Name, v.Parallelism, d.MaxParallelism)
		}
		if len(v.Nodes) == 0 {
			return bad("vertex %d (%s) has no nodes", i, v.Name)
		}
		for _, e := range v.Inputs {
			if e < 0 || e >= len(d.Edges) || d.Edges[e].To != i {
				return bad("vertex %d (%s): input edge %d is not an edge into it", i, v.Name, e)
			}
		}
		for j, n := range v.Nodes {
			if err := d.validateNode(v, j, n); err != nil {
				return err
			}
		}
	}
	seen := map[[2]int]bool{}
	for _, s := range d.Subtasks {
		if s.Vertex < 0 || s.Vertex >= len(d.Vertices) || s.Index < 0 || s.Index >= d.Vertices[s.Vertex].Parallelism {
			return bad("subtask %d of vertex %d out of range", s.Index, s.Vertex)
		}
		if seen[[2]int{s.Vertex, s.Index}] {
			return bad("subtask %d of vertex %d listed twice", s.Index, s.Vertex)
		}
		seen[[2]int{s.Vertex, s.Index}] = true
		if want := keygroup.RangeFor(s.Index, d.Vertices[s.Vertex].Parallelism, d.MaxParallelism); s.KeyGroups != want {
			return bad("subtask %d of vertex %d: key groups %v, want %v", s.Index, s.Vertex, s.KeyGroups, want)
		}
	}
	for _, p := range d.Peers {
		if p.Vertex < 0 || p.Vertex >= len(d.Vertices) || p.Index < 0 || p.Index >= d.Vertices[p.Vertex].Parallelism {
			return bad("peer subtask %d of vertex %d out of range", p.Index, p.Vertex)
		}
	}
	return nil
}

func (d *Descriptor) validateNode(v Vertex, j int, n Node) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: vertex %d node %d (%s): %s", ErrInvalid, v.ID, j, n.UID, fmt.Sprintf(format, args...))
	}
	if n.UID == "" {
		return bad("no uid")
	}
	switch n.Kind {
	case KindSource, KindSink:
		if n.Connector == "" {
			return bad("no connector")
		}
		if n.Kind == KindSource && j != 0 {
			return bad("a source must head its chain")
		}
	case KindOperator:
		if n.Module == nil || n.Module.Digest == "" || n.Module.Operator == "" {
			return bad("no module digest and operator")
		}
		if n.Module.Digest != Native && !isHexDigest(n.Module.Digest) {
			return bad("module digest %q is not a hex sha256", n.Module.Digest)
		}
		if len(n.Params) > 0 && !json.Valid(n.Params) {
			return bad("params are not JSON")
		}
	default:
		return bad("kind %q", n.Kind)
	}
	for port, ts := range n.Outputs {
		for _, t := range ts {
			if t.Edge >= 0 {
				if t.Edge >= len(d.Edges) || d.Edges[t.Edge].From != v.ID || d.Edges[t.Edge].FromNode != j || d.Edges[t.Edge].Port != port {
					return bad("port %d: edge %d does not leave this port", port, t.Edge)
				}
			} else if t.Node <= j || t.Node >= len(v.Nodes) {
				return bad("port %d: chained node %d is not after it in the chain", port, t.Node)
			}
		}
	}
	return nil
}

func isHexDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Place splits a whole-attempt descriptor by where each subtask runs:
// addr(vertex, index) is the data address of the worker that runs it. Each
// returned descriptor lists its own subtasks and every peer.
func (d *Descriptor) Place(addr func(vertex, index int) string) map[string]*Descriptor {
	var peers []Peer
	for _, s := range d.Subtasks {
		peers = append(peers, Peer{Vertex: s.Vertex, Index: s.Index, Addr: addr(s.Vertex, s.Index)})
	}
	out := map[string]*Descriptor{}
	for i, s := range d.Subtasks {
		a := peers[i].Addr
		w := out[a]
		if w == nil {
			c := *d
			c.Subtasks, c.Peers = nil, append([]Peer(nil), peers...)
			w = &c
			out[a] = w
		}
		w.Subtasks = append(w.Subtasks, s)
	}
	return out
}
