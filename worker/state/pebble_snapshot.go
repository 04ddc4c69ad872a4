package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/weirstream/weir/internal/snapshot"
	"github.com/weirstream/weir/wasmabi"
)

// Snapshot implements Backend. The synchronous part, on the caller's
// goroutine (which owns the key groups' caches), takes a pebble snapshot,
// a consistent view that costs no copy, and copies the writes the cache
// holds that pebble does not; they stay pending, so a checkpoint does not
// make the cache write every accumulator to pebble again and again. List
// items pending in a batch go to pebble first. The asynchronous part
// iterates the pebble snapshot with the copied writes laid over it.
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
	var appends []*pebbleState
	src := &pebbleSource{}
	for _, st := range plan.states {
		reg := p.states.get(st.id)
		for kg := r.Start; kg <= r.End; kg++ {
			s := reg.shards[kg]
			switch {
			case s == nil:
			case s.appends != nil && !s.appends.Empty():
				appends = append(appends, s)
			case len(s.cache) > 0:
				src.freeze(st.id, kg, s)
			}
		}
	}
	if err := p.flushShards(appends); err != nil {
		return nil, fmt.Errorf("state: snapshotting operator %q: %w", operator, err)
	}
	src.snap = p.db.NewSnapshot()
	if o := p.lookup(job, operator); o != nil {
		plan.timers = o.freeze(r)
	}
	return &Snapshot{
		header: plan.header(job, operator),
		write:  func(w *snapshot.Writer) error { return plan.write(w, src) },
		release: func() {
			_ = src.snap.Close() // only fails if closed twice, which Release prevents
		},
	}, nil
}

// pebbleSource reads a pebble snapshot for the asynchronous part, with
// the writes pending at the snapshot laid over it.
type pebbleSource struct {
	snap     *pebble.Snapshot
	frozen   map[shardKey]*frozenShard
	lo, hi   []byte
	rec      snapshot.Record
	valueBuf []byte
}

// shardKey names a state's shard: its id and key group.
type shardKey struct {
	id ID
	kg int
}

// frozenShard is a copy of a shard's pending writes: keys and values in
// one buffer, and writes that point into it by offset (no pointers, so
// sorting them costs the garbage collector nothing).
type frozenShard struct {
	buf    []byte
	writes []frozenWrite
	sorted bool
}

type frozenWrite struct {
	off        int
	klen, vlen int32
	del        bool
}

func (f *frozenShard) key(w frozenWrite) []byte {
	return f.buf[w.off : w.off+int(w.klen) : w.off+int(w.klen)]
}

func (f *frozenShard) value(w frozenWrite) []byte {
	end := w.off + int(w.klen) + int(w.vlen)
	return f.buf[w.off+int(w.klen) : end : end]
}

// freeze copies the pending writes of shard s (state id, key group kg).
func (src *pebbleSource) freeze(id ID, kg int, s *pebbleState) {
	f := &frozenShard{buf: make([]byte, 0, s.cacheBytes), writes: make([]frozenWrite, 0, len(s.cache))}
	for k, w := range s.cache {
		f.writes = append(f.writes, frozenWrite{off: len(f.buf), klen: int32(len(k)), vlen: int32(len(w.v)), del: w.del})
		f.buf = append(f.buf, k...)
		f.buf = append(f.buf, w.v...)
	}
	if src.frozen == nil {
		src.frozen = map[shardKey]*frozenShard{}
	}
	src.frozen[shardKey{id, kg}] = f
}

// sortedWrites returns the writes in key order.
func (f *frozenShard) sortedWrites() []frozenWrite {
	if !f.sorted {
		slices.SortFunc(f.writes, func(a, b frozenWrite) int { return bytes.Compare(f.key(a), f.key(b)) })
		f.sorted = true
	}
	return f.writes
}

// slots implements snapSource. Slots of a state in a key group are one
// key range, in the order of their length-prefixed keys, which is the
// snapshot order; a slot's entries follow each other. The frozen writes
// of the shard, sorted, are merged in: a write replaces pebble's entry of
// its key, a deletion removes it.
func (src *pebbleSource) slots(st regInfo, kg int, fn func(rec *snapshot.Record) error) error {
	src.lo = binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint16(src.lo[:0], uint16(kg)), st.tag)
	src.hi = appendPrefixEnd(src.hi[:0], src.lo)
	it, err := src.snap.NewIter(&pebble.IterOptions{LowerBound: src.lo, UpperBound: src.hi})
	if err != nil {
		return err
	}
	f := src.frozen[shardKey{st.id, kg}]
	var over []frozenWrite
	if f != nil {
		over = f.sortedWrites()
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
	add := func(storageKey, v []byte) error {
		k := storageKey[kgLen+tagLen:]
		n, w := binary.Uvarint(k)
		if w <= 0 || n > uint64(len(k)-w) {
			return fmt.Errorf("state: storage key %x: bad record key length", storageKey)
		}
		key, suffix := k[w:w+int(n)], k[w+int(n):]
		var ts int64
		if st.ttl > 0 {
			if len(v) < tsLen {
				return fmt.Errorf("state: value of %s has %d bytes, no write time", st.name, len(v))
			}
			ts, v = int64(binary.BigEndian.Uint64(v)), v[tsLen:]
		}
		if !open || string(rec.Key) != string(key) {
			if err := flush(); err != nil {
				return err
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
				return fmt.Errorf("state: list item key %x of %s: want a %d-byte sequence number", storageKey, st.name, seqLen)
			}
			rec.Type = snapshot.List
			rec.Items = append(rec.Items, snapshot.Item{TS: ts, Value: val})
		default:
			rec.Type = snapshot.Map
			rec.Entries = append(rec.Entries, snapshot.Entry{Key: append([]byte(nil), suffix...), TS: ts, Value: val})
		}
		return nil
	}
	valid := it.First()
	for err == nil {
		if len(over) > 0 && (!valid || bytes.Compare(f.key(over[0]), it.Key()) <= 0) {
			w := over[0]
			over = over[1:]
			if valid && bytes.Equal(f.key(w), it.Key()) {
				valid = it.Next() // replaced
			}
			if !w.del {
				err = add(f.key(w), f.value(w))
			}
			continue
		}
		if !valid {
			break
		}
		var v []byte
		if v, err = it.ValueAndErr(); err == nil {
			err = add(it.Key(), v)
		}
		valid = it.Next()
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
