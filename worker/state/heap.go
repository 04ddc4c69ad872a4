package state

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/wasmabi"
)

// Heap is a Backend that keeps state in Go maps: one map per state ID from
// the slot [key group u16 BE][record key] to the slot's data. Reads of an
// existing entry and overwrites of a value with one no larger allocate
// nothing.
type Heap struct {
	timerStore
	clock  Clock
	reg    *registry
	states table[heapState]
	closed atomic.Bool
}

var _ Backend = (*Heap)(nil)

// heapState is one registered state, sharded by key group: the subtasks
// of an operator use the same ID from different goroutines, each on its
// own key groups, so each key group's shard is only ever touched by one
// goroutine and needs no lock.
type heapState struct {
	decl
	shards []*heapShard // by key group, made on first use
}

// heapShard is the data of one state in one key group.
//
// Snapshots copy on write. Taking one freezes the live map: it joins
// frozen, which the snapshot reads from its own goroutine while nobody
// writes it, and an empty live map takes the writes from then on. A slot
// found only in a frozen map is copied into the live map before it changes
// (own), and a slot removed while a frozen map has it leaves a tombstone.
// When no snapshot reads the frozen maps any more, the next call on the
// shard merges them back (compact), so the work is proportional to the
// writes made while a snapshot was in flight, never to the state's size.
type heapShard struct {
	slots map[string]*heapSlot // live: owned by the shard's goroutine
	// frozen are the maps of earlier snapshots, oldest first, read-only
	// while readers > 0; nil when no snapshot was taken since the last
	// compaction.
	frozen  []map[string]*heapSlot
	readers *atomic.Int32 // snapshots still reading frozen
	key     []byte        // scratch: the slot key of the current call
	sorted  []string      // scratch: map user keys being sorted by Entries
}

// tombstone marks, in a live map, a slot removed while a frozen map has it.
var tombstone = &heapSlot{}

// maxFrozen bounds the frozen maps of a shard: a snapshot taken while
// this many are still read starts a new chain from a shallow copy.
const maxFrozen = 4

// shard returns the shard of kg (checked by state), making it if needed,
// and merges its frozen maps once no snapshot reads them.
func (s *heapState) shard(kg uint16) *heapShard {
	sh := s.shards[kg]
	if sh == nil {
		sh = &heapShard{slots: map[string]*heapSlot{}}
		s.shards[kg] = sh
	}
	if sh.frozen != nil && sh.readers.Load() == 0 {
		sh.compact()
	}
	return sh
}

// compact merges the frozen maps and the live one into the oldest.
func (sh *heapShard) compact() {
	base := sh.frozen[0]
	for _, layer := range append(sh.frozen[1:], sh.slots) {
		for k, sl := range layer {
			if sl == tombstone {
				delete(base, k)
			} else {
				base[k] = sl
			}
		}
	}
	clear(sh.frozen)
	sh.slots, sh.frozen, sh.readers = base, nil, nil
}

// findFrozen returns the newest frozen slot of k (maybe a tombstone).
func (sh *heapShard) findFrozen(k []byte) *heapSlot {
	for i := len(sh.frozen) - 1; i >= 0; i-- {
		if sl, ok := sh.frozen[i][string(k)]; ok {
			return sl
		}
	}
	return nil
}

// find returns the slot of k for reading, or nil.
func (sh *heapShard) find(k []byte) *heapSlot {
	sl := sh.slots[string(k)]
	if sl == nil && sh.frozen != nil {
		sl = sh.findFrozen(k)
	}
	if sl == tombstone {
		return nil
	}
	return sl
}

// own returns the slot of k for writing, in the live map: made if there is
// none, copied if a frozen map has it.
func (sh *heapShard) own(k []byte) *heapSlot {
	sl := sh.slots[string(k)]
	if sl != nil && sl != tombstone {
		return sl
	}
	if sl == nil && sh.frozen != nil {
		if f := sh.findFrozen(k); f != nil && f != tombstone {
			sl = f.clone()
			sh.slots[string(k)] = sl
			return sl
		}
	}
	sl = &heapSlot{}
	sh.slots[string(k)] = sl
	return sl
}

