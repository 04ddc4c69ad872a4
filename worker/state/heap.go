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
type heapShard struct {
	slots  map[string]*heapSlot
	key    []byte   // scratch: the slot key of the current call
	sorted []string // scratch: map user keys being sorted by Entries
}

// shard returns the shard of kg (checked by state), making it if needed.
func (s *heapState) shard(kg uint16) *heapShard {
	sh := s.shards[kg]
	if sh == nil {
		sh = &heapShard{slots: map[string]*heapSlot{}}
		s.shards[kg] = sh
	}
	return sh
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
	sl := sh.slots[string(k)]
	if sl == nil {
		return dst, false, nil
	}
	switch s.kind {
	case wasmabi.StateValue:
		if !s.live(sl.ts, s.now(h.clock)) {
			delete(sh.slots, string(k))
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
			s.removeEntry(sh, k, sl, userKey)
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
	if sl == nil {
		sl = &heapSlot{}
		sh.slots[string(k)] = sl
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
		delete(sh.slots, string(k))
		return nil
	}
	if sl := sh.slots[string(k)]; sl != nil {
		s.removeEntry(sh, k, sl, userKey)
	}
	return nil
}

// removeEntry removes userKey from the map slot sl at k, and the slot when
// it becomes empty.
func (s *heapState) removeEntry(sh *heapShard, k []byte, sl *heapSlot, userKey []byte) {
	delete(sl.m, string(userKey))
	if len(sl.m) == 0 {
		delete(sh.slots, string(k))
	}
}

// Clear implements Backend.
func (h *Heap) Clear(id ID, kg uint16, key []byte) error {
	s, err := h.state(id, kg)
	if err != nil {
		return err
	}
	sh := s.shard(kg)
	delete(sh.slots, string(sh.slotKey(kg, key)))
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
	sl := sh.slots[string(k)]
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
		delete(sh.slots, string(k))
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
	sl := sh.slots[string(k)]
	if sl == nil {
		return dst, false, nil
	}
	now := s.now(h.clock)
	names := sh.sorted[:0]
	for u, e := range sl.m {
		if !s.live(e.ts, now) {
			delete(sl.m, u)
			continue
		}
		names = append(names, u)
	}
	if len(names) == 0 {
		delete(sh.slots, string(k))
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
