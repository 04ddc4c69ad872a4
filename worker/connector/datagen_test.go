package connector

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"testing"
	"time"
)

// refSplitMix is SplitMix64 written as the usual sequential generator, to
// recompute datagen's documented formula independently of its code.
type refSplitMix struct{ state uint64 }

func (r *refSplitMix) next() uint64 {
	r.state += 0x9E3779B97F4A7C15
	z := r.state
	z ^= z >> 30
	z *= 0xBF58476D1CE4E5B9
	z ^= z >> 27
	z *= 0x94D049BB133111EB
	z ^= z >> 31
	return z
}

// expectedDatagen recomputes records 0..count-1 from the documentation.
func expectedDatagen(seed, count, keys, maxValue, start, interval int64) []rec {
	g := refSplitMix{uint64(seed)}
	out := make([]rec, count)
	for n := int64(0); n < count; n++ {
		k, v := g.next(), g.next()
		type withKey struct {
			Seq   int64  `json:"seq"`
			Key   string `json:"key"`
			Value uint64 `json:"value"`
		}
		type noKey struct {
			Seq   int64  `json:"seq"`
			Value uint64 `json:"value"`
		}
		var r rec
		r.TS = start + n*interval
		var js []byte
		if keys > 0 {
			r.Key = fmt.Sprintf("key-%d", k%uint64(keys))
			js, _ = json.Marshal(withKey{n, r.Key, v % uint64(maxValue)})
		} else {
			js, _ = json.Marshal(noKey{n, v % uint64(maxValue)})
		}
		r.Value = string(js)
		out[n] = r
	}
	return out
}

func TestDatagenMatchesDocumentedFormula(t *testing.T) {
	for _, tc := range []struct{ seed, count, keys, maxValue, start, interval int64 }{
		{0, 500, 0, 100000, 1700000000000, 1},
		{42, 1000, 7, 1000, 5, 3},
		{-9, 300, 1, 1, 0, 0},
		{1 << 40, 256, 1000, 1 << 40, 1700000000000, 1000},
	} {
		raw := map[string]any{"seed": tc.seed, "count": tc.count, "keys": tc.keys, "max_value": tc.maxValue, "start_time": tc.start, "interval_ms": tc.interval}
		got := readAll(t, newSource(t, "datagen", raw, Subtask{Index: 0, Parallelism: 1}), 77)
		want := expectedDatagen(tc.seed, tc.count, tc.keys, tc.maxValue, tc.start, tc.interval)
		if len(got) != len(want) {
			t.Fatalf("%+v: %d records, want %d", tc, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%+v: record %d = %+v, want %+v", tc, i, got[i], want[i])
			}
		}
	}
}

func TestDatagenDeterministicAndSeeded(t *testing.T) {
	raw := map[string]any{"seed": 5, "count": 200, "keys": 10}
	a := readAll(t, newSource(t, "datagen", raw, Subtask{Parallelism: 1}), 13)
	b := readAll(t, newSource(t, "datagen", raw, Subtask{Parallelism: 1}), 1000)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatal("same options, different records")
	}
	raw["seed"] = 6
	c := readAll(t, newSource(t, "datagen", raw, Subtask{Parallelism: 1}), 1000)
	if fmt.Sprint(a) == fmt.Sprint(c) {
		t.Fatal("different seeds, same records")
	}
	// Keys spread over all of key-0..key-9.
	seen := map[string]bool{}
	for _, r := range a {
		seen[r.Key] = true
	}
	if len(seen) != 10 {
		t.Fatalf("%d distinct keys, want 10", len(seen))
	}
}

// checkSplit reads a source at parallelism 1..4 and checks the subtasks
// together produce each record of the single-subtask stream exactly once.
func checkSplit(t *testing.T, name string, raw map[string]any) {
	t.Helper()
	whole := readAll(t, newSource(t, name, raw, Subtask{Parallelism: 1}), 64)
	if len(whole) == 0 {
		t.Fatal("empty stream")
	}
	key := func(r rec) string { return fmt.Sprintf("%d\x00%s\x00%s", r.TS, r.Key, r.Value) }
	for p := 1; p <= 4; p++ {
		count := map[string]int{}
		for i := 0; i < p; i++ {
			for _, r := range readAll(t, newSource(t, name, raw, Subtask{Index: i, Parallelism: p}), 50) {
				count[key(r)]++
			}
		}
		if len(count) != len(whole) {
			t.Fatalf("parallelism %d: %d distinct records, want %d", p, len(count), len(whole))
		}
		for _, r := range whole {
			if count[key(r)] != 1 {
				t.Fatalf("parallelism %d: record %+v produced %d times", p, r, count[key(r)])
			}
		}
	}
}

func TestDatagenSubtasksSplit(t *testing.T) {
	checkSplit(t, "datagen", map[string]any{"count": 1001, "keys": 5})
	// Subtask i takes records i, i+p, ...: check the documented layout.
	recs := readAll(t, newSource(t, "datagen", map[string]any{"count": 20}, Subtask{Index: 2, Parallelism: 3}), 100)
	var seqs []int64
	for _, r := range recs {
		var v struct{ Seq int64 }
		if err := json.Unmarshal([]byte(r.Value), &v); err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, v.Seq)
	}
	if fmt.Sprint(seqs) != "[2 5 8 11 14 17]" {
		t.Fatalf("subtask 2 of 3 emitted %v", seqs)
	}
}

