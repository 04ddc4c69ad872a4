package connector

import (
	"context"
	"io"
	"strconv"
	"time"

	"github.com/weirstream/weir/internal/splits"
)

// The datagen source makes synthetic records whose every field is a pure
// function of its options and the record's global number, so a test in any
// package can recompute the stream on its own. The exact formula is in
// the datagen spec of internal/connspec (shown by `weir connectors datagen` and docs/connectors.md).

// datagen is one subtask of the datagen source: it emits the numbers of
// its sequence splits (internal/splits).
type datagen struct {
	count, seed, keys, maxValue, start, interval int64
	sub                                          Subtask
	q                                            *seqSplits
	nums                                         [256]int64 // the numbers of part of a Read
	pace                                         pacer
}

func newDatagen(o Options, sub Subtask) (*datagen, error) {
	sn, err := startSplits("datagen", splits.KindSequence, o, sub)
	if err != nil {
		return nil, err
	}
	d := &datagen{
		count:    o.Int("count"),
		seed:     o.Int("seed"),
		keys:     o.Int("keys"),
		maxValue: o.Int("max_value"),
		start:    o.Int("start_time"),
		interval: o.Int("interval_ms"),
		sub:      sub,
		q:        newSeqSplits(sn),
		pace:     pacer{rate: o.Int("rate"), now: time.Now},
	}
	return d, nil
}

const splitMixGamma uint64 = 0x9E3779B97F4A7C15

func splitMix(z uint64) uint64 {
	z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
	z = (z ^ z>>27) * 0x94D049BB133111EB
	return z ^ z>>31
}

// Read appends the subtask's next records, at most max of them.
func (d *datagen) Read(ctx context.Context, b *Batch, max int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	next, ok := d.q.peek()
	if !ok {
		return 0, io.EOF
	}
	limit, err := d.pace.limit(ctx, next)
	if err != nil {
		return 0, err
	}
	n := 0
	for n < max {
		nums := d.q.fill(d.nums[:min(max-n, len(d.nums))], limit)
		if len(nums) == 0 {
			break
		}
		n += len(nums)
		for _, i := range nums {
			d.append(b, i)
		}
	}
	if d.q.done() {
		return n, io.EOF
	}
	return n, nil
}

// append encodes record n in place at the end of b.
func (d *datagen) append(b *Batch, n int64) {
	state := uint64(d.seed) + uint64(2*n)*splitMixGamma
	start := b.reserveRecord()
	keyStart := len(b.Buf)
	if d.keys > 0 {
		k := splitMix(state+splitMixGamma) % uint64(d.keys)
		b.Buf = append(b.Buf, "key-"...)
		b.Buf = strconv.AppendUint(b.Buf, k, 10)
	}
	key := b.Buf[keyStart:]
	v := splitMix(state+splitMixGamma+splitMixGamma) % uint64(d.maxValue)
	b.Buf = append(b.Buf, `{"seq":`...)
	b.Buf = strconv.AppendInt(b.Buf, n, 10)
	if d.keys > 0 {
		b.Buf = append(b.Buf, `,"key":"`...)
		b.Buf = append(b.Buf, key...)
		b.Buf = append(b.Buf, '"')
	}
	b.Buf = append(b.Buf, `,"value":`...)
	b.Buf = strconv.AppendUint(b.Buf, v, 10)
	b.Buf = append(b.Buf, '}')
	b.finishRecord(start, len(key), d.start+n*d.interval)
}

// Snapshot returns the state of the subtask's splits.
func (d *datagen) Snapshot() splits.Snapshot { return d.q.snapshot("datagen") }

// Offset is the encoded Snapshot.
func (d *datagen) Offset() []byte { return splits.Encode(d.Snapshot()) }

// Seek resumes at the split states an Offset named.
func (d *datagen) Seek(offset []byte) error {
	sn, err := decodeSeek("datagen", splits.KindSequence, offset, d.sub)
	if err != nil {
		return err
	}
	d.q = newSeqSplits(sn)
	d.pace.restart()
	return nil
}

// Close does nothing: datagen holds no resources.
func (d *datagen) Close() error { return nil }

func init() {
	Register(&Spec{Name: "datagen", Kind: KindSource, NewSource: func(o Options, sub Subtask) (Source, error) { return newDatagen(o, sub) }})
}
