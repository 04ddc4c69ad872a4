package task

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/weirstream/weir/wasmabi"
	"github.com/weirstream/weir/worker/state"
)

// window is a half-open interval [start, end) of event time in ms.
type window struct{ start, end int64 }

// last is the window's last millisecond: it fires when the watermark
// reaches it, and it is the timestamp of its result.
func (w window) last() int64 { return w.end - 1 }

var globalWindow = window{math.MinInt64, math.MaxInt64}

// windowKey encodes w as a map-state user key that sorts by start.
func appendWindow(dst []byte, w window) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(w.start)^(1<<63))
	return binary.BigEndian.AppendUint64(dst, uint64(w.end)^(1<<63))
}

func decodeWindow(b []byte) (window, bool) {
	if len(b) != 16 {
		return window{}, false
	}
	return window{int64(binary.BigEndian.Uint64(b) ^ (1 << 63)), int64(binary.BigEndian.Uint64(b[8:]) ^ (1 << 63))}, true
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// windowOp is the host's half of a window aggregate: it assigns records to
// windows, keeps one accumulator per key and window in keyed map state, and
// asks the module to add, merge and produce results.
type windowOp struct {
	n        *node
	svc      *services
	typ      WindowType
	size     int64
	slide    int64
	gap      int64
	lateness int64
	latePort int
	accID    state.ID

	// per-batch scratch
	groups   map[string]int
	gkey     []byte
	gs       []group
	recs     []groupRec
	in       []byte
	wins     []window
	late     []byte
	lateN    int
	accBuf   []byte
	dropped  int64
	existing []winAcc
}

type group struct {
	key  []byte
	win  window
	n    int    // records
	acc  []byte // current accumulator, nil when new
	olds []window
}

type groupRec struct {
	g     int
	entry []byte
}

type winAcc struct {
	win window
	acc []byte
}

func newWindowOp(n *node, svc *services) (*windowOp, error) {
	ws := n.spec.Window
	if ws == nil {
		ws = &WindowSpec{Type: WindowGlobal}
	}
	w := &windowOp{n: n, svc: svc, typ: ws.Type, size: ws.Size.Milliseconds(), slide: ws.Slide.Milliseconds(),
		gap: ws.Gap.Milliseconds(), lateness: ws.AllowedLateness.Milliseconds(), latePort: ws.LatePort, groups: map[string]int{}}
	switch w.typ {
	case WindowTumbling:
		if w.size <= 0 {
			return nil, fmt.Errorf("%s: a tumbling window needs a size of at least 1ms", n.spec.UID)
		}
	case WindowSliding:
		if w.size <= 0 || w.slide <= 0 || w.size%w.slide != 0 {
			return nil, fmt.Errorf("%s: a sliding window needs size and slide of at least 1ms, size a multiple of slide", n.spec.UID)
		}
	case WindowSession:
		if w.gap <= 0 {
			return nil, fmt.Errorf("%s: a session window needs a gap of at least 1ms", n.spec.UID)
		}
	case WindowGlobal:
	default:
		return nil, fmt.Errorf("%s: unknown window type %q", n.spec.UID, w.typ)
	}
	id, err := svc.backend.RegisterState(n.stateName("__windows"), wasmabi.StateMap, state.Options{TTL: svc.ttl})
	if err != nil {
		return nil, err
	}
	w.accID = id
	return w, nil
}

// assign appends the windows of a record at ts.
func (w *windowOp) assign(dst []window, ts int64) []window {
	switch w.typ {
	case WindowTumbling:
		s := floorDiv(ts, w.size) * w.size
		return append(dst, window{s, s + w.size})
	case WindowSliding:
		for s := floorDiv(ts, w.slide) * w.slide; s > ts-w.size; s -= w.slide {
			dst = append(dst, window{s, s + w.size})
		}
		return dst
	case WindowSession:
		return append(dst, window{ts, ts + w.gap})
	}
	return append(dst, globalWindow)
}

// isLate reports whether a window can no longer take records.
func (w *windowOp) isLate(win window) bool {
	if win.end == math.MaxInt64 {
		return false
	}
	return win.last()+w.lateness <= w.n.wm
}

// add folds a batch of records into their windows.
func (w *windowOp) add(entries []byte) error {
	clear(w.groups)
	w.gs, w.recs, w.late, w.lateN = w.gs[:0], w.recs[:0], w.late[:0], 0
	for off := 0; off < len(entries); {
		size := entrySize(entries[off:])
		e := entries[off : off+size]
		off += size
		kl := int(le32(e[4:]))
		key := e[wasmabi.EntryHeaderSize : wasmabi.EntryHeaderSize+kl]
		ts := le64(e[8:])
		w.wins = w.assign(w.wins[:0], ts)
		placed := false
		for _, win := range w.wins {
			if w.isLate(win) {
				continue
			}
			placed = true
			w.gkey = appendWindow(append(w.gkey[:0], key...), win)
			g, ok := w.groups[string(w.gkey)]
			if !ok {
				g = len(w.gs)
				w.groups[string(w.gkey)] = g
				w.gs = append(w.gs, group{key: key, win: win})
			}
			w.gs[g].n++
			w.recs = append(w.recs, groupRec{g, e})
		}
		if !placed {
			if w.latePort > 0 {
				w.late = append(w.late, e...)
				w.lateN++
			} else {
				w.dropped++
			}
		}
	}
	if w.typ == WindowSession {
		if err := w.mergeSessions(); err != nil {
			return err
		}
	}
	if len(w.gs) > 0 {
		if err := w.addGroups(); err != nil {
			return err
		}
	}
	if w.lateN > 0 {
		return w.n.deliver(w.latePort, w.late, w.lateN)
	}
	return nil
}

// addGroups runs agg_add over the batch's groups and stores the results.
func (w *windowOp) addGroups() error {
	// Load the current accumulators (sessions have them already).
	if w.typ != WindowSession {
		for i := range w.gs {
			g := &w.gs[i]
			kg, err := w.svc.keyGroup(g.key)
			if err != nil {
				return err
			}
			w.gkey = appendWindow(w.gkey[:0], g.win)
			acc, ok, err := w.svc.backend.Get(w.accID, kg, g.key, w.gkey, nil)
			if err != nil {
				return err
			}
			if ok {
				g.acc = acc
			}
		}
	}
	// Group the records: a counting sort by group, stable.
	starts := make([]int, len(w.gs)+1)
	for _, r := range w.recs {
		starts[r.g+1]++
	}
	for i := 1; i < len(starts); i++ {
		starts[i] += starts[i-1]
	}
	order := make([][]byte, len(w.recs))
	pos := slices.Clone(starts[:len(w.gs)])
	for _, r := range w.recs {
		order[pos[r.g]] = r.entry
		pos[r.g]++
	}
	in := w.in[:0]
	count := 0
	for i := range w.gs {
		g := &w.gs[i]
		acc := wasmabi.Entry{Kind: wasmabi.EntryAccumulator, Key: g.key, Value: g.acc, Timestamp: g.win.last()}
		if g.acc == nil {
			acc.Flags = wasmabi.AccumulatorNew
		}
		in = wasmabi.AppendEntry(in, &acc)
		count++
		for _, e := range order[starts[i]:starts[i+1]] {
			in = append(in, e...)
			count++
		}
	}
	w.in = in
	out, err := w.n.invoke(wasmabi.MethodAggAdd, in, count, 0)
	if err != nil {
		return err
	}
	var fire []int
	i := 0
	for off := 0; off < len(out); i++ {
		size := entrySize(out[off:])
		e := out[off : off+size]
		off += size
		if i >= len(w.gs) || e[0] != byte(wasmabi.EntryAccumulator) {
			return fmt.Errorf("%s: agg_add must return one accumulator per group (%d groups)", w.n.spec.UID, len(w.gs))
		}
		g := &w.gs[i]
		kl := int(le32(e[4:]))
		val := e[wasmabi.EntryHeaderSize+kl : wasmabi.EntryHeaderSize+kl+int(le32(e[16:]))]
		kg, _ := w.svc.keyGroup(g.key)
		w.gkey = appendWindow(w.gkey[:0], g.win)
		if err := w.svc.backend.Put(w.accID, kg, g.key, w.gkey, val); err != nil {
			return err
		}
		for _, old := range g.olds {
			if old != g.win {
				if err := w.svc.event.remove(kg, old.last(), g.key, nsWindow, old); err != nil {
					return err
				}
				w.gkey = appendWindow(w.gkey[:0], old)
				if err := w.svc.backend.Delete(w.accID, kg, g.key, w.gkey); err != nil {
					return err
				}
			}
		}
		switch {
		case g.win.last() <= w.n.wm:
			fire = append(fire, i) // a late record within the allowed lateness: fire again now
		case g.acc != nil && (w.typ != WindowSession || slices.Contains(g.olds, g.win)):
			// The window had an accumulator before this batch, made
			// while it was not yet due, so its timer is registered (and
			// snapshotted with it): registering it again for every batch
			// cost 8% of q5's CPU.
		default:
			if err := w.svc.event.add(kg, g.win.last(), g.key, nsWindow, g.win); err != nil {
				return err
			}
		}
	}
	if i != len(w.gs) {
		return fmt.Errorf("%s: agg_add returned %d accumulators for %d groups", w.n.spec.UID, i, len(w.gs))
	}
	if len(fire) > 0 {
		ts := make([]timer, len(fire))
		for j, gi := range fire {
			ts[j] = timer{ts: w.gs[gi].win.last(), key: w.gs[gi].key, ns: nsWindow, win: w.gs[gi].win}
		}
		return w.fire(ts, false)
	}
	return nil
}

// mergeSessions turns the batch's session groups into merged sessions
// that include the key's existing sessions, merging their accumulators.
func (w *windowOp) mergeSessions() error {
	type keyed struct {
		key  []byte
		gs   []int
		wins []winAcc
	}
	byKey := map[string]*keyed{}
	var keys []*keyed
	for i := range w.gs {
		k := byKey[string(w.gs[i].key)]
		if k == nil {
			k = &keyed{key: w.gs[i].key}
			byKey[string(k.key)] = k
			keys = append(keys, k)
		}
		k.gs = append(k.gs, i)
	}
	var newGs []group
	remap := make([]int, len(w.gs))
	var pairs []byte
	type pending struct {
		g    int
		accs [][]byte
	}
	var merges []*pending
	for _, k := range keys {
		kg, err := w.svc.keyGroup(k.key)
		if err != nil {
			return err
		}
		ents, ok, err := w.svc.backend.Entries(w.accID, kg, k.key, nil)
		if err != nil {
			return err
		}
		var cur []winAcc // existing sessions, then merged
		for ok && len(ents) > 0 {
			var uk, v []byte
			if uk, ents, err = wasmabi.NextItem(ents); err != nil {
				return err
			}
			if v, ents, err = wasmabi.NextItem(ents); err != nil {
				return err
			}
			if win, good := decodeWindow(uk); good {
				cur = append(cur, winAcc{win, v})
			}
		}
		type sess struct {
			win  window
			olds []winAcc
			gs   []int
		}
		var ss []*sess
		for _, c := range cur {
			ss = append(ss, &sess{win: c.win, olds: []winAcc{c}})
		}
		for _, gi := range k.gs {
			ss = append(ss, &sess{win: w.gs[gi].win, gs: []int{gi}})
		}
		slices.SortStableFunc(ss, func(a, b *sess) int {
			if a.win.start != b.win.start {
				if a.win.start < b.win.start {
					return -1
				}
				return 1
			}
			return 0
		})
		var merged []*sess
		for _, s := range ss {
			if n := len(merged); n > 0 && s.win.start < merged[n-1].win.end {
				m := merged[n-1]
				m.win.end = max(m.win.end, s.win.end)
				m.olds = append(m.olds, s.olds...)
				m.gs = append(m.gs, s.gs...)
				continue
			}
			merged = append(merged, s)
		}
		for _, m := range merged {
			if len(m.gs) == 0 {
				continue // an existing session the batch did not touch
			}
			idx := len(newGs)
			g := group{key: k.key, win: m.win}
			for _, o := range m.olds {
				g.olds = append(g.olds, o.win)
			}
			for _, gi := range m.gs {
				remap[gi] = idx
				g.n += w.gs[gi].n
			}
			switch len(m.olds) {
			case 0:
			case 1:
				g.acc = m.olds[0].acc
			default:
				p := &pending{g: idx}
				for _, o := range m.olds {
					p.accs = append(p.accs, o.acc)
				}
				merges = append(merges, p)
			}
			newGs = append(newGs, g)
		}
	}
	// Fold the accumulators of merged sessions pairwise, all keys at once.
	for {
		pairs = pairs[:0]
		var who []*pending
		count := 0
		for _, p := range merges {
			if len(p.accs) < 2 {
				continue
			}
			for j := 0; j+1 < len(p.accs); j += 2 {
				for _, a := range p.accs[j : j+2] {
					e := wasmabi.Entry{Kind: wasmabi.EntryAccumulator, Key: newGs[p.g].key, Value: a, Timestamp: newGs[p.g].win.last()}
					pairs = wasmabi.AppendEntry(pairs, &e)
					count++
				}
				who = append(who, p)
			}
		}
		if len(who) == 0 {
			break
		}
		out, err := w.n.invoke(wasmabi.MethodAggMerge, pairs, count, 0)
		if err != nil {
			return err
		}
		next := map[*pending][][]byte{}
		i := 0
		for off := 0; off < len(out); i++ {
			size := entrySize(out[off:])
			e := out[off : off+size]
			off += size
			if i >= len(who) {
				break
			}
			kl := int(le32(e[4:]))
			next[who[i]] = append(next[who[i]], slices.Clone(e[wasmabi.EntryHeaderSize+kl:wasmabi.EntryHeaderSize+kl+int(le32(e[16:]))]))
		}
		if i != len(who) {
			return fmt.Errorf("%s: agg_merge returned %d accumulators for %d pairs", w.n.spec.UID, i, len(who))
		}
		for _, p := range merges {
			if len(p.accs) < 2 {
				continue
			}
			rest := next[p]
			if len(p.accs)%2 == 1 {
				rest = append(rest, p.accs[len(p.accs)-1])
			}
			p.accs = rest
		}
	}
	for _, p := range merges {
		newGs[p.g].acc = p.accs[0]
	}
	for i := range w.recs {
		w.recs[i].g = remap[w.recs[i].g]
	}
	w.gs = newGs
	return nil
}

// fire emits the results of due windows and, past their lateness, drops
// their state.
func (w *windowOp) fire(due []timer, cleanup bool) error {
	in := w.in[:0]
	count := 0
	for _, t := range due {
		key := t.key
		kg, err := w.svc.keyGroup(key)
		if err != nil {
			return err
		}
		w.gkey = appendWindow(w.gkey[:0], t.win)
		acc, ok, err := w.svc.backend.Get(w.accID, kg, key, w.gkey, w.accBuf[:0])
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		e := wasmabi.Entry{Kind: wasmabi.EntryAccumulator, Key: key, Value: acc, Timestamp: t.win.last()}
		in = wasmabi.AppendEntry(in, &e)
		count++
		if cleanup {
			if w.lateness == 0 || t.win.end == math.MaxInt64 {
				err = w.svc.backend.Delete(w.accID, kg, key, w.gkey)
			} else {
				err = w.svc.event.add(kg, t.win.last()+w.lateness, key, nsExpire, t.win)
			}
			if err != nil {
				return err
			}
		}
	}
	w.in = in
	if count == 0 {
		return nil
	}
	out, err := w.n.invoke(wasmabi.MethodAggResult, in, count, 0)
	if err != nil {
		return err
	}
	return w.n.route(out)
}

// expire drops the state of windows past their allowed lateness.
func (w *windowOp) expire(due []timer) error {
	for _, t := range due {
		key := t.key
		kg, err := w.svc.keyGroup(key)
		if err != nil {
			return err
		}
		w.gkey = appendWindow(w.gkey[:0], t.win)
		if err := w.svc.backend.Delete(w.accID, kg, key, w.gkey); err != nil {
			return err
		}
	}
	return nil
}
