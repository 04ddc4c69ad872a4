package state

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/weirstream/weir/internal/snapshot"
	"github.com/weirstream/weir/wasmabi"
)

// Snapshot is the state of one operator subtask — its keyed state in its
// key groups, its operator state and its timers — as it was when the
// backend's Snapshot method returned (the synchronous part, at the
// barrier, on the goroutine that owns the key groups). WriteTo is the
// asynchronous part: it may run on any goroutine while the task goes on
// using the backend, and writes the canonical format of internal/snapshot.
// Release must be called once the snapshot is written or abandoned.
type Snapshot struct {
	header  snapshot.Header
	write   func(w *snapshot.Writer) error
	release func()

	mu       sync.Mutex
	released bool // guarded by mu
}

// ErrReleased is returned by WriteTo after Release.
var ErrReleased = errors.New("state: snapshot released")

// Header is what the snapshot holds.
func (s *Snapshot) Header() *snapshot.Header { return &s.header }

// WriteTo writes the snapshot to w and returns the bytes written. It may be
// called again (say, after a failed upload) until Release.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.released {
		return 0, ErrReleased
	}
	sw, err := snapshot.NewWriter(w, s.header)
	if err != nil {
		return 0, err
	}
	if err := s.write(sw); err != nil {
		return sw.Size(), fmt.Errorf("state: writing the snapshot of operator %q: %w", s.header.Operator, err)
	}
	err = sw.Close()
	return sw.Size(), err
}

// Release frees what the snapshot holds on to (the heap's frozen maps, the
// pebble snapshot). It is idempotent.
func (s *Snapshot) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.released {
		s.released = true
		if s.release != nil {
			s.release()
		}
	}
}

// snapSource is the asynchronous side of one backend's snapshot: it gives
// the slots of one state in one key group, in canonical key order (see
// internal/snapshot), with values as stored (write times included, expired
// entries not yet removed).
type snapSource interface {
	// slots calls fn with each slot of state st in kg; rec has Type, Key
	// and the kind's fields set, and is reused.
	slots(st regInfo, kg int, fn func(rec *snapshot.Record) error) error
}

// snapPlan is what the synchronous part decided: which states, at what
// time expired entries are left out, and the timers.
type snapPlan struct {
	sub    snapshot.Subtask
	states []regInfo
	now    int64 // entries expired at now are left out (states with TTL)
	timers timerView
}

// header builds the snapshot header of the plan.
func (p *snapPlan) header(job, operator string) snapshot.Header {
	h := snapshot.Header{Job: job, Operator: operator, Subtask: p.sub}
	for _, st := range p.states {
		h.States = append(h.States, snapshot.State{Name: st.name.State, Kind: st.declared, TTL: st.ttl})
	}
	return h
}

// hasTTL reports whether any state of the plan expires entries.
func hasTTL(states []regInfo) bool {
	for _, st := range states {
		if st.ttl > 0 {
			return true
		}
	}
	return false
}