func TestDatagenOffsetSeek(t *testing.T) {
	raw := map[string]any{"count": 100, "keys": 3, "seed": 9}
	for p := 1; p <= 3; p++ {
		for i := 0; i < p; i++ {
			sub := Subtask{Index: i, Parallelism: p}
			want := readAll(t, newSource(t, "datagen", raw, sub), 100)
			src := newSource(t, "datagen", raw, sub)
			var b Batch
			if _, err := src.Read(context.Background(), &b, 7); err != nil {
				t.Fatal(err)
			}
			first := decode(t, &b)
			off := src.Offset()
			resumed := newSource(t, "datagen", raw, sub).(Seekable)
			if err := resumed.Seek(off); err != nil {
				t.Fatal(err)
			}
			rest := readAll(t, resumed, 10)
			if got := append(first, rest...); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("p=%d i=%d: resumed stream differs", p, i)
			}
		}
	}
	src := newSource(t, "datagen", raw, Subtask{Parallelism: 1}).(Seekable)
	if err := src.Seek([]byte{1, 2, 3}); err == nil {
		t.Fatal("Seek accepted garbage")
	}
	if err := src.Seek((&fileSource{}).Offset()); err == nil {
		t.Fatal("Seek accepted a file offset")
	}
}

func TestDatagenUnboundedAndCancel(t *testing.T) {
	src := newSource(t, "datagen", map[string]any{}, Subtask{Parallelism: 1})
	var b Batch
	for i := 0; i < 3; i++ {
		b.Reset()
		n, err := src.Read(context.Background(), &b, 1000)
		if err != nil || n != 1000 {
			t.Fatalf("unbounded Read: %d, %v", n, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := src.Read(ctx, &b, 10); err != context.Canceled {
		t.Fatalf("Read after cancel: %v", err)
	}
}

func TestDatagenRate(t *testing.T) {
	// 200 records/s over 2 subtasks: a Read waits at most ~100 ms, returns
	// only due records, and the pair of subtasks keeps the total rate.
	raw := map[string]any{"rate": 200}
	subs := []Source{
		newSource(t, "datagen", raw, Subtask{Index: 0, Parallelism: 2}),
		newSource(t, "datagen", raw, Subtask{Index: 1, Parallelism: 2}),
	}
	start := time.Now()
	total := 0
	var b Batch
	for time.Since(start) < 300*time.Millisecond {
		for _, s := range subs {
			b.Reset()
			t0 := time.Now()
			n, err := s.Read(context.Background(), &b, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if d := time.Since(t0); d > 250*time.Millisecond {
				t.Fatalf("Read blocked %v", d)
			}
			total += n
		}
	}
	el := time.Since(start).Seconds()
	// Generous bounds: CI machines are slow, but unpaced would be millions.
	if max := int(200*el) + 4; total > max {
		t.Fatalf("%d records in %.2fs at rate 200 (max %d)", total, el, max)
	}
	if total < 20 {
		t.Fatalf("only %d records in %.2fs at rate 200", total, el)
	}
	// A paced Read honours a cancelled context while it waits.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	slow := newSource(t, "datagen", map[string]any{"rate": 1}, Subtask{Parallelism: 1})
	b.Reset()
	slow.Read(ctx, &b, 10) // record 0 is due at once
	t0 := time.Now()
	if _, err := slow.Read(ctx, &b, 10); err == nil || time.Since(t0) > 90*time.Millisecond {
		t.Fatalf("paced Read: err %v after %v", err, time.Since(t0))
	}
}

func TestDatagenOptionChecks(t *testing.T) {
	s := mustSpec(t, KindSource, "datagen")
	for _, raw := range []map[string]any{{"count": -1}, {"max_value": 0}, {"keys": -2}, {"rate": -1}} {
		if _, err := s.ParseOptions(raw); err == nil {
			t.Errorf("%v accepted", raw)
		}
	}
	o := mustOptions(t, s, map[string]any{"keys": 2})
	if !s.Keyed(o) || s.Bounded(o) {
		t.Fatal("keys=2 count=0: want keyed, unbounded")
	}
	o = mustOptions(t, s, map[string]any{"count": 2})
	if s.Keyed(o) || !s.Bounded(o) {
		t.Fatal("keys=0 count=2: want unkeyed, bounded")
	}
	if _, err := s.NewSource(o, Subtask{Index: 2, Parallelism: 2}); err == nil {
		t.Fatal("subtask 2 of 2 accepted")
	}
	_ = io.EOF
	_ = sort.Strings
}

func BenchmarkDatagenRead(b *testing.B) {
	s := mustSpec(b, KindSource, "datagen")
	src, err := s.NewSource(mustOptions(b, s, map[string]any{"keys": 1000}), Subtask{Parallelism: 1})
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
