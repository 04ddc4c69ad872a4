package wasmabi

import (
	"bytes"
	"errors"
	"testing"
)

func sampleEntries() []Entry {
	var hdr []byte
	hdr = AppendHeader(hdr, "trace", []byte("abc"))
	hdr = AppendHeader(hdr, "", nil)
	return []Entry{
		{Kind: EntryRecord, Key: []byte("k1"), Value: []byte("hello"), Timestamp: 42, Headers: hdr},
		{Kind: EntryWatermark, Timestamp: -7},
		{Kind: EntryTimer, Flags: uint8(ProcessingTime), Key: []byte("acct"), Timestamp: 1 << 40},
		{Kind: EntryAccumulator, Port: 3, Value: bytes.Repeat([]byte{0xff}, 300)},
		{Kind: EntryRecord},
	}
}

func TestEntryRoundTrip(t *testing.T) {
	in := sampleEntries()
	buf := AppendBatchHeader(nil, BatchHeader{Count: uint32(len(in)), Watermark: NoWatermark, ProcessingTime: 99})
	for i := range in {
		buf = AppendEntry(buf, &in[i])
	}
	want := BatchHeaderSize
	for i := range in {
		want += in[i].Size()
	}
	if len(buf) != want {
		t.Fatalf("encoded %d bytes, sizes add up to %d", len(buf), want)
	}
	h, rest, err := ReadBatchHeader(buf)
	if err != nil {
		t.Fatal(err)
	}
	if h.Count != uint32(len(in)) || h.Watermark != NoWatermark || h.ProcessingTime != 99 {
		t.Fatalf("header = %+v", h)
	}
	for i := range in {
		var e Entry
		if rest, err = ReadEntry(rest, &e); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		w := in[i]
		if e.Kind != w.Kind || e.Flags != w.Flags || e.Port != w.Port || e.Timestamp != w.Timestamp ||
			!bytes.Equal(e.Key, w.Key) || !bytes.Equal(e.Value, w.Value) || !bytes.Equal(e.Headers, w.Headers) {
			t.Fatalf("entry %d = %+v, want %+v", i, e, w)
		}
		if err := ValidHeaders(e.Headers); err != nil {
			t.Fatalf("entry %d headers: %v", i, err)
		}
	}
	if len(rest) != 0 {
		t.Fatalf("%d bytes left over", len(rest))
	}
	name, val, hrest, err := NextHeader(in[0].Headers)
	if err != nil || string(name) != "trace" || string(val) != "abc" || len(hrest) != 6 {
		t.Fatalf("first header = %q %q rest %d err %v", name, val, len(hrest), err)
	}
}

func TestReadEntryRejects(t *testing.T) {
	good := AppendEntry(nil, &Entry{Kind: EntryRecord, Key: []byte("key"), Value: []byte("value")})
	cases := map[string]struct {
		b    []byte
		want error
	}{
		"empty":          {nil, ErrShort},
		"short header":   {good[:10], ErrShort},
		"short payload":  {good[:len(good)-1], ErrShort},
		"kind zero":      {append([]byte{0}, good[1:]...), ErrEntryKind},
		"kind too large": {append([]byte{9}, good[1:]...), ErrEntryKind},
		"huge key": {func() []byte {
			b := bytes.Clone(good)
			le.PutUint32(b[4:], 0xffffffff)
			return b
		}(), ErrShort},
	}
	for name, c := range cases {
		var e Entry
		if _, err := ReadEntry(c.b, &e); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", name, err, c.want)
		}
	}
	if err := ValidHeaders([]byte{5, 0, 'a'}); !errors.Is(err, ErrHeaders) {
		t.Errorf("truncated header: err = %v", err)
	}
}

func TestItems(t *testing.T) {
	var b []byte
	items := [][]byte{[]byte("a"), nil, []byte("ccc")}
	for _, it := range items {
		b = AppendItem(b, it)
	}
	for i, want := range items {
		var got []byte
		var err error
		if got, b, err = NextItem(b); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("item %d = %q, %v", i, got, err)
		}
	}
	if _, _, err := NextItem([]byte{9, 0, 0, 0, 1}); !errors.Is(err, ErrShort) {
		t.Fatalf("short item: %v", err)
	}
}

