package snapshot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/weirstream/weir/wasmabi"
)

func testHeader() Header {
	return Header{Job: "j", Operator: "op", Subtask: Subtask{Index: 1, Parallelism: 3, MaxParallelism: 16},
		States: []State{
			{"b", wasmabi.StateBroadcast, 0}, {"l", wasmabi.StateList, 5}, {"m", wasmabi.StateMap, 0},
			{"ol", wasmabi.StateOperatorList, 0}, {"u", wasmabi.StateUnionList, 0}, {"v", wasmabi.StateValue, 0},
		}}
}

// sample writes a snapshot of every record type and returns its bytes and
// the records as written.
func sample(t testing.TB) ([]byte, []Record) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, testHeader())
	if err != nil {
		t.Fatal(err)
	}
	recs := []Record{
		{Type: List, State: 1, KeyGroup: 6, Key: []byte("k"), Items: []Item{{3, []byte("a")}, {-4, []byte("")}}},
		{Type: Value, State: 5, KeyGroup: 6, Key: []byte("k"), TS: 0, Value: []byte("v1")},
		{Type: Map, State: 2, KeyGroup: 7, Key: []byte(""), Entries: []Entry{{[]byte("a"), 0, []byte("1")}, {[]byte("b"), 0, nil}}},
		{Type: Timer, KeyGroup: 7, Domain: wasmabi.ProcessingTime, TS: 99, Key: []byte("k"), Namespace: []byte{1, 2}},
		{Type: Value, State: 5, KeyGroup: 10, Key: bytes.Repeat([]byte("x"), 300), Value: bytes.Repeat([]byte("y"), 70000)},
		{Type: OperatorList, State: 3, Items: []Item{{0, []byte("o1")}}},
		{Type: OperatorList, State: 4, Items: nil},
		{Type: Broadcast, State: 0, Entries: []Entry{{[]byte("r"), 0, []byte("s")}}},
	}
	for _, r := range recs {
		var err error
		switch r.Type {
		case Value:
			err = w.Value(r.State, r.KeyGroup, r.Key, r.TS, r.Value)
		case List:
			err = w.List(r.State, r.KeyGroup, r.Key, r.Items)
		case Map:
			err = w.Map(r.State, r.KeyGroup, r.Key, r.Entries)
		case Timer:
			err = w.Timer(r.KeyGroup, r.Domain, r.TS, r.Key, r.Namespace)
		case OperatorList:
			err = w.OperatorList(r.State, r.Items)
		case Broadcast:
			err = w.Broadcast(r.State, r.Entries)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if int64(buf.Len()) != w.Size() {
		t.Fatalf("Size %d, wrote %d", w.Size(), buf.Len())
	}
	return buf.Bytes(), recs
}

// norm makes nil and empty slices compare equal.
func norm(r Record) string {
	return fmt.Sprintf("%d/%d/%d/%x/%d/%x/%d/%q", r.Type, r.State, r.KeyGroup, crc32.ChecksumIEEE(r.Key), r.TS, crc32.ChecksumIEEE(r.Value), r.Domain, r.Namespace) +
		fmt.Sprint(len(r.Items), len(r.Entries)) + itemsString(r.Items) + entriesString(r.Entries)
}

func itemsString(items []Item) string {
	s := ""
	for _, it := range items {
		s += fmt.Sprintf("[%d %q]", it.TS, it.Value)
	}
	return s
}

func entriesString(es []Entry) string {
	s := ""
	for _, e := range es {
		s += fmt.Sprintf("[%q %d %q]", e.Key, e.TS, e.Value)
	}
	return s
}

func readAll(b []byte) (*Header, []Record, error) {
	r, err := Open(bytes.NewReader(b), int64(len(b)), "test")
	if err != nil {
		return nil, nil, err
	}
	var got []Record
	err = r.Each(func(rec *Record) error {
		got = append(got, Record{Type: rec.Type, State: rec.State, KeyGroup: rec.KeyGroup, Key: slices.Clone(rec.Key), TS: rec.TS,
			Value: slices.Clone(rec.Value), Items: slices.Clone(rec.Items), Entries: slices.Clone(rec.Entries), Domain: rec.Domain, Namespace: slices.Clone(rec.Namespace)})
		return nil
	})
	return r.Header(), got, err
}

func TestRoundTrip(t *testing.T) {
	b, want := sample(t)
	h, got, err := readAll(b)
	if err != nil {
		t.Fatal(err)
	}
	if th := testHeader(); !reflect.DeepEqual(*h, th) {
		t.Fatalf("header %+v, want %+v", *h, th)
	}
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i := range want {
		if norm(got[i]) != norm(want[i]) {
			t.Errorf("record %d: got %s, want %s", i, norm(got[i]), norm(want[i]))
		}
	}
}

// TestCorruption flips every byte and cuts the file at every length: each
// must be refused, and none may panic.
func TestCorruption(t *testing.T) {
	b, _ := sample(t)
	step := 1
	if len(b) > 4000 {
		step = 7 // the long value: every byte of it would take long for nothing
	}
	for i := 0; i < len(b); i += step {
		c := slices.Clone(b)
		c[i] ^= 0x40
		if _, _, err := readAll(c); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("byte %d flipped: %v, want ErrCorrupt", i, err)
		}
	}
	for n := 0; n < len(b); n += step {
		if _, _, err := readAll(b[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("cut at %d: %v, want ErrCorrupt", n, err)
		}
	}
}

// TestReaderRefusesDisorder writes records out of the canonical order with
// a writer that does not check it and expects the reader to refuse them.
func TestReaderRefusesDisorder(t *testing.T) {
	for name, recs := range map[string][]func(w *Writer) error{
		"slot twice":       {func(w *Writer) error { return w.Value(5, 6, []byte("k"), 0, nil) }, func(w *Writer) error { return w.Value(5, 6, []byte("k"), 0, nil) }},
		"state down":       {func(w *Writer) error { return w.Value(5, 6, []byte("k"), 0, nil) }, func(w *Writer) error { return w.List(1, 6, []byte("z"), nil) }},
		"longer key first": {func(w *Writer) error { return w.Value(5, 6, []byte("kk"), 0, nil) }, func(w *Writer) error { return w.Value(5, 6, []byte("z"), 0, nil) }},
	} {
		var buf bytes.Buffer
		w, err := NewWriter(&buf, testHeader())
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range recs {
			if err := f(w); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if _, _, err := readAll(buf.Bytes()); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}

func TestWriterRefusesDisorder(t *testing.T) {
	cases := map[string]func(w *Writer) error{
		"key group down": func(w *Writer) error {
			_ = w.Value(5, 7, nil, 0, nil)
			return w.Value(5, 6, nil, 0, nil)
		},
		"outside range":   func(w *Writer) error { return w.Value(5, 3, nil, 0, nil) },
		"keyed after op":  func(w *Writer) error { _ = w.OperatorList(3, nil); return w.Value(5, 6, nil, 0, nil) },
		"wrong kind":      func(w *Writer) error { return w.List(5, 6, nil, nil) },
		"no such state":   func(w *Writer) error { return w.Value(9, 6, nil, 0, nil) },
		"broadcast as op": func(w *Writer) error { return w.OperatorList(0, nil) },
		"bad domain":      func(w *Writer) error { return w.Timer(6, 7, 0, nil, nil) },
	}
	for name, f := range cases {
		w, err := NewWriter(&bytes.Buffer{}, testHeader())
		if err != nil {
			t.Fatal(err)
		}
		if f(w) == nil || w.Close() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	h := testHeader()
	h.States[0], h.States[1] = h.States[1], h.States[0]
	if _, err := NewWriter(&bytes.Buffer{}, h); err == nil {
		t.Error("unsorted states accepted")
	}
}

func TestSplitList(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		var lists [][]Item
		total := 0
		for i := rng.IntN(6); i >= 0; i-- {
			var l []Item
			for j := rng.IntN(9); j > 0; j-- {
				l = append(l, Item{Value: []byte(fmt.Sprint(total))})
				total++
			}
			lists = append(lists, l)
		}
		p := 1 + rng.IntN(8)
		seen := make([]int, total)
		minN, maxN := total, 0
		for i := 0; i < p; i++ {
			share := SplitList(lists, i, p)
			minN, maxN = min(minN, len(share)), max(maxN, len(share))
			last := -1
			for _, it := range share {
				var n int
				fmt.Sscan(string(it.Value), &n)
				if n <= last {
					t.Fatalf("share %d of %d out of order: %v", i, p, share)
				}
				last = n
				seen[n]++
			}
		}
		for n, c := range seen {
			if c != 1 {
				t.Fatalf("item %d given %d times (p %d, lists %v)", n, c, p, lists)
			}
		}
		if maxN-minN > 1 {
			t.Fatalf("shares of %d to %d items at p %d", minN, maxN, p)
		}
	}
}

func TestUnionAndBroadcast(t *testing.T) {
	lists := [][]Item{{{0, []byte("a")}}, nil, {{0, []byte("b")}, {0, []byte("c")}}}
	if got := itemsString(UnionList(lists)); got != `[0 "a"][0 "b"][0 "c"]` {
		t.Fatal(got)
	}
	maps := [][]Entry{nil, {{[]byte("k"), 0, []byte("v")}}, {{[]byte("other"), 0, nil}}}
	got := BroadcastCopy(maps)
	if entriesString(got) != `["k" 0 "v"]` {
		t.Fatal(entriesString(got))
	}
	got[0].Key = []byte("changed")
	if string(maps[1][0].Key) != "k" {
		t.Fatal("BroadcastCopy shares its slice with the input")
	}
	if _, err := RedistributeItems(wasmabi.StateMap, lists, 0, 1); err == nil {
		t.Fatal("map state redistributed as items")
	}
}

func FuzzOpen(f *testing.F) {
	b, _ := sample(f)
	f.Add(b)
	f.Add(b[:40])
	// The input's last four bytes are replaced by its checksum, so the
	// fuzzer reaches the decoder, not only the checksum test.
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = readAll(b)
		if len(b) >= 4 {
			c := slices.Clone(b)
			binary.BigEndian.PutUint32(c[len(c)-4:], crc32.Checksum(c[:len(c)-4], castagnoli))
			_, _, _ = readAll(c)
		}
	})
}

func TestStats(t *testing.T) {
	b, _ := sample(t)
	r, err := Open(bytes.NewReader(b), int64(len(b)), "s")
	if err != nil {
		t.Fatal(err)
	}
	st, err := r.Stats()
	if err != nil {
		t.Fatal(err)
	}
	// Counted by hand from sample: key groups 6, 7 and 10; one timer.
	if st.KeyGroups != 3 || st.Timers != 1 {
		t.Fatalf("key groups %d, timers %d", st.KeyGroups, st.Timers)
	}
	want := map[string][3]int64{ // slots, entries, bytes
		"b": {1, 1, 2}, "l": {1, 2, 2}, "m": {1, 2, 3}, "ol": {1, 1, 2}, "u": {0, 0, 0}, "v": {2, 2, 1 + 2 + 300 + 70000},
	}
	for _, s := range st.States {
		if w := want[s.Name]; int64(s.Slots) != w[0] || int64(s.Entries) != w[1] || s.Bytes != w[2] {
			t.Errorf("state %s: %d slots, %d entries, %d bytes; want %v", s.Name, s.Slots, s.Entries, s.Bytes, w)
		}
	}
}
