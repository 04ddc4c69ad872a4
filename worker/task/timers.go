package task

import (
	"container/heap"
)

// timer is one registered timer: for user timers ns is 0; window timers
// carry the window they fire.
type timer struct {
	ts  int64
	key string
	ns  uint8 // 0: user timer, 1: window
	win window
}

type timerID struct {
	ts  int64
	key string
	ns  uint8
	win window
}

// timerQueue keeps the timers of one time domain of one operator: a
// min-heap by time, then key, with a set that makes registering the same
// timer twice a no-op. Timers live in memory; checkpointing them is the
// checkpoint layer's job.
type timerQueue struct {
	h     timerHeap
	set   map[timerID]struct{}
	bytes int64 // what the live timers hold, by timerBytes
}

// MaxTimerBytes caps the memory the timers an operator subtask's module
// registers may hold (both time domains, by timerBytes), so a module cannot
// grow the host without bound by registering timers.
const MaxTimerBytes = 16 << 20

// timerBytes is what one timer with a key of n bytes holds: the key, its
// heap entry and its set entry.
func timerBytes(n int) int64 { return int64(2*n) + 160 }

func newTimerQueue() *timerQueue { return &timerQueue{set: map[timerID]struct{}{}} }

func (q *timerQueue) add(t timer) {
	id := timerID(t)
	if _, dup := q.set[id]; dup {
		return
	}
	q.set[id] = struct{}{}
	q.bytes += timerBytes(len(t.key))
	heap.Push(&q.h, t)
}

// remove deletes a timer; the heap entry is dropped lazily when it comes up.
func (q *timerQueue) remove(t timer) {
	if _, ok := q.set[timerID(t)]; ok {
		delete(q.set, timerID(t))
		q.bytes -= timerBytes(len(t.key))
	}
	// Deleted timers leave their heap entries behind until they come up;
	// compact when they outnumber the live ones, so register-and-delete
	// cannot grow the heap past the bytes the cap counts.
	if len(q.h) > 2*len(q.set)+1024 {
		live := q.h[:0]
		for _, e := range q.h {
			if _, ok := q.set[timerID(e)]; ok {
				live = append(live, e)
			}
		}
		clear(q.h[len(live):])
		q.h = live
		heap.Init(&q.h)
	}
}

// next returns the earliest live timer without removing it.
func (q *timerQueue) next() (timer, bool) {
	for len(q.h) > 0 {
		t := q.h[0]
		if _, ok := q.set[timerID(t)]; ok {
			return t, true
		}
		heap.Pop(&q.h)
	}
	return timer{}, false
}

// popDue appends to dst and removes the live timers at or before ts, in
// time order.
func (q *timerQueue) popDue(ts int64, dst []timer) []timer {
	for {
		t, ok := q.next()
		if !ok || t.ts > ts {
			return dst
		}
		heap.Pop(&q.h)
		delete(q.set, timerID(t))
		q.bytes -= timerBytes(len(t.key))
		dst = append(dst, t)
	}
}

func (q *timerQueue) len() int { return len(q.set) }

type timerHeap []timer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].ts != h[j].ts {
		return h[i].ts < h[j].ts
	}
	if h[i].key != h[j].key {
		return h[i].key < h[j].key
	}
	return h[i].win.start < h[j].win.start
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}
