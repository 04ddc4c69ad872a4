package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/internal/snapshot"
	"github.com/weirstream/weir/wasmabi"
)

func openTestPebble(t *testing.T, dir string, c *fakeClock) *Pebble {
	t.Helper()
	p, err := OpenPebble(dir, c.clock, testPebbleOptions)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustRegister(t *testing.T, b Backend, uid, name string, kind wasmabi.StateKind, ttl int64) ID {
	t.Helper()
	id, err := b.Register(uid, name, kind, Options{TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// snapshotBytes takes a snapshot of operator (job, op) for sub from b
// and returns its canonical bytes.
func snapshotBytes(t testing.TB, b Backend, job, op string, sub snapshot.Subtask) []byte {
	t.Helper()
	sn, err := b.Snapshot(job, op, sub)
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Release()
	var buf bytes.Buffer
	if _, err := sn.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func mustGet(t *testing.T, b Backend, id ID, kg uint16, key, ukey string) (string, bool) {
	t.Helper()
	v, ok, err := b.Get(id, kg, []byte(key), []byte(ukey), nil)
	if err != nil {
		t.Fatal(err)
	}
	return string(v), ok
}

func items(vs ...string) string {
	var b []byte
	for _, v := range vs {
		b = wasmabi.AppendItem(b, []byte(v))
	}
	return string(b)
}

func TestPebbleReopen(t *testing.T) {
	dir, c := t.TempDir(), &fakeClock{}
	p := openTestPebble(t, dir, c)
	v := mustRegister(t, p, "op1", "v", wasmabi.StateValue, 0)
	l := mustRegister(t, p, "op1", "l", wasmabi.StateList, 0)
	m := mustRegister(t, p, "op2", "m", wasmabi.StateMap, 0)
	vt := mustRegister(t, p, "op2", "vt", wasmabi.StateValue, 1000)
	for _, err := range []error{
		p.Put(v, 7, []byte("k"), nil, []byte("value")),
		p.Put(l, 7, []byte("k"), nil, []byte("a")),
		p.Put(l, 7, []byte("k"), nil, []byte("b")),
		p.Put(m, 7, []byte("k"), []byte("u"), []byte("mapped")),
		p.Put(vt, 7, []byte("k"), nil, []byte("ttl")),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}

	p = openTestPebble(t, dir, c)
	defer func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	}()
	// Register in another order, with a new state first: IDs are handles
	// of this process, the data is found by name.
	mustRegister(t, p, "op3", "new", wasmabi.StateValue, 0)
	m = mustRegister(t, p, "op2", "m", wasmabi.StateMap, 0)
	l = mustRegister(t, p, "op1", "l", wasmabi.StateList, 0)
	v = mustRegister(t, p, "op1", "v", wasmabi.StateValue, 0)
	if _, err := p.Register("op2", "vt", wasmabi.StateValue, Options{}); !errors.Is(err, ErrTTL) {
		t.Fatalf("turning TTL off after reopen: %v, want ErrTTL", err)
	}
	// A TTL may change between runs: the new one applies to old entries.
	vt = mustRegister(t, p, "op2", "vt", wasmabi.StateValue, 10)
	if got, ok := mustGet(t, p, v, 7, "k", ""); !ok || got != "value" {
		t.Fatalf("value after reopen: %q %v", got, ok)
	}
	if got, ok := mustGet(t, p, m, 7, "k", "u"); !ok || got != "mapped" {
		t.Fatalf("map after reopen: %q %v", got, ok)
	}
	if got, ok := mustGet(t, p, vt, 7, "k", ""); !ok || got != "ttl" {
		t.Fatalf("ttl value after reopen: %q %v", got, ok)
	}
	c.advance(10)
	if got, ok := mustGet(t, p, vt, 7, "k", ""); ok {
		t.Fatalf("ttl value after the new TTL: %q", got)
	}
	// Appends continue after the items written before the reopen.
	if err := p.Put(l, 7, []byte("k"), nil, []byte("c")); err != nil {
		t.Fatal(err)
	}
	if got, ok := mustGet(t, p, l, 7, "k", ""); !ok || got != items("a", "b", "c") {
		t.Fatalf("list after reopen: %q %v", got, ok)
	}
}

func TestPebbleRejectsForeignDB(t *testing.T) {
	dir := t.TempDir()
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set([]byte("someone else's"), []byte("data"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if p, err := OpenPebble(dir, nil, testPebbleOptions); err == nil {
		p.Close()
		t.Fatal("opened a database without the layout record")
	}
	if _, err := OpenPebble("", nil, PebbleOptions{}); err == nil {
		t.Fatal("opened no directory")
	}
	if _, err := OpenPebble(t.TempDir(), nil, PebbleOptions{CacheSize: -1}); err == nil {
		t.Fatal("negative cache size accepted")
	}
}

func TestPebbleStorageKey(t *testing.T) {
	// The documented layout, spelled out byte by byte.
	got := appendSlot(nil, 0x0102030405060708, 0x0506, []byte("key"))
	want := []byte{0x05, 0x06, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 3, 'k', 'e', 'y'}
	if !bytes.Equal(got, want) {
		t.Fatalf("slot prefix %x, want %x", got, want)
	}
	long := bytes.Repeat([]byte("x"), 300)
	got = appendSlot(nil, 1, 2, long)
	want = append([]byte{0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0xAC, 0x02}, long...) // 300 = uvarint AC 02
	if !bytes.Equal(got, want) {
		t.Fatalf("long slot prefix %x, want %x", got[:10], want[:10])
	}
	if got := appendPrefixEnd(nil, []byte{1, 0xFF, 0xFF}); !bytes.Equal(got, []byte{2}) {
		t.Fatalf("prefix end %x", got)
	}
	if got := appendPrefixEnd(nil, []byte{1, 2}); !bytes.Equal(got, []byte{1, 3}) {
		t.Fatalf("prefix end %x", got)
	}
	n := Name{Job: "job\x00", Operator: "op/1", State: "state"}
	if got, err := parseRegistryKey(registryKey(n)); err != nil || got != n {
		t.Fatalf("registry key round trip: %+v %v", got, err)
	}
	for _, bad := range [][]byte{nil, {0xFF, 0xFF, 'r'}, {0xFF, 0xFF, 'r', 9, 'a'}, {0xFF, 0xFF, 'r', 0, 9}, {0xFF, 0xFF, 'x', 0, 0}} {
		if _, err := parseRegistryKey(bad); err == nil {
			t.Errorf("registry key %x accepted", bad)
		}
	}
}

func TestPebbleDeleteKeyGroups(t *testing.T) {
	c := &fakeClock{}
	p := openTestPebble(t, t.TempDir(), c)
	defer p.Close()
	v := mustRegister(t, p, "op", "v", wasmabi.StateValue, 0)
	l := mustRegister(t, p, "op", "l", wasmabi.StateList, 0)
	m := mustRegister(t, p, "op2", "m", wasmabi.StateMap, 0)
	kgs := []uint16{0, 1, 2, 3, 4, 5, 6, 255, 256, 32767}
	key := func(kg uint16) []byte { return []byte(fmt.Sprintf("key-%d", kg)) }
	for _, kg := range kgs {
		for _, err := range []error{
			p.Put(v, kg, key(kg), nil, []byte("v")),
			p.Put(l, kg, key(kg), nil, []byte("l")),
			p.Put(m, kg, key(kg), []byte("u"), []byte("m")),
			p.Put(v, kg, []byte("shared"), nil, []byte("s")),
		} {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, r := range []keygroup.Range{{Start: 2, End: 4}, {Start: 255, End: 255}, {Start: 32767, End: 32767}} {
		if err := p.DeleteKeyGroups(r); err != nil {
			t.Fatal(err)
		}
	}
	gone := func(kg int) bool { return (kg >= 2 && kg <= 4) || kg == 255 || kg == 32767 }
	for _, kg := range kgs {
		_, okV := mustGet(t, p, v, kg, string(key(kg)), "")
		_, okL := mustGet(t, p, l, kg, string(key(kg)), "")
		_, okM := mustGet(t, p, m, kg, string(key(kg)), "u")
		_, okS := mustGet(t, p, v, kg, "shared", "")
		if want := !gone(int(kg)); okV != want || okL != want || okM != want || okS != want {
			t.Errorf("key group %d: found value %v list %v map %v shared %v; want %v", kg, okV, okL, okM, okS, want)
		}
	}
	// Appending to a list in a deleted key group starts it afresh.
	if err := p.Put(l, 3, key(3), nil, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if got, _ := mustGet(t, p, l, 3, string(key(3)), ""); got != items("new") {
		t.Fatalf("list after its key group was deleted: %q", got)
	}
	// The registry is not keyed state and survives.
	if got := mustRegister(t, p, "op2", "m", wasmabi.StateMap, 0); got != m {
		t.Fatalf("map id %d after deleting key groups, was %d", got, m)
	}
	for _, bad := range []keygroup.Range{{Start: -1, End: 2}, {Start: 3, End: 2}, {Start: 0, End: 32768}} {
		if err := p.DeleteKeyGroups(bad); err == nil {
			t.Errorf("range %v accepted", bad)
		}
	}
}

// TestPebbleListSeqRecovery checks that a list slot whose sequence number
// fell out of the cache continues after its last item.
func TestPebbleListSeqRecovery(t *testing.T) {
	p := openTestPebble(t, t.TempDir(), &fakeClock{})
	defer p.Close()
	l := mustRegister(t, p, "op", "l", wasmabi.StateList, 0)
	for i := 0; i < 3; i++ {
		if err := p.Put(l, 1, []byte("k"), nil, []byte{byte('a' + i)}); err != nil {
			t.Fatal(err)
		}
	}
	clear(p.states.get(l).shards[1].seqs)
	if err := p.Put(l, 1, []byte("k"), nil, []byte("d")); err != nil {
		t.Fatal(err)
	}
	if got, _ := mustGet(t, p, l, 1, "k", ""); got != items("a", "b", "c", "d") {
		t.Fatalf("list: %q", got)
	}
	// The last item's key ends in sequence number 3.
	it, err := p.db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	var last []byte
	for ok := it.First(); ok; ok = it.Next() {
		if it.Key()[0] == 0 {
			last = append(last[:0], it.Key()...)
		}
	}
	it.Close()
	if seq := binary.BigEndian.Uint64(last[len(last)-8:]); seq != 3 {
		t.Fatalf("last sequence number %d, want 3", seq)
	}
}

// A restore writes beneath the write cache: what the cache held for the
// key groups (here a deletion, kept after a flush) must not hide the
// restored values.
func TestPebbleRestoreBeneathTheCache(t *testing.T) {
	c := &fakeClock{}
	name := Name{Job: "j", Operator: "op", State: "v"}
	sub := snapshot.Subtask{Index: 0, Parallelism: 1, MaxParallelism: 16}
	h := NewHeap(c.clock)
	hv, err := h.RegisterState(name, wasmabi.StateValue, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Put(hv, 3, []byte("k"), nil, []byte("restored")); err != nil {
		t.Fatal(err)
	}
	snap := snapshotBytes(t, h, "j", "op", sub)

	p, err := OpenPebble(t.TempDir(), c.clock, testPebbleOptions)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	pv, err := p.RegisterState(name, wasmabi.StateValue, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Put(pv, 3, []byte("k"), nil, []byte("old")); err != nil {
		t.Fatal(err)
	}
	if err := p.Delete(pv, 3, []byte("k"), nil); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(); err != nil { // the deletion stays cached, clean
		t.Fatal(err)
	}
	r, err := snapshot.Open(bytes.NewReader(snap), int64(len(snap)), "heap snapshot")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Restore("j", sub, []*snapshot.Reader{r}); err != nil {
		t.Fatal(err)
	}
	if got, ok := mustGet(t, p, pv, 3, "k", ""); !ok || got != "restored" {
		t.Fatalf("after the restore: %q %v, want %q", got, ok, "restored")
	}
}
