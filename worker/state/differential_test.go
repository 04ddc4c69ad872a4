package state

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/weirstream/weir/wasmabi"
)

// model is an independent, deliberately naive keyed state: one Go map per
// kind, entries stamped with their write time.
type model struct {
	kinds  map[ID]wasmabi.StateKind
	ttls   map[ID]int64
	values map[modelSlot]stamped
	lists  map[modelSlot][]stamped
	maps   map[modelSlot]map[string]stamped
}

type modelSlot struct {
	id  ID
	kg  uint16
	key string
}

type stamped struct {
	v  string
	ts int64
}

func (m *model) live(id ID, s stamped, now int64) bool {
	return m.ttls[id] == 0 || now < s.ts+m.ttls[id]
}

func (m *model) put(sl modelSlot, ukey, val string, now int64) {
	switch m.kinds[sl.id] {
	case wasmabi.StateValue:
		m.values[sl] = stamped{val, now}
	case wasmabi.StateList:
		m.lists[sl] = append(m.lists[sl], stamped{val, now})
	default:
		if m.maps[sl] == nil {
			m.maps[sl] = map[string]stamped{}
		}
		m.maps[sl][ukey] = stamped{val, now}
	}
}

func (m *model) del(sl modelSlot, ukey string) {
	if m.kinds[sl.id] == wasmabi.StateMap {
		delete(m.maps[sl], ukey)
		return
	}
	m.clear(sl)
}

func (m *model) clear(sl modelSlot) {
	delete(m.values, sl)
	delete(m.lists, sl)
	delete(m.maps, sl)
}

// get returns what Get should: the value, the list items, or the map value.
func (m *model) get(sl modelSlot, ukey string, now int64) ([]byte, bool) {
	switch m.kinds[sl.id] {
	case wasmabi.StateValue:
		s, ok := m.values[sl]
		if !ok || !m.live(sl.id, s, now) {
			return nil, false
		}
		return []byte(s.v), true
	case wasmabi.StateList:
		return m.list(sl, now)
	default:
		s, ok := m.maps[sl][ukey]
		if !ok || !m.live(sl.id, s, now) {
			return nil, false
		}
		return []byte(s.v), true
	}
}

func (m *model) list(sl modelSlot, now int64) ([]byte, bool) {
	var b []byte
	n := 0
	for _, s := range m.lists[sl] {
		if m.live(sl.id, s, now) {
			b = wasmabi.AppendItem(b, []byte(s.v))
			n++
		}
	}
	return b, n > 0
}

func (m *model) entries(sl modelSlot, now int64) ([]byte, bool) {
	var keys []string
	for k, s := range m.maps[sl] {
		if m.live(sl.id, s, now) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b []byte
	for _, k := range keys {
		b = wasmabi.AppendItem(b, []byte(k))
		b = wasmabi.AppendItem(b, []byte(m.maps[sl][k].v))
	}
	return b, len(keys) > 0
}

// TestDifferential applies thousands of random operations to the heap
// backend, the pebble backend and the model, and compares every read. The
// pebble backend is closed and reopened now and then, so its data, IDs and
// list sequence numbers are read back from disk.
func TestDifferential(t *testing.T) {
	ops := 10000
	if testing.Short() {
		ops = 2000
	}
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { differential(t, seed, ops, testPebbleOptions) })
	}
	noWAL := testPebbleOptions
	noWAL.DisableWAL = true
	t.Run("no-wal", func(t *testing.T) { differential(t, 4, ops, noWAL) })
	// Pending writes: off, and a bound so small that most writes flush.
	off, tiny := testPebbleOptions, testPebbleOptions
	off.WriteCache, tiny.WriteCache = -1, 64
	t.Run("no-write-cache", func(t *testing.T) { differential(t, 5, ops, off) })
	t.Run("tiny-write-cache", func(t *testing.T) { differential(t, 6, ops, tiny) })
}

// checkCacheAccounting checks that the bytes the pebble backend counts
// against its write cache are those its shards hold, within the bound.
func checkCacheAccounting(t *testing.T, p *Pebble) {
	t.Helper()
	var sum int64
	p.states.each(func(reg *pebbleReg) {
		for _, s := range reg.shards {
			if s == nil {
				continue
			}
			n := int64(0)
			for k, w := range s.cache {
				n += int64(len(k) + 48 + len(w.v))
			}
			if n != s.cacheBytes {
				t.Fatalf("state %d: %d cached bytes counted, the cache holds %d", reg.id, s.cacheBytes, n)
			}
			sum += s.cacheBytes + s.appendBytes
		}
	})
	if got := p.pending.Load(); got != sum {
		t.Fatalf("write cache: %d bytes counted, the shards hold %d", got, sum)
	}
	if p.maxPending > 0 && sum > p.maxPending+4096 {
		t.Fatalf("write cache holds %d bytes, bound %d", sum, p.maxPending)
	}
}

