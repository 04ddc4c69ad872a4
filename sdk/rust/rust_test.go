package rustsdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/weirstream/weir/internal/jsontext"
	"github.com/weirstream/weir/internal/modbuild"
	rustsdk "github.com/weirstream/weir/sdk/rust"
	"github.com/weirstream/weir/wasmabi"
	"github.com/weirstream/weir/worker/modtest"
	"github.com/weirstream/weir/worker/wasmhost"
)

// The operators of testdata/sdktest (every kind the SDK has) are built once
// per test binary with the real rustc and run through the real host
// (wasmhost) by worker/modtest, the engine behind `weir module test`; every
// output is checked against a computation in Go.

var ctx = context.Background()

// cacheDir keeps builds between test runs: the key is the content of the
// sources, the SDK and the toolchain, so a stale module cannot be used.
func cacheDir() string { return filepath.Join(os.TempDir(), "weir-rustsdk-test-cache") }

var built struct {
	once sync.Once
	rt   *wasmhost.Runtime
	mod  *wasmhost.Module
	err  error
}

func module(t *testing.T) *wasmhost.Module {
	t.Helper()
	built.once.Do(func() {
		out := filepath.Join(t.TempDir(), "sdktest.wasm")
		if _, err := modbuild.Build(ctx, modbuild.Options{Dir: "testdata/sdktest", Out: out, CacheDir: cacheDir()}); err != nil {
			built.err = err
			return
		}
		b, err := os.ReadFile(out)
		if err != nil {
			built.err = err
			return
		}
		if built.rt, err = wasmhost.NewRuntime(ctx, wasmhost.Config{}); err != nil {
			built.err = err
			return
		}
		built.mod, built.err = built.rt.Load(ctx, "sdktest.wasm", b)
	})
	if built.err != nil {
		t.Fatalf("building testdata/sdktest: %v\n(the Rust SDK tests need `apt-get install rustc libstd-rust-dev-wasm32`)", built.err)
	}
	return built.mod
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.rt != nil {
		built.rt.Close()
	}
	os.Exit(code)
}

type in struct {
	Key       string            `json:"key"`
	Value     string            `json:"value"`
	Timestamp int64             `json:"timestamp"`
	Headers   map[string]string `json:"headers,omitempty"`
	Input     int               `json:"input,omitempty"`
}

