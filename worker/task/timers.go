package task

import (
	"fmt"
	"hash/maphash"
	"math"

	"github.com/weirstream/weir/wasmabi"
	"github.com/weirstream/weir/worker/state"
)

// Timers live in the state backend (see state.Backend.AddTimer), by key
// group, so that a snapshot of an operator subtask holds them with its keys
// and a restore at another parallelism hands them to the subtask that owns
// their keys. The backend stores a timer as (time, key, namespace); the
// namespace says what the host does when it fires:
//
//	nsUser               a module's timer: its OnTimer runs
//	nsWindow  start end  a window ends: its result is emitted
//	nsExpire  start end  a window's allowed lateness is over: its state goes
//
// with start and end as appendWindow writes them. The backend fires timers
// by time, then key, then namespace bytes: at one time and key, user timers
// before window ends before expiries, windows by start, then end.
const (
	nsUser   uint8 = 0
	nsWindow uint8 = 1
	nsExpire uint8 = 2
)

// timer is one timer as the task sees it, decoded from the backend's.
type timer struct {
	ts  int64
	key []byte
	ns  uint8  // nsUser, nsWindow or nsExpire
	win window // for nsWindow and nsExpire
}

// appendNamespace appends the namespace bytes of a timer of kind ns for
// the window win (ignored for user timers).
func appendNamespace(dst []byte, ns uint8, win window) []byte {
	dst = append(dst, ns)
	if ns == nsUser {
		return dst
	}
	return appendWindow(dst, win)
}

// decodeNamespace is the inverse of appendNamespace. Namespaces come back
// from snapshots, which are input from outside: anything appendNamespace
// does not write is an error.
func decodeNamespace(b []byte) (ns uint8, win window, err error) {
	if len(b) == 1 && b[0] == nsUser {
		return nsUser, window{}, nil
	}
	if len(b) == 17 && (b[0] == nsWindow || b[0] == nsExpire) {
		if win, ok := decodeWindow(b[1:]); ok {
			return b[0], win, nil
		}
	}
	return 0, window{}, fmt.Errorf("timer namespace %x is none this host writes (a user timer, a window's end or its expiry): the snapshot it came from is not of this engine or is corrupt", b)
}

// MaxTimerBytes caps the memory the timers an operator subtask's module
// registers may hold (both time domains, by timerBytes), so a module cannot
// grow the host without bound by registering timers. The host's own window
// timers are not counted: there is one per window accumulator (and one
// expiry), so they grow with the window state, not with what the module
// asks for — and counting them cost 7% of q5's CPU.
const MaxTimerBytes = 16 << 20

// timerBytes is what one timer with n bytes of key and namespace holds:
// in the backend its key (time, length, key, namespace) in a set and a
// heap, and here the fingerprint that counts it.
func timerBytes(n int) int64 { return int64(2*n) + 160 }

// timerCount is what the timers an operator subtask's module registered
// hold, counted as the subtask adds and removes them. The backend does not say whether an
// AddTimer added anything (registering a timer again is a no-op, and a
// window operator does it for every batch), so the count keeps a
// fingerprint of each timer it counted: it counts a timer once, and
// uncounts only timers it counted. Timers restored from a snapshot are not
// counted (the count starts from 0 in a restored subtask) until the module
// registers them again; they are uncounted only then.
type timerCount struct {
	bytes   int64
	n       int
	counted map[uint64]struct{}
	seed    maphash.Seed
	scratch []byte
}

func (c *timerCount) fingerprint(d wasmabi.TimeDomain, ts int64, key, ns []byte) uint64 {
	b := append(c.scratch[:0], byte(d))
	b = appendInt64(b, ts)
	b = append(b, byte(len(key)), byte(len(key)>>8), byte(len(key)>>16), byte(len(key)>>24))
	b = append(b, key...)
	b = append(b, ns...)
	c.scratch = b
	return maphash.Bytes(c.seed, b)
}

func newTimerCount() timerCount {
	return timerCount{counted: map[uint64]struct{}{}, seed: maphash.MakeSeed()}
}

func (c *timerCount) add(d wasmabi.TimeDomain, ts int64, key, ns []byte) {
	fp := c.fingerprint(d, ts, key, ns)
	if _, ok := c.counted[fp]; ok {
		return
	}
	c.counted[fp] = struct{}{}
	c.bytes += timerBytes(len(key) + len(ns))
	c.n++
}

func (c *timerCount) remove(d wasmabi.TimeDomain, ts int64, key, ns []byte) {
	if len(c.counted) == 0 {
		return
	}
	fp := c.fingerprint(d, ts, key, ns)
	if _, ok := c.counted[fp]; ok {
		delete(c.counted, fp)
		c.bytes -= timerBytes(len(key) + len(ns))
		c.n--
	}
}

func appendInt64(b []byte, v int64) []byte {
	u := uint64(v)
	return append(b, byte(u), byte(u>>8), byte(u>>16), byte(u>>24), byte(u>>32), byte(u>>40), byte(u>>48), byte(u>>56))
}

