package state

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/weirstream/weir/internal/snapshot"
	"github.com/weirstream/weir/wasmabi"
)

// Snapshot implements Backend. The synchronous part gives the pending
// writes of the operator's states in the subtask's key groups to pebble
// (on the caller's goroutine, which owns them) and takes a pebble
// snapshot, a consistent view that costs no copy; the asynchronous part
// iterates it.
func (p *Pebble) Snapshot(job, operator string, sub snapshot.Subtask) (*Snapshot, error) {
	if p.closed.Load() {
		return nil, ErrClosed
	}
	if err := checkSubtask(job, operator, sub); err != nil {
		return nil, err
	}
	plan := &snapPlan{sub: sub, states: p.reg.operatorStates(job, operator)}
	if hasTTL(plan.states) {
		plan.now = p.clock()
	}
	r := sub.Range()
	var shards []*pebbleState
	for _, st := range plan.states {
		reg := p.states.get(st.id)
		for kg := r.Start; kg <= r.End; kg++ {
			if s := reg.shards[kg]; s != nil && (len(s.dirty) > 0 || (s.appends != nil && !s.appends.Empty())) {
				shards = append(shards, s)
			}
		}
	}
	if err := p.flushShards(shards); err != nil {
		return nil, fmt.Errorf("state: snapshotting operator %q: %w", operator, err)
	}
	snap := p.db.NewSnapshot()
	if o := p.lookup(job, operator); o != nil {
		plan.timers = o.freeze(r)
	}
	src := &pebbleSource{snap: snap}
	return &Snapshot{
		header: plan.header(job, operator),
		write:  func(w *snapshot.Writer) error { return plan.write(w, src) },
		release: func() {
			_ = snap.Close() // only fails if closed twice, which Release prevents
		},
	}, nil
}

// pebbleSource reads a pebble snapshot for the asynchronous part.
type pebbleSource struct {
	snap     *pebble.Snapshot
	lo, hi   []byte
	rec      snapshot.Record
	valueBuf []byte
}

// slots implements snapSource. Slots of a state in a key group are one
// key range, in the order of their length-prefixed keys, which is the
// snapshot order; a slot's entries follow each other.
func (src *pebbleSource) slots(st regInfo, kg int, fn func(rec *snapshot.Record) error) error {
	src.lo = binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint16(src.lo[:0], uint16(kg)), st.tag)
	src.hi = appendPrefixEnd(src.hi[:0], src.lo)
	it, err := src.snap.NewIter(&pebble.IterOptions{LowerBound: src.lo, UpperBound: src.hi})
	if err != nil {
		return err
	}
	rec := &src.rec
	open := false // rec holds a slot not yet given to fn
	flush := func() error {
		if !open {
			return nil
		}
		open = false
		return fn(rec)
	}
	for valid := it.First(); valid && err == nil; valid = it.Next() {
		k := it.Key()[kgLen+tagLen:]
		n, w := binary.Uvarint(k)
		if w <= 0 || n > uint64(len(k)-w) {
			err = fmt.Errorf("state: storage key %x: bad record key length", it.Key())
			break
		}
		key, suffix := k[w:w+int(n)], k[w+int(n):]
		var v []byte
		if v, err = it.ValueAndErr(); err != nil {
			break
		}
		var ts int64
		if st.ttl > 0 {
			if len(v) < tsLen {
				err = fmt.Errorf("state: value of %s has %d bytes, no write time", st.name, len(v))
				break
			}
			ts, v = int64(binary.BigEndian.Uint64(v)), v[tsLen:]
		}
		if !open || string(rec.Key) != string(key) {
			if err = flush(); err != nil {
				break
			}
			open = true
			rec.Key, rec.Items, rec.Entries, src.valueBuf = append(rec.Key[:0], key...), rec.Items[:0], rec.Entries[:0], src.valueBuf[:0]
		}
		// Values are copied: the iterator's bytes change as it moves.
		start := len(src.valueBuf)
		src.valueBuf = append(src.valueBuf, v...)
		// If the buffer moved, earlier items of the slot still point into
		// the old array, which nothing writes again.
		val := src.valueBuf[start:len(src.valueBuf):len(src.valueBuf)]
		switch st.kind {
		case wasmabi.StateValue:
			rec.Type, rec.TS, rec.Value = snapshot.Value, ts, val
		case wasmabi.StateList:
			if len(suffix) != seqLen {
				err = fmt.Errorf("state: list item key %x of %s: want a %d-byte sequence number", it.Key(), st.name, seqLen)
				break
			}
			rec.Type = snapshot.List
			rec.Items = append(rec.Items, snapshot.Item{TS: ts, Value: val})
		default:
			rec.Type = snapshot.Map
			rec.Entries = append(rec.Entries, snapshot.Entry{Key: append([]byte(nil), suffix...), TS: ts, Value: val})
		}
	}
	if err == nil {
		err = flush()
	}
	return errors.Join(err, it.Error(), it.Close())
}

