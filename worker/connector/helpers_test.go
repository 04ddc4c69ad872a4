package connector

import (
	"context"
	"errors"
	"io"
	"testing"

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

func mustSpec(t testing.TB, kind Kind, name string) *Spec {
	t.Helper()
	s, ok := LookupKind(kind, name)
	if !ok {
		t.Fatalf("%s %q not registered", kind, name)
	}
	return s
}

func mustOptions(t testing.TB, s *Spec, raw map[string]any) Options {
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
