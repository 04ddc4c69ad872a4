package connector

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/weirstream/weir/internal/connspec"
	"github.com/weirstream/weir/internal/nexmark"
	"github.com/weirstream/weir/internal/splits"
)

// nexmarkSource is one subtask of the nexmark source. Every event is a pure
// function of the Config and its number (nexmark.Config.Event), so the
// subtask computes the events of its sequence splits (internal/splits)
// directly, and resuming anywhere is O(1).
type nexmarkSource struct {
	cfg    nexmark.Config // validated, defaults applied
	ev     nexmark.Event
	binary bool
	sub    Subtask
	q      *seqSplits
	nums   [256]int64 // the numbers of part of a Read
	pace   pacer
}

func newNexmarkSource(o Options, sub Subtask) (*nexmarkSource, error) {
	sn, err := startSplits("nexmark", splits.KindSequence, o, sub)
	if err != nil {
		return nil, err
	}
	cfg := connspec.NexmarkConfig(o).WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("connector: nexmark: %w", err)
	}
	s := &nexmarkSource{
		cfg:    cfg,
		binary: o.String("format") == "binary",
		sub:    sub,
		q:      newSeqSplits(sn),
		pace:   pacer{rate: o.Int("wall_rate"), now: time.Now},
	}
	return s, nil
}

// Read appends the subtask's next events, at most max of them.
func (s *nexmarkSource) Read(ctx context.Context, b *Batch, max int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	next, ok := s.q.peek()
	if !ok {
		return 0, io.EOF
	}
	limit, err := s.pace.limit(ctx, next)
	if err != nil {
		return 0, err
	}
	n := 0
	for n < max {
		nums := s.q.fill(s.nums[:min(max-n, len(s.nums))], limit)
		if len(nums) == 0 {
			break
		}
		n += len(nums)
		for _, i := range nums {
			s.cfg.Event(i, &s.ev)
			start := b.reserveRecord()
			if s.binary {
				b.Buf = nexmark.AppendBinary(b.Buf, &s.ev)
			} else {
				b.Buf = nexmark.AppendJSON(b.Buf, &s.ev)
			}
			b.finishRecord(start, 0, s.ev.DateTime())
		}
	}
	if s.q.done() {
		return n, io.EOF
	}
	return n, nil
}

// Snapshot returns the state of the subtask's splits.
func (s *nexmarkSource) Snapshot() splits.Snapshot { return s.q.snapshot("nexmark") }

// Offset is the encoded Snapshot.
func (s *nexmarkSource) Offset() []byte { return splits.Encode(s.Snapshot()) }

// Seek resumes at the split states an Offset named.
func (s *nexmarkSource) Seek(offset []byte) error {
	sn, err := decodeSeek("nexmark", splits.KindSequence, offset, s.sub)
	if err != nil {
		return err
	}
	s.q = newSeqSplits(sn)
	s.pace.restart()
	return nil
}

// Close does nothing: the generator holds no resources.
func (s *nexmarkSource) Close() error { return nil }

func init() {
	Register(&Spec{Name: "nexmark", Kind: KindSource, NewSource: func(o Options, sub Subtask) (Source, error) { return newNexmarkSource(o, sub) }})
}
