package state

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/internal/snapshot"
	"github.com/weirstream/weir/wasmabi"
)

// The states of the rescaling test: every kind, with and without TTL.
var rsStates = []struct {
	name string
	kind wasmabi.StateKind
	ttl  int64
}{
	{"bc", wasmabi.StateBroadcast, 0},
	{"l", wasmabi.StateList, 0},
	{"lt", wasmabi.StateList, 40},
	{"m", wasmabi.StateMap, 0},
	{"mt", wasmabi.StateMap, 40},
	{"ol", wasmabi.StateOperatorList, 0},
	{"ul", wasmabi.StateUnionList, 0},
	{"v", wasmabi.StateValue, 0},
	{"vt", wasmabi.StateValue, 40},
}

const rsMaxPar = 16

// rsPebbleOptions are the options of the pebble backends of the rescaling
// tests; TestRescaleWriteCache changes them.
var rsPebbleOptions = testPebbleOptions

type rsKey struct {
	st  int
	key string
}

type rsTimer struct {
	d       wasmabi.TimeDomain
	ts      int64
	key, ns string
}

// rsModel is the test's own account of an operator's state: plain maps,
// with nothing of the backends' layout.
type rsModel struct {
	vals   map[rsKey]stamped
	lists  map[rsKey][]stamped
	maps   map[rsKey]map[string]stamped
	opList [][]string // by subtask of the run that wrote them
	union  [][]string
	bcast  map[string]string // the same in every subtask
	timers map[rsTimer]bool
}

func newRSModel(p int) *rsModel {
	return &rsModel{vals: map[rsKey]stamped{}, lists: map[rsKey][]stamped{}, maps: map[rsKey]map[string]stamped{},
		opList: make([][]string, p), union: make([][]string, p), bcast: map[string]string{}, timers: map[rsTimer]bool{}}
}

func (m *rsModel) clone() *rsModel {
	c := &rsModel{vals: maps.Clone(m.vals), lists: map[rsKey][]stamped{}, maps: map[rsKey]map[string]stamped{},
		bcast: maps.Clone(m.bcast), timers: maps.Clone(m.timers)}
	for k, l := range m.lists {
		c.lists[k] = slices.Clone(l)
	}
	for k, mm := range m.maps {
		c.maps[k] = maps.Clone(mm)
	}
	for _, l := range m.opList {
		c.opList = append(c.opList, slices.Clone(l))
	}
	for _, l := range m.union {
		c.union = append(c.union, slices.Clone(l))
	}
	return c
}

func rsLive(st int, s stamped, now int64) bool {
	return rsStates[st].ttl == 0 || now-s.ts < rsStates[st].ttl
}

// want is what a read of state st for key should return at now.
func (m *rsModel) want(st int, key string, now int64) string {
	k := rsKey{st, key}
	var b []byte
	switch rsStates[st].kind {
	case wasmabi.StateValue:
		if s, ok := m.vals[k]; ok && rsLive(st, s, now) {
			return "=" + s.v
		}
		return "none"
	case wasmabi.StateList:
		for _, s := range m.lists[k] {
			if rsLive(st, s, now) {
				b = wasmabi.AppendItem(b, []byte(s.v))
			}
		}
	default:
		var ks []string
		for u, s := range m.maps[k] {
			if rsLive(st, s, now) {
				ks = append(ks, u)
			}
		}
		sort.Strings(ks)
		for _, u := range ks {
			b = wasmabi.AppendItem(wasmabi.AppendItem(b, []byte(u)), []byte(m.maps[k][u].v))
		}
	}
	if b == nil {
		return "none"
	}
	return fmt.Sprintf("%q", b)
}

// rsSubtask is one subtask's backend with its IDs.
type rsSubtask struct {
	b      Backend
	ids    []ID
	timers TimersID
	r      keygroup.Range
}