func jsonl(recs []in) string {
	var b strings.Builder
	for _, r := range recs {
		j, _ := json.Marshal(r)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

func run(t *testing.T, ops []string, recs []in, batch int, params string) (*modtest.Result, error) {
	t.Helper()
	return modtest.Run(ctx, modtest.Options{
		Module: module(t), Operators: ops, Input: strings.NewReader(jsonl(recs)), InputName: "test.jsonl",
		Format: "jsonl", BatchSize: batch, Params: []byte(params),
	})
}

func mustRun(t *testing.T, ops []string, recs []in, batch int) *modtest.Result {
	t.Helper()
	res, err := run(t, ops, recs, batch, "")
	if err != nil {
		t.Fatalf("%v batch %d: %v", ops, batch, err)
	}
	return res
}

// randomRecords makes n records with random keys, values (some empty),
// headers and increasing timestamps.
func randomRecords(seed int64, n int) []in {
	rng := rand.New(rand.NewSource(seed))
	words := []string{"alpha", "be", "gamma", "delta", "epsilon", "z", "", "stream processing"}
	ts := int64(1000)
	recs := make([]in, n)
	for i := range recs {
		ts += int64(rng.Intn(30))
		r := in{Key: fmt.Sprintf("k%d", rng.Intn(7)), Value: words[rng.Intn(len(words))], Timestamp: ts}
		if rng.Intn(3) == 0 {
			r.Headers = map[string]string{"trace": strconv.Itoa(i), "x": ""}
		}
		recs[i] = r
	}
	return recs
}

func TestDescriptor(t *testing.T) {
	d := module(t).Descriptor()
	want := map[string]wasmabi.Kind{
		"upper": wasmabi.KindMap, "ident": wasmabi.KindMap, "picky": wasmabi.KindMap, "even": wasmabi.KindFilter,
		"split": wasmabi.KindFlatMap, "tagger": wasmabi.KindFlatMap, "collect": wasmabi.KindProcess,
		"windows": wasmabi.KindProcess, "join": wasmabi.KindCoProcess, "sum": wasmabi.KindAggregate, "json": wasmabi.KindMap, "dec": wasmabi.KindMap,
	}
	if d.SDK != "rust/0.1" || len(d.Operators) != len(want) {
		t.Fatalf("descriptor %+v", d)
	}
	for _, op := range d.Operators {
		if want[op.Name] != op.Kind {
			t.Errorf("operator %s kind %s, want %s", op.Name, op.Kind, want[op.Name])
		}
	}
	if _, op, _ := d.Operator("split"); len(op.SideOutputs) != 1 || op.SideOutputs[0] != "long" {
		t.Errorf("split side outputs %v", op.SideOutputs)
	}
}

func TestMaps(t *testing.T) {
	recs := randomRecords(1, 3000)
	for _, batch := range []int{1, 7, 1024} {
		up := mustRun(t, []string{"upper"}, recs, batch)
		id := mustRun(t, []string{"ident"}, recs, batch)
		if len(up.Records) != len(recs) || len(id.Records) != len(recs) {
			t.Fatalf("batch %d: %d and %d records out of %d", batch, len(up.Records), len(id.Records), len(recs))
		}
		for i, r := range recs {
			for _, c := range []struct {
				got   modtest.Record
				value string
			}{{up.Records[i], strings.ToUpper(r.Value)}, {id.Records[i], r.Value}} {
				g := c.got
				if g.Key != r.Key || g.Value != c.value || g.Timestamp != r.Timestamp || fmt.Sprint(g.Headers) != fmt.Sprint(r.Headers) && len(r.Headers) > 0 {
					t.Fatalf("batch %d record %d: got %+v from %+v", batch, i, g, r)
				}
			}
		}
	}
}

func TestMapErrors(t *testing.T) {
	recs := []in{{Value: "a"}, {Value: "b"}, {Value: "x"}, {Value: "c"}}
	_, err := run(t, []string{"picky"}, recs, 1024, "")
	if err == nil || !strings.Contains(err.Error(), "record 2 of the batch") || !strings.Contains(err.Error(), "failed: bad value x") {
		t.Errorf("x: err = %v, want record 2 of the batch, bad value x", err)
	}
	for v, want := range map[string]string{"two": "emitted more than one record", "none": "emitted no record"} {
		_, err := run(t, []string{"picky"}, []in{{Value: "a"}, {Value: v}}, 1024, "")
		if err == nil || !strings.Contains(err.Error(), "record 1 of the batch") || !strings.Contains(err.Error(), "a map operator "+want) {
			t.Errorf("%s: err = %v, want %q", v, err, want)
		}
	}
	// The instance survives a reported failure: the next call works.
	res := mustRun(t, []string{"picky"}, []in{{Value: "a"}}, 1)
	if len(res.Records) != 1 {
		t.Errorf("after failures: %+v", res.Records)
	}
}

func TestFilter(t *testing.T) {
	var recs []in
	var want []string
	for i := 0; i < 2000; i++ {
		v := (i*7919 + 13) % 1000
		recs = append(recs, in{Key: "k", Value: strconv.Itoa(v), Timestamp: int64(i)})
		if v%2 == 0 {
			want = append(want, strconv.Itoa(v))
		}
	}
	for _, batch := range []int{1, 64, 1024} {
		res := mustRun(t, []string{"even"}, recs, batch)
		var got []string
		for _, r := range res.Records {
			got = append(got, r.Value)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("batch %d: %d kept, want %d", batch, len(got), len(want))
		}
	}
	if _, err := run(t, []string{"even"}, []in{{Value: "2"}, {Value: "nope"}}, 10, ""); err == nil || !strings.Contains(err.Error(), "record 1 of the batch") || !strings.Contains(err.Error(), `"nope" is not a decimal`) {
		t.Errorf("bad number: err = %v", err)
	}
}

func TestFlatMapSideOutputCountersLogs(t *testing.T) {
	recs := randomRecords(2, 500)
	recs = append(recs, in{Value: "wm", Timestamp: 99999})
	res := mustRun(t, []string{"split"}, recs, 64)
	var main, long []string
	words, empty := 0, 0
	for _, r := range recs[:len(recs)-1] {
		n := 0
		for _, w := range strings.Fields(r.Value) {
			n++
			s := w + "=" + strconv.Itoa(len(w)) + "@" + strconv.FormatInt(r.Timestamp, 10)
			if len(w) > 5 {
				long = append(long, s)
			} else {
				main = append(main, s)
			}
		}
		words += n
		if n == 0 {
			empty++
		}
	}
	var gotMain, gotLong []string
	for _, r := range res.Records {
		s := r.Key + "=" + r.Value + "@" + strconv.FormatInt(r.Timestamp, 10)
		switch r.Output {
		case "":
			gotMain = append(gotMain, s)
		case "long":
			gotLong = append(gotLong, s)
		default:
			t.Fatalf("output %q", r.Output)
		}
	}
	if strings.Join(gotMain, " ") != strings.Join(main, " ") || strings.Join(gotLong, " ") != strings.Join(long, " ") {
		t.Errorf("main %d/%d long %d/%d records", len(gotMain), len(main), len(gotLong), len(long))
	}
	if res.Counters["split.words"] != int64(words) {
		t.Errorf("counter split.words = %d, want %d (all: %v)", res.Counters["split.words"], words, res.Counters)
	}
	warns := 0
	for _, l := range res.Logs {
		if l.Message == "no words" && l.Level == "warn" {
			warns++
		}
	}
	if warns != empty {
		t.Errorf("%d warnings, want %d", warns, empty)
	}
	if len(res.Watermarks) == 0 || res.Watermarks[0] != 99999 {
		t.Errorf("watermarks %v, want 99999 first", res.Watermarks)
	}
}

func TestOperatorState(t *testing.T) {
	recs := randomRecords(3, 300)
	res, err := run(t, []string{"tagger"}, recs, 50, `{"hello":1}`)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != len(recs)+1 {
		t.Fatalf("%d records, want %d", len(res.Records), len(recs)+1)
	}
	keys := map[string]bool{}
	for i, r := range recs {
		keys[r.Key] = true
		if want := r.Value + "#" + strconv.Itoa(i+1); res.Records[i].Value != want {
			t.Fatalf("record %d: %q, want %q", i, res.Records[i].Value, want)
		}
	}
	last := res.Records[len(recs)]
	if want := fmt.Sprintf("records=%d keys=%d", len(recs), len(keys)); last.Key != "finish" || last.Value != want {
		t.Errorf("finish emitted %+v, want %q", last, want)
	}
	if len(res.Logs) == 0 || res.Logs[0].Message != `{"hello":1}` {
		t.Errorf("open did not log its params: %+v", res.Logs)
	}
}

func TestKeyedListValueState(t *testing.T) {
	recs := randomRecords(4, 800)
	for _, batch := range []int{1, 100} {
		res := mustRun(t, []string{"collect"}, recs, batch)
		seen := map[string][]string{}
		for i, r := range recs {
			seen[r.Key] = append(seen[r.Key], r.Value)
			if want := strings.Join(seen[r.Key], ","); res.Records[i].Value != want || res.Records[i].Key != r.Key {
				t.Fatalf("batch %d record %d: %+v, want %q", batch, i, res.Records[i], want)
			}
		}
	}
}

func TestTimersMapState(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	var recs []in
	type win struct {
		key   string
		start int64
	}
	sums, ns := map[win]int64{}, map[win]int64{}
	pts := map[string]map[int64]bool{}
	ts := int64(10_000)
	for i := 0; i < 1500; i++ {
		ts += int64(rng.Intn(9))
		if ts%100 == 99 {
			// A record at a window's last millisecond can come after its
			// timer fired (the next record may have the same time): late.
			ts++
		}
		k := fmt.Sprintf("k%d", rng.Intn(4))
		v := rng.Intn(1000) - 300
		recs = append(recs, in{Key: k, Value: strconv.Itoa(v), Timestamp: ts})
		w := win{k, ts - ts%100}
		sums[w] += int64(v)
		ns[w]++
		if pts[k] == nil {
			pts[k] = map[int64]bool{}
		}
		pts[k][ts+1000] = true
	}
	var want []string
	for w, s := range sums {
		want = append(want, fmt.Sprintf("%s %d w=%d sum=%d n=%d", w.key, w.start+99, w.start, s, ns[w]))
	}
	for k, m := range pts {
		for p := range m {
			want = append(want, fmt.Sprintf("%s %d pt=%d", k, p, p))
		}
	}
	sort.Strings(want)
	// Timestamps never decrease, so with no out-of-orderness every record
	// of a window arrives before its timer; batch size decides only when
	// timers fire, which the multiset of results does not show.
	for _, batch := range []int{1, 33, 1024} {
		res := mustRun(t, []string{"windows"}, recs, batch)
		var got []string
		for _, r := range res.Records {
			got = append(got, fmt.Sprintf("%s %d %s", r.Key, r.Timestamp, r.Value))
		}
		sort.Strings(got)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("batch %d: %d results, want %d; first got %q want %q", batch, len(got), len(want), first(got), first(want))
		}
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func TestCoProcess(t *testing.T) {
	rng := rand.New(rand.NewSource(6))
	var recs []in
	var want []string
	names := map[string]string{}
	var orders [][2]string
	for i := 0; i < 1000; i++ {
		id := strconv.Itoa(rng.Intn(50))
		if _, ok := names[id]; !ok && rng.Intn(4) == 0 {
			names[id] = "n" + id
			recs = append(recs, in{Key: id, Value: "n" + id, Timestamp: int64(i), Input: 0})
			continue
		}
		o := "o" + strconv.Itoa(i)
		orders = append(orders, [2]string{id, o})
		recs = append(recs, in{Key: id, Value: o, Timestamp: int64(i), Input: 1})
	}
	for _, o := range orders {
		if n, ok := names[o[0]]; ok {
			want = append(want, o[0]+" "+n+":"+o[1])
		}
	}
	sort.Strings(want)
	res := mustRun(t, []string{"join"}, recs, 64)
	var got []string
	for _, r := range res.Records {
		got = append(got, r.Key+" "+r.Value)
	}
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%d joined, want %d", len(got), len(want))
	}
}

func TestAggregate(t *testing.T) {
	recs := randomRecords(7, 600)
	sums, ns, last := map[string]int64{}, map[string]int64{}, map[string]int64{}
	for i := range recs {
		v := int64(i%97 - 40)
		recs[i].Value = strconv.FormatInt(v, 10)
		sums[recs[i].Key] += v
		ns[recs[i].Key]++
		last[recs[i].Key] = recs[i].Timestamp
	}
	res := mustRun(t, []string{"sum"}, recs, 50)
	if len(res.Records) != len(sums) {
		t.Fatalf("%d results, want %d", len(res.Records), len(sums))
	}
	for _, r := range res.Records {
		var v struct {
			Key    string
			Sum, N int64
		}
		if err := json.Unmarshal([]byte(r.Value), &v); err != nil {
			t.Fatalf("%q: %v", r.Value, err)
		}
		if v.Key != r.Key || v.Sum != sums[r.Key] || v.N != ns[r.Key] {
			t.Errorf("%+v: want sum %d n %d", r, sums[r.Key], ns[r.Key])
		}
	}

	// agg_merge, called directly: modtest's global windows never merge.
	inst, err := module(t).Instantiate(ctx, "sum", nopServices{})
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	if err := inst.Open(nil); err != nil {
		t.Fatal(err)
	}
	acc := func(sum, n int64) []byte { return appendI64(appendI64([]byte{8, 0, 0, 0}, sum), n) }
	batch := wasmabi.AppendBatchHeader(nil, wasmabi.BatchHeader{Count: 4, Watermark: wasmabi.NoWatermark})
	batch = wasmabi.AppendEntry(batch, &wasmabi.Entry{Kind: wasmabi.EntryAccumulator, Key: []byte("a"), Timestamp: 9, Value: acc(5, 2)})
	batch = wasmabi.AppendEntry(batch, &wasmabi.Entry{Kind: wasmabi.EntryAccumulator, Key: []byte("a"), Timestamp: 9, Value: acc(-1, 3)})
	batch = wasmabi.AppendEntry(batch, &wasmabi.Entry{Kind: wasmabi.EntryAccumulator, Key: []byte("b"), Flags: wasmabi.AccumulatorNew})
	batch = wasmabi.AppendEntry(batch, &wasmabi.Entry{Kind: wasmabi.EntryAccumulator, Key: []byte("b"), Value: acc(7, 1)})
	out, err := inst.Call(wasmabi.MethodAggMerge, batch)
	if err != nil {
		t.Fatal(err)
	}
	var e wasmabi.Entry
	for i, want := range [][]byte{acc(4, 5), acc(7, 1)} {
		if out, err = wasmabi.ReadEntry(out, &e); err != nil {
			t.Fatal(err)
		}
		if e.Kind != wasmabi.EntryAccumulator || string(e.Value) != string(want) {
			t.Errorf("merged %d: %+v, want value %x", i, e, want)
		}
	}
	if len(out) != 0 {
		t.Errorf("%d bytes after the merged accumulators", len(out))
	}
	// A malformed accumulator is reported with its index.
	bad := wasmabi.AppendBatchHeader(nil, wasmabi.BatchHeader{Count: 2})
	bad = wasmabi.AppendEntry(bad, &wasmabi.Entry{Kind: wasmabi.EntryAccumulator, Value: acc(1, 1)})
	bad = wasmabi.AppendEntry(bad, &wasmabi.Entry{Kind: wasmabi.EntryAccumulator, Value: []byte{1, 2}})
	if _, err := inst.Call(wasmabi.MethodAggMerge, bad); err == nil || !strings.Contains(err.Error(), "record 1 of the batch") ||
		!strings.Contains(err.Error(), "accumulator: a pair shorter") {
		t.Errorf("bad accumulator: %v", err)
	}
}

// appendI64 appends v as 8 little-endian bytes: the (i64, i64) pair codec
// of the SDK is a u32 length (8) of the first, then both.
func appendI64(b []byte, v int64) []byte {
	for i := 0; i < 8; i++ {
		b = append(b, byte(uint64(v)>>(8*i)))
	}
	return b
}

type nopServices struct{}

func (nopServices) StateRegister(string, wasmabi.StateKind) (uint32, error) {
	return 0, errors.New("no state here")
}
func (nopServices) State(wasmabi.StateOp, uint32, []byte, []byte, []byte, []byte) (int64, error) {
	return 0, errors.New("no state here")
}
func (nopServices) Timer(wasmabi.TimerOp, wasmabi.TimeDomain, int64, []byte) error {
	return errors.New("no timers here")
}
func (nopServices) Log(int, string)       {}
func (nopServices) Counter(string, int64) {}

func TestJSONString(t *testing.T) {
	// Valid UTF-8 goes in as JSON lines; invalid UTF-8 (which JSON cannot
	// carry) as plain lines, one value per line.
	valid := []string{"plain", `quote " and \ back`, "tab\tnl\ncr\r", "\x00\x01\x1f\x7f", "é ü 日本", "\u2028\u2029",
		"\U0001f600 emoji", "<html>&", "", "0123456789", "abcdefghi\n", "é1234567", "\"2345678", "1234567\"", "12345678\\abc",
		"a\tbcdefghijklmnop", "abcdefghijklmno\x01", "short"}
	invalid := []string{"bad \xff utf8 \xc3", "\xed\xa0\x80 surrogate", "\xf4\x90\x80\x80 too high", "\xc0\xaf overlong", "ok \xe2\x80"}
	var recs []in
	for _, v := range valid {
		recs = append(recs, in{Value: v})
	}
	for _, c := range []struct {
		vals   []string
		format string
		input  string
	}{{valid, "jsonl", jsonl(recs)}, {invalid, "lines", strings.Join(invalid, "\n") + "\n"}} {
		res, err := modtest.Run(ctx, modtest.Options{Module: module(t), Operators: []string{"json"}, Format: c.format,
			Input: strings.NewReader(c.input), InputName: "json." + c.format})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Records) != len(c.vals) {
			t.Fatalf("%s: %d records, want %d", c.format, len(res.Records), len(c.vals))
		}
		for i, v := range c.vals {
			if want := string(jsontext.AppendString(nil, v)); res.Records[i].Value != want {
				t.Errorf("%q: got %s, want %s", v, res.Records[i].Value, want)
			}
		}
	}
}

func TestNumbers(t *testing.T) {
	vals := []int64{0, 1, 9, 10, 99, 100, 12345, 99999999, 100000000, 100000001, 1234567890123, 9999999999999999,
		10000000000000000, 1<<63 - 1, -1, -10, -99999999, -100000000, -1 << 63}
	rng := rand.New(rand.NewSource(8))
	for i := 0; i < 300; i++ {
		vals = append(vals, rng.Int63()>>rng.Intn(63), -rng.Int63()>>rng.Intn(63))
	}
	var recs []in
	for _, v := range vals {
		recs = append(recs, in{Value: strconv.FormatInt(v, 10)})
	}
	res := mustRun(t, []string{"dec"}, recs, 1024)
	for i, v := range vals {
		want := strconv.FormatInt(v, 10)
		if r := res.Records[i]; r.Key != want || r.Value != want {
			t.Errorf("%d: fmt_i64 %q, Writer::int %q", v, r.Key, r.Value)
		}
	}
}

func TestBuildErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "broken")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src := "use weir::{Context, Record, Result};\n\nfn up(r: &Record, ctx: &Context) -> Result {\n    let n: u8 = \"no\";\n    ctx.emit(r)\n}\n\nweir::operators! { map \"up\" => up; }\n"
	if err := os.WriteFile(filepath.Join(dir, "lib.rs"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := modbuild.Build(ctx, modbuild.Options{Dir: dir, CacheDir: cacheDir()})
	var ce *rustsdk.CompileError
	if !errors.As(err, &ce) || !strings.HasPrefix(ce.First, "lib.rs:4:17: error[E0308]: mismatched types") {
		t.Fatalf("err = %v, want a CompileError at lib.rs:4:17", err)
	}

	// A rustc whose sysroot has no WebAssembly target (as a rustup
	// toolchain without it): the error says what to install.
	bin := t.TempDir()
	fake := "#!/bin/sh\ncase \"$1\" in --print) echo " + t.TempDir() + ";; *) echo rustc 0.0;; esac\n"
	if err := os.WriteFile(filepath.Join(bin, "rustc"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	t.Setenv("HOME", t.TempDir())
	t.Setenv("WEIR_RUSTC", filepath.Join(bin, "rustc"))
	_, err = modbuild.Build(ctx, modbuild.Options{Dir: dir, CacheDir: cacheDir()})
	if !errors.Is(err, rustsdk.ErrNoToolchain) || !strings.Contains(err.Error(), "apt-get install rustc libstd-rust-dev-wasm32") ||
		!strings.Contains(err.Error(), "rustup target add wasm32-wasip1") || strings.Contains(err.Error(), "\n") {
		t.Errorf("err = %v, want one line naming what to install", err)
	}
}