// write is the asynchronous part shared by both backends: every key
// group's keyed slots (by state) and timers, then the operator state.
func (p *snapPlan) write(w *snapshot.Writer, src snapSource) error {
	r := p.sub.Range()
	var items []snapshot.Item
	var entries []snapshot.Entry
	for kg := r.Start; kg <= r.End; kg++ {
		for i, st := range p.states {
			if !st.declared.Keyed() {
				continue
			}
			err := src.slots(st, kg, func(rec *snapshot.Record) error {
				switch rec.Type {
				case snapshot.Value:
					if !st.liveAt(rec.TS, p.now) {
						return nil
					}
					return w.Value(i, kg, rec.Key, rec.TS, rec.Value)
				case snapshot.List:
					items = p.liveItems(st, rec.Items, items[:0])
					if len(items) == 0 {
						return nil
					}
					return w.List(i, kg, rec.Key, items)
				default:
					entries = p.liveEntries(st, rec.Entries, entries[:0])
					if len(entries) == 0 {
						return nil
					}
					return w.Map(i, kg, rec.Key, entries)
				}
			})
			if err != nil {
				return err
			}
		}
		for d := wasmabi.EventTime; d <= wasmabi.ProcessingTime; d++ {
			for _, k := range p.timers.sorted(kg, d) {
				ts, key, ns := parseTimerKey(k)
				if err := w.Timer(kg, d, ts, key, ns); err != nil {
					return err
				}
			}
		}
	}
	for i, st := range p.states {
		if st.declared.Keyed() {
			continue
		}
		var got *snapshot.Record
		err := src.slots(st, r.Start, func(rec *snapshot.Record) error {
			if len(rec.Key) == 0 {
				got = rec
				if rec.Type == snapshot.List {
					items = append(items[:0], rec.Items...)
				} else {
					entries = append(entries[:0], rec.Entries...)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if st.declared == wasmabi.StateBroadcast {
			if got == nil {
				entries = entries[:0]
			}
			err = w.Broadcast(i, entries)
		} else {
			if got == nil {
				items = items[:0]
			}
			err = w.OperatorList(i, items)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (d decl) liveAt(ts, now int64) bool { return d.ttl == 0 || now-ts < d.ttl }

func (p *snapPlan) liveItems(st regInfo, in, out []snapshot.Item) []snapshot.Item {
	for _, it := range in {
		if st.liveAt(it.TS, p.now) {
			out = append(out, it)
		}
	}
	return out
}

func (p *snapPlan) liveEntries(st regInfo, in, out []snapshot.Entry) []snapshot.Entry {
	for _, e := range in {
		if st.liveAt(e.TS, p.now) {
			out = append(out, e)
		}
	}
	return out
}

// restoreSink is one backend's side of a restore: it writes one slot of
// a registered state, which was empty.
type restoreSink interface {
	restoreSlot(id ID, d decl, kg uint16, rec *snapshot.Record) error
	// empty reports whether the state id holds nothing in kg.
	empty(id ID, d decl, kg uint16) (bool, error)
	done() error
}

// ErrNotEmpty is returned by Restore when a target key group already holds
// state of the operator.
var ErrNotEmpty = errors.New("state: restoring into key groups that hold state")

// restore is the restore shared by both backends; see Backend.Restore.
func restore(b Backend, ts *timerStore, sink restoreSink, job string, target snapshot.Subtask, from []*snapshot.Reader) error {
	if err := target.Validate(); err != nil {
		return fmt.Errorf("state: restoring: %w", err)
	}
	if len(from) == 0 {
		return errors.New("state: restoring: no snapshots")
	}
	op := from[0].Header().Operator
	type merged struct {
		snapshot.State
		id ID
		d  decl
	}
	states := map[string]*merged{}
	var names []string
	readers := slices.Clone(from)
	slices.SortFunc(readers, func(a, b *snapshot.Reader) int { return a.Header().Subtask.Index - b.Header().Subtask.Index })
	for _, r := range readers {
		h := r.Header()
		switch {
		case h.Operator != op:
			return fmt.Errorf("state: restoring operator %q from a snapshot of operator %q: %w", op, h.Operator, snapshot.ErrMismatch)
		case h.Subtask.MaxParallelism != target.MaxParallelism:
			return fmt.Errorf("state: restoring operator %q with max parallelism %d from a snapshot taken with %d: key groups are the unit of state, so the max parallelism cannot change: %w", op, target.MaxParallelism, h.Subtask.MaxParallelism, snapshot.ErrMismatch)
		}
		for _, s := range h.States {
			m := states[s.Name]
			if m == nil {
				states[s.Name] = &merged{State: s}
				names = append(names, s.Name)
			} else if m.Kind != s.Kind || m.TTL != s.TTL {
				return fmt.Errorf("state: restoring operator %q: state %q is %s (TTL %d) in one snapshot and %s (TTL %d) in another: %w", op, s.Name, kindName(m.Kind), m.TTL, kindName(s.Kind), s.TTL, snapshot.ErrMismatch)
			}
		}
	}
	for i := 1; i < len(readers); i++ {
		if a, b := readers[i-1].Header().Subtask, readers[i].Header().Subtask; a.Index == b.Index || a.Parallelism != b.Parallelism {
			return fmt.Errorf("state: restoring operator %q: snapshots of %s and %s are not of one run: %w", op, a, b, snapshot.ErrMismatch)
		}
	}
	tr := target.Range()
	hasOp := false
	for _, m := range states {
		hasOp = hasOp || !m.Kind.Keyed()
	}
	if p := readers[0].Header().Subtask.Parallelism; hasOp && len(readers) != p {
		return fmt.Errorf("state: restoring operator %q: it has operator state, so the snapshots of all %d subtasks are needed, not %d: %w", op, p, len(readers), snapshot.ErrMismatch)
	}
	// The snapshots must cover the target's key groups: a missing one
	// would lose its keys without a word.
	covered := tr.Start
	for _, r := range readers {
		if sr := r.Header().Subtask.Range(); sr.Start <= covered && sr.End >= covered {
			covered = sr.End + 1
		}
	}
	if covered <= tr.End {
		return fmt.Errorf("state: restoring operator %q into key groups %s: no snapshot holds key group %d: %w", op, tr, covered, snapshot.ErrMismatch)
	}
	for _, name := range names {
		m := states[name]
		id, err := b.RegisterState(Name{Job: job, Operator: op, State: name}, m.Kind, Options{TTL: m.TTL})
		if err != nil {
			return fmt.Errorf("state: restoring: %w", err)
		}
		m.id = id
		m.d = decl{kind: m.Kind.Storage(), declared: m.Kind, ttl: m.TTL, tag: tagOf(Name{Job: job, Operator: op, State: name})}
		for kg := tr.Start; kg <= tr.End; kg++ {
			if !m.Kind.Keyed() && kg != tr.Start {
				break
			}
			ok, err := sink.empty(id, m.d, uint16(kg))
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("state: restoring %s into key group %d: %w", Name{Job: job, Operator: op, State: name}, kg, ErrNotEmpty)
			}
		}
	}
	tid, err := ts.RegisterTimers(job, op)
	if err != nil {
		return err
	}
	tops, _ := ts.op(tid)
	for kg := tr.Start; kg <= tr.End; kg++ {
		if sh := tops.shards[kg]; sh != nil && (len(sh.set[0]) > 0 || len(sh.set[1]) > 0) {
			return fmt.Errorf("state: restoring the timers of operator %q into key group %d: %w", op, kg, ErrNotEmpty)
		}
	}
	opItems := map[string][][]snapshot.Item{}
	opEntries := map[string][][]snapshot.Entry{}
	var timerKey []byte
	for _, r := range readers {
		h := r.Header()
		sr := h.Subtask.Range()
		overlaps := sr.Start <= tr.End && tr.Start <= sr.End
		if !overlaps && !hasOp {
			continue
		}
		err := r.Each(func(rec *snapshot.Record) error {
			switch rec.Type {
			case snapshot.OperatorList:
				n := h.States[rec.State].Name
				opItems[n] = append(opItems[n], cloneItems(rec.Items))
				return nil
			case snapshot.Broadcast:
				n := h.States[rec.State].Name
				opEntries[n] = append(opEntries[n], cloneEntries(rec.Entries))
				return nil
			}
			if !tr.Contains(rec.KeyGroup) {
				return nil
			}
			if rec.Type == snapshot.Timer {
				sh := tops.shard(uint16(rec.KeyGroup))
				timerKey = appendTimerKey(timerKey[:0], rec.TS, rec.Key, rec.Namespace)
				return sh.add(rec.Domain, string(timerKey))
			}
			m := states[h.States[rec.State].Name]
			return sink.restoreSlot(m.id, m.d, uint16(rec.KeyGroup), rec)
		})
		if err != nil {
			return fmt.Errorf("state: restoring operator %q from %s: %w", op, h.Subtask, err)
		}
	}
	okg := OperatorKeyGroup(tr)
	for _, name := range names {
		m := states[name]
		var rec snapshot.Record
		switch m.Kind {
		case wasmabi.StateOperatorList, wasmabi.StateUnionList:
			items, err := snapshot.RedistributeItems(m.Kind, opItems[name], target.Index, target.Parallelism)
			if err != nil {
				return err
			}
			rec = snapshot.Record{Type: snapshot.List, Items: items}
			if len(items) == 0 {
				continue
			}
		case wasmabi.StateBroadcast:
			rec = snapshot.Record{Type: snapshot.Map, Entries: snapshot.BroadcastCopy(opEntries[name])}
			if len(rec.Entries) == 0 {
				continue
			}
		default:
			continue
		}
		if err := sink.restoreSlot(m.id, m.d, okg, &rec); err != nil {
			return fmt.Errorf("state: restoring operator state %q of %q: %w", name, op, err)
		}
	}
	return sink.done()
}

func cloneItems(in []snapshot.Item) []snapshot.Item {
	out := make([]snapshot.Item, len(in))
	for i, it := range in {
		out[i] = snapshot.Item{TS: it.TS, Value: slices.Clone(it.Value)}
	}
	return out
}

func cloneEntries(in []snapshot.Entry) []snapshot.Entry {
	out := make([]snapshot.Entry, len(in))
	for i, e := range in {
		out[i] = snapshot.Entry{Key: slices.Clone(e.Key), TS: e.TS, Value: slices.Clone(e.Value)}
	}
	return out
}

// checkSubtask validates the subtask a snapshot is taken of.
func checkSubtask(job, operator string, sub snapshot.Subtask) error {
	if err := sub.Validate(); err != nil {
		return fmt.Errorf("state: snapshotting operator %q of job %q: %w", operator, job, err)
	}
	return nil
}
