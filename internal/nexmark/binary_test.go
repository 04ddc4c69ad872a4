package nexmark

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

// refDecode is an independent reading of the documented format: the kind
// byte, then the fields of the selected struct in declaration order, found
// by reflection.
func refDecode(t *testing.T, b []byte) Event {
	t.Helper()
	var e Event
	e.Kind = Kind(b[0])
	var v reflect.Value
	switch e.Kind {
	case KindPerson:
		v = reflect.ValueOf(&e.Person).Elem()
	case KindAuction:
		v = reflect.ValueOf(&e.Auction).Elem()
	case KindBid:
		v = reflect.ValueOf(&e.Bid).Elem()
	default:
		t.Fatalf("kind byte %d", b[0])
	}
	b = b[1:]
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Int64:
			f.SetInt(int64(binary.LittleEndian.Uint64(b)))
			b = b[8:]
		case reflect.String:
			n, k := binary.Uvarint(b)
			if k <= 0 || uint64(len(b)-k) < n {
				t.Fatalf("bad string %s", v.Type().Field(i).Name)
			}
			f.SetString(string(b[k : k+int(n)]))
			b = b[k+int(n):]
		default:
			t.Fatalf("field type %v", f.Type())
		}
	}
	if len(b) != 0 {
		t.Fatalf("%d bytes left", len(b))
	}
	return e
}

func TestBinaryRoundTrip(t *testing.T) {
	c := DefaultConfig()
	c.Seed = 11
	g := newGen(t, c)
	var e, d Event
	var buf []byte
	prefix := []byte("prefix")
	for i := range 100_000 {
		g.Next(&e)
		buf = AppendBinary(append(buf[:0], prefix...), &e)
		if !bytes.HasPrefix(buf, prefix) {
			t.Fatal("AppendBinary overwrote dst")
		}
		enc := buf[len(prefix):]
		if len(enc) != BinarySize(&e) {
			t.Fatalf("event %d: %d bytes, BinarySize says %d", i, len(enc), BinarySize(&e))
		}
		// Garbage in the other structs must be cleared.
		d = Event{Person: Person{Name: "x"}, Auction: Auction{ID: 1}, Bid: Bid{Price: 2}}
		if err := DecodeBinary(enc, &d); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if d != e {
			t.Fatalf("event %d: decoded %+v, want %+v", i, d, e)
		}
		if i%97 == 0 {
			if r := refDecode(t, enc); r != e {
				t.Fatalf("event %d: reference decoding %+v, want %+v", i, r, e)
			}
		}
		if a, bd, p, ts, ok := BidFields(enc); ok != (e.Kind == KindBid) ||
			ok && (a != e.Bid.Auction || bd != e.Bid.Bidder || p != e.Bid.Price || ts != e.Bid.DateTime) {
			t.Fatalf("event %d: BidFields = %d %d %d %d %v for %+v", i, a, bd, p, ts, ok, e)
		}
	}

	// The zero event.
	if b := AppendBinary(nil, &Event{}); !bytes.Equal(b, []byte{0}) {
		t.Fatalf("zero event encodes as %x", b)
	}
	d = Event{Kind: KindBid, Bid: Bid{Price: 3}}
	if err := DecodeBinary([]byte{0}, &d); err != nil || d != (Event{}) {
		t.Fatalf("decoding [0]: %+v, %v", d, err)
	}
}

func TestBinaryLongStrings(t *testing.T) {
	long := strings.Repeat("é", 10_000) // 20000 bytes: a 3-byte length
	for _, s := range []string{"", "a", strings.Repeat("b", 127), strings.Repeat("c", 128), strings.Repeat("d", 16383), strings.Repeat("d", 16384), long} {
		e := Event{Kind: KindAuction, Auction: Auction{ID: -1, ItemName: s, Description: "\x00\xff", Expires: 1 << 62, Extra: s}}
		b := AppendBinary(nil, &e)
		var d Event
		if err := DecodeBinary(b, &d); err != nil || d != e {
			t.Fatalf("len %d: %v", len(s), err)
		}
		if r := refDecode(t, b); r != e {
			t.Fatalf("len %d: reference decoding differs", len(s))
		}
	}
}