// drop removes the slot of k.
func (sh *heapShard) drop(k []byte) {
	if sh.frozen != nil {
		if f := sh.findFrozen(k); f != nil && f != tombstone {
			sh.slots[string(k)] = tombstone
			return
		}
	}
	delete(sh.slots, string(k))
}

// empty reports whether the shard holds no slot.
func (sh *heapShard) empty() bool {
	if sh.frozen == nil {
		return len(sh.slots) == 0
	}
	for _, sl := range sh.slots {
		if sl != tombstone {
			return false
		}
	}
	for _, layer := range sh.frozen {
		for k, sl := range layer {
			if sl != tombstone && sh.find([]byte(k)) != nil {
				return false
			}
		}
	}
	return true
}

// freeze is the synchronous part of a snapshot of the shard: it returns
// the maps that make up its current content, which stay unchanged until
// the returned counter is decremented.
func (sh *heapShard) freeze() ([]map[string]*heapSlot, *atomic.Int32) {
	if sh.frozen != nil && sh.readers.Load() == 0 {
		sh.compact()
	}
	switch {
	case len(sh.slots) == 0 && sh.frozen != nil:
		// Nothing written since the last freeze: read the same maps.
	case len(sh.frozen) >= maxFrozen:
		// Snapshots overlap for long: start a new chain from a copy; the
		// old maps stay with their readers. The slots are copied too:
		// once this chain's readers are done, compact makes the copy the
		// live map, whose slots are written in place, and the old chain's
		// readers must not see that.
		flat := make(map[string]*heapSlot, len(sh.slots))
		for _, layer := range append(sh.frozen, sh.slots) {
			for k, sl := range layer {
				if sl == tombstone {
					delete(flat, k)
				} else {
					flat[k] = sl
				}
			}
		}
		for k, sl := range flat {
			flat[k] = sl.clone()
		}
		sh.frozen, sh.readers, sh.slots = []map[string]*heapSlot{flat}, new(atomic.Int32), map[string]*heapSlot{}
	default:
		sh.frozen = append(sh.frozen, sh.slots)
		if sh.readers == nil {
			sh.readers = new(atomic.Int32)
		}
		sh.slots = map[string]*heapSlot{}
	}
	sh.readers.Add(1)
	return slices.Clone(sh.frozen), sh.readers
}

func (sl *heapSlot) clone() *heapSlot {
	c := &heapSlot{ts: sl.ts, val: slices.Clone(sl.val), items: slices.Clone(sl.items), itemTS: slices.Clone(sl.itemTS)}
	if sl.val != nil && c.val == nil {
		c.val = []byte{}
	}
	if sl.m != nil {
		c.m = make(map[string]*heapEntry, len(sl.m))
		for k, e := range sl.m {
			c.m[k] = &heapEntry{ts: e.ts, v: slices.Clone(e.v)}
		}
	}
	return c
}

// heapSlot is the data of one (key group, key) of a state; which fields are
// used depends on the kind.
type heapSlot struct {
	ts     int64                 // value: write time (with TTL)
	val    []byte                // value
	items  []byte                // list: items encoded with wasmabi.AppendItem
	itemTS []int64               // list with TTL: write time of each item
	m      map[string]*heapEntry // map
}

type heapEntry struct {
	ts int64
	v  []byte
}

// NewHeap returns an empty heap backend. clock gives the processing time
// for TTL; nil means the wall clock.
func NewHeap(clock Clock) *Heap {
	if clock == nil {
		clock = wallClock
	}
	return &Heap{clock: clock, reg: newRegistry()}
}

// Register implements Backend.
func (h *Heap) Register(uid, name string, kind wasmabi.StateKind, opts Options) (ID, error) {
	return h.RegisterState(Name{Operator: uid, State: name}, kind, opts)
}

// RegisterState implements Backend.
func (h *Heap) RegisterState(n Name, kind wasmabi.StateKind, opts Options) (ID, error) {
	if h.closed.Load() {
		return 0, ErrClosed
	}
	return h.reg.register(n, kind, opts, func(id ID, d decl) error {
		h.states.set(id, &heapState{decl: d, shards: make([]*heapShard, keygroup.MaxMaxParallelism)})
		return nil
	})
}

