package ckptmeta

import (
	"fmt"
	"slices"
	"strings"

	"github.com/weirstream/weir/internal/ckptstore"
	"github.com/weirstream/weir/internal/deploy"
)

// Ack is one subtask's answer to a checkpoint's barrier, as a worker sends
// it to the checkpoint coordinator: the files it wrote for each node of its
// chain and the states each operator declared, or why it declined.
type Ack struct {
	Checkpoint uint64 `json:"checkpoint"`
	Attempt    int    `json:"attempt"`
	Vertex     int    `json:"vertex"`
	Index      int    `json:"index"`
	// Declined, when not empty, says why the subtask gave the checkpoint
	// up (its snapshot or upload failed, or its alignment was aborted).
	Declined string    `json:"declined,omitempty"`
	Nodes    []NodeAck `json:"nodes,omitempty"`
	// Ended says the subtask had ended its input when it snapshotted:
	// Nodes hold its final state. With Checkpoint 0 the Ack is a notice,
	// not an acknowledgement: the subtask just ended its input (see
	// IsEndNotice).
	Ended bool `json:"ended,omitempty"`
}

// IsEndNotice says a is no acknowledgement but the notice that its
// subtask ended its input and waits for the final checkpoint.
func (a Ack) IsEndNotice() bool { return a.Checkpoint == 0 && a.Ended }

// NodeAck is what one node of the subtask's chain wrote.
type NodeAck struct {
	UID    string    `json:"uid"`
	Files  []AckFile `json:"files,omitempty"`
	States []State   `json:"states,omitempty"`
}

// AckFile is one file written, with its checksum for the metadata.
type AckFile struct {
	Role  string `json:"role"`
	Name  string `json:"name"`
	Size  int64  `json:"size"`
	CRC32 uint32 `json:"crc32c"`
	// Shared and Path: see File.
	Shared bool   `json:"shared,omitempty"`
	Path   string `json:"path,omitempty"`
}

// Shape is what a restore checks a payload against: the job about to run.
type Shape struct {
	MaxParallelism int
	// Operators by uid: kind and parallelism.
	Operators map[string]ShapeOperator
}

// ShapeOperator is one node of the job about to run.
type ShapeOperator struct {
	Kind        string
	Parallelism int
	// Head says the operator heads its task: in-flight data of an
	// unaligned checkpoint are replayed into it, on its Inputs (the
	// partitions of the edges into it, by input index; HeadInputs).
	Head   bool
	Inputs []string
}

// HeadInputs returns the partitions of the edges into the head of v, by
// its input index, as a checkpoint records them (Operator.Inputs).
func HeadInputs(d *deploy.Descriptor, v deploy.Vertex) []string {
	out := make([]string, len(v.Inputs))
	for i, id := range v.Inputs {
		if id >= 0 && id < len(d.Edges) {
			out[i] = d.Edges[id].Partition
		}
	}
	return out
}

// fixedInFlight says why in-flight data on inputs cannot move to another
// parallelism ("" when they can: see InFlightByKey).
func fixedInFlight(inputs []string) string {
	for i, p := range inputs {
		if _, ok := InFlightByKey(p); !ok {
			return fmt.Sprintf("its input %d is a %s edge (each subtask's copy of the stream is its own)", i, p)
		}
	}
	return ""
}

// InFlightByKey says how the in-flight records of an input fed by an
// edge of partition are redistributed by a restore at another
// parallelism: by key group (key_by), or whole, old subtask j's to new
// subtask j mod p (forward and rebalance: any subtask may take any
// record). ok is false for broadcast: each subtask's copy of the stream
// is its own, at its own position.
func InFlightByKey(partition string) (byKey, ok bool) {
	switch partition {
	case "key_by":
		return true, true
	case "forward", "rebalance":
		return false, true
	}
	return false, false
}