func TestDecodeAliases(t *testing.T) {
	e := Event{Kind: KindBid, Bid: Bid{Channel: "Google", URL: "https://x", Extra: "abc"}}
	b := AppendBinary(nil, &e)
	var d Event
	if err := DecodeBinary(b, &d); err != nil {
		t.Fatal(err)
	}
	lo, hi := uintptr(unsafe.Pointer(&b[0])), uintptr(unsafe.Pointer(&b[len(b)-1]))
	for _, s := range []string{d.Bid.Channel, d.Bid.URL, d.Bid.Extra} {
		if p := uintptr(unsafe.Pointer(unsafe.StringData(s))); p < lo || p > hi {
			t.Fatalf("%q does not point into the input", s)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	c := DefaultConfig()
	var valid [][]byte
	for n := range int64(5) {
		var e Event
		c.Event(n, &e)
		valid = append(valid, AppendBinary(nil, &e))
	}
	var e Event
	check := func(b []byte, want error, field string) {
		t.Helper()
		err := DecodeBinary(b, &e)
		var de *DecodeError
		if !errors.Is(err, want) || !errors.As(err, &de) || de.Field != field {
			t.Fatalf("DecodeBinary(%x) = %v, want %v in field %q", b, err, want, field)
		}
		if de.Offset < 0 || de.Offset > len(b) || !strings.Contains(err.Error(), "byte") {
			t.Fatalf("error %v: offset %d of %d", err, de.Offset, len(b))
		}
		if _, _, _, _, ok := BidFields(b); ok {
			t.Fatalf("BidFields accepted %x", b)
		}
	}
	for _, b := range valid {
		for i := range len(b) {
			if err := DecodeBinary(b[:i], &e); !errors.Is(err, ErrTruncated) {
				t.Fatalf("%d of %d bytes of a %v: %v", i, len(b), Kind(b[0]), err)
			}
		}
		check(append(b[:len(b):len(b)], 0), ErrTrailingBytes, "")
	}
	check(nil, ErrTruncated, "")
	check([]byte{4}, ErrUnknownKind, "")
	check([]byte{255, 1, 2}, ErrUnknownKind, "")

	// A bid whose channel length is written in two bytes instead of one.
	bid := Event{Kind: KindBid, Bid: Bid{Channel: "abcdef"}}
	b := AppendBinary(nil, &bid)
	nonMinimal := append(append(append([]byte{}, b[:25]...), 0x86, 0x00), b[26:]...)
	check(nonMinimal, ErrBadLength, "channel")
	// A length that overflows 64 bits, and one far beyond the input.
	check(append(append([]byte{}, b[:25]...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f), ErrBadLength, "channel")
	check(append(append([]byte{}, b[:25]...), 0xff, 0xff, 0xff, 0xff, 0x0f), ErrTruncated, "channel")
	check(b[:30], ErrTruncated, "channel")
	check(b[:40], ErrTruncated, "dateTime")

	defer func() {
		if recover() == nil {
			t.Fatal("AppendBinary of Kind(9) did not panic")
		}
	}()
	AppendBinary(nil, &Event{Kind: 9})
}

// FuzzDecodeBinary checks that DecodeBinary never panics, accepts exactly
// the outputs of AppendBinary, and that what it accepts encodes as valid
// JSON and agrees with BidFields.
func FuzzDecodeBinary(f *testing.F) {
	c := DefaultConfig()
	for n := range int64(60) {
		var e Event
		c.Event(n, &e)
		b := AppendBinary(nil, &e)
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{})
	f.Add([]byte{0})
	f.Add([]byte{3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		var e Event
		err := DecodeBinary(b, &e)
		auction, bidder, price, ts, ok := BidFields(b)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a *DecodeError", err)
			}
			if ok {
				t.Fatal("BidFields accepted what DecodeBinary rejected")
			}
			return
		}
		if re := AppendBinary(nil, &e); !bytes.Equal(re, b) {
			t.Fatalf("re-encoding %x gives %x", b, re)
		}
		if ok != (e.Kind == KindBid) || ok && (auction != e.Bid.Auction || bidder != e.Bid.Bidder || price != e.Bid.Price || ts != e.Bid.DateTime) {
			t.Fatalf("BidFields disagrees with DecodeBinary on %x", b)
		}
		if j := AppendJSON(nil, &e); !jsonValid(j) {
			t.Fatalf("invalid JSON %s", j)
		}
	})
}

func benchEvents(b *testing.B, n int) []Event {
	es := events(b, DefaultConfig(), n)
	b.ResetTimer()
	return es
}

func BenchmarkAppendBinary(b *testing.B) {
	es := benchEvents(b, 1000)
	buf := make([]byte, 0, 1<<16)
	i := 0
	for b.Loop() {
		buf = AppendBinary(buf[:0], &es[i%len(es)])
		i++
	}
}

func BenchmarkDecodeBinary(b *testing.B) {
	es := benchEvents(b, 1000)
	encs := make([][]byte, len(es))
	for i := range es {
		encs[i] = AppendBinary(nil, &es[i])
	}
	var e Event
	i := 0
	for b.Loop() {
		if err := DecodeBinary(encs[i%len(encs)], &e); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkBidFields(b *testing.B) {
	es := benchEvents(b, 1000)
	var encs [][]byte
	for i := range es {
		if es[i].Kind == KindBid {
			encs = append(encs, AppendBinary(nil, &es[i]))
		}
	}
	i := 0
	for b.Loop() {
		if _, _, _, _, ok := BidFields(encs[i%len(encs)]); !ok {
			b.Fatal("not a bid")
		}
		i++
	}
}
