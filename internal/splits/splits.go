// Package splits describes how a source's input is cut into splits, which
// subtask reads which split, and how far a reader got in each: the state a
// source checkpoints, and from which it restores at any parallelism.
//
// A split is a serialisable description of a part of the input: bytes
// [Start, End) of a file, cut at line starts, or the sequence numbers
// Start, Start+Stride, ... below End of a generated stream (datagen,
// nexmark). A source's splits are enumerated from its options alone, never
// from its parallelism, and numbered 0..Of-1; Owner assigns split id to
// subtask id mod p. A State is a split with the reader's position in it
// (Next), and a Snapshot is the states of the splits one subtask holds.
// Restoring at parallelism p' gives subtask i, by Assign, the states of
// every split Owner gives it, each continued at its saved position, so no
// record is replayed or skipped whatever p and p' are.
//
// The package imports nothing of weir but internal/connspec, so the
// coordinator (assigning splits at restore) and the worker (reading them)
// share it.
package splits

import (
	"errors"
	"fmt"
	"sort"
)

// ErrInvalid marks a split, state or snapshot that is malformed or does
// not fit the source or the restore it is given to.
var ErrInvalid = errors.New("splits: invalid")

// Kind says what a split cuts.
type Kind uint8

const (
	// KindFile splits are byte ranges of a file.
	KindFile Kind = 1
	// KindSequence splits are strided ranges of record numbers.
	KindSequence Kind = 2
)

