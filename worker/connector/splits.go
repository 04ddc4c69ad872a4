package connector

import (
	"fmt"
	"math"

	"github.com/weirstream/weir/internal/splits"
)

// SplitSource is a Source that reads splits (internal/splits): every
// built-in source is one. Its position is the state of each split it
// holds, which the task runtime snapshots at a checkpoint and hands back,
// redistributed by splits.Assign, in Subtask.Restore at any parallelism.
type SplitSource interface {
	Source
	// Snapshot returns the state of every split the subtask holds, the
	// finished ones included, sorted by split id: the position after the
	// records read so far. Call it between Reads, on the goroutine that
	// reads. The result shares nothing with the source.
	Snapshot() splits.Snapshot
}

// Seekable is a Source that can resume from an Offset it returned earlier.
// Seek must be called before the first Read; an offset of another
// connector is an error. For a SplitSource, Offset is
// splits.Encode(Snapshot()) and Seek(b) restores splits.Decode(b), as
// Subtask.Restore does; restoring at another parallelism goes through
// splits.Assign.
type Seekable interface {
	Source
	Seek(offset []byte) error
}

// startSplits returns the splits a source subtask starts with: those of
// sub.Restore, checked to belong to this connector and kind, or else its
// share of the splits enumerated from its options.
func startSplits(connector string, kind splits.Kind, o Options, sub Subtask) (splits.Snapshot, error) {
	if err := checkSubtask(connector, sub); err != nil {
		return splits.Snapshot{}, err
	}
	if sub.Restore != nil {
		if err := checkRestore(connector, kind, sub.Restore, sub); err != nil {
			return splits.Snapshot{}, err
		}
		return copySnapshot(*sub.Restore), nil
	}
	all, err := splits.Enumerate(connector, o)
	if err != nil {
		return splits.Snapshot{}, fmt.Errorf("connector: %s: %w", connector, err)
	}
	return splits.Take(connector, all, sub.Index, sub.Parallelism), nil
}

// checkRestore checks a snapshot belongs to this connector and holds only
// splits splits.Owner gives this subtask: handing a subtask the snapshot
// an old subtask took, at another parallelism, instead of its share by
// splits.Assign, would read some splits twice.
func checkRestore(connector string, kind splits.Kind, s *splits.Snapshot, sub Subtask) error {
	if s.Connector != connector {
		return fmt.Errorf("connector: %s: restoring splits of a %q source: %w", connector, s.Connector, splits.ErrInvalid)
	}
	if err := s.Validate(); err != nil {
		return fmt.Errorf("connector: %s: restoring splits: %w", connector, err)
	}
	for i := range s.States {
		sp := &s.States[i].Split
		if sp.Kind != kind {
			return fmt.Errorf("connector: %s: restoring splits: %w: a %s split, want %s", connector, splits.ErrInvalid, sp.Kind, kind)
		}
		if o := splits.Owner(sp.ID, sub.Parallelism); o != sub.Index {
			return fmt.Errorf("connector: %s: restoring split %d into subtask %d of %d: %w: it belongs to subtask %d (redistribute with splits.Assign)", connector, sp.ID, sub.Index, sub.Parallelism, splits.ErrInvalid, o)
		}
	}
	return nil
}

// decodeSeek decodes an Offset for Seek by subtask sub.
func decodeSeek(connector string, kind splits.Kind, offset []byte, sub Subtask) (splits.Snapshot, error) {
	s, err := splits.Decode(offset)
	if err != nil {
		return splits.Snapshot{}, fmt.Errorf("connector: %s: seeking: %w", connector, err)
	}
	if err := checkRestore(connector, kind, &s, sub); err != nil {
		return splits.Snapshot{}, err
	}
	return s, nil
}

func copySnapshot(s splits.Snapshot) splits.Snapshot {
	s.States = append([]splits.State{}, s.States...)
	return s
}

// seqSplits walks the sequence splits of a subtask, always at the smallest
// (records taken, start) pair: for splits that start together that is the
// smallest next number, so a subtask emits its numbers in increasing order
// (i, i+p, ... on a fresh start, as before splits), and after a restore
// the splits that lag behind catch up first instead of being interleaved
// with ones far ahead (event time stays as ordered as it was). It does so
// in rounds: each round takes one number from every unfinished split whose
// count of taken records equals the round, in id (= start) order, and
// skips those ahead; a skip costs at most one per record of lag. Per
// record it is an index, an add and a compare.
type seqSplits struct {
	splits []splits.Split // by id, finished ones too (for Snapshot)
	c      []seqCursor    // c[i] reads splits[i]
	active []int32        // indices of splits not known finished, by id
	cur, w int            // read and compaction-write cursors in active
	round  int64          // the count of taken records this round serves
	low    int64          // the least count seen this round, the next round
}

// seqCursor is the position in one split.
type seqCursor struct {
	next, stride int64
	end          int64 // math.MaxInt64 when unbounded
	taken        int64 // records taken so far
}

func newSeqSplits(s splits.Snapshot) *seqSplits {
	q := &seqSplits{c: make([]seqCursor, len(s.States)), low: math.MaxInt64}
	q.round = q.low
	for i := range s.States {
		st := &s.States[i]
		sp := st.Split
		q.splits = append(q.splits, sp)
		end := sp.End
		if end == splits.Unbounded {
			end = math.MaxInt64
		}
		q.c[i] = seqCursor{next: st.Next, stride: sp.Stride, end: end, taken: (st.Next - sp.Start) / sp.Stride}
		if !st.Done() {
			q.active = append(q.active, int32(i))
			q.round = min(q.round, q.c[i].taken)
		}
	}
	return q
}

// fill appends to buf[:0] the next numbers to emit, below limit, as many
// as len(buf): one call per few hundred records keeps the walk out of
// the sources' per-record loops.
func (q *seqSplits) fill(buf []int64, limit int64) []int64 {
	out := buf[:0]
	for len(out) < len(buf) {
		n, ok := q.peek()
		if !ok || n >= limit {
			break
		}
		out = append(out, n)
		q.advance()
	}
	return out
}

// done reports whether every split is finished.
func (q *seqSplits) done() bool {
	_, ok := q.peek()
	return !ok
}

// peek returns the next number to emit, or false when every split is
// finished.
func (q *seqSplits) peek() (int64, bool) {
	for {
		if q.cur == len(q.active) {
			q.active = q.active[:q.w]
			q.cur, q.w = 0, 0
			if len(q.active) == 0 {
				return 0, false
			}
			q.round, q.low = q.low, math.MaxInt64
		}
		i := q.active[q.cur]
		c := &q.c[i]
		if c.next >= c.end {
			q.cur++ // finished: dropped from active
			continue
		}
		if c.taken > q.round {
			q.low = min(q.low, c.taken)
			q.active[q.w] = i
			q.w++
			q.cur++
			continue
		}
		return c.next, true
	}
}

// advance takes the number peek returned.
func (q *seqSplits) advance() {
	i := q.active[q.cur]
	c := &q.c[i]
	c.next += c.stride
	c.taken++
	q.low = min(q.low, c.taken)
	q.active[q.w] = i
	q.w++
	q.cur++
}

func (q *seqSplits) snapshot(connector string) splits.Snapshot {
	s := splits.Snapshot{Connector: connector, States: make([]splits.State, len(q.splits))}
	for i, sp := range q.splits {
		s.States[i] = splits.State{Split: sp, Next: q.c[i].next}
	}
	return s
}
