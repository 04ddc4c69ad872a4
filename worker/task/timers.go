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
	h   timerHeap
	set map[timerID]struct{}
}

func newTimerQueue() *timerQueue { return &timerQueue{set: map[timerID]struct{}{}} }

func (q *timerQueue) add(t timer) {
	id := timerID(t)
	if _, dup := q.set[id]; dup {
		return
	}
	q.set[id] = struct{}{}
	heap.Push(&q.h, t)
}

// remove deletes a timer; the heap entry is dropped lazily when it comes up.
func (q *timerQueue) remove(t timer) { delete(q.set, timerID(t)) }

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
