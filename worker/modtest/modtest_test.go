package modtest

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/weirstream/weir/internal/modbuild"
	"github.com/weirstream/weir/worker/wasmhost"
)

// loadOps builds testdata/ops (a Go SDK module) and loads it.
func loadOps(t *testing.T) *wasmhost.Module {
	t.Helper()
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "ops.wasm")
	if _, err := modbuild.Build(ctx, modbuild.Options{Dir: "testdata/ops", Out: out, CacheDir: filepath.Join(os.TempDir(), "weir-modtest-cache")}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := wasmhost.NewRuntime(ctx, wasmhost.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	mod, err := rt.Load(ctx, "ops.wasm", b)
	if err != nil {
		t.Fatal(err)
	}
	return mod
}

type rec struct {
	key   string
	value int
	ts    int64
}

func genInput(seed int64, n int) ([]rec, string) {
	rng := rand.New(rand.NewSource(seed))
	var recs []rec
	var b strings.Builder
	ts := int64(100)
	for i := 0; i < n; i++ {
		ts += int64(rng.Intn(4))
		r := rec{key: fmt.Sprintf("k%d", rng.Intn(5)), value: rng.Intn(100), ts: ts - int64(rng.Intn(6))}
		recs = append(recs, r)
		fmt.Fprintf(&b, `{"key":%q,"value":"%d","timestamp":%d}`+"\n", r.key, r.value, r.ts)
	}
	return recs, b.String()
}

// expectDedupe is the dedupe operator's contract under module test's event
// time, computed here independently: records arrive under the watermark of
// the batches before them; after each batch the watermark becomes the
// largest timestamp minus the out-of-orderness and due timers fire in
// (time, key) order; at the end every timer fires.
func expectDedupe(recs []rec, batch int, ooo int64) []string {
	var out []string
	seen := map[string]int64{}
	type timer struct {
		ts  int64
		key string
	}
	timers := map[timer]bool{}
	wm := int64(-1 << 63)
	maxTs := int64(-1 << 63)
	fire := func(upTo int64) {
		var due []timer
		for tm := range timers {
			if tm.ts <= upTo {
				due = append(due, tm)
			}
		}
		sort.Slice(due, func(i, j int) bool {
			if due[i].ts != due[j].ts {
				return due[i].ts < due[j].ts
			}
			return due[i].key < due[j].key
		})
		for _, tm := range due {
			delete(timers, tm)
			out = append(out, fmt.Sprintf("expired %s %d @%d", tm.key, seen[tm.key], tm.ts))
			delete(seen, tm.key)
		}
	}
	for start := 0; start < len(recs); start += batch {
		for _, r := range recs[start:min(start+batch, len(recs))] {
			maxTs = max(maxTs, r.ts)
			switch _, dup := seen[r.key]; {
			case r.ts <= wm:
				out = append(out, fmt.Sprintf("late %s %d @%d", r.key, r.value, r.ts))
			case !dup:
				seen[r.key] = r.ts
				timers[timer{r.ts + 10, r.key}] = true
				out = append(out, fmt.Sprintf("main %s %d @%d", r.key, r.value, r.ts))
			}
		}
		wm = max(wm, maxTs-ooo)
		fire(wm)
	}
	fire(1<<63 - 1)
	return out
}

func TestDedupeStateTimersSideOutputs(t *testing.T) {
	mod := loadOps(t)
	recs, input := genInput(1, 400)
	for _, c := range []struct {
		batch int
		ooo   int64
	}{{1, 0}, {7, 3}, {64, 5}, {1024, 0}} {
		t.Run(fmt.Sprintf("batch%d-ooo%d", c.batch, c.ooo), func(t *testing.T) {
			res, err := Run(context.Background(), Options{
				Module: mod, Operators: []string{"dedupe"}, Input: strings.NewReader(input), InputName: "gen.jsonl",
				BatchSize: c.batch, OutOfOrderness: c.ooo,
			})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range res.Records {
				port := r.Output
				if port == "" {
					port = "main"
				}
				got = append(got, fmt.Sprintf("%s %s %s @%d", port, r.Key, r.Value, r.Timestamp))
			}
			want := expectDedupe(recs, c.batch, c.ooo)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("got %d outputs, want %d\ngot:\n%s\nwant:\n%s", len(got), len(want), strings.Join(got[:min(20, len(got))], "\n"), strings.Join(want[:min(20, len(want))], "\n"))
			}
		})
	}
}