// CheckRestore says why p cannot be restored into a job of shape s: a
// different max parallelism; operators with state the job does not have
// (unless allowNonRestored); an operator whose kind changed; in-flight
// data of an unaligned checkpoint at another parallelism. nil when it can.
func (p *Payload) CheckRestore(s Shape, allowNonRestored bool) error {
	what := "checkpoint"
	if p.Savepoint {
		what = "savepoint"
	}
	if p.MaxParallelism != s.MaxParallelism {
		return fmt.Errorf("restoring %s %d: it was taken with max parallelism %d and the job has %d: key groups cannot be re-cut; run the job with max_parallelism %d", what, p.Checkpoint, p.MaxParallelism, s.MaxParallelism, p.MaxParallelism)
	}
	var uids []string
	for uid := range s.Operators {
		uids = append(uids, uid)
	}
	if un := p.Unmatched(uids); len(un) > 0 && !allowNonRestored {
		return fmt.Errorf("restoring %s %d: the job has no operator with uid %s, whose state the %s holds; give those operators their old uids, or pass --allow-non-restored-state to drop their state", what, p.Checkpoint, strings.Join(un, ", "), what)
	}
	var problems []string
	for _, o := range p.Operators {
		n, ok := s.Operators[o.UID]
		if !ok {
			continue
		}
		if n.Kind != o.Kind {
			problems = append(problems, fmt.Sprintf("%s was a %s and is a %s", o.UID, o.Kind, n.Kind))
		}
		inFlight := slices.ContainsFunc(o.Subtasks, func(st Subtask) bool {
			return slices.ContainsFunc(st.Files, func(f File) bool { return f.Role == RoleInFlight && f.Size > 0 })
		})
		const instead = "restore the job as it was, or from a savepoint (always aligned)"
		switch {
		case !inFlight:
		case !n.Head:
			problems = append(problems, fmt.Sprintf("%s holds in-flight data of an unaligned checkpoint and no longer heads its task (its chaining changed), so nothing would replay them: %s", o.UID, instead))
		case o.Inputs != nil && !slices.Equal(o.Inputs, n.Inputs):
			problems = append(problems, fmt.Sprintf("%s holds in-flight data of an unaligned checkpoint that came on inputs %v, and its inputs are now %v: %s", o.UID, o.Inputs, n.Inputs, instead))
		case n.Parallelism != o.Parallelism && fixedInFlight(n.Inputs) != "":
			problems = append(problems, fmt.Sprintf("%s holds in-flight data of an unaligned checkpoint and %s, so the data restore only at its parallelism %d (not %d): restore at %d, or rescale from a savepoint (always aligned)", o.UID, fixedInFlight(n.Inputs), o.Parallelism, n.Parallelism, o.Parallelism))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("restoring %s %d: %s", what, p.Checkpoint, strings.Join(problems, "; "))
	}
	return nil
}

// ShapeOf returns what a restore into a deployment d is checked against.
func ShapeOf(d *deploy.Descriptor) Shape {
	s := Shape{MaxParallelism: d.MaxParallelism, Operators: map[string]ShapeOperator{}}
	for _, v := range d.Vertices {
		for k, n := range v.Nodes {
			o := ShapeOperator{Kind: n.Kind, Parallelism: v.Parallelism, Head: k == 0}
			if k == 0 {
				o.Inputs = HeadInputs(d, v)
			}
			s.Operators[n.UID] = o
		}
	}
	return s
}

// Restorable says whether a checkpoint can be restored: every subtask of
// every operator took part. One written before subtasks snapshotted
// their final state (payloads that mark a subtask Finished) holds nothing
// for them, and a restore cannot keep them finished, so recovery uses the
// newest checkpoint every subtask took part in.
func (p *Payload) Restorable() error {
	for _, o := range p.Operators {
		for _, s := range o.Subtasks {
			if s.Finished {
				return fmt.Errorf("subtask %d of %s had finished before it: a restore cannot keep it finished", s.Index, o.UID)
			}
		}
	}
	return nil
}

// LatestRestorable is ckptstore.Latest for recovery: the newest completed
// checkpoint of job that passes its checks and is Restorable, and the
// newer ones it skipped with why.
func LatestRestorable(s ckptstore.Storage, job string) (ckptstore.Metadata, []ckptstore.Skipped, error) {
	ns, err := s.Completed(job)
	if err != nil {
		return ckptstore.Metadata{}, nil, err
	}
	var skipped []ckptstore.Skipped
	for i := len(ns) - 1; i >= 0; i-- {
		m, err := ckptstore.Verify(s, job, ns[i])
		if err == nil {
			var p *Payload
			if p, err = Decode(m.Payload); err == nil {
				err = p.Restorable()
			}
		}
		if err == nil {
			return m, skipped, nil
		}
		skipped = append(skipped, ckptstore.Skipped{Checkpoint: ns[i], Reason: err.Error()})
	}
	return ckptstore.Metadata{}, skipped, fmt.Errorf("%w: job %s has no checkpoint to restore", ckptstore.ErrNotFound, job)
}