func differential(t *testing.T, seed uint64, ops int, opts PebbleOptions) {
	rng := rand.New(rand.NewPCG(seed, 42))
	c := &fakeClock{}
	dir := t.TempDir()
	heap := NewHeap(c.clock)
	open := func() *Pebble {
		p, err := OpenPebble(dir, c.clock, opts)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	pb := open()
	defer func() {
		if err := pb.Close(); err != nil {
			t.Error(err)
		}
	}()
	m := &model{kinds: map[ID]wasmabi.StateKind{}, ttls: map[ID]int64{},
		values: map[modelSlot]stamped{}, lists: map[modelSlot][]stamped{}, maps: map[modelSlot]map[string]stamped{}}

	type decl struct {
		uid, name string
		kind      wasmabi.StateKind
		ttl       int64
	}
	decls := []decl{
		{"a", "v", wasmabi.StateValue, 0}, {"a", "l", wasmabi.StateList, 0}, {"a", "m", wasmabi.StateMap, 0},
		{"b", "v", wasmabi.StateValue, 30}, {"b", "l", wasmabi.StateList, 30}, {"b", "m", wasmabi.StateMap, 30},
	}
	// IDs are handles of one backend in one process: the model names a
	// state by its index in decls, each backend by its own ID.
	var ids, hids, pids []ID
	register := func() {
		ids, hids, pids = ids[:0], hids[:0], pids[:0]
		for i, d := range decls {
			hid, err := heap.Register(d.uid, d.name, d.kind, Options{TTL: d.ttl})
			if err != nil {
				t.Fatal(err)
			}
			pid, err := pb.Register(d.uid, d.name, d.kind, Options{TTL: d.ttl})
			if err != nil {
				t.Fatal(err)
			}
			m.kinds[ID(i)], m.ttls[ID(i)] = d.kind, d.ttl
			ids, hids, pids = append(ids, ID(i)), append(hids, hid), append(pids, pid)
		}
	}
	register()

	keys := []string{"", "k", "k1", "k12", "x\x00y", "long-" + string(bytes.Repeat([]byte("z"), 200))}
	ukeys := []string{"", "a", "ab", "b", "\xff"}
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	randVal := func() []byte {
		b := make([]byte, rng.IntN(24))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return b
	}
	var hbuf, pbuf []byte
	for i := 0; i < ops; i++ {
		id := ids[rng.IntN(len(ids))]
		hid, pid := hids[id], pids[id]
		kg := uint16(rng.IntN(3))
		if rng.IntN(50) == 0 {
			kg = uint16(rng.IntN(32768))
		}
		key, ukey := pick(keys), pick(ukeys)
		sl := modelSlot{id, kg, key}
		now := c.clock()
		where := func(op string) string {
			return fmt.Sprintf("op %d: %s id %d (%s) kg %d key %q ukey %q at %d", i, op, id, kindName(m.kinds[id]), kg, key, ukey, now)
		}
		switch r := rng.IntN(1000); {
		case r < 30:
			c.advance(int64(rng.IntN(20)))
		case r < 32:
			if err := pb.Close(); err != nil {
				t.Fatal(err)
			}
			pb = open()
			register()
		case r < 45:
			// What an incremental checkpoint and a scan do: every
			// pending write to pebble.
			if err := pb.Flush(); err != nil {
				t.Fatal(err)
			}
			checkCacheAccounting(t, pb)
		case r < 400:
			v := randVal()
			m.put(sl, ukey, string(v), now)
			check(t, where("put"), heap.Put(hid, kg, []byte(key), []byte(ukey), v), pb.Put(pid, kg, []byte(key), []byte(ukey), v))
		case r < 480:
			m.del(sl, ukey)
			check(t, where("delete"), heap.Delete(hid, kg, []byte(key), []byte(ukey)), pb.Delete(pid, kg, []byte(key), []byte(ukey)))
		case r < 520:
			m.clear(sl)
			check(t, where("clear"), heap.Clear(hid, kg, []byte(key)), pb.Clear(pid, kg, []byte(key)))
		case r < 800:
			want, wok := m.get(sl, ukey, now)
			h, hok, herr := heap.Get(hid, kg, []byte(key), []byte(ukey), hbuf[:0])
			p, pok, perr := pb.Get(pid, kg, []byte(key), []byte(ukey), pbuf[:0])
			check(t, where("get"), herr, perr)
			compare(t, where("get"), want, wok, h, hok, p, pok)
			hbuf, pbuf = h, p
		default:
			var want []byte
			var wok bool
			var h, p []byte
			var hok, pok bool
			var herr, perr error
			if m.kinds[id] == wasmabi.StateMap {
				want, wok = m.entries(sl, now)
				h, hok, herr = heap.Entries(hid, kg, []byte(key), hbuf[:0])
				p, pok, perr = pb.Entries(pid, kg, []byte(key), pbuf[:0])
			} else {
				if m.kinds[id] == wasmabi.StateList {
					want, wok = m.list(sl, now)
				}
				h, hok, herr = heap.List(hid, kg, []byte(key), hbuf[:0])
				p, pok, perr = pb.List(pid, kg, []byte(key), pbuf[:0])
				if m.kinds[id] == wasmabi.StateValue {
					if herr == nil || perr == nil {
						t.Fatalf("%s: list of value state: heap %v, pebble %v", where("list"), herr, perr)
					}
					continue
				}
			}
			check(t, where("scan"), herr, perr)
			compare(t, where("scan"), want, wok, h, hok, p, pok)
			hbuf, pbuf = h, p
		}
	}
}

func check(t *testing.T, where string, herr, perr error) {
	t.Helper()
	if herr != nil || perr != nil {
		t.Fatalf("%s: heap %v, pebble %v", where, herr, perr)
	}
}

func compare(t *testing.T, where string, want []byte, wok bool, h []byte, hok bool, p []byte, pok bool) {
	t.Helper()
	if hok != wok || !bytes.Equal(h, want) {
		t.Fatalf("%s: heap %q (found %v), model %q (found %v)", where, h, hok, want, wok)
	}
	if pok != wok || !bytes.Equal(p, want) {
		t.Fatalf("%s: pebble %q (found %v), model %q (found %v)", where, p, pok, want, wok)
	}
}
