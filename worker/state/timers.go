package state

import (
	"container/heap"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/wasmabi"
)

// TimersID is the handle of the timers of one operator in one Backend, in
// this process (see RegisterTimers).
type TimersID uint32

// Timer is one registered timer: its key group, time, record key and an
// opaque namespace (what the task needs to tell timers of one key and time
// apart, e.g. a window).
type Timer struct {
	KeyGroup  uint16
	Time      int64
	Key       []byte
	Namespace []byte
}

// timerStore keeps the timers of every operator of a backend, by key group
// and time domain, so that they are snapshotted and redistributed with the
// keyed state of their key groups. Both backends keep timers in memory
// (the number of timers is small next to the state, and firing must not
// scan the disk); snapshots copy them on write.
//
// Like keyed state, each key group's shard belongs to the one goroutine
// that owns the key group: no lock on the hot path.
type timerStore struct {
	mu    sync.Mutex
	byOp  map[[2]string]TimersID // guarded by mu: (job, operator) -> ID
	next  TimersID               // guarded by mu
	table table[timerOp]
}

// timerOp is the timers of one operator, sharded by key group.
type timerOp struct {
	job, operator string
	shards        []*timerShard // by key group, made on first use
}

// timerShard is the timers of one operator in one key group, by domain.
// Each timer is the string timerKey(ts, key, ns), whose byte order is the
// order timers fire in: by time, then key (shorter first), then namespace.
type timerShard struct {
	set [2]map[string]struct{} // the timers
	// shared says set[d] is read by a snapshot: the next change copies it.
	shared [2]bool
	// due is a min-heap of timer keys; entries deleted from set are dropped
	// lazily when they come up.
	due [2]timerHeap
	key []byte // scratch: the timer key of the current call
}

type timerHeap []string

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(string)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}

// appendTimerKey appends the key of a timer: its time with the sign bit
// flipped (so that unsigned byte order is numeric order), the record key
// length-prefixed, then the namespace.
func appendTimerKey(dst []byte, ts int64, key, ns []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(ts)^(1<<63))
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	dst = append(dst, key...)
	return append(dst, ns...)
}

// parseTimerKey is the inverse of appendTimerKey; keys come only from
// appendTimerKey, so it does not fail.
func parseTimerKey(k string) (ts int64, key, ns []byte) {
	ts = int64(binary.BigEndian.Uint64([]byte(k[:8])) ^ (1 << 63))
	n, w := binary.Uvarint([]byte(k[8:min(len(k), 18)]))
	rest := k[8+w:]
	return ts, []byte(rest[:n]), []byte(rest[n:])
}

