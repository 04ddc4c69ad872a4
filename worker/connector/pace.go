package connector

import (
	"context"
	"fmt"
	"time"

	"github.com/weirstream/weir/wasmabi"
)

// maxWait bounds how long a Read waits for records that are not due yet,
// so the task can emit watermarks and notice idleness (see Source.Read).
const maxWait = 100 * time.Millisecond

// pacer spreads a source's records over wall-clock time: global record n
// (numbered over all subtasks) is due rate-many per second after the
// pacer's start, so the subtasks together emit rate records per second.
// A zero rate means no pacing.
type pacer struct {
	rate  int64 // records per second over all subtasks; 0 = unpaced
	start time.Time
	base  int64 // the record number due at start
	now   func() time.Time
}

// due returns the end of the records due at now: every n < due may be
// emitted. Record base is due at start, record n (n-base)/rate seconds
// later.
func (p *pacer) due(now time.Time) int64 {
	el := now.Sub(p.start)
	if el < 0 {
		return p.base
	}
	sec := int64(el / time.Second)
	frac := int64(el % time.Second)
	return p.base + sec*p.rate + frac*p.rate/int64(time.Second) + 1
}

// when is the wall-clock time at which global record n is due.
func (p *pacer) when(n int64) time.Time {
	d := n - p.base
	sec := d / p.rate
	frac := d % p.rate
	return p.start.Add(time.Duration(sec)*time.Second + time.Duration(frac*int64(time.Second)/p.rate))
}

// limit returns the highest global record number (exclusive) this Read may
// emit, starting the clock at record next on the first call. When next is
// not due yet it waits until it is, at most maxWait, honouring ctx; then
// limit may still be <= next (nothing to emit this time).
func (p *pacer) limit(ctx context.Context, next int64) (int64, error) {
	if p.rate <= 0 {
		return 1<<63 - 1, nil
	}
	now := p.now()
	if p.start.IsZero() {
		p.start, p.base = now, next
	}
	if d := p.due(now); d > next {
		return d, nil
	}
	wait := p.when(next).Sub(now)
	if wait > maxWait {
		wait = maxWait
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return next, ctx.Err()
		case <-t.C:
		}
	}
	return p.due(p.now()), nil
}

// restart makes the pacer start again at the next Read (after a Seek, so
// resumed records are not emitted in a burst).
func (p *pacer) restart() { p.start = time.Time{} }

func checkSubtask(name string, sub Subtask) error {
	if sub.Parallelism < 1 || sub.Index < 0 || sub.Index >= sub.Parallelism {
		return fmt.Errorf("connector: %s: subtask %d of %d is out of range", name, sub.Index, sub.Parallelism)
	}
	return nil
}

// reserveRecord starts a record entry written in place: it reserves the
// entry header at the end of b.Buf and returns where the entry starts. The
// caller appends the key and then the value to b.Buf and calls
// finishRecord. Encoding in place saves copying through a scratch buffer.
func (b *Batch) reserveRecord() int {
	start := len(b.Buf)
	b.Buf = append(b.Buf, make([]byte, wasmabi.EntryHeaderSize)...)
	return start
}

// finishRecord writes the header of the record started at start, whose key
// is the keyLen bytes after the header and whose value is the rest of b.Buf.
func (b *Batch) finishRecord(start, keyLen int, ts int64) {
	valueLen := len(b.Buf) - start - wasmabi.EntryHeaderSize - keyLen
	wasmabi.PutEntryHeader(b.Buf[start:], wasmabi.EntryRecord, 0, 0, keyLen, ts, valueLen, 0)
	b.Count++
}
