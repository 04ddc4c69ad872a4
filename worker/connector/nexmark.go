package connector

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/weirstream/weir/internal/connspec"
	"github.com/weirstream/weir/internal/nexmark"
)

// nexmarkSource is one subtask of the nexmark source. Every event is a pure
// function of the Config and its number (nexmark.Config.Event), so the
// subtask computes events i, i+p, ... directly, and seeking is O(1).
type nexmarkSource struct {
	cfg    nexmark.Config // validated, defaults applied
	ev     nexmark.Event
	binary bool
	count  int64
	sub    Subtask
	step   int64
	next   int64 // number of the next event this subtask emits
	pace   pacer
}

func newNexmarkSource(o Options, sub Subtask) (*nexmarkSource, error) {
	if err := checkSubtask("nexmark", sub); err != nil {
		return nil, err
	}
	cfg := connspec.NexmarkConfig(o).WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("connector: nexmark: %w", err)
	}
	s := &nexmarkSource{
		cfg:    cfg,
		binary: o.String("format") == "binary",
		count:  o.Int("count"),
		sub:    sub,
		step:   int64(sub.Parallelism),
		next:   int64(sub.Index),
		pace:   pacer{rate: o.Int("wall_rate"), now: time.Now},
	}
	return s, nil
}

// Read appends the subtask's next events, at most max of them.
func (s *nexmarkSource) Read(ctx context.Context, b *Batch, max int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if s.count > 0 && s.next >= s.count {
		return 0, io.EOF
	}
	limit, err := s.pace.limit(ctx, s.next)
	if err != nil {
		return 0, err
	}
	if s.count > 0 && limit > s.count {
		limit = s.count
	}
	n := 0
	for n < max && s.next < limit {
		s.cfg.Event(s.next, &s.ev)
		start := b.reserveRecord()
		if s.binary {
			b.Buf = nexmark.AppendBinary(b.Buf, &s.ev)
		} else {
			b.Buf = nexmark.AppendJSON(b.Buf, &s.ev)
		}
		b.finishRecord(start, 0, s.ev.DateTime())
		s.next += s.step
		n++
	}
	if s.count > 0 && s.next >= s.count {
		return n, io.EOF
	}
	return n, nil
}

// Offset is the number of the next event this subtask emits.
func (s *nexmarkSource) Offset() []byte { return encodeOffset(offsetNexmark, s.next) }

// Seek resumes at the event an Offset named (the first event of this
// subtask at or after it, should the parallelism have changed).
func (s *nexmarkSource) Seek(offset []byte) error {
	var n int64
	if err := decodeOffset("nexmark", offsetNexmark, offset, &n); err != nil {
		return err
	}
	if n < 0 {
		return fmt.Errorf("connector: nexmark: negative offset %d", n)
	}
	s.next = stride(n, s.sub)
	s.pace.restart()
	return nil
}

// Close does nothing: the generator holds no resources.
func (s *nexmarkSource) Close() error { return nil }

func init() {
	Register(&Spec{Name: "nexmark", Kind: KindSource, NewSource: func(o Options, sub Subtask) (Source, error) { return newNexmarkSource(o, sub) }})
}
