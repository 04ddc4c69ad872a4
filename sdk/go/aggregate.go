package weir

import (
	"errors"

	"github.com/weirstream/weir/wasmabi"
)

// AggregateFunction is the user code of a window aggregate with
// accumulators of type A. The host keeps the accumulators (encoded with the
// operator's Codec) per key and window; it calls Add as records arrive,
// Merge when windows merge (session windows) or partial aggregates combine,
// and Result when a window fires.
//
// The methods report errors by panicking; the batch then fails with the
// index of the entry at hand.
type AggregateFunction[A any] interface {
	// Create returns a new, empty accumulator.
	Create() A
	// Add folds r into acc and returns the result; it may modify acc.
	Add(acc A, r Record) A
	// Merge combines two accumulators.
	Merge(a, b A) A
	// Result turns the final accumulator of the group key in the window
	// ending at windowEnd (its last millisecond) into a record. A result
	// with a nil Key gets key, and one with a zero Timestamp gets windowEnd.
	Result(key []byte, windowEnd int64, acc A) Record
}

// aggRunner runs the aggregate methods for one accumulator type.
type aggRunner interface {
	add(in *instance, count uint32, b []byte) error
	merge(in *instance, count uint32, b []byte) error
	result(in *instance, count uint32, b []byte) error
}

type aggOp[A any] struct {
	fn    AggregateFunction[A]
	codec Codec[A]
}

// decode returns the accumulator of e, or a new one when e is flagged so.
func (a *aggOp[A]) decode(e *entry) (A, error) {
	if e.flags&wasmabi.AccumulatorNew != 0 {
		return a.fn.Create(), nil
	}
	acc, err := a.codec.Decode(e.value)
	if err != nil {
		return acc, errors.New("accumulator: " + err.Error())
	}
	return acc, nil
}

// emit appends acc as an accumulator entry, encoding it straight into the
// output buffer.
func (a *aggOp[A]) emit(in *instance, key []byte, ts int64, acc A) {
	start := len(in.out)
	if n := wasmabi.EntryHeaderSize + len(key); cap(in.out)-start < n {
		in.reserve(n)
	}
	in.out = in.out[:start+wasmabi.EntryHeaderSize+len(key)]
	b := in.out[start:]
	clear(b[:wasmabi.EntryHeaderSize])
	b[0] = byte(wasmabi.EntryAccumulator)
	le.PutUint32(b[4:], uint32(len(key)))
	le.PutUint64(b[8:], uint64(ts))
	copy(b[wasmabi.EntryHeaderSize:], key)
	in.out = a.codec.Append(in.out, acc)
	le.PutUint32(in.out[start+16:], uint32(len(in.out)-start-wasmabi.EntryHeaderSize-len(key)))
	if len(in.out) >= flushSize {
		in.flush()
	}
}

func (a *aggOp[A]) add(in *instance, count uint32, b []byte) error {
	var e entry
	var err error
	var acc A
	var key []byte
	var ts int64
	open := false
	for i := 0; i < int(count); i++ {
		in.rec = i
		if b, err = next(b, &e); err != nil {
			return err
		}
		switch e.kind {
		case wasmabi.EntryAccumulator:
			if open {
				a.emit(in, key, ts, acc)
			}
			if acc, err = a.decode(&e); err != nil {
				return err
			}
			key, ts, open = e.key, e.ts, true
		case wasmabi.EntryRecord:
			if !open {
				return errors.New("weir: record before the first accumulator of an agg_add batch")
			}
			acc = a.fn.Add(acc, e.record())
		default:
			return unexpected(e.kind, "agg_add")
		}
	}
	if open {
		in.rec = int(count) - 1
		a.emit(in, key, ts, acc)
	}
	in.rec = -1
	return nil
}

func (a *aggOp[A]) merge(in *instance, count uint32, b []byte) error {
	if count%2 != 0 {
		return errors.New("weir: agg_merge batch of an odd number of accumulators")
	}
	var e1, e2 entry
	var err error
	for i := 0; i < int(count); i += 2 {
		in.rec = i
		if b, err = next(b, &e1); err != nil {
			return err
		}
		if e1.kind != wasmabi.EntryAccumulator {
			return unexpected(e1.kind, "agg_merge")
		}
		x, err := a.decode(&e1)
		if err != nil {
			return err
		}
		in.rec = i + 1
		if b, err = next(b, &e2); err != nil {
			return err
		}
		if e2.kind != wasmabi.EntryAccumulator {
			return unexpected(e2.kind, "agg_merge")
		}
		y, err := a.decode(&e2)
		if err != nil {
			return err
		}
		a.emit(in, e1.key, e1.ts, a.fn.Merge(x, y))
	}
	in.rec = -1
	return nil
}

func (a *aggOp[A]) result(in *instance, count uint32, b []byte) error {
	var e entry
	var err error
	for i := 0; i < int(count); i++ {
		in.rec = i
		if b, err = next(b, &e); err != nil {
			return err
		}
		if e.kind != wasmabi.EntryAccumulator {
			return unexpected(e.kind, "agg_result")
		}
		acc, err := a.decode(&e)
		if err != nil {
			return err
		}
		r := a.fn.Result(e.key, e.ts, acc)
		if r.Key == nil {
			r.Key = e.key
		}
		if r.Timestamp == 0 {
			r.Timestamp = e.ts
		}
		in.appendRecord(0, &r)
	}
	in.rec = -1
	return nil
}
