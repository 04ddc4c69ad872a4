// Package ckptmeta is what a completed checkpoint or savepoint says about
// the job it was taken of: the payload of its ckptstore metadata. For every
// operator (by uid) it names the parallelism it ran at, its module's content
// digest and ABI version, the states it declared and, per subtask, the files
// holding its snapshot. Restores match operators by uid against it; `weir
// savepoint inspect` prints it.
//
// The package is a leaf: the coordinator writes payloads, workers read them.
package ckptmeta

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Version is the version of the payload format.
const Version = 1

// ErrInvalid is returned by Decode for a payload that does not validate.
var ErrInvalid = errors.New("ckptmeta: invalid payload")

// Payload is what a checkpoint's metadata carries besides its file list.
type Payload struct {
	Version    int    `json:"version"`
	Job        string `json:"job"`
	Checkpoint uint64 `json:"checkpoint"`
	Savepoint  bool   `json:"savepoint,omitempty"`
	// Taken is when the checkpoint started (wall clock).
	Taken time.Time `json:"taken"`
	// Mode is the barrier mode it was taken in.
	Mode string `json:"mode"`
	// MaxParallelism is the job's number of key groups; a restore must
	// have the same.
	MaxParallelism int `json:"max_parallelism"`
	// Backend is the state backend it was taken from ("heap" or
	// "pebble"); the snapshot files are in the canonical format either
	// way, so it restores into the other one as well.
	Backend   string     `json:"backend,omitempty"`
	Operators []Operator `json:"operators"`
}

// Node kinds, as Operator.Kind says them.
const (
	KindSource   = "source"
	KindOperator = "operator"
	KindSink     = "sink"
)

// Operator is one node of the job, by uid.
type Operator struct {
	UID         string `json:"uid"`
	Kind        string `json:"kind"`
	Vertex      int    `json:"vertex"` // the task it ran in
	Parallelism int    `json:"parallelism"`
	// Module is the content digest ("sha256:...") of an operator's
	// module and ABI its ABI version; empty and 0 for connectors.
	Module string `json:"module,omitempty"`
	ABI    int    `json:"abi,omitempty"`
	// Inputs are, for the head of a task, the partitions of the edges
	// into it by input index (HeadInputs): what its in-flight data came
	// on. Empty (not recorded) for checkpoints before they were.
	Inputs []string `json:"inputs,omitempty"`
	// States are the states the operator declared (name and kind, as
	// wasmabi names kinds), sorted by name.
	States   []State   `json:"states,omitempty"`
	Subtasks []Subtask `json:"subtasks"`
}

// State is one declared state.
type State struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
}

// Subtask is one parallel instance of an operator in the checkpoint.
type Subtask struct {
	Index int `json:"index"`
	// Ended is true for a subtask that had ended its input (all of it
	// processed) when it snapshotted: its files are its final state. An
	// operator whose every subtask had ended is finished on restore: its
	// end of input does not run again.
	Ended bool `json:"ended,omitempty"`
	// Finished is true for a subtask that had ended before the
	// checkpoint and wrote no files (builds before the final checkpoint
	// wrote it; Restorable refuses it).
	Finished bool `json:"finished,omitempty"`
	// KeyGroups is the first and one past the last key group it owned.
	KeyGroups [2]int `json:"key_groups"`
	// Files are the checkpoint files of its snapshot, by role.
	Files []File `json:"files,omitempty"`
}

// File roles.
const (
	// RoleState is a canonical state snapshot (internal/snapshot): keyed
	// and operator state and timers.
	RoleState = "state"
	// RoleSplits is a source's splits (internal/splits, encoded).
	RoleSplits = "splits"
	// RoleSink is a two-phase-commit sink's pre-committed transactions.
	RoleSink = "sink"
	// RoleInFlight is the in-flight data of an unaligned checkpoint.
	RoleInFlight = "inflight"
	// RolePebbleSST is an sstable of an incremental checkpoint: a file of
	// the job's shared area (Shared), which later checkpoints of the same
	// database name again instead of uploading it again. Path is its name
	// in the pebble checkpoint.
	RolePebbleSST = "pebble-sst"
	// RolePebbleMeta is any other file of an incremental checkpoint
	// (manifest, options, WAL, the backend's timers): in the checkpoint's
	// folder. Path is its name in the pebble checkpoint.
	RolePebbleMeta = "pebble-meta"
)

// File is one file of a subtask's snapshot.
type File struct {
	Role string `json:"role"`
	Name string `json:"name"` // in the checkpoint's folder, or the shared area
	Size int64  `json:"size"`
	// Shared says Name is in the job's shared area.
	Shared bool `json:"shared,omitempty"`
	// Path is the file's name inside a pebble checkpoint (roles
	// RolePebbleSST and RolePebbleMeta): every operator of a subtask's
	// chain names the same files, a native checkpoint of the subtask's
	// key groups.
	Path string `json:"path,omitempty"`
}

// Incremental says whether the files are a pebble checkpoint.
func Incremental(files []File) bool {
	for _, f := range files {
		if f.Role == RolePebbleSST || f.Role == RolePebbleMeta {
			return true
		}
	}
	return false
}

// FileName is the name of the file of role for subtask index of the
// operator uid: unique within one checkpoint.
func FileName(uid string, index int, role string) string {
	return uid + "." + strconv.Itoa(index) + "." + role
}

// Operator returns the operator with uid, or nil.
func (p *Payload) Operator(uid string) *Operator {
	for i := range p.Operators {
		if p.Operators[i].UID == uid {
			return &p.Operators[i]
		}
	}
	return nil
}