// timerSet is one time domain of an operator subtask's timers: a view of
// the backend's timers of the operator in the subtask's key groups, with
// the earliest time cached, so that the checks the task makes all the
// time (is a timer due at this watermark? when is the next processing-time
// timer?) cost a comparison, not a walk over every key group.
type timerSet struct {
	svc    *services
	domain wasmabi.TimeDomain
	// next is the earliest time of a timer, when known and there is one
	// (has). An add lowers it; a delete at that time or firing makes it
	// unknown, found again by NextTimer when next asked. It starts unknown,
	// so timers restored into the backend before first use are seen.
	next       int64
	has, known bool
	err        error         // a backend error found where none could be returned
	due        []state.Timer // scratch of popDue
	order      []timer       // scratch of byKind
	ns         []byte        // scratch: the namespace of the current call
}

func newTimerSet(s *services, d wasmabi.TimeDomain) *timerSet {
	return &timerSet{svc: s, domain: d}
}

// add registers a timer of kind ns (for window win) at ts for key, in key
// group kg; again is a no-op.
func (q *timerSet) add(kg uint16, ts int64, key []byte, ns uint8, win window) error {
	if q.svc.timersErr != nil {
		return q.svc.timersErr
	}
	q.ns = appendNamespace(q.ns[:0], ns, win)
	if err := q.svc.backend.AddTimer(q.svc.timers, kg, q.domain, ts, key, q.ns); err != nil {
		return fmt.Errorf("registering a timer of %s subtask %d: %w", q.svc.n.spec.UID, q.svc.n.t.index, err)
	}
	if ns == nsUser {
		q.svc.timerCount.add(q.domain, ts, key, q.ns)
	}
	if q.known && (!q.has || ts < q.next) {
		q.next, q.has = ts, true
	}
	return nil
}

// remove deletes a timer, if registered.
func (q *timerSet) remove(kg uint16, ts int64, key []byte, ns uint8, win window) error {
	if q.svc.timersErr != nil {
		return q.svc.timersErr
	}
	q.ns = appendNamespace(q.ns[:0], ns, win)
	if err := q.svc.backend.DeleteTimer(q.svc.timers, kg, q.domain, ts, key, q.ns); err != nil {
		return fmt.Errorf("deleting a timer of %s subtask %d: %w", q.svc.n.spec.UID, q.svc.n.t.index, err)
	}
	if ns == nsUser {
		q.svc.timerCount.remove(q.domain, ts, key, q.ns)
	}
	if q.known && ts == q.next {
		q.known = false
	}
	return nil
}

// earliest returns the time of the earliest timer. A backend error makes
// it return a time long past, so the caller's next popDue reports it.
func (q *timerSet) earliest() (int64, bool) {
	if !q.known {
		if q.err == nil {
			q.err = q.svc.timersErr
		}
		if q.err != nil {
			return math.MinInt64, true
		}
		ts, ok, err := q.svc.backend.NextTimer(q.svc.timers, q.svc.kgs, q.domain)
		if err != nil {
			q.err = fmt.Errorf("finding the next timer of %s subtask %d: %w", q.svc.n.spec.UID, q.svc.n.t.index, err)
			return math.MinInt64, true
		}
		q.next, q.has, q.known = ts, ok, true
	}
	return q.next, q.has
}

// popDue removes the timers at or before upTo and appends them to dst, by
// time, then key, then namespace.
func (q *timerSet) popDue(upTo int64, dst []timer) ([]timer, error) {
	if next, ok := q.earliest(); !ok || next > upTo {
		return dst, q.err
	}
	if q.err != nil {
		return dst, q.err
	}
	var err error
	clear(q.due) // let the backend's keys of the last round go
	q.due, err = q.svc.backend.PopDueTimers(q.svc.timers, q.svc.kgs, q.domain, upTo, q.due[:0])
	q.known = false // the earliest is now past upTo: found again when asked
	if err != nil {
		return dst, fmt.Errorf("taking the due timers of %s subtask %d: %w", q.svc.n.spec.UID, q.svc.n.t.index, err)
	}
	for i := range q.due {
		t := &q.due[i]
		ns, win, err := decodeNamespace(t.Namespace)
		if err != nil {
			return dst, fmt.Errorf("%s subtask %d: a timer of key %q at %d: %w", q.svc.n.spec.UID, q.svc.n.t.index, t.Key, t.Time, err)
		}
		if ns == nsUser {
			q.svc.timerCount.remove(q.domain, t.Time, t.Key, t.Namespace)
		}
		dst = append(dst, timer{ts: t.Time, key: t.Key, ns: ns, win: win})
	}
	return dst, nil
}

// byKind splits due timers by what firing them does, each part in firing
// order, into a scratch slice that stays valid until the next call.
func (q *timerSet) byKind(due []timer) (wins, expired, user []timer) {
	q.order = q.order[:0]
	var ends [3]int
	for i, k := range [...]uint8{nsWindow, nsExpire, nsUser} {
		for _, t := range due {
			if t.ns == k {
				q.order = append(q.order, t)
			}
		}
		ends[i] = len(q.order)
	}
	return q.order[:ends[0]:ends[0]], q.order[ends[0]:ends[1]:ends[1]], q.order[ends[1]:]
}
