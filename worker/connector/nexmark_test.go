package connector

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/weirstream/weir/internal/connspec"
	"github.com/weirstream/weir/internal/nexmark"
)

func TestNexmarkMatchesGenerator(t *testing.T) {
	for _, format := range []string{"json", "binary"} {
		raw := map[string]any{"count": 2000, "seed": 3, "format": format, "rate": 1000}
		got := readAll(t, newSource(t, "nexmark", raw, Subtask{Parallelism: 1}), 100)
		g, err := nexmark.NewGenerator(nexmark.Config{Seed: 3, Count: 2000, EventsPerSecond: 1000}.WithDefaults())
		if err != nil {
			t.Fatal(err)
		}
		var e nexmark.Event
		i := 0
		for ; g.Next(&e); i++ {
			want := nexmark.AppendJSON(nil, &e)
			if format == "binary" {
				want = nexmark.AppendBinary(nil, &e)
			}
			if i >= len(got) {
				t.Fatalf("%s: source ended after %d events", format, len(got))
			}
			if got[i].Value != string(want) || got[i].TS != e.DateTime() || got[i].Key != "" {
				t.Fatalf("%s: event %d differs from the generator's", format, i)
			}
			// Timestamps follow the event-time rate: 1000 events/s.
			if got[i].TS != nexmark.DefaultBaseTime+int64(i) {
				t.Fatalf("%s: event %d at %d, want %d", format, i, got[i].TS, nexmark.DefaultBaseTime+int64(i))
			}
		}
		if i != len(got) || i != 2000 {
			t.Fatalf("%s: %d events from the source, %d from the generator", format, len(got), i)
		}
	}
}

func TestNexmarkKindProportions(t *testing.T) {
	got := readAll(t, newSource(t, "nexmark", map[string]any{"count": 5000}, Subtask{Parallelism: 1}), 512)
	kinds := map[int]int{}
	for _, r := range got {
		var v struct {
			EventType int             `json:"event_type"`
			Person    json.RawMessage `json:"person"`
			Auction   json.RawMessage `json:"auction"`
			Bid       json.RawMessage `json:"bid"`
		}
		if err := json.Unmarshal([]byte(r.Value), &v); err != nil {
			t.Fatalf("event is not JSON: %v: %s", err, r.Value)
		}
		kinds[v.EventType]++
	}
	// 1:3:46 of every 50 events.
	if kinds[0] != 100 || kinds[1] != 300 || kinds[2] != 4600 {
		t.Fatalf("kinds %v, want persons 100, auctions 300, bids 4600", kinds)
	}
}

func TestNexmarkSubtasksSplit(t *testing.T) {
	checkSplit(t, "nexmark", map[string]any{"count": 997, "format": "binary"})
	// Subtask i of p emits events i, i+p, ...: decode and check.
	got := readAll(t, newSource(t, "nexmark", map[string]any{"count": 300, "format": "binary"}, Subtask{Index: 1, Parallelism: 3}), 64)
	cfg := nexmark.Config{Count: 300}.WithDefaults()
	for j, r := range got {
		var e nexmark.Event
		if err := nexmark.DecodeBinary([]byte(r.Value), &e); err != nil {
			t.Fatal(err)
		}
		n := int64(1 + 3*j)
		if e.Kind != nexmark.KindOf(n) || r.TS != cfg.Timestamp(n) {
			t.Fatalf("record %d: kind %v at %d, want event %d: %v at %d", j, e.Kind, r.TS, n, nexmark.KindOf(n), cfg.Timestamp(n))
		}
	}
	if len(got) != 100 {
		t.Fatalf("%d events, want 100", len(got))
	}
}

func TestNexmarkOffsetSeek(t *testing.T) {
	raw := map[string]any{"count": 400}
	for p := 1; p <= 3; p++ {
		sub := Subtask{Index: p - 1, Parallelism: p}
		want := readAll(t, newSource(t, "nexmark", raw, sub), 1000)
		src := newSource(t, "nexmark", raw, sub)
		var b Batch
		if _, err := src.Read(context.Background(), &b, 33); err != nil {
			t.Fatal(err)
		}
		first := decode(t, &b)
		resumed := newSource(t, "nexmark", raw, sub).(Seekable)
		if err := resumed.Seek(src.Offset()); err != nil {
			t.Fatal(err)
		}
		if got := append(first, readAll(t, resumed, 50)...); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("p=%d: resumed stream differs", p)
		}
	}
	s := newSource(t, "nexmark", raw, Subtask{Parallelism: 1}).(Seekable)
	if err := s.Seek(encodeOffset(offsetDatagen, 5)); err == nil {
		t.Fatal("Seek accepted a datagen offset")
	}
	if err := s.Seek(encodeOffset(offsetNexmark, -5)); err == nil {
		t.Fatal("Seek accepted a negative offset")
	}
}

func TestNexmarkOptions(t *testing.T) {
	s := mustSpec(t, KindSource, "nexmark")
	o := mustOptions(t, s, nil)
	if o.Int("count") != connspec.DefaultNexmarkCount || o.Int("rate") != nexmark.DefaultEventsPerSecond || s.Keyed(o) || !s.Bounded(o) {
		t.Fatalf("defaults %v", o)
	}
	for _, raw := range []map[string]any{{"rate": 0}, {"count": -1}, {"hot_auction_ratio": 0}, {"avg_bid_bytes": nexmark.MaxAvgByteSize + 1}, {"format": "xml"}} {
		if _, err := s.ParseOptions(raw); err == nil {
			t.Errorf("%v accepted", raw)
		}
	}
	if s.Bounded(mustOptions(t, s, map[string]any{"count": 0})) {
		t.Fatal("count 0 must be unbounded")
	}
}

func benchmarkNexmark(b *testing.B, format string) {
	s := mustSpec(b, KindSource, "nexmark")
	src, err := s.NewSource(mustOptions(b, s, map[string]any{"count": 0, "format": format}), Subtask{Parallelism: 1})
	if err != nil {
		b.Fatal(err)
	}
	var batch Batch
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		batch.Reset()
		n, err := src.Read(ctx, &batch, min(1024, b.N-done))
		if err != nil {
			b.Fatal(err)
		}
		done += n
	}
}

func BenchmarkNexmarkReadJSON(b *testing.B)   { benchmarkNexmark(b, "json") }
func BenchmarkNexmarkReadBinary(b *testing.B) { benchmarkNexmark(b, "binary") }