func (h *Heap) state(id ID, kg uint16) (*heapState, error) {
	if h.closed.Load() {
		return nil, ErrClosed
	}
	s := h.states.get(id)
	if s == nil {
		return nil, fmt.Errorf("state: id %d: %w", id, ErrUnknownID)
	}
	if err := checkKeyGroup(kg); err != nil {
		return nil, err
	}
	return s, nil
}

// slotKey sets s.key to the map key of (kg, key) and returns it.
func (s *heapShard) slotKey(kg uint16, key []byte) []byte {
	s.key = append(binary.BigEndian.AppendUint16(s.key[:0], kg), key...)
	return s.key
}

// live reports whether an entry written at ts is still there at now.
func (s *heapState) live(ts, now int64) bool { return s.ttl == 0 || now-ts < s.ttl }

// now is the write time of an entry written now (0 without TTL, so the
// clock is not read).
func (s *heapState) now(c Clock) int64 {
	if s.ttl == 0 {
		return 0
	}
	return c()
}

// Get implements Backend.
func (h *Heap) Get(id ID, kg uint16, key, userKey, dst []byte) ([]byte, bool, error) {
	s, err := h.state(id, kg)
	if err != nil {
		return dst, false, err
	}
	sh := s.shard(kg)
	k := sh.slotKey(kg, key)
	sl := sh.find(k)
	if sl == nil {
		return dst, false, nil
	}
	switch s.kind {
	case wasmabi.StateValue:
		if !s.live(sl.ts, s.now(h.clock)) {
			sh.drop(k)
			return dst, false, nil
		}
		return append(dst, sl.val...), true, nil
	case wasmabi.StateList:
		return s.listItems(sh, h.clock, k, sl, dst)
	default:
		e := sl.m[string(userKey)]
		if e == nil {
			return dst, false, nil
		}
		if !s.live(e.ts, s.now(h.clock)) {
			s.removeEntry(sh, k, userKey)
			return dst, false, nil
		}
		return append(dst, e.v...), true, nil
	}
}

// Put implements Backend.
func (h *Heap) Put(id ID, kg uint16, key, userKey, value []byte) error {
	s, err := h.state(id, kg)
	if err != nil {
		return err
	}
	sh := s.shard(kg)
	k := sh.slotKey(kg, key)
	sl := sh.slots[string(k)]
	if sl == nil || sl == tombstone {
		sl = sh.own(k)
	}
	now := s.now(h.clock)
	switch s.kind {
	case wasmabi.StateValue:
		sl.val, sl.ts = overwrite(sl.val, value), now
	case wasmabi.StateList:
		sl.items = wasmabi.AppendItem(sl.items, value)
		if s.ttl > 0 {
			sl.itemTS = append(sl.itemTS, now)
		}
	default:
		if sl.m == nil {
			sl.m = map[string]*heapEntry{}
		}
		e := sl.m[string(userKey)]
		if e == nil {
			e = &heapEntry{}
			sl.m[string(userKey)] = e
		}
		e.v, e.ts = overwrite(e.v, value), now
	}
	return nil
}

// overwrite returns v set to value, reusing v's array when it is large
// enough. The result is never nil, so an empty value is still a value.
func overwrite(v, value []byte) []byte {
	if cap(v) >= len(value) && v != nil {
		v = v[:len(value)]
		copy(v, value)
		return v
	}
	return append(make([]byte, 0, len(value)), value...)
}

// Delete implements Backend.
func (h *Heap) Delete(id ID, kg uint16, key, userKey []byte) error {
	s, err := h.state(id, kg)
	if err != nil {
		return err
	}
	sh := s.shard(kg)
	k := sh.slotKey(kg, key)
	if s.kind != wasmabi.StateMap {
		sh.drop(k)
		return nil
	}
	if sl := sh.find(k); sl != nil {
		if _, ok := sl.m[string(userKey)]; ok {
			s.removeEntry(sh, k, userKey)
		}
	}
	return nil
}