func (k Kind) String() string {
	switch k {
	case KindFile:
		return "file"
	case KindSequence:
		return "sequence"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Unbounded is the End of a sequence split with no last number.
const Unbounded int64 = -1

// Split is one part of a source's input.
type Split struct {
	ID   int  `json:"id"` // 0..Of-1: what Owner assigns by
	Of   int  `json:"of"` // the number of splits of the source
	Kind Kind `json:"kind"`
	// Path is the file a File split cuts.
	Path string `json:"path,omitempty"`
	// Start and End bound the split. File: bytes [Start, End), Start at a
	// line start (0 or after a '\n'), End at a line start or the file's
	// end. Sequence: the numbers Start, Start+Stride, ... below End, or
	// without end when End is Unbounded.
	Start  int64 `json:"start"`
	End    int64 `json:"end"`
	Stride int64 `json:"stride,omitempty"` // Sequence only
	// Line is the 0-based number, in the whole file, of the line at Start
	// (File only): record timestamps and error messages use it.
	Line int64 `json:"line,omitempty"`
}

// State is a split and the position a reader reached in it: the
// checkpointable offset.
type State struct {
	Split Split `json:"split"`
	// Next is where reading continues: File, the byte offset of the next
	// unread line; Sequence, the next number. Start when nothing was read.
	Next int64 `json:"next"`
	// NextLine is the 0-based line number at Next (File only).
	NextLine int64 `json:"next_line,omitempty"`
}

// Done reports whether the reader finished the split.
func (s *State) Done() bool {
	return s.Split.End != Unbounded && s.Next >= s.Split.End
}

// Fresh returns the state of a split nobody has read yet.
func Fresh(sp Split) State { return State{Split: sp, Next: sp.Start, NextLine: sp.Line} }

// Snapshot is the states of the splits one subtask holds (after Assign,
// or as a source reports them), sorted by split id. Connector names the
// source they belong to, so a snapshot of one source is not restored
// into another.
type Snapshot struct {
	Connector string  `json:"connector"`
	States    []State `json:"states"`
}

// Owner returns the subtask that reads split id at the given parallelism:
// round-robin, so subtask i reads splits i, i+p, i+2p, ... A pure function
// of the split id and the parallelism; the coordinator and the worker
// compute the same.
func Owner(id, parallelism int) int { return id % parallelism }

// Take returns the fresh snapshot of subtask index of parallelism: the
// splits Owner gives it, nothing read. It is what a source starting
// without a restore reads.
func Take(connector string, all []Split, index, parallelism int) Snapshot {
	s := Snapshot{Connector: connector, States: []State{}}
	for _, sp := range all {
		if Owner(sp.ID, parallelism) == index {
			s.States = append(s.States, Fresh(sp))
		}
	}
	return s
}

// Assign returns the snapshot subtask index of parallelism restores from:
// the states, among those of every subtask of the checkpointed source
// (old, at whatever parallelism it ran), of the splits Owner now gives it.
// It checks the old snapshots together hold each split of the source
// exactly once, so a lost or doubled subtask snapshot is refused rather
// than silently skipping or replaying records.
func Assign(old []Snapshot, index, parallelism int) (Snapshot, error) {
	if parallelism < 1 || index < 0 || index >= parallelism {
		return Snapshot{}, fmt.Errorf("assigning splits: subtask %d of %d: %w: out of range", index, parallelism, ErrInvalid)
	}
	all, err := Redistribute(old, parallelism)
	if err != nil {
		return Snapshot{}, err
	}
	return all[index], nil
}

// Redistribute is Assign for every subtask at once: element i is subtask
// i's snapshot. The coordinator can use it to put each subtask's share in
// its deployment.
func Redistribute(old []Snapshot, parallelism int) ([]Snapshot, error) {
	if parallelism < 1 {
		return nil, fmt.Errorf("assigning splits: parallelism %d: %w: out of range", parallelism, ErrInvalid)
	}
	if len(old) == 0 {
		return nil, fmt.Errorf("assigning splits: %w: no snapshot", ErrInvalid)
	}
	out := make([]Snapshot, parallelism)
	for i := range out {
		out[i] = Snapshot{Connector: old[0].Connector, States: []State{}}
	}
	of, kind := -1, Kind(0)
	seen := map[int]bool{}
	for i := range old {
		o := &old[i]
		if o.Connector != old[0].Connector {
			return nil, fmt.Errorf("assigning splits: %w: snapshots of connectors %q and %q", ErrInvalid, old[0].Connector, o.Connector)
		}
		if err := o.Validate(); err != nil {
			return nil, fmt.Errorf("assigning splits: %w", err)
		}
		for _, st := range o.States {
			if of < 0 {
				of, kind = st.Split.Of, st.Split.Kind
			}
			if st.Split.Of != of || st.Split.Kind != kind {
				return nil, fmt.Errorf("assigning splits: %w: splits of different sources mixed (%s split %d of %d among %s splits of %d)", ErrInvalid, st.Split.Kind, st.Split.ID, st.Split.Of, kind, of)
			}
			if seen[st.Split.ID] {
				return nil, fmt.Errorf("assigning splits: %w: split %d appears twice", ErrInvalid, st.Split.ID)
			}
			seen[st.Split.ID] = true
			w := &out[Owner(st.Split.ID, parallelism)]
			w.States = append(w.States, st)
		}
	}
	if of < 0 || len(seen) != of {
		missing := 0
		for seen[missing] {
			missing++
		}
		return nil, fmt.Errorf("assigning splits: %w: %d of %d splits present (split %d missing): is a subtask's snapshot lost?", ErrInvalid, len(seen), max(of, 1), missing)
	}
	for i := range out {
		sort.Slice(out[i].States, func(a, b int) bool { return out[i].States[a].Split.ID < out[i].States[b].Split.ID })
	}
	return out, nil
}

// Validate checks a snapshot: each state well-formed, ids distinct and
// sorted, one kind.
func (s *Snapshot) Validate() error {
	if s.Connector == "" || len(s.Connector) > MaxNameLen {
		return fmt.Errorf("%w: snapshot: connector name of %d bytes", ErrInvalid, len(s.Connector))
	}
	if len(s.States) > MaxSplits {
		return fmt.Errorf("%w: snapshot: %d splits, want at most %d", ErrInvalid, len(s.States), MaxSplits)
	}
	for i := range s.States {
		st := &s.States[i]
		if err := st.Validate(); err != nil {
			return err
		}
		if i > 0 {
			p := &s.States[i-1]
			if p.Split.ID >= st.Split.ID {
				return fmt.Errorf("%w: snapshot: split ids %d then %d: want ascending", ErrInvalid, p.Split.ID, st.Split.ID)
			}
			if p.Split.Kind != st.Split.Kind || p.Split.Of != st.Split.Of {
				return fmt.Errorf("%w: snapshot: splits %d and %d of different sources", ErrInvalid, p.Split.ID, st.Split.ID)
			}
		}
	}
	return nil
}

// Validate checks one state: its split well-formed and its position
// inside it.
func (s *State) Validate() error {
	sp := &s.Split
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: split %d of %d (%s): %s", ErrInvalid, sp.ID, sp.Of, sp.Kind, fmt.Sprintf(format, a...))
	}
	if sp.Of < 1 || sp.Of > MaxSplits || sp.ID < 0 || sp.ID >= sp.Of {
		return bad("id out of range (want 0 to %d of at most %d)", sp.Of-1, MaxSplits)
	}
	switch sp.Kind {
	case KindFile:
		if sp.Path == "" || len(sp.Path) > MaxNameLen {
			return bad("path of %d bytes", len(sp.Path))
		}
		if sp.Start < 0 || sp.End < sp.Start || sp.Line < 0 || sp.Stride != 0 {
			return bad("bytes %d to %d from line %d", sp.Start, sp.End, sp.Line)
		}
		if s.Next < sp.Start || s.Next > sp.End || s.NextLine < sp.Line || s.NextLine-sp.Line > s.Next-sp.Start {
			return bad("position byte %d line %d is outside bytes %d to %d from line %d", s.Next, s.NextLine, sp.Start, sp.End, sp.Line)
		}
	case KindSequence:
		if sp.Path != "" || sp.Line != 0 || s.NextLine != 0 {
			return bad("file fields set")
		}
		if sp.Start < 0 || sp.Stride < 1 || (sp.End != Unbounded && sp.End < 0) {
			return bad("numbers from %d by %d to %d", sp.Start, sp.Stride, sp.End)
		}
		if s.Next < sp.Start || (s.Next-sp.Start)%sp.Stride != 0 {
			return bad("position %d is not one of its numbers %d + k*%d", s.Next, sp.Start, sp.Stride)
		}
		if sp.End != Unbounded && s.Next >= sp.End && s.Next-sp.Stride >= max(sp.End, sp.Start) {
			return bad("position %d is past its end %d", s.Next, sp.End)
		}
	default:
		return bad("unknown kind")
	}
	return nil
}

// Bounds of what a snapshot may hold; a decoded one is checked against
// them before anything is allocated for it.
const (
	MaxSplits  = 1 << 20
	MaxNameLen = 4096
)