func rsOpen(t *testing.T, kind string, c *fakeClock, job string, index, p int) *rsSubtask {
	t.Helper()
	var b Backend
	if kind == "heap" {
		b = NewHeap(c.clock)
	} else {
		pb, err := OpenPebble(t.TempDir(), c.clock, rsPebbleOptions)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := pb.Close(); err != nil {
				t.Error(err)
			}
		})
		b = pb
	}
	return &rsSubtask{b: b, r: keygroup.RangeFor(index, p, rsMaxPar)}
}

// register registers the states and timers (after a restore, this finds
// the restored ones, as a task would).
func (s *rsSubtask) register(t *testing.T, job string) {
	t.Helper()
	s.ids = s.ids[:0]
	for _, st := range rsStates {
		id, err := s.b.RegisterState(Name{Job: job, Operator: "op", State: st.name}, st.kind, Options{TTL: st.ttl})
		if err != nil {
			t.Fatal(err)
		}
		s.ids = append(s.ids, id)
	}
	var err error
	if s.timers, err = s.b.RegisterTimers(job, "op"); err != nil {
		t.Fatal(err)
	}
}

// read returns what the backend holds for state st and key, as want does.
func (s *rsSubtask) read(t *testing.T, st int, key string) string {
	t.Helper()
	kg := uint16(keygroup.Of([]byte(key), rsMaxPar))
	var out []byte
	var ok bool
	var err error
	switch rsStates[st].kind {
	case wasmabi.StateValue:
		out, ok, err = s.b.Get(s.ids[st], kg, []byte(key), nil, nil)
		if err == nil && ok {
			return "=" + string(out)
		}
	case wasmabi.StateList:
		out, ok, err = s.b.List(s.ids[st], kg, []byte(key), nil)
	default:
		out, ok, err = s.b.Entries(s.ids[st], kg, []byte(key), nil)
	}
	if err != nil {
		t.Fatalf("reading %s of %q: %v", rsStates[st].name, key, err)
	}
	if !ok {
		return "none"
	}
	return fmt.Sprintf("%q", out)
}

