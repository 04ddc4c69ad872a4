package connector

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/weirstream/weir/internal/connspec"
	"github.com/weirstream/weir/wasmabi"
)

// rec is a decoded record, for comparisons.
type rec struct {
	Key   string
	Value string
	TS    int64
}

// decode walks the entries of a batch.
func decode(t testing.TB, b *Batch) []rec {
	t.Helper()
	var out []rec
	buf := b.Buf
	for len(buf) > 0 {
		var e wasmabi.Entry
		var err error
		if buf, err = wasmabi.ReadEntry(buf, &e); err != nil {
			t.Fatalf("decoding batch: %v", err)
		}
		if e.Kind != wasmabi.EntryRecord {
			t.Fatalf("entry kind %v, want record", e.Kind)
		}
		out = append(out, rec{string(e.Key), string(e.Value), e.Timestamp})
	}
	if len(out) != b.Count {
		t.Fatalf("batch has %d entries, Count says %d", len(out), b.Count)
	}
	return out
}

// readAll reads a bounded source to its end in batches of batchSize.
func readAll(t testing.TB, s Source, batchSize int) []rec {
	t.Helper()
	var out []rec
	var b Batch
	for i := 0; ; i++ {
		if i > 10_000_000 {
			t.Fatal("source does not end")
		}
		b.Reset()
		n, err := s.Read(context.Background(), &b, batchSize)
		if n != b.Count {
			t.Fatalf("Read returned %d, appended %d", n, b.Count)
		}
		if n > batchSize {
			t.Fatalf("Read appended %d > max %d", n, batchSize)
		}
		out = append(out, decode(t, &b)...)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
	}
}

// conn is a built-in connector as the tests use it: its spec from
// internal/connspec (ParseOptions, Keyed, Bounded) and its factory.
type conn struct {
	*connspec.Spec
	f *Spec
}

func (c conn) NewSource(o Options, sub Subtask) (Source, error) { return c.f.NewSource(o, sub) }
func (c conn) NewSink(o Options, sub Subtask) (Sink, error)     { return c.f.NewSink(o, sub) }

func mustSpec(t testing.TB, kind Kind, name string) conn {
	t.Helper()
	cs, ok := connspec.LookupKind(kind, name)
	if !ok {
		t.Fatalf("%s %q has no spec", kind, name)
	}
	f, ok := LookupKind(kind, name)
	if !ok {
		t.Fatalf("%s %q has no factory", kind, name)
	}
	return conn{cs, f}
}

func mustOptions(t testing.TB, s conn, raw map[string]any) Options {
	t.Helper()
	o, err := s.ParseOptions(raw)
	if err != nil {
		t.Fatalf("%s options %v: %v", s.Name, raw, err)
	}
	return o
}

func newSource(t testing.TB, name string, raw map[string]any, sub Subtask) Source {
	t.Helper()
	s := mustSpec(t, KindSource, name)
	src, err := s.NewSource(mustOptions(t, s, raw), sub)
	if err != nil {
		t.Fatalf("new %s source: %v", name, err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// Offsets before splits were a one-byte tag and little-endian fields; the
// tests check such bytes are refused.
const (
	offsetDatagen = 'd'
	offsetNexmark = 'n'
)

func encodeOffset(tag byte, fields ...int64) []byte {
	b := []byte{tag}
	for _, f := range fields {
		b = binary.LittleEndian.AppendUint64(b, uint64(f))
	}
	return b
}
