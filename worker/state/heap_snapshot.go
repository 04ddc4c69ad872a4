package state

import (
	"encoding/binary"
	"slices"
	"sync/atomic"

	"github.com/weirstream/weir/internal/snapshot"
	"github.com/weirstream/weir/wasmabi"
)

// Snapshot implements Backend. The synchronous part freezes the maps of
// every state of the operator in the subtask's key groups (no copy; see
// heapShard) and the timers' sets; the task may go on at once.
func (h *Heap) Snapshot(job, operator string, sub snapshot.Subtask) (*Snapshot, error) {
	if h.closed.Load() {
		return nil, ErrClosed
	}
	if err := checkSubtask(job, operator, sub); err != nil {
		return nil, err
	}
	plan := &snapPlan{sub: sub, states: h.reg.operatorStates(job, operator)}
	if hasTTL(plan.states) {
		plan.now = h.clock()
	}
	r := sub.Range()
	src := &heapSource{start: r.Start, views: make([][]heapView, len(plan.states)), index: map[ID]int{}}
	for i, st := range plan.states {
		src.index[st.id] = i
		hs := h.states.get(st.id)
		src.views[i] = make([]heapView, r.Len())
		for kg := r.Start; kg <= r.End; kg++ {
			if hs.shards[kg] == nil {
				continue
			}
			sh := hs.shard(uint16(kg))
			if sh.frozen == nil && len(sh.slots) == 0 {
				continue
			}
			layers, readers := sh.freeze()
			src.views[i][kg-r.Start] = heapView{layers: layers, readers: readers}
		}
	}
	if o := h.lookup(job, operator); o != nil {
		plan.timers = o.freeze(r)
	}
	return &Snapshot{
		header:  plan.header(job, operator),
		write:   func(w *snapshot.Writer) error { return plan.write(w, src) },
		release: src.release,
	}, nil
}

// heapView is a frozen shard: its maps, oldest first.
type heapView struct {
	layers  []map[string]*heapSlot
	readers *atomic.Int32
}

// heapSource reads frozen shards for the asynchronous part.
type heapSource struct {
	start int
	views [][]heapView // by state, then key group from start
	index map[ID]int   // state ID -> index in views
}

func (src *heapSource) release() {
	for _, vs := range src.views {
		for _, v := range vs {
			if v.readers != nil {
				v.readers.Add(-1)
			}
		}
	}
	src.views = nil
}

func (src *heapSource) view(st regInfo, kg int) *heapView {
	i, ok := src.index[st.id]
	if !ok || src.views == nil {
		return nil
	}
	if v := &src.views[i][kg-src.start]; v.layers != nil {
		return v
	}
	return nil
}

// slots implements snapSource: the visible slots of a frozen shard (the
// newest layer's slot of a key wins), sorted as snapshots order keys.
func (src *heapSource) slots(st regInfo, kg int, fn func(rec *snapshot.Record) error) error {
	v := src.view(st, kg)
	if v == nil {
		return nil
	}
	type kv struct {
		key []byte // the record key (without the key-group prefix)
		sl  *heapSlot
	}
	var all []kv
	for i := len(v.layers) - 1; i >= 0; i-- {
		for k, sl := range v.layers[i] {
			shadowed := false
			for j := i + 1; j < len(v.layers) && !shadowed; j++ {
				_, shadowed = v.layers[j][k]
			}
			if shadowed || sl == tombstone {
				continue
			}
			all = append(all, kv{[]byte(k[2:]), sl})
		}
	}
	slices.SortFunc(all, func(a, b kv) int { return snapshot.CompareKeys(a.key, b.key) })
	var rec snapshot.Record
	var ukeys []string
	for _, e := range all {
		rec.Key, rec.Items, rec.Entries = e.key, rec.Items[:0], rec.Entries[:0]
		switch st.kind {
		case wasmabi.StateValue:
			rec.Type, rec.TS, rec.Value = snapshot.Value, e.sl.ts, e.sl.val
		case wasmabi.StateList:
			rec.Type = snapshot.List
			in := e.sl.items
			for n := 0; len(in) > 0; n++ {
				size := int(binary.LittleEndian.Uint32(in))
				it := snapshot.Item{Value: in[4 : 4+size]}
				if st.ttl > 0 {
					it.TS = e.sl.itemTS[n]
				}
				rec.Items = append(rec.Items, it)
				in = in[4+size:]
			}
		default:
			rec.Type = snapshot.Map
			ukeys = ukeys[:0]
			for u := range e.sl.m {
				ukeys = append(ukeys, u)
			}
			slices.Sort(ukeys)
			for _, u := range ukeys {
				me := e.sl.m[u]
				rec.Entries = append(rec.Entries, snapshot.Entry{Key: []byte(u), TS: me.ts, Value: me.v})
			}
		}
		if err := fn(&rec); err != nil {
			return err
		}
	}
	return nil
}

// Restore implements Backend.
func (h *Heap) Restore(job string, target snapshot.Subtask, from []*snapshot.Reader) error {
	if h.closed.Load() {
		return ErrClosed
	}
	return restore(h, &h.timerStore, heapSink{h}, job, target, from)
}

type heapSink struct{ h *Heap }

func (s heapSink) empty(id ID, _ decl, kg uint16) (bool, error) {
	hs := s.h.states.get(id)
	if hs == nil || hs.shards[kg] == nil {
		return true, nil
	}
	return hs.shard(kg).empty(), nil
}

func (s heapSink) restoreSlot(id ID, _ decl, kg uint16, rec *snapshot.Record) error {
	hs, err := s.h.state(id, kg)
	if err != nil {
		return err
	}
	sh := hs.shard(kg)
	sl := sh.own(sh.slotKey(kg, rec.Key))
	switch rec.Type {
	case snapshot.Value:
		sl.val, sl.ts = append(make([]byte, 0, len(rec.Value)), rec.Value...), rec.TS
	case snapshot.List:
		for _, it := range rec.Items {
			sl.items = wasmabi.AppendItem(sl.items, it.Value)
			if hs.ttl > 0 {
				sl.itemTS = append(sl.itemTS, it.TS)
			}
		}
	default:
		if sl.m == nil {
			sl.m = make(map[string]*heapEntry, len(rec.Entries))
		}
		for _, e := range rec.Entries {
			sl.m[string(e.Key)] = &heapEntry{ts: e.TS, v: append(make([]byte, 0, len(e.Value)), e.Value...)}
		}
	}
	return nil
}

func (heapSink) done() error { return nil }