// Restore implements Backend. Entries go to pebble in batches, bypassing
// the pending writes.
func (p *Pebble) Restore(job string, target snapshot.Subtask, from []*snapshot.Reader) error {
	if p.closed.Load() {
		return ErrClosed
	}
	sink := &pebbleSink{p: p}
	err := restore(p, &p.timerStore, sink, job, target, from)
	if sink.b != nil {
		err = errors.Join(err, sink.b.Close())
	}
	return err
}

type pebbleSink struct {
	p   *Pebble
	b   *pebble.Batch
	key []byte
	val []byte
}

// restoreBatch bounds the bytes of one restore batch.
const restoreBatch = 4 << 20

func (s *pebbleSink) empty(id ID, d decl, kg uint16) (bool, error) {
	ps, err := s.p.state(id, kg)
	if err != nil {
		return false, err
	}
	if err := s.p.flush(ps); err != nil {
		return false, err
	}
	lo := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint16(nil, kg), d.tag)
	it, err := s.p.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: appendPrefixEnd(nil, lo)})
	if err != nil {
		return false, err
	}
	used := it.First()
	return !used, errors.Join(it.Error(), it.Close())
}

func (s *pebbleSink) set(d decl, ts int64, v []byte) error {
	if s.b == nil {
		s.b = s.p.db.NewBatch()
	}
	if d.ttl > 0 {
		s.val = binary.BigEndian.AppendUint64(s.val[:0], uint64(ts))
		v = append(s.val, v...)
	}
	if err := s.b.Set(s.key, v, nil); err != nil {
		return err
	}
	if s.b.Len() >= restoreBatch {
		return s.commit()
	}
	return nil
}

func (s *pebbleSink) commit() error {
	if s.b == nil || s.b.Empty() {
		return nil
	}
	err := s.p.db.Apply(s.b, pebble.NoSync)
	s.b.Reset()
	return err
}

func (s *pebbleSink) restoreSlot(id ID, d decl, kg uint16, rec *snapshot.Record) error {
	ps, err := s.p.state(id, kg)
	if err != nil {
		return err
	}
	slot := appendSlot(s.key[:0], d.tag, kg, rec.Key)
	switch rec.Type {
	case snapshot.Value:
		s.key = slot
		return s.set(d, rec.TS, rec.Value)
	case snapshot.List:
		n := len(slot)
		for i, it := range rec.Items {
			s.key = binary.BigEndian.AppendUint64(slot[:n], uint64(i))
			if err := s.set(d, it.TS, it.Value); err != nil {
				return err
			}
			slot = s.key
		}
		// The list's next sequence number is known: no reverse seek.
		ps.key = append(ps.key[:0], slot[:n]...)
		ps.cacheSeq(uint64(len(rec.Items)))
	default:
		n := len(slot)
		for _, e := range rec.Entries {
			s.key = append(slot[:n], e.Key...)
			if err := s.set(d, e.TS, e.Value); err != nil {
				return err
			}
			slot = s.key
		}
	}
	return nil
}

func (s *pebbleSink) done() error { return s.commit() }
