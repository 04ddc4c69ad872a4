package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"strings"
	"testing"

	"github.com/weirstream/weir/internal/nexmark"
	"github.com/weirstream/weir/internal/splits"
)

// The differential tests of rescaling: read part of a source at
// parallelism p, snapshot every subtask, restore at q (and again at r),
// read to the end, and compare the multiset of records with one computed
// without the source (the documented formula, the generator, the file's
// lines): nothing lost, nothing doubled, whatever p, q and r.

// rescales are the chains of parallelisms tried: first, then restored, then restored again.
var rescales = [][3]int{{1, 1, 1}, {1, 3, 1}, {2, 1, 2}, {3, 2, 5}, {4, 7, 1}, {5, 1, 3}, {2, 8, 2}, {7, 3, 720 + 3}}

// readSome reads up to n records from src in batches of batch, returning
// them and whether the source ended.
func readSome(t testing.TB, src Source, n, batch int) ([]rec, bool) {
	t.Helper()
	var out []rec
	var b Batch
	for len(out) < n {
		b.Reset()
		_, err := src.Read(context.Background(), &b, min(batch, n-len(out)))
		out = append(out, decode(t, &b)...)
		if errors.Is(err, io.EOF) {
			return out, true
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
	}
	return out, false
}

// snapshotAll takes each subtask's snapshot the way a checkpoint would:
// its Offset bytes, decoded.
func snapshotAll(t testing.TB, srcs []Source) []splits.Snapshot {
	t.Helper()
	var out []splits.Snapshot
	for i, s := range srcs {
		sn, err := splits.Decode(s.Offset())
		if err != nil {
			t.Fatalf("subtask %d: decoding its offset: %v", i, err)
		}
		if typed := s.(SplitSource).Snapshot(); fmt.Sprint(typed) != fmt.Sprint(sn) {
			t.Fatalf("subtask %d: Offset and Snapshot differ", i)
		}
		out = append(out, sn)
	}
	return out
}

// restoreAll opens p subtasks of a source from the snapshots of the
// previous run (nil: fresh).
func restoreAll(t testing.TB, name string, raw map[string]any, old []splits.Snapshot, p int) []Source {
	t.Helper()
	srcs := make([]Source, p)
	for i := range srcs {
		sub := Subtask{Index: i, Parallelism: p}
		if old != nil {
			sn, err := splits.Assign(old, i, p)
			if err != nil {
				t.Fatalf("assigning subtask %d of %d: %v", i, p, err)
			}
			sub.Restore = &sn
		}
		srcs[i] = newSource(t, name, raw, sub)
	}
	return srcs
}

// rescaleRun reads the source through one chain of parallelisms and
// returns every record read, by subtask and phase, for order checks too.
func rescaleRun(t *testing.T, name string, raw map[string]any, chain [3]int, seed int64) [][]rec {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	var runs [][]rec
	var snaps []splits.Snapshot
	for phase, p := range chain {
		srcs := restoreAll(t, name, raw, snaps, p)
		for _, s := range srcs {
			var got []rec
			if phase == len(chain)-1 {
				got = readAll(t, s, 1+rng.Intn(100))
			} else {
				// Uneven progress: some subtasks read nothing, some
				// read to their end.
				got, _ = readSome(t, s, []int{0, 1, 37, 400, 1 << 30}[rng.Intn(5)], 1+rng.Intn(64))
			}
			runs = append(runs, got)
		}
		snaps = snapshotAll(t, srcs)
	}
	return runs
}

// sameMultiset fails unless the records of runs are exactly want, each as
// often.
func sameMultiset(t *testing.T, what string, runs [][]rec, want []rec) {
	t.Helper()
	count := map[rec]int{}
	for _, r := range want {
		count[r]++
	}
	n := 0
	for _, run := range runs {
		for _, r := range run {
			count[r]--
			n++
		}
	}
	for r, c := range count {
		if c != 0 {
			t.Fatalf("%s: record %+v: %d more than expected (read %d records, want %d)", what, r, -c, n, len(want))
		}
	}
}

func TestRescaleDatagen(t *testing.T) {
	const count = 5003
	raw := map[string]any{"count": count, "keys": 11, "seed": 4, "interval_ms": 2}
	want := expectedDatagen(4, count, 11, 100000, 1700000000000, 2)
	for i, chain := range rescales {
		runs := rescaleRun(t, "datagen", raw, chain, int64(i))
		sameMultiset(t, fmt.Sprintf("datagen %v", chain), runs, want)
		checkIncreasing(t, fmt.Sprintf("datagen %v", chain), runs)
	}
}

func TestRescaleNexmark(t *testing.T) {
	const count = 3001
	raw := map[string]any{"count": count, "format": "binary", "seed": 8}
	g, err := nexmark.NewGenerator(nexmark.Config{Seed: 8, Count: count}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	var want []rec
	for e := (nexmark.Event{}); g.Next(&e); {
		want = append(want, rec{"", string(nexmark.AppendBinary(nil, &e)), e.DateTime()})
	}
	for i, chain := range rescales {
		runs := rescaleRun(t, "nexmark", raw, chain, int64(100+i))
		sameMultiset(t, fmt.Sprintf("nexmark %v", chain), runs, want)
		checkIncreasing(t, fmt.Sprintf("nexmark %v", chain), runs)
	}
}

// checkIncreasing checks each subtask's run emits increasing timestamps:
// a restored subtask lets its lagging splits catch up first.
func checkIncreasing(t *testing.T, what string, runs [][]rec) {
	t.Helper()
	for i, run := range runs {
		for j := 1; j < len(run); j++ {
			if run[j].TS < run[j-1].TS {
				t.Fatalf("%s: run %d: record %d at %d after one at %d", what, i, j, run[j].TS, run[j-1].TS)
			}
		}
	}
}

func TestRescaleFile(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	var sb strings.Builder
	var lines []string
	for i := 0; i < 3000; i++ {
		l := fmt.Sprintf("%d %s", i, strings.Repeat("w", rng.Intn(40)))
		if i%97 == 0 {
			l = strings.Repeat("long", 300) // longer than a split
		}
		lines = append(lines, l)
		sb.WriteString(l)
		if i%5 == 0 {
			sb.WriteString("\r")
		}
		if i < 2999 {
			sb.WriteString("\n") // no final newline
		}
	}
	p := writeFile(t, sb.String())
	var want []rec
	for i, l := range lines {
		want = append(want, rec{"", l, int64(i)})
	}
	raw := map[string]any{"path": p}
	for i, chain := range rescales {
		runs := rescaleRun(t, "file", raw, chain, int64(200+i))
		sameMultiset(t, fmt.Sprintf("file %v", chain), runs, want)
		checkIncreasing(t, fmt.Sprintf("file %v", chain), runs)
	}
}

func TestRescaleFileJSONL(t *testing.T) {
	var sb strings.Builder
	var want []rec
	line := 0
	for i := 0; i < 1500; i++ {
		if i%50 == 7 {
			sb.WriteString("\n") // empty lines are skipped but counted
			line++
		}
		js, _ := json.Marshal(map[string]any{"u": fmt.Sprintf("user%d", i%13), "t": 1000 + i, "pad": strings.Repeat("x", i%17)})
		sb.Write(js)
		sb.WriteString("\n")
		want = append(want, rec{fmt.Sprintf("user%d", i%13), string(js), int64(1000 + i)})
		line++
	}
	p := writeFile(t, sb.String())
	raw := map[string]any{"path": p, "format": "jsonl", "key_field": "u", "timestamp_field": "t"}
	for i, chain := range rescales {
		runs := rescaleRun(t, "file", raw, chain, int64(300+i))
		sameMultiset(t, fmt.Sprintf("jsonl %v", chain), runs, want)
	}
}

// An unbounded stream cannot be read to its end: read each restored
// subtask until it passes number m, then every number below m must have
// been emitted exactly once.
func TestRescaleDatagenUnbounded(t *testing.T) {
	const m = 20_000
	raw := map[string]any{"keys": 3}
	seq := func(r rec) int64 {
		var v struct{ Seq int64 }
		if err := json.Unmarshal([]byte(r.Value), &v); err != nil {
			t.Fatal(err)
		}
		return v.Seq
	}
	for _, chain := range [][2]int{{1, 4}, {3, 2}, {6, 1}, {2, 5}} {
		seen := make([]int, m)
		first := restoreAll(t, "datagen", raw, nil, chain[0])
		for i, s := range first {
			got, _ := readSome(t, s, 1000*(i+1)*(i%2), 100)
			for _, r := range got {
				if n := seq(r); n < m {
					seen[n]++
				}
			}
		}
		for _, s := range restoreAll(t, "datagen", raw, snapshotAll(t, first), chain[1]) {
			last := int64(-1)
			for last < m {
				got, _ := readSome(t, s, 500, 500)
				for _, r := range got {
					n := seq(r)
					if n <= last {
						t.Fatalf("%v: %d after %d", chain, n, last)
					}
					last = n
					if n < m {
						seen[n]++
					}
				}
			}
		}
		for n, c := range seen {
			if c != 1 {
				t.Fatalf("%v: record %d emitted %d times", chain, n, c)
			}
		}
	}
}

func TestRestoreRefusesOtherSources(t *testing.T) {
	dg := newSource(t, "datagen", map[string]any{"count": 10}, Subtask{Parallelism: 1})
	sn := dg.(SplitSource).Snapshot()
	s := mustSpec(t, KindSource, "nexmark")
	if _, err := s.NewSource(mustOptions(t, s, map[string]any{"count": 10}), Subtask{Parallelism: 1, Restore: &sn}); err == nil {
		t.Fatal("nexmark restored datagen's splits")
	}
	p := writeFile(t, "a\nb\n")
	f := mustSpec(t, KindSource, "file")
	sn.Connector = "file"
	if _, err := f.NewSource(mustOptions(t, f, map[string]any{"path": p}), Subtask{Parallelism: 1, Restore: &sn}); err == nil {
		t.Fatal("file restored sequence splits")
	}
	// A split of another file, or one past the file's end.
	other := splits.Snapshot{Connector: "file", States: []splits.State{splits.Fresh(splits.Split{Of: 1, Kind: splits.KindFile, Path: p + "x", End: 1})}}
	if _, err := f.NewSource(mustOptions(t, f, map[string]any{"path": p}), Subtask{Parallelism: 1, Restore: &other}); err == nil {
		t.Fatal("file restored another file's split")
	}
	// A file changed since its snapshot: the position is no line start.
	changing := writeFile(t, "first line\nsecond line\nthird\n")
	fsrc := newSource(t, "file", map[string]any{"path": changing}, Subtask{Parallelism: 1})
	readSome(t, fsrc, 1, 1)
	moved := fsrc.(SplitSource).Snapshot()
	if err := os.WriteFile(changing, []byte("1st line\nsecond line\nthird\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := f.NewSource(mustOptions(t, f, map[string]any{"path": changing}), Subtask{Parallelism: 1, Restore: &moved}); err == nil || !strings.Contains(err.Error(), "not a line start") {
		t.Fatalf("changed file: %v", err)
	}
	// The snapshot subtask 1 of 2 took, given as is to subtask 1 of 3
	// instead of redistributed: it holds splits subtask 1 of 3 does not own.
	two := restoreAll(t, "datagen", map[string]any{"count": 10}, nil, 2)
	stale := two[1].(SplitSource).Snapshot()
	dgs := mustSpec(t, KindSource, "datagen")
	if _, err := dgs.NewSource(mustOptions(t, dgs, map[string]any{"count": 10}), Subtask{Index: 1, Parallelism: 3, Restore: &stale}); err == nil || !strings.Contains(err.Error(), "splits.Assign") {
		t.Fatalf("stale snapshot at another parallelism: %v", err)
	}
	if err := newSource(t, "datagen", map[string]any{"count": 10}, Subtask{Index: 0, Parallelism: 2}).(Seekable).Seek(two[1].Offset()); err == nil {
		t.Fatal("subtask 0 seeked to subtask 1's offset")
	}
	// A subtask restored with no split (more subtasks than splits) ends.
	empty := splits.Snapshot{Connector: "datagen", States: []splits.State{}}
	src := newSource(t, "datagen", map[string]any{}, Subtask{Parallelism: 1, Restore: &empty})
	if got := readAll(t, src, 10); len(got) != 0 {
		t.Fatalf("subtask without splits read %d records", len(got))
	}
}

// BenchmarkDatagenReadRestored reads a subtask restored at parallelism 1
// from two subtasks of which one read 100,000 records and the other none:
// half its splits lag, the walk skips the others until they catch up.
func BenchmarkDatagenReadRestored(b *testing.B) {
	raw := map[string]any{"keys": 1000}
	old := restoreAll(b, "datagen", raw, nil, 2)
	readSome(b, old[0], 100_000, 1024)
	src := restoreAll(b, "datagen", raw, snapshotAll(b, old), 1)[0]
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