// RegisterTimers returns the handle of the timers of operator (job, uid);
// registering again returns the same one. It implements Backend for both
// backends.
func (s *timerStore) RegisterTimers(job, operator string) (TimersID, error) {
	if len(job) > maxNameLen || len(operator) > maxNameLen {
		return 0, fmt.Errorf("state: registering the timers of operator %q of job %q: want a job and uid of at most %d bytes", operator, job, maxNameLen)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byOp == nil {
		s.byOp = map[[2]string]TimersID{}
	}
	if id, ok := s.byOp[[2]string{job, operator}]; ok {
		return id, nil
	}
	id := s.next
	s.next++
	s.byOp[[2]string{job, operator}] = id
	s.table.set(ID(id), &timerOp{job: job, operator: operator, shards: make([]*timerShard, keygroup.MaxMaxParallelism)})
	return id, nil
}

// lookup returns the timers of the operator (job, uid), if registered.
func (s *timerStore) lookup(job, operator string) *timerOp {
	s.mu.Lock()
	id, ok := s.byOp[[2]string{job, operator}]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	return s.table.get(ID(id))
}

func (s *timerStore) op(id TimersID) (*timerOp, error) {
	o := s.table.get(ID(id))
	if o == nil {
		return nil, fmt.Errorf("state: timers %d: %w", id, ErrUnknownID)
	}
	return o, nil
}

func checkDomain(d wasmabi.TimeDomain) error {
	if d != wasmabi.EventTime && d != wasmabi.ProcessingTime {
		return fmt.Errorf("state: time domain %d: want event (%d) or processing time (%d)", d, wasmabi.EventTime, wasmabi.ProcessingTime)
	}
	return nil
}

// shard returns the shard of kg, made if needed.
func (o *timerOp) shard(kg uint16) *timerShard {
	sh := o.shards[kg]
	if sh == nil {
		sh = &timerShard{}
		o.shards[kg] = sh
	}
	return sh
}

// writable returns the set of domain d, copied first if a snapshot reads it.
func (sh *timerShard) writable(d wasmabi.TimeDomain) map[string]struct{} {
	switch {
	case sh.set[d] == nil:
		sh.set[d] = map[string]struct{}{}
	case sh.shared[d]:
		sh.set[d] = maps.Clone(sh.set[d])
	}
	sh.shared[d] = false
	return sh.set[d]
}

// AddTimer registers a timer of domain d at ts for key (in key group kg)
// and namespace ns; registering it again changes nothing.
func (s *timerStore) AddTimer(id TimersID, kg uint16, d wasmabi.TimeDomain, ts int64, key, ns []byte) error {
	o, err := s.op(id)
	if err != nil {
		return err
	}
	if err := firstErr(checkKeyGroup(kg), checkDomain(d)); err != nil {
		return err
	}
	sh := o.shard(kg)
	sh.key = appendTimerKey(sh.key[:0], ts, key, ns)
	// A window operator registers its window's timer for every record:
	// the common case is a timer that exists, found without allocating.
	if _, dup := sh.set[d][string(sh.key)]; dup {
		return nil
	}
	return sh.add(d, string(sh.key))
}

func (sh *timerShard) add(d wasmabi.TimeDomain, k string) error {
	if _, dup := sh.set[d][k]; dup {
		return nil
	}
	sh.writable(d)[k] = struct{}{}
	heap.Push(&sh.due[d], k)
	return nil
}

// DeleteTimer removes a timer, if registered.
func (s *timerStore) DeleteTimer(id TimersID, kg uint16, d wasmabi.TimeDomain, ts int64, key, ns []byte) error {
	o, err := s.op(id)
	if err != nil {
		return err
	}
	if err := firstErr(checkKeyGroup(kg), checkDomain(d)); err != nil {
		return err
	}
	sh := o.shards[kg]
	if sh == nil {
		return nil
	}
	sh.key = appendTimerKey(sh.key[:0], ts, key, ns)
	if _, ok := sh.set[d][string(sh.key)]; ok {
		delete(sh.writable(d), string(sh.key))
	}
	return nil
}

// top returns the earliest live timer key of domain d, dropping deleted
// ones from the heap.
func (sh *timerShard) top(d wasmabi.TimeDomain) (string, bool) {
	h := &sh.due[d]
	for len(*h) > 0 {
		k := (*h)[0]
		if _, ok := sh.set[d][k]; ok {
			return k, true
		}
		heap.Pop(h)
	}
	return "", false
}

// NextTimer returns the time of the earliest timer of domain d in the key
// groups r.
func (s *timerStore) NextTimer(id TimersID, r keygroup.Range, d wasmabi.TimeDomain) (int64, bool, error) {
	o, err := s.op(id)
	if err != nil {
		return 0, false, err
	}
	if err := firstErr(checkRange(r), checkDomain(d)); err != nil {
		return 0, false, err
	}
	best, found := "", false
	for kg := r.Start; kg <= r.End; kg++ {
		if sh := o.shards[kg]; sh != nil {
			if k, ok := sh.top(d); ok && (!found || k < best) {
				best, found = k, true
			}
		}
	}
	if !found {
		return 0, false, nil
	}
	ts, _, _ := parseTimerKey(best)
	return ts, true, nil
}

// PopDueTimers removes the timers of domain d in the key groups r due at
// upTo (time <= upTo) and appends them to dst in firing order: by time,
// then key, then namespace.
func (s *timerStore) PopDueTimers(id TimersID, r keygroup.Range, d wasmabi.TimeDomain, upTo int64, dst []Timer) ([]Timer, error) {
	o, err := s.op(id)
	if err != nil {
		return dst, err
	}
	if err := firstErr(checkRange(r), checkDomain(d)); err != nil {
		return dst, err
	}
	limit := string(appendTimerKey(nil, upTo, nil, nil))
	var due []string
	var kgs []uint16
	for kg := r.Start; kg <= r.End; kg++ {
		sh := o.shards[kg]
		if sh == nil {
			continue
		}
		for {
			k, ok := sh.top(d)
			if !ok || k[:8] > limit[:8] {
				break
			}
			heap.Pop(&sh.due[d])
			delete(sh.writable(d), k)
			due, kgs = append(due, k), append(kgs, uint16(kg))
		}
	}
	idx := make([]int, len(due))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return strings.Compare(due[a], due[b]) })
	for _, i := range idx {
		ts, key, ns := parseTimerKey(due[i])
		dst = append(dst, Timer{KeyGroup: kgs[i], Time: ts, Key: key, Namespace: ns})
	}
	return dst, nil
}

// dropTimers forgets every operator's timers in the key groups r, which
// no task uses any more.
func (s *timerStore) dropTimers(r keygroup.Range) {
	s.table.each(func(o *timerOp) {
		for kg := r.Start; kg <= r.End; kg++ {
			o.shards[kg] = nil
		}
	})
}

// timerView is what a snapshot keeps of an operator's timers: the sets of
// each key group and domain of its range, as they were at the barrier.
type timerView struct {
	start int
	sets  [][2]map[string]struct{} // by key group from start
}

// freeze takes the view of the timers of o in r; the task copies a set
// before it next changes it.
func (o *timerOp) freeze(r keygroup.Range) timerView {
	v := timerView{start: r.Start, sets: make([][2]map[string]struct{}, r.Len())}
	for kg := r.Start; kg <= r.End; kg++ {
		sh := o.shards[kg]
		if sh == nil {
			continue
		}
		for d := range sh.set {
			if len(sh.set[d]) > 0 {
				v.sets[kg-r.Start][d] = sh.set[d]
				sh.shared[d] = true
			}
		}
	}
	return v
}

// sorted returns the timer keys of domain d in key group kg, in order.
func (v timerView) sorted(kg int, d wasmabi.TimeDomain) []string {
	if v.sets == nil {
		return nil
	}
	set := v.sets[kg-v.start][d]
	if len(set) == 0 {
		return nil
	}
	return slices.Sorted(maps.Keys(set))
}

// checkRange rejects key-group ranges no job can have.
func checkRange(r keygroup.Range) error {
	if r.Start < 0 || r.End < r.Start || r.End >= keygroup.MaxMaxParallelism {
		return fmt.Errorf("state: key-group range %v: want 0 <= start <= end < %d", r, keygroup.MaxMaxParallelism)
	}
	return nil
}

// firstErr returns a if it is an error, else b.
func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