// opItems returns the items of operator list state st of the subtask.
func (s *rsSubtask) opItems(t *testing.T, st int) []string {
	t.Helper()
	out, ok, err := s.b.List(s.ids[st], OperatorKeyGroup(s.r), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var items []string
	for ok && len(out) > 0 {
		n := int(out[0]) | int(out[1])<<8 | int(out[2])<<16 | int(out[3])<<24
		items = append(items, string(out[4:4+n]))
		out = out[4+n:]
	}
	return items
}

// rsWorkload drives the same random operations into several sets of
// subtasks (one set per backend kind) and the model.
type rsWorkload struct {
	t    *testing.T
	rng  *rand.Rand
	c    *fakeClock
	keys []string
	p    int
	sets [][]*rsSubtask
	m    *rsModel
	n    int
}

func (w *rsWorkload) owner(key string) int {
	return keygroup.Subtask(keygroup.Of([]byte(key), rsMaxPar), w.p, rsMaxPar)
}

func (w *rsWorkload) each(fn func(s *rsSubtask) error, subtask int) {
	for _, set := range w.sets {
		if err := fn(set[subtask]); err != nil {
			w.t.Fatal(err)
		}
	}
}

func (w *rsWorkload) step() {
	w.n++
	rng, m, now := w.rng, w.m, w.c.clock()
	key := w.keys[rng.IntN(len(w.keys))]
	kgi := keygroup.Of([]byte(key), rsMaxPar)
	kg, sub := uint16(kgi), w.owner(key)
	val := fmt.Sprintf("v%d", w.n)
	ukey := []string{"a", "b", "c"}[rng.IntN(3)]
	switch r := rng.IntN(100); {
	case r < 3:
		w.c.advance(int64(rng.IntN(15)))
	case r < 55: // keyed writes
		st := []int{1, 2, 3, 4, 7, 8}[rng.IntN(6)]
		k := rsKey{st, key}
		switch rsStates[st].kind {
		case wasmabi.StateValue:
			m.vals[k] = stamped{val, now}
		case wasmabi.StateList:
			m.lists[k] = append(m.lists[k], stamped{val, now})
		default:
			if m.maps[k] == nil {
				m.maps[k] = map[string]stamped{}
			}
			m.maps[k][ukey] = stamped{val, now}
		}
		w.each(func(s *rsSubtask) error { return s.b.Put(s.ids[st], kg, []byte(key), []byte(ukey), []byte(val)) }, sub)
	case r < 62: // deletes and clears
		st := []int{1, 3, 4, 7}[rng.IntN(4)]
		k := rsKey{st, key}
		if rsStates[st].kind == wasmabi.StateMap && rng.IntN(2) == 0 {
			delete(m.maps[k], ukey)
			w.each(func(s *rsSubtask) error { return s.b.Delete(s.ids[st], kg, []byte(key), []byte(ukey)) }, sub)
		} else {
			delete(m.vals, k)
			delete(m.lists, k)
			delete(m.maps, k)
			w.each(func(s *rsSubtask) error { return s.b.Clear(s.ids[st], kg, []byte(key)) }, sub)
		}
	case r < 70: // operator list and union list, on a random subtask
		st, i := 5+rng.IntN(2), rng.IntN(w.p)
		if st == 5 {
			m.opList[i] = append(m.opList[i], val)
		} else {
			m.union[i] = append(m.union[i], val)
		}
		w.each(func(s *rsSubtask) error { return s.b.Put(s.ids[st], OperatorKeyGroup(s.r), nil, nil, []byte(val)) }, i)
	case r < 74: // broadcast: the same write in every subtask
		m.bcast[ukey] = val
		for i := 0; i < w.p; i++ {
			w.each(func(s *rsSubtask) error {
				return s.b.Put(s.ids[0], OperatorKeyGroup(s.r), nil, []byte(ukey), []byte(val))
			}, i)
		}
	case r < 92: // timers
		tm := rsTimer{wasmabi.TimeDomain(rng.IntN(2)), int64(rng.IntN(50)) - 10, key, []string{"", "w1", "w2"}[rng.IntN(3)]}
		m.timers[tm] = true
		w.each(func(s *rsSubtask) error {
			return s.b.AddTimer(s.timers, kg, tm.d, tm.ts, []byte(tm.key), []byte(tm.ns))
		}, sub)
	default: // delete a timer that may or may not be there
		tm := rsTimer{wasmabi.TimeDomain(rng.IntN(2)), int64(rng.IntN(50)) - 10, key, []string{"", "w1", "w2"}[rng.IntN(3)]}
		delete(m.timers, tm)
		w.each(func(s *rsSubtask) error {
			return s.b.DeleteTimer(s.timers, kg, tm.d, tm.ts, []byte(tm.key), []byte(tm.ns))
		}, sub)
	}
}

// checkKeyed compares every key's keyed state in subs (of parallelism p)
// with m.
func checkKeyed(t *testing.T, what string, subs []*rsSubtask, p int, keys []string, m *rsModel, now int64) {
	t.Helper()
	for _, key := range keys {
		s := subs[keygroup.Subtask(keygroup.Of([]byte(key), rsMaxPar), p, rsMaxPar)]
		for st := range rsStates {
			if !rsStates[st].kind.Keyed() {
				continue
			}
			if got, want := s.read(t, st, key), m.want(st, key, now); got != want {
				t.Fatalf("%s: %s of %q: got %s, want %s", what, rsStates[st].name, key, got, want)
			}
		}
	}
}

// checkTimers pops every timer of subs and compares them with m's, in
// firing order.
func checkTimers(t *testing.T, what string, subs []*rsSubtask, p int, m *rsModel) {
	t.Helper()
	for i, s := range subs {
		for d := wasmabi.EventTime; d <= wasmabi.ProcessingTime; d++ {
			var want []rsTimer
			for tm := range m.timers {
				if tm.d == d && keygroup.Subtask(keygroup.Of([]byte(tm.key), rsMaxPar), p, rsMaxPar) == i {
					want = append(want, tm)
				}
			}
			sort.Slice(want, func(a, b int) bool {
				x, y := want[a], want[b]
				if x.ts != y.ts {
					return x.ts < y.ts
				}
				if len(x.key) != len(y.key) {
					return len(x.key) < len(y.key)
				}
				if x.key != y.key {
					return x.key < y.key
				}
				return x.ns < y.ns
			})
			next, ok, err := s.b.NextTimer(s.timers, s.r, d)
			if err != nil || ok != (len(want) > 0) || (ok && next != want[0].ts) {
				t.Fatalf("%s: subtask %d domain %d: next timer %d %v %v, want %v", what, i, d, next, ok, err, want)
			}
			got, err := s.b.PopDueTimers(s.timers, s.r, d, math.MaxInt64, nil)
			if err != nil {
				t.Fatal(err)
			}
			var gs, ws []string
			for _, tm := range got {
				gs = append(gs, fmt.Sprintf("%d/%s/%s", tm.Time, tm.Key, tm.Namespace))
				if int(tm.KeyGroup) != keygroup.Of(tm.Key, rsMaxPar) {
					t.Fatalf("%s: timer of %q in key group %d", what, tm.Key, tm.KeyGroup)
				}
			}
			for _, tm := range want {
				ws = append(ws, fmt.Sprintf("%d/%s/%s", tm.ts, tm.key, tm.ns))
			}
			if strings.Join(gs, " ") != strings.Join(ws, " ") {
				t.Fatalf("%s: subtask %d domain %d timers:\n got %v\nwant %v", what, i, d, gs, ws)
			}
		}
	}
}

// checkOperatorState checks the operator state of subs (restored at
// parallelism len(subs)) against what the run at the model's parallelism
// wrote: list items each in exactly one subtask, in their order, shares
// within one item of each other; the union and the broadcast map in all.
func checkOperatorState(t *testing.T, what string, subs []*rsSubtask, m *rsModel) {
	t.Helper()
	var all, union []string
	for i := range m.opList {
		all = append(all, m.opList[i]...)
		union = append(union, m.union[i]...)
	}
	seen := map[string]int{}
	minN, maxN := len(all), 0
	for i, s := range subs {
		got := s.opItems(t, 5)
		minN, maxN = min(minN, len(got)), max(maxN, len(got))
		pos := -1
		for _, it := range got {
			seen[it]++
			j := slices.Index(all, it)
			if j <= pos {
				t.Fatalf("%s: subtask %d operator list %v: items out of their order", what, i, got)
			}
			pos = j
		}
		if u := s.opItems(t, 6); strings.Join(u, ",") != strings.Join(union, ",") {
			t.Fatalf("%s: subtask %d union list %v, want %v", what, i, u, union)
		}
		out, _, err := s.b.Entries(s.ids[0], OperatorKeyGroup(s.r), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		var want []byte
		for _, k := range slices.Sorted(maps.Keys(m.bcast)) {
			want = wasmabi.AppendItem(wasmabi.AppendItem(want, []byte(k)), []byte(m.bcast[k]))
		}
		if !bytes.Equal(out, want) {
			t.Fatalf("%s: subtask %d broadcast state %q, want %q", what, i, out, want)
		}
	}
	for _, it := range all {
		if seen[it] != 1 {
			t.Fatalf("%s: operator list item %q restored %d times", what, it, seen[it])
		}
	}
	if len(seen) != len(all) || maxN-minN > 1 {
		t.Fatalf("%s: operator list shares of %d to %d items, %d distinct of %d", what, minN, maxN, len(seen), len(all))
	}
}

// TestRescaleDifferential writes every kind of state and timers at
// parallelism p on heap and pebble alike, snapshots each subtask (and
// goes on writing before the snapshots are written, which must not reach
// them), checks that heap and pebble wrote the same bytes, restores at p'
// into heap and pebble, and compares every key, the operator state and
// the timers with the model.
func TestRescaleDifferential(t *testing.T) {
	ops := 1500
	if testing.Short() {
		ops = 400
	}
	var keys []string
	for i := 0; i < 60; i++ {
		keys = append(keys, fmt.Sprintf("key-%d", i))
	}
	keys = append(keys, "", "x\x00y")
	seed := uint64(0)
	for _, p := range []int{1, 2, 3} {
		for _, p2 := range []int{1, 2, 5} {
			seed++
			t.Run(fmt.Sprintf("%d-to-%d", p, p2), func(t *testing.T) {
				rescale(t, seed, ops, keys, p, p2)
			})
		}
	}
}

// TestRescaleWriteCache runs one rescale with pebble's pending writes off
// and with a bound so small that most writes flush before the barrier.
func TestRescaleWriteCache(t *testing.T) {
	var keys []string
	for i := 0; i < 40; i++ {
		keys = append(keys, fmt.Sprintf("key-%d", i))
	}
	defer func(o PebbleOptions) { rsPebbleOptions = o }(rsPebbleOptions)
	for _, wc := range []int64{-1, 64} {
		t.Run(fmt.Sprint(wc), func(t *testing.T) {
			rsPebbleOptions = testPebbleOptions
			rsPebbleOptions.WriteCache = wc
			rescale(t, 50+uint64(wc), 800, keys, 2, 3)
		})
	}
}

func rescale(t *testing.T, seed uint64, ops int, keys []string, p, p2 int) {
	c := &fakeClock{}
	kinds := []string{"heap", "pebble"}
	w := &rsWorkload{t: t, rng: rand.New(rand.NewPCG(seed, 7)), c: c, keys: keys, p: p, m: newRSModel(p)}
	for _, kind := range kinds {
		var set []*rsSubtask
		for i := 0; i < p; i++ {
			s := rsOpen(t, kind, c, "j1", i, p)
			s.register(t, "j1")
			set = append(set, s)
		}
		w.sets = append(w.sets, set)
	}
	for i := 0; i < ops; i++ {
		w.step()
	}
	// The synchronous part, then writes that must not reach the snapshot.
	snaps := make([][]*Snapshot, len(kinds))
	for k, set := range w.sets {
		for i, s := range set {
			sn, err := s.b.Snapshot("j1", "op", snapshot.Subtask{Index: i, Parallelism: p, MaxParallelism: rsMaxPar})
			if err != nil {
				t.Fatal(err)
			}
			snaps[k] = append(snaps[k], sn)
		}
	}
	atSnap := w.m.clone()
	for i := 0; i < ops/3; i++ {
		w.step()
	}
	files := make([][][]byte, len(kinds))
	for k := range kinds {
		for _, sn := range snaps[k] {
			var buf bytes.Buffer
			if _, err := sn.WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			sn.Release()
			files[k] = append(files[k], buf.Bytes())
		}
	}
	for i := range files[0] {
		if !bytes.Equal(files[0][i], files[1][i]) {
			t.Fatalf("subtask %d: the heap snapshot (%d bytes) and the pebble snapshot (%d bytes) differ", i, len(files[0][i]), len(files[1][i]))
		}
	}
	// Copy on write left the live state alone.
	for k, set := range w.sets {
		checkKeyed(t, kinds[k]+" after the snapshot", set, p, keys, w.m, c.clock())
	}
	checkTimers(t, "source after the snapshot", w.sets[0], p, w.m)

	for _, kind := range kinds {
		var readers []*snapshot.Reader
		for i, f := range files[0] {
			r, err := snapshot.Open(bytes.NewReader(f), int64(len(f)), fmt.Sprintf("subtask %d", i))
			if err != nil {
				t.Fatal(err)
			}
			readers = append(readers, r)
		}
		var subs []*rsSubtask
		for j := 0; j < p2; j++ {
			s := rsOpen(t, kind, c, "j2", j, p2)
			// A restored job may have another name: state is matched by
			// operator uid.
			if err := s.b.Restore("j2", snapshot.Subtask{Index: j, Parallelism: p2, MaxParallelism: rsMaxPar}, readers); err != nil {
				t.Fatal(err)
			}
			s.register(t, "j2")
			subs = append(subs, s)
		}
		what := fmt.Sprintf("restored into %s", kind)
		checkKeyed(t, what, subs, p2, keys, atSnap, c.clock())
		checkOperatorState(t, what, subs, atSnap)
		checkTimers(t, what, subs, p2, atSnap)
	}
}

// TestOverlappingSnapshots takes many snapshots while earlier ones are
// still unwritten (more than the heap's maxFrozen), releasing some on the
// way so the heap compacts under writes, then writes them in reverse
// order and restores each: every one must hold the state of its own
// barrier, and the live state must be intact.
func TestOverlappingSnapshots(t *testing.T) {
	var keys []string
	for i := 0; i < 30; i++ {
		keys = append(keys, fmt.Sprintf("key-%d", i))
	}
	c := &fakeClock{}
	const p = 2
	w := &rsWorkload{t: t, rng: rand.New(rand.NewPCG(99, 7)), c: c, keys: keys, p: p, m: newRSModel(p)}
	for _, kind := range []string{"heap", "pebble"} {
		var set []*rsSubtask
		for i := 0; i < p; i++ {
			s := rsOpen(t, kind, c, "j", i, p)
			s.register(t, "j")
			set = append(set, s)
		}
		w.sets = append(w.sets, set)
	}
	type taken struct {
		snaps [][]*Snapshot // by backend kind, subtask
		m     *rsModel
		now   int64
	}
	var all []taken
	for round := 0; round < 9; round++ {
		for i := 0; i < 150; i++ {
			w.step()
		}
		tk := taken{m: w.m.clone(), now: c.clock()}
		for _, set := range w.sets {
			var ss []*Snapshot
			for i, s := range set {
				sn, err := s.b.Snapshot("j", "op", snapshot.Subtask{Index: i, Parallelism: p, MaxParallelism: rsMaxPar})
				if err != nil {
					t.Fatal(err)
				}
				ss = append(ss, sn)
			}
			tk.snaps = append(tk.snaps, ss)
		}
		all = append(all, tk)
		if round == 3 { // write and release the first ones: the rest stay in flight
			for _, tk := range all[:2] {
				for _, ss := range tk.snaps {
					for _, sn := range ss {
						if _, err := sn.WriteTo(&bytes.Buffer{}); err != nil {
							t.Fatal(err)
						}
						sn.Release()
					}
				}
			}
		}
	}
	for k, set := range w.sets {
		checkKeyed(t, fmt.Sprintf("live state of backend %d", k), set, p, keys, w.m, c.clock())
	}
	for n := len(all) - 1; n >= 2; n-- {
		tk := all[n]
		for k, ss := range tk.snaps {
			var readers []*snapshot.Reader
			for _, sn := range ss {
				var buf bytes.Buffer
				if _, err := sn.WriteTo(&buf); err != nil {
					t.Fatal(err)
				}
				sn.Release()
				if _, err := sn.WriteTo(&buf); err != ErrReleased {
					t.Fatalf("WriteTo after Release: %v", err)
				}
				r, err := snapshot.Open(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "snapshot")
				if err != nil {
					t.Fatal(err)
				}
				readers = append(readers, r)
			}
			s := rsOpen(t, "heap", c, "j", 0, 1)
			if err := s.b.Restore("j", snapshot.Subtask{Index: 0, Parallelism: 1, MaxParallelism: rsMaxPar}, readers); err != nil {
				t.Fatal(err)
			}
			s.register(t, "j")
			checkKeyed(t, fmt.Sprintf("snapshot %d of backend %d", n, k), []*rsSubtask{s}, 1, keys, tk.m, c.clock())
			checkTimers(t, fmt.Sprintf("snapshot %d of backend %d", n, k), []*rsSubtask{s}, 1, tk.m)
		}
	}
	// Everything released: the heap compacts on the next calls and still
	// reads right.
	for i := 0; i < 300; i++ {
		w.step()
	}
	for k, set := range w.sets {
		checkKeyed(t, fmt.Sprintf("live state of backend %d at the end", k), set, p, keys, w.m, c.clock())
	}
}

func TestRestoreRefuses(t *testing.T) {
	c := &fakeClock{}
	src := rsOpen(t, "heap", c, "j", 0, 1)
	src.register(t, "j")
	if err := src.b.Put(src.ids[7], 3, []byte("k"), nil, []byte("v")); err != nil {
		t.Fatal(err)
	}
	snap := snapshotBytes(t, src.b, "j", "op", snapshot.Subtask{Index: 0, Parallelism: 1, MaxParallelism: rsMaxPar})
	open := func() []*snapshot.Reader {
		r, err := snapshot.Open(bytes.NewReader(snap), int64(len(snap)), "s")
		if err != nil {
			t.Fatal(err)
		}
		return []*snapshot.Reader{r}
	}
	for _, kind := range []string{"heap", "pebble"} {
		dst := rsOpen(t, kind, c, "j", 0, 1)
		err := dst.b.Restore("j", snapshot.Subtask{Index: 0, Parallelism: 1, MaxParallelism: 32}, open())
		if !errors.Is(err, snapshot.ErrMismatch) || !strings.Contains(err.Error(), "max parallelism") {
			t.Fatalf("%s: restore at another max parallelism: %v", kind, err)
		}
		if err := dst.b.Restore("j", snapshot.Subtask{Index: 0, Parallelism: 1, MaxParallelism: rsMaxPar}, open()); err != nil {
			t.Fatal(err)
		}
		if err := dst.b.Restore("j", snapshot.Subtask{Index: 0, Parallelism: 1, MaxParallelism: rsMaxPar}, open()); !errors.Is(err, ErrNotEmpty) {
			t.Fatalf("%s: restore twice: %v, want ErrNotEmpty", kind, err)
		}
		if _, err := dst.b.RegisterState(Name{Job: "j", Operator: "op", State: "v"}, wasmabi.StateList, Options{}); !errors.Is(err, ErrKind) {
			t.Fatalf("%s: restored value state registered as list: %v, want ErrKind", kind, err)
		}
	}
}

func TestRestoreNeedsTheWholeRun(t *testing.T) {
	c := &fakeClock{}
	take := func(op string, kind wasmabi.StateKind, index int) *snapshot.Reader {
		h := NewHeap(c.clock)
		id, err := h.RegisterState(Name{Job: "j", Operator: op, State: "s"}, kind, Options{})
		if err != nil {
			t.Fatal(err)
		}
		tid, _ := h.RegisterTimers("j", op)
		sub := snapshot.Subtask{Index: index, Parallelism: 2, MaxParallelism: rsMaxPar}
		kg := OperatorKeyGroup(sub.Range())
		if err := errors.Join(h.Put(id, kg, nil, nil, []byte("x")), h.AddTimer(tid, kg, wasmabi.EventTime, 1, []byte("k"), nil)); err != nil {
			t.Fatal(err)
		}
		b := snapshotBytes(t, h, "j", op, sub)
		r, err := snapshot.Open(bytes.NewReader(b), int64(len(b)), "s")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	all := snapshot.Subtask{Index: 0, Parallelism: 1, MaxParallelism: rsMaxPar}
	err := NewHeap(c.clock).Restore("j", all, []*snapshot.Reader{take("keyed", wasmabi.StateValue, 0)})
	if !errors.Is(err, snapshot.ErrMismatch) || !strings.Contains(err.Error(), "key group 8") {
		t.Fatalf("restore of 16 key groups from the snapshot of 8: %v", err)
	}
	// The first half alone is enough for a subtask that owns only it.
	if err := NewHeap(c.clock).Restore("j", snapshot.Subtask{Index: 0, Parallelism: 2, MaxParallelism: rsMaxPar}, []*snapshot.Reader{take("keyed", wasmabi.StateValue, 0)}); err != nil {
		t.Fatal(err)
	}
	err = NewHeap(c.clock).Restore("j", snapshot.Subtask{Index: 0, Parallelism: 2, MaxParallelism: rsMaxPar}, []*snapshot.Reader{take("op", wasmabi.StateOperatorList, 0)})
	if !errors.Is(err, snapshot.ErrMismatch) || !strings.Contains(err.Error(), "all 2 subtasks") {
		t.Fatalf("restore of operator state from one subtask of two: %v", err)
	}
	err = NewHeap(c.clock).Restore("j", all, []*snapshot.Reader{take("op", wasmabi.StateOperatorList, 0), take("op", wasmabi.StateOperatorList, 0)})
	if !errors.Is(err, snapshot.ErrMismatch) {
		t.Fatalf("restore from subtask 0 twice: %v", err)
	}
}

func TestDeleteKeyGroupsDropsTimers(t *testing.T) {
	p := openTestPebble(t, t.TempDir(), &fakeClock{})
	defer p.Close()
	tid, _ := p.RegisterTimers("j", "op")
	for kg := uint16(0); kg < 4; kg++ {
		if err := p.AddTimer(tid, kg, wasmabi.EventTime, int64(kg), []byte("k"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.DeleteKeyGroups(keygroup.Range{Start: 1, End: 2}); err != nil {
		t.Fatal(err)
	}
	due, err := p.PopDueTimers(tid, keygroup.Range{Start: 0, End: 3}, wasmabi.EventTime, 10, nil)
	if err != nil || len(due) != 2 || due[0].KeyGroup != 0 || due[1].KeyGroup != 3 {
		t.Fatalf("timers after deleting key groups 1-2: %+v %v", due, err)
	}
}

// More overlapping snapshots than maxFrozen start a new chain of frozen
// maps; once its readers are done it becomes the live map. An older
// snapshot, still unwritten, must keep the value of its barrier when the
// key is written after that. (Found by a review: the new chain shared
// the old chain's slots, which the live map then wrote in place.)
func TestHeapSnapshotAcrossChains(t *testing.T) {
	c := &fakeClock{}
	h := NewHeap(c.clock)
	id, err := h.RegisterState(Name{Job: "j", Operator: "op", State: "v"}, wasmabi.StateValue, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sub := snapshot.Subtask{Index: 0, Parallelism: 1, MaxParallelism: 4}
	put := func(k, v string) {
		if err := h.Put(id, 0, []byte(k), nil, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	take := func() *Snapshot {
		s, err := h.Snapshot("j", "op", sub)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	put("k", "OLD")
	first := take()
	put("k", "OLD") // the same value, in a new layer
	first.Release()
	first = take()
	var later []*Snapshot
	for i := 0; i < maxFrozen; i++ {
		put("x", fmt.Sprint(i))
		later = append(later, take()) // the last one starts a new chain
	}
	later[len(later)-1].Release() // the new chain's only reader
	put("k", "NEW")               // compacts the new chain into the live map
	var buf bytes.Buffer
	if _, err := first.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	first.Release()
	for _, s := range later {
		s.Release()
	}
	if bytes.Contains(buf.Bytes(), []byte("NEW")) || !bytes.Contains(buf.Bytes(), []byte("OLD")) {
		t.Fatalf("a snapshot taken while k was OLD holds NEW (or no OLD): %q", buf.Bytes())
	}
}