// Ended says every subtask of o had ended its input: o had finished.
func (o *Operator) Ended() bool {
	for _, s := range o.Subtasks {
		if !s.Ended {
			return false
		}
	}
	return len(o.Subtasks) > 0
}

// Files returns the files of role over every subtask of o, by subtask
// index (nil for a subtask that has none).
func (o *Operator) Files(role string) []*File {
	out := make([]*File, len(o.Subtasks))
	for i := range o.Subtasks {
		for j := range o.Subtasks[i].Files {
			if f := &o.Subtasks[i].Files[j]; f.Role == role {
				out[i] = f
			}
		}
	}
	return out
}

// Size is the bytes of every file of o.
func (o *Operator) Size() int64 {
	var n int64
	for _, s := range o.Subtasks {
		for _, f := range s.Files {
			n += f.Size
		}
	}
	return n
}

// Encode returns the payload's JSON.
func Encode(p *Payload) (json.RawMessage, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(p)
}

// Decode parses and validates a payload.
func Decode(b []byte) (*Payload, error) {
	var p Payload
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if p.Version > Version {
		return nil, fmt.Errorf("%w: version %d, newer than this build's %d: use a newer weir", ErrInvalid, p.Version, Version)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Validate checks the payload's shape: operators unique, subtasks indexed
// 0..parallelism-1, key groups within max parallelism.
func (p *Payload) Validate() error {
	if p.Version < 1 {
		return fmt.Errorf("%w: version %d", ErrInvalid, p.Version)
	}
	if p.MaxParallelism < 1 || p.MaxParallelism > 1<<15 {
		return fmt.Errorf("%w: max parallelism %d", ErrInvalid, p.MaxParallelism)
	}
	seen := map[string]bool{}
	for _, o := range p.Operators {
		if o.UID == "" || seen[o.UID] {
			return fmt.Errorf("%w: operator uid %q empty or repeated", ErrInvalid, o.UID)
		}
		seen[o.UID] = true
		if o.Parallelism < 1 || o.Parallelism > p.MaxParallelism || len(o.Subtasks) != o.Parallelism {
			return fmt.Errorf("%w: operator %s: parallelism %d with %d subtasks (max parallelism %d)", ErrInvalid, o.UID, o.Parallelism, len(o.Subtasks), p.MaxParallelism)
		}
		for i, s := range o.Subtasks {
			if s.Index != i || s.KeyGroups[0] < 0 || s.KeyGroups[0] > s.KeyGroups[1] || s.KeyGroups[1] > p.MaxParallelism {
				return fmt.Errorf("%w: operator %s subtask %d: index %d, key groups %v", ErrInvalid, o.UID, i, s.Index, s.KeyGroups)
			}
		}
	}
	return nil
}

// Unmatched returns the uids of operators with state in p that have no
// operator among uids: what a restore would drop.
func (p *Payload) Unmatched(uids []string) []string {
	var out []string
	for _, o := range p.Operators {
		if slices.Contains(uids, o.UID) || o.Size() == 0 {
			continue
		}
		out = append(out, o.UID)
	}
	slices.Sort(out)
	return out
}

// StateDiff compares the states an operator declared in the checkpoint
// with those a new module version declares, and describes the differences
// (a name missing on either side, a kind that changed); empty when they
// match.
func StateDiff(old, new []State) []string {
	var out []string
	find := func(ss []State, name string) *State {
		for i := range ss {
			if ss[i].Name == name {
				return &ss[i]
			}
		}
		return nil
	}
	for _, o := range old {
		switch n := find(new, o.Name); {
		case n == nil:
			out = append(out, fmt.Sprintf("state %q (%s) is not declared by the new module", o.Name, o.Kind))
		case n.Kind != o.Kind:
			out = append(out, fmt.Sprintf("state %q was %s, is now %s", o.Name, o.Kind, n.Kind))
		}
	}
	for _, n := range new {
		if find(old, n.Name) == nil {
			out = append(out, fmt.Sprintf("state %q (%s) is new", n.Name, n.Kind))
		}
	}
	return out
}

// Summary is a one-line description, for logs.
func (p *Payload) Summary() string {
	var b strings.Builder
	what := "checkpoint"
	if p.Savepoint {
		what = "savepoint"
	}
	fmt.Fprintf(&b, "%s %d of job %s, %d operators", what, p.Checkpoint, p.Job, len(p.Operators))
	return b.String()
}

// SharedName is the name in the job's shared area of file (an sstable's
// name in its database) uploaded first by checkpoint ckpt, from the
// database instance of subtask index of vertex in attempt: sstable
// numbers repeat across databases, so the writer's identity makes the
// name unique, and the checkpoint tells the coordinator whether the
// upload may still be in progress (SharedOrigin).
func SharedName(attempt, vertex, index int, instance string, ckpt uint64, file string) string {
	return fmt.Sprintf("a%d.v%d.s%d.%s.c%d.%s", attempt, vertex, index, instance, ckpt, file)
}

// SharedOrigin returns the checkpoint that first uploaded the shared
// file name (see SharedName); false for a name SharedName did not make.
func SharedOrigin(name string) (uint64, bool) {
	parts := strings.SplitN(name, ".", 6)
	if len(parts) != 6 || !strings.HasPrefix(parts[4], "c") {
		return 0, false
	}
	n, err := strconv.ParseUint(parts[4][1:], 10, 64)
	return n, err == nil
}