// removeEntry removes userKey from the map slot at k, and the slot when it
// becomes empty.
func (s *heapState) removeEntry(sh *heapShard, k []byte, userKey []byte) {
	sl := sh.own(k)
	delete(sl.m, string(userKey))
	if len(sl.m) == 0 {
		sh.drop(k)
	}
}

// Clear implements Backend.
func (h *Heap) Clear(id ID, kg uint16, key []byte) error {
	s, err := h.state(id, kg)
	if err != nil {
		return err
	}
	sh := s.shard(kg)
	sh.drop(sh.slotKey(kg, key))
	return nil
}

// List implements Backend.
func (h *Heap) List(id ID, kg uint16, key, dst []byte) ([]byte, bool, error) {
	s, err := h.state(id, kg)
	if err != nil {
		return dst, false, err
	}
	sh := s.shard(kg)
	if s.kind != wasmabi.StateList {
		return dst, false, fmt.Errorf("state: list of id %d, which is %s state: %w", id, kindName(s.kind), ErrKind)
	}
	k := sh.slotKey(kg, key)
	sl := sh.find(k)
	if sl == nil {
		return dst, false, nil
	}
	return s.listItems(sh, h.clock, k, sl, dst)
}

// listItems appends the live items of the list slot sl at k, first
// dropping the expired ones (and the slot, if none are left).
func (s *heapState) listItems(sh *heapShard, c Clock, k []byte, sl *heapSlot, dst []byte) ([]byte, bool, error) {
	if s.ttl > 0 {
		now := c()
		if sh.frozen != nil {
			expired := false
			for _, ts := range sl.itemTS {
				expired = expired || !s.live(ts, now)
			}
			if !expired {
				return append(dst, sl.items...), len(sl.items) > 0, nil
			}
			sl = sh.own(k) // a frozen slot is never changed
		}
		// Compact in place: kept items only ever move towards the front.
		in, out, n := sl.items, 0, 0
		for _, ts := range sl.itemTS {
			size := 4 + int(binary.LittleEndian.Uint32(in))
			if s.live(ts, now) {
				out += copy(sl.items[out:], in[:size])
				sl.itemTS[n] = ts
				n++
			}
			in = in[size:]
		}
		sl.items, sl.itemTS = sl.items[:out], sl.itemTS[:n]
	}
	if len(sl.items) == 0 {
		sh.drop(k)
		return dst, false, nil
	}
	return append(dst, sl.items...), true, nil
}

// Entries implements Backend.
func (h *Heap) Entries(id ID, kg uint16, key, dst []byte) ([]byte, bool, error) {
	s, err := h.state(id, kg)
	if err != nil {
		return dst, false, err
	}
	sh := s.shard(kg)
	if s.kind != wasmabi.StateMap {
		return dst, false, fmt.Errorf("state: entries of id %d, which is %s state: %w", id, kindName(s.kind), ErrKind)
	}
	k := sh.slotKey(kg, key)
	sl := sh.find(k)
	if sl == nil {
		return dst, false, nil
	}
	now := s.now(h.clock)
	names := sh.sorted[:0]
	expired := false
	for u, e := range sl.m {
		if !s.live(e.ts, now) {
			expired = true
			continue
		}
		names = append(names, u)
	}
	if expired {
		sl = sh.own(k) // a frozen slot is never changed
		for u, e := range sl.m {
			if !s.live(e.ts, now) {
				delete(sl.m, u)
			}
		}
	}
	if len(names) == 0 {
		sh.drop(k)
		return dst, false, nil
	}
	slices.Sort(names)
	for _, u := range names {
		dst = wasmabi.AppendItem(dst, []byte(u))
		dst = wasmabi.AppendItem(dst, sl.m[u].v)
	}
	clear(names) // do not keep removed keys reachable
	sh.sorted = names[:0]
	return dst, true, nil
}

// Close implements Backend; the state is dropped.
func (h *Heap) Close() error {
	h.closed.Store(true)
	h.states.p.Store(nil)
	return nil
}