// TestAggregateAndChain: sum per key over the whole input, fed by dedupe.
func TestAggregateAndChain(t *testing.T) {
	mod := loadOps(t)
	recs, input := genInput(2, 300)
	res, err := Run(context.Background(), Options{Module: mod, Operators: []string{"sum"}, Input: strings.NewReader(input), InputName: "gen.jsonl", BatchSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	last := map[string]int64{}
	for _, r := range recs {
		want[r.key] += r.value
		last[r.key] = max(last[r.key], r.ts)
	}
	if len(res.Records) != len(want) {
		t.Fatalf("%d results for %d keys", len(res.Records), len(want))
	}
	for _, r := range res.Records {
		if r.Value != strconv.Itoa(want[r.Key]) || r.Timestamp != last[r.Key] {
			t.Errorf("sum[%s] = %s @%d, want %d @%d", r.Key, r.Value, r.Timestamp, want[r.Key], last[r.Key])
		}
	}

	// dedupe -> sum: the sum of the first value of each key per dedupe
	// window; the side outputs of dedupe are collected beside.
	res, err = Run(context.Background(), Options{Module: mod, Operators: []string{"dedupe", "sum"}, Input: strings.NewReader(input), InputName: "gen.jsonl", BatchSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	wantChain := map[string]int{}
	for _, line := range expectDedupe(recs, 1024, 0) {
		var port, key string
		var v int
		var ts int64
		fmt.Sscanf(line, "%s %s %d @%d", &port, &key, &v, &ts)
		if port == "main" {
			wantChain[key] += v
		}
	}
	sums := map[string]string{}
	for _, r := range res.Records {
		if r.Operator == "sum" {
			sums[r.Key] = r.Value
		}
	}
	for k, v := range wantChain {
		if sums[k] != strconv.Itoa(v) {
			t.Errorf("chained sum[%s] = %s, want %d", k, sums[k], v)
		}
	}
}

func TestReadInputErrors(t *testing.T) {
	cases := map[string]string{
		"not json":        "{\"value\":\"a\"}\nnot json\n",
		"no value":        "{\"value\":\"a\"}\n{\"key\":\"b\"}\n",
		"unknown field":   "{\"value\":\"a\"}\n{\"value\":\"b\",\"colour\":1}\n",
		"bad input index": "{\"value\":\"a\"}\n{\"value\":\"b\",\"input\":2}\n",
	}
	for name, in := range cases {
		_, err := ReadInput(strings.NewReader(in), "in.jsonl", "jsonl", "")
		if err == nil || !strings.HasPrefix(err.Error(), "in.jsonl:2: ") {
			t.Errorf("%s: err = %v, want it to start with in.jsonl:2:", name, err)
		}
	}
	recs, err := ReadInput(strings.NewReader(`{"value":{"user":"ann","n":1}}`+"\n"), "in.jsonl", "jsonl", "user")
	if err != nil || string(recs[0].entry.Key) != "ann" || string(recs[0].entry.Value) != `{"user":"ann","n":1}` {
		t.Fatalf("key field: %v %+v", err, recs)
	}
	if _, err := ReadInput(strings.NewReader(`{"value":"x"}`+"\n"), "in.jsonl", "jsonl", "user"); err == nil || !strings.Contains(err.Error(), "not a JSON object") {
		t.Fatalf("key field on a string value: %v", err)
	}
}