func TestParseDescriptor(t *testing.T) {
	d, err := ParseDescriptor([]byte(`{"sdk":"c/0.1","operators":[{"name":"up","kind":"map"},{"name":"count","kind":"process","side_outputs":["late"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if i, op, ok := d.Operator("count"); !ok || i != 1 || op.Kind != KindProcess || op.SideOutputs[0] != "late" {
		t.Fatalf("Operator(count) = %d %+v %v", i, op, ok)
	}
	bad := []string{
		`{"operators":[]}`,
		`{"operators":[{"name":"a","kind":"teleport"}]}`,
		`{"operators":[{"name":"a","kind":"map"},{"name":"a","kind":"map"}]}`,
		`{"operators":[{"name":"a b","kind":"map"}]}`,
		`{"operators":[{"name":"a","kind":"map"}],"extra":1}`,
		`not json`,
	}
	for _, s := range bad {
		if _, err := ParseDescriptor([]byte(s)); !errors.Is(err, ErrDescriptor) {
			t.Errorf("ParseDescriptor(%s) err = %v, want ErrDescriptor", s, err)
		}
	}
}

// FuzzReadEntries decodes arbitrary bytes as a sequence of entries, the way
// the host reads a module's output: it must never panic, never return slices
// outside the input, and re-encoding what it decoded must give the same bytes.
func FuzzReadEntries(f *testing.F) {
	var seed []byte
	for _, e := range sampleEntries() {
		seed = AppendEntry(seed, &e)
	}
	f.Add(seed)
	f.Add(seed[:30])
	f.Add([]byte{1, 0, 0, 0, 255, 255, 255, 255})
	f.Add(make([]byte, EntryHeaderSize))
	all := Kinds(EntryRecord, EntryWatermark, EntryTimer, EntryAccumulator)
	f.Fuzz(func(t *testing.T, b []byte) {
		rest := b
		var again []byte
		n, valid := 0, true
		for len(rest) > 0 {
			var e Entry
			next, err := ReadEntry(rest, &e)
			if err != nil {
				valid = false
				break
			}
			if len(next) >= len(rest) {
				t.Fatalf("no progress: %d -> %d bytes", len(rest), len(next))
			}
			if ValidHeaders(e.Headers) != nil {
				valid = false
				break
			}
			again = AppendEntry(again, &e)
			rest = next
			n++
		}
		// The host's one-pass check agrees with decoding entry by entry.
		count, err := ScanEntries(b, all, 0xffff)
		if (err == nil) != valid || count != n {
			t.Fatalf("ScanEntries = %d, %v; decoding gave %d entries, valid %v", count, err, n, valid)
		}
		if valid && !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", again, b)
		}
	})
}

// FuzzParseDescriptor: a module's descriptor is untrusted input.
func FuzzParseDescriptor(f *testing.F) {
	f.Add([]byte(`{"operators":[{"name":"a","kind":"map","side_outputs":["x"]}]}`))
	f.Add([]byte(`{"operators":[{"name":"","kind":""}]}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDescriptor(b)
		if err != nil {
			return
		}
		if err := d.Validate(); err != nil {
			t.Fatalf("parsed descriptor does not validate: %v", err)
		}
	})
}

func BenchmarkScanEntries(b *testing.B) {
	var buf []byte
	for i := 0; i < 1024; i++ {
		buf = AppendEntry(buf, &Entry{Kind: EntryRecord, Key: []byte("k0000001"), Value: bytes.Repeat([]byte{'x'}, 100), Timestamp: int64(i)})
	}
	kinds := Kinds(EntryRecord, EntryWatermark)
	b.SetBytes(int64(len(buf)))
	for i := 0; i < b.N; i++ {
		if n, err := ScanEntries(buf, kinds, 0); err != nil || n != 1024 {
			b.Fatal(n, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1024), "ns/entry")
}
