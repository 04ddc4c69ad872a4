//go:build !wasip1

package weir_test

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	weir "github.com/weirstream/weir/sdk/go"
	"github.com/weirstream/weir/sdk/go/weirtest"
	"github.com/weirstream/weir/wasmabi"
)

func rec(key, value string, ts int64) weir.Record {
	r := weir.Record{Value: []byte(value), Timestamp: ts}
	if key != "" {
		r.Key = []byte(key)
	}
	return r
}

func harness(t *testing.T, name string) *weirtest.Harness {
	t.Helper()
	h, err := weirtest.New(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Open(nil); err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	return h
}

// show renders outputs compactly: "key=value@ts", "[side]key=value@ts",
// "wm@ts".
func show(outs []weirtest.Output) string {
	var s []string
	for _, o := range outs {
		switch {
		case o.Watermark:
			s = append(s, fmt.Sprintf("wm@%d", o.Record.Timestamp))
		case o.SideOutput != "":
			s = append(s, fmt.Sprintf("[%s]%s=%s@%d", o.SideOutput, o.Record.Key, o.Record.Value, o.Record.Timestamp))
		default:
			s = append(s, fmt.Sprintf("%s=%s@%d", o.Record.Key, o.Record.Value, o.Record.Timestamp))
		}
	}
	return strings.Join(s, " ")
}

func check(t *testing.T, outs []weirtest.Output, err error, want string) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if got := show(outs); got != want {
		t.Fatalf("output\n got: %s\nwant: %s", got, want)
	}
}

func TestDescribe(t *testing.T) {
	d, err := wasmabi.ParseDescriptor(weir.Describe())
	if err != nil {
		t.Fatalf("%v\n%s", err, weir.Describe())
	}
	if d.SDK != weir.SDKVersion {
		t.Errorf("sdk = %q", d.SDK)
	}
	for _, c := range []struct {
		name string
		kind wasmabi.Kind
		side []string
	}{
		{"t.upper", wasmabi.KindMap, nil},
		{"t.even", wasmabi.KindFilter, nil},
		{"t.split", wasmabi.KindFlatMap, []string{"odd"}},
		{"t.session", wasmabi.KindProcess, []string{"late"}},
		{"t.join", wasmabi.KindCoProcess, nil},
		{"t.sum", wasmabi.KindAggregate, nil},
	} {
		_, od, ok := d.Operator(c.name)
		if !ok || od.Kind != c.kind || !slices.Equal(od.SideOutputs, c.side) {
			t.Errorf("operator %s = %+v, %v; want kind %s side outputs %v", c.name, od, ok, c.kind, c.side)
		}
	}
	// Registration order: ops_test.go registers t.upper, then t.identity.
	if i, _, _ := d.Operator("t.upper"); d.Operators[i+1].Name != "t.identity" {
		t.Errorf("operators are not in registration order: %v", d.Names())
	}
}

func TestRegisterRejects(t *testing.T) {
	id := func(r weir.Record) (weir.Record, error) { return r, nil }
	for name, f := range map[string]func(){
		"duplicate":       func() { weir.Map("t.upper", id) },
		"bad name":        func() { weir.Map("a b", id) },
		"empty name":      func() { weir.Map("", id) },
		"nil function":    func() { weir.Map("t.nilfn", nil) },
		"bad side output": func() { weir.FlatMap("t.badside", nil, weir.SideOutputs("x y")) },
		"aggregate side":  func() { weir.Aggregate("t.aggside", sum{}, weir.Int64Codec, weir.SideOutputs("x")) },
		"nil codec":       func() { weir.Aggregate[int64]("t.nilcodec", sum{}, nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: registered", name)
				}
			}()
			f()
		}()
	}
}

func TestMap(t *testing.T) {
	h := harness(t, "t.upper")
	var hdr weir.Headers
	hdr = hdr.Add("trace", []byte("t1"))
	in := []weir.Record{rec("k1", "hello", 1), rec("", "World", -5), {Key: []byte("k3"), Value: []byte("x"), Headers: hdr}}
	outs, err := h.Process(in...)
	check(t, outs, err, "k1=HELLO@1 =WORLD@-5 k3=X@0")
	if v, ok := outs[2].Record.Headers.Get("trace"); !ok || string(v) != "t1" {
		t.Errorf("headers = %q, want trace=t1", outs[2].Record.Headers.Bytes())
	}
	if outs[0].Record.Headers.Len() != 0 {
		t.Errorf("headers on a record that had none")
	}
	outs, err = h.Process()
	check(t, outs, err, "")
}

func TestFilter(t *testing.T) {
	h := harness(t, "t.even")
	var hdr weir.Headers
	hdr = hdr.Add("h", []byte("v"))
	outs, err := h.Process(rec("a", "1", 1), rec("b", "2", 2), weir.Record{Key: []byte("c"), Value: []byte("4"), Timestamp: 3, Headers: hdr})
	check(t, outs, err, "b=2@2 c=4@3")
	if v, _ := outs[1].Record.Headers.Get("h"); string(v) != "v" {
		t.Errorf("filter lost the headers")
	}
	_, err = h.Process(rec("a", "2", 1), rec("a", "x", 1))
	if err == nil || !strings.HasPrefix(err.Error(), "record 1: ") {
		t.Errorf("err = %v, want record 1: ...", err)
	}
}

func TestFlatMapSideOutputsAndWatermarks(t *testing.T) {
	h := harness(t, "t.split")
	outs, err := h.Process(rec("", "a !b c", 10), rec("", "wm", 20))
	check(t, outs, err, "a=a@10 [odd]!b=!b@10 c=c@10 wm=wm@20 wm@19")
	if outs[1].Port != 1 {
		t.Errorf("side output on port %d, want 1", outs[1].Port)
	}
	_, err = h.Process(rec("", "ok", 1), rec("", "undeclared", 1))
	if err == nil || !strings.HasPrefix(err.Error(), `record 1: weir: EmitTo: operator "t.split" declares no side output "nope"`) {
		t.Errorf("err = %v", err)
	}
}

func TestErrorNamesRecord(t *testing.T) {
	h := harness(t, "t.fail17")
	in := make([]weir.Record, 30)
	for i := range in {
		in[i] = rec("", "good", int64(i))
	}
	in[17] = rec("", "bad", 17)
	_, err := h.Process(in...)
	if err == nil || err.Error() != "record 17: bad value" {
		t.Fatalf("err = %v, want record 17: bad value", err)
	}
	// The instance stays usable.
	outs, err := h.Process(rec("", "good", 1))
	check(t, outs, err, "=good@1")
}

func TestPanicNamesRecord(t *testing.T) {
	h := harness(t, "t.panic")
	_, err := h.Process(rec("", "a", 1), rec("", "b", 1), rec("", "c", 1), rec("", "boom", 1))
	if err == nil || !strings.HasPrefix(err.Error(), "record 3: panic: assignment to entry in nil map") {
		t.Fatalf("err = %v", err)
	}
	outs, err := h.Process(rec("", "a", 1))
	check(t, outs, err, "=a@1")
}

func TestParamsAndFinish(t *testing.T) {
	h, err := weirtest.New("t.params")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Open([]byte(`{"fail":true}`)); err == nil || err.Error() != "open: params say fail" {
		t.Fatalf("open err = %v", err)
	}
	if err := h.Open([]byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	outs, err := h.Finish()
	check(t, outs, err, "=done@0")
}

func TestStateNeedsKeyedOperator(t *testing.T) {
	h, err := weirtest.New("t.mapstate")
	if err != nil {
		t.Fatal(err)
	}
	err = h.Open(nil)
	if err == nil || !strings.Contains(err.Error(), "keyed state needs Process or CoProcess") {
		t.Fatalf("err = %v", err)
	}
}

func TestProcessStateAndTimers(t *testing.T) {
	h, err := weirtest.New("t.session")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Process(rec("a", "x", 1)); err == nil || !strings.Contains(err.Error(), "before open") {
		t.Fatalf("process before open: %v", err)
	}
	if err := h.Open([]byte(`{"gap":100}`)); err != nil {
		t.Fatal(err)
	}
	if len(h.Host.States) != 4 || h.Host.States[2] != (weirtest.StateDecl{Name: "by_word", Kind: wasmabi.StateMap}) {
		t.Fatalf("states = %+v", h.Host.States)
	}
	if len(h.Host.Logs) != 1 || h.Host.Logs[0].Msg != "opened t.session with 11 bytes of params" {
		t.Fatalf("logs = %+v", h.Host.Logs)
	}
	h.ProcessingTime = 5000
	outs, err := h.Process(rec("a", "x", 10), rec("b", "y", 11), rec("a", "y", 12), rec("a", "x", 13), rec("b", "big", 14))
	check(t, outs, err, "a=1@10 b=1@11 a=2@12 a=3@13")
	if v, ok := h.Host.Value("count", "a"); !ok || !bytes.Equal(v, weir.Int64Codec.Append(nil, 3)) {
		t.Fatalf("count of a = %v %v", v, ok)
	}
	if n := len(h.Host.List("seen", "a")); n != 3 {
		t.Fatalf("seen of a has %d items", n)
	}
	// Counters: summed in the module, one host call per counter and batch.
	if h.Host.Counters["records"] != 5 || h.Host.Counters["bytes"] != 7 || h.Host.CounterCalls != 2 {
		t.Fatalf("counters %v in %d calls", h.Host.Counters, h.Host.CounterCalls)
	}
	wantTimers := map[weirtest.TimerKey]bool{
		{Key: "a", Domain: wasmabi.EventTime, TS: 110}: true, {Key: "a", Domain: wasmabi.EventTime, TS: 112}: true,
		{Key: "a", Domain: wasmabi.EventTime, TS: 113}: true, {Key: "b", Domain: wasmabi.EventTime, TS: 111}: true,
		{Key: "a", Domain: wasmabi.ProcessingTime, TS: 6000}: true, {Key: "b", Domain: wasmabi.ProcessingTime, TS: 6000}: true,
	}
	if !mapsEqual(h.Host.Timers, wantTimers) {
		t.Fatalf("timers = %v", h.Host.Timers)
	}
	// Deleting a timer.
	_, err = h.Process(rec("a", "clear", 12))
	if err != nil {
		t.Fatal(err)
	}
	if h.Host.Timers[weirtest.TimerKey{Key: "a", Domain: wasmabi.EventTime, TS: 112}] {
		t.Fatal("timer not deleted")
	}
	if _, ok := h.Host.Value("count", "a"); ok {
		t.Fatal("count not cleared")
	}
	_, err = h.Process(rec("a", "z", 20))
	if err != nil {
		t.Fatal(err)
	}
	// Event timers due at watermark 111: b's (state untouched by the clear)
	// and a's at 110.
	h.Watermark = 111
	outs, err = h.FireTimers()
	check(t, outs, err, "a=seen=z map=z=1/1 blob=0/false@110 b=seen=y map=y=1/1 blob=5000/true@111")
	// Processing-time timers.
	h.ProcessingTime = 6000
	outs, err = h.FireTimers()
	check(t, outs, err, "a=ptimer@6000 b=ptimer@6000")
	// Late records go to the side output; the watermark comes from the batch
	// header.
	outs, err = h.Process(rec("c", "w", 111), rec("c", "w", 112))
	check(t, outs, err, "[late]c=w@111 c=1@112")
	// An error fails the batch and drops its counters.
	calls := h.Host.CounterCalls
	_, err = h.Process(rec("c", "w", 200), rec("c", "error", 201))
	if err == nil || err.Error() != "record 1: asked to fail" {
		t.Fatalf("err = %v", err)
	}
	if h.Host.CounterCalls != calls {
		t.Fatalf("a failed call flushed counters")
	}
	outs, err = h.Finish()
	check(t, outs, err, "=finished@0")
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestCoProcess(t *testing.T) {
	h := harness(t, "t.join")
	outs, err := h.ProcessPort(0, rec("k", "l1", 1))
	check(t, outs, err, "")
	outs, err = h.ProcessPort(1, rec("k", "r1", 2), rec("j", "r2", 3))
	check(t, outs, err, "k=R:r1+l1@2")
	outs, err = h.ProcessPort(0, rec("j", "l2", 4))
	check(t, outs, err, "j=L:l2+r2@4")
	batch := h.Batch(weirtest.RecordEntry(2, rec("k", "x", 1)))
	if _, err := h.Call(wasmabi.MethodProcess, batch); err == nil || !strings.HasPrefix(err.Error(), "record 0: ") {
		t.Fatalf("record on port 2: %v", err)
	}
}

func TestAggregate(t *testing.T) {
	h := harness(t, "t.sum")
	enc := func(n int64) []byte { return weir.Int64Codec.Append(nil, n) }
	accs, err := h.AggAdd(
		weirtest.AggGroup{Acc: weirtest.Accumulator{Key: []byte("a"), Timestamp: 999}, Records: []weir.Record{rec("a", "1", 1), rec("a", "2", 2)}},
		weirtest.AggGroup{Acc: weirtest.Accumulator{Key: []byte("b"), Timestamp: 999, Value: enc(10)}, Records: []weir.Record{rec("b", "5", 1)}},
		weirtest.AggGroup{Acc: weirtest.Accumulator{Key: []byte("c"), Timestamp: 999}},
	)
	if err != nil {
		t.Fatal(err)
	}
	if len(accs) != 3 || !bytes.Equal(accs[0].Value, enc(3)) || !bytes.Equal(accs[1].Value, enc(15)) || !bytes.Equal(accs[2].Value, enc(0)) ||
		string(accs[1].Key) != "b" || accs[1].Timestamp != 999 {
		t.Fatalf("accumulators = %+v", accs)
	}
	merged, err := h.AggMerge([2]weirtest.Accumulator{accs[0], accs[1]}, [2]weirtest.Accumulator{accs[2], {}})
	if err != nil {
		t.Fatal(err)
	}
	if len(merged) != 2 || !bytes.Equal(merged[0].Value, enc(18)) || string(merged[0].Key) != "a" || !bytes.Equal(merged[1].Value, enc(0)) {
		t.Fatalf("merged = %+v", merged)
	}
	outs, err := h.AggResult(merged[0], weirtest.Accumulator{Key: []byte("z"), Timestamp: 5, Value: enc(7)})
	check(t, outs, err, "a=18@999 z=7@5")
	// Errors name the entry: a bad record, a bad accumulator.
	_, err = h.AggAdd(weirtest.AggGroup{Acc: weirtest.Accumulator{Key: []byte("a")}, Records: []weir.Record{rec("a", "1", 1), rec("a", "x", 2)}})
	if err == nil || !strings.HasPrefix(err.Error(), `record 2: panic: strconv.ParseInt: parsing "x"`) {
		t.Fatalf("err = %v", err)
	}
	_, err = h.AggResult(weirtest.Accumulator{Key: []byte("a"), Value: enc(1)}, weirtest.Accumulator{Key: []byte("a"), Value: []byte("xyz")})
	if err == nil || !strings.HasPrefix(err.Error(), "record 1: accumulator: weir: cannot decode int64 from 3 bytes") {
		t.Fatalf("err = %v", err)
	}
	if _, err := h.Call(wasmabi.MethodProcess, h.Batch()); err == nil {
		t.Fatal("an aggregate accepted process")
	}
}

func TestAggregateStructAccumulator(t *testing.T) {
	h := harness(t, "t.avg")
	accs, err := h.AggAdd(weirtest.AggGroup{Acc: weirtest.Accumulator{Key: []byte("k"), Timestamp: 50}, Records: []weir.Record{rec("k", "4", 1), rec("k", "8", 2)}})
	if err != nil || len(accs) != 1 || len(accs[0].Value) != 16 {
		t.Fatalf("%v %+v", err, accs)
	}
	outs, err := h.AggResult(accs[0])
	check(t, outs, err, "avg=6@7")
}

func TestLargeOutputFlushes(t *testing.T) {
	h := harness(t, "t.big")
	value := bytes.Repeat([]byte("v"), 1000)
	calls := h.Host.OutputCalls
	outs, err := h.Process(weir.Record{Key: []byte("300"), Value: value})
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 300 || string(outs[299].Record.Key) != "299" || !bytes.Equal(outs[150].Record.Value, value) {
		t.Fatalf("%d outputs", len(outs))
	}
	if n := h.Host.OutputCalls - calls; n < 4 || n > 6 {
		t.Fatalf("%d output calls for ~310 KiB, want one per 64 KiB", n)
	}
	calls = h.Host.OutputCalls
	if _, err := h.Process(weir.Record{Key: []byte("3"), Value: value}); err != nil {
		t.Fatal(err)
	}
	if n := h.Host.OutputCalls - calls; n != 1 {
		t.Fatalf("%d output calls for a small batch, want 1", n)
	}
}

func TestBadCalls(t *testing.T) {
	host := weirtest.NewHost()
	inst := weir.NewInstance(host)
	d, _ := wasmabi.ParseDescriptor(weir.Describe())
	upper, _, _ := d.Operator("t.upper")
	for name, c := range map[string]struct {
		op     int
		method wasmabi.Method
		input  []byte
		want   string
	}{
		"no operator":      {len(d.Operators), wasmabi.MethodProcess, nil, "weir: no operator"},
		"negative op":      {-1, wasmabi.MethodProcess, nil, "weir: no operator"},
		"short batch":      {upper, wasmabi.MethodProcess, make([]byte, 10), "weir: malformed input batch"},
		"timers on a map":  {upper, wasmabi.MethodTimers, batch(0), `weir: operator "t.upper" is a map and has no method timers`},
		"unknown method":   {upper, 99, batch(0), "has no method method 99"},
		"truncated entry":  {upper, wasmabi.MethodProcess, batch(2, wasmabi.Entry{Kind: wasmabi.EntryRecord}), "record 1: weir: malformed input batch"},
		"watermark entry":  {upper, wasmabi.MethodProcess, batch(1, wasmabi.Entry{Kind: wasmabi.EntryWatermark}), "record 0: weir: unexpected watermark entry"},
		"payload too long": {upper, wasmabi.MethodProcess, batch(1, wasmabi.Entry{Kind: wasmabi.EntryRecord, Value: []byte("x")})[:wasmabi.BatchHeaderSize+wasmabi.EntryHeaderSize], "record 0: weir: malformed"},
	} {
		host.Failure = ""
		if inst.Call(c.op, c.method, c.input) {
			t.Errorf("%s: call succeeded", name)
			continue
		}
		if !strings.Contains(host.Failure, c.want) {
			t.Errorf("%s: failure %q, want %q", name, host.Failure, c.want)
		}
	}
}

func batch(count uint32, es ...wasmabi.Entry) []byte {
	b := wasmabi.AppendBatchHeader(nil, wasmabi.BatchHeader{Count: count, Watermark: wasmabi.NoWatermark})
	for i := range es {
		b = wasmabi.AppendEntry(b, &es[i])
	}
	return b
}

func TestDefaultInstance(t *testing.T) {
	host := weirtest.NewHost()
	weir.SetHost(host)
	d, _ := wasmabi.ParseDescriptor(weir.Describe())
	op, _, _ := d.Operator("t.upper")
	if !weir.Call(op, wasmabi.MethodOpen, nil) {
		t.Fatal(host.Failure)
	}
	if !weir.Call(op, wasmabi.MethodProcess, batch(1, wasmabi.Entry{Kind: wasmabi.EntryRecord, Value: []byte("abc")})) {
		t.Fatal(host.Failure)
	}
	var e wasmabi.Entry
	if _, err := wasmabi.ReadEntry(host.Out, &e); err != nil || string(e.Value) != "ABC" {
		t.Fatalf("%v %q", err, e.Value)
	}
}

func TestHeaders(t *testing.T) {
	var h weir.Headers
	if h.Len() != 0 {
		t.Fatal("zero headers not empty")
	}
	h = h.Add("a", []byte("1")).Add("b", nil).Add("a", []byte("2"))
	if err := wasmabi.ValidHeaders(h.Bytes()); err != nil {
		t.Fatal(err)
	}
	if v, ok := h.Get("a"); !ok || string(v) != "1" {
		t.Errorf("Get(a) = %q %v", v, ok)
	}
	if v, ok := h.Get("b"); !ok || len(v) != 0 {
		t.Errorf("Get(b) = %q %v", v, ok)
	}
	if _, ok := h.Get("c"); ok {
		t.Error("Get(c) found")
	}
	var got []string
	for n, v := range h.All() {
		got = append(got, n+"="+string(v))
	}
	if strings.Join(got, ",") != "a=1,b=,a=2" || h.Len() != 3 {
		t.Errorf("All = %v, Len = %d", got, h.Len())
	}
	w := h.Without("a")
	if w.Len() != 1 || h.Len() != 3 || w.Bytes() == nil {
		t.Errorf("Without: %d, %d", w.Len(), h.Len())
	}
	want := wasmabi.AppendHeader(wasmabi.AppendHeader(wasmabi.AppendHeader(nil, "a", []byte("1")), "b", nil), "a", []byte("2"))
	if !bytes.Equal(h.Bytes(), want) {
		t.Error("Headers encoding differs from wasmabi.AppendHeader")
	}
}

func TestCodecs(t *testing.T) {
	if v, err := weir.Int64Codec.Decode(weir.Int64Codec.Append(nil, -42)); err != nil || v != -42 {
		t.Error("int64", v, err)
	}
	if v, err := weir.Float64Codec.Decode(weir.Float64Codec.Append(nil, 2.5)); err != nil || v != 2.5 {
		t.Error("float64", v, err)
	}
	if v, err := weir.StringCodec.Decode(weir.StringCodec.Append(nil, "hé")); err != nil || v != "hé" {
		t.Error("string", v, err)
	}
	src := []byte("abc")
	v, err := weir.BytesCodec.Decode(src)
	src[0] = 'x'
	if err != nil || string(v) != "abc" {
		t.Error("bytes codec must copy", v, err)
	}
	if _, err := weir.Int64Codec.Decode([]byte{1}); err == nil {
		t.Error("int64 from 1 byte")
	}
	if _, err := weir.Float64Codec.Decode(nil); err == nil {
		t.Error("float64 from 0 bytes")
	}
}

// Instances are independent: several may run concurrently (go test -race).
func TestConcurrentInstances(t *testing.T) {
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := weirtest.New("t.split")
			if err != nil {
				t.Error(err)
				return
			}
			for i := 0; i < 50; i++ {
				outs, err := h.Process(rec("", "a b !c", int64(i)))
				if err != nil || len(outs) != 3 {
					t.Error(err, len(outs))
					return
				}
			}
		}()
	}
	wg.Wait()
}

func init() {
	// t.every3 changes every third record and passes the others unchanged,
	// so its output mixes runs of input entries with re-encoded ones.
	weir.Map("t.every3", func(r weir.Record) (weir.Record, error) {
		if r.Timestamp%3 == 0 {
			r.Value = append([]byte("changed:"), r.Value...)
			r.Timestamp++
		}
		return r, nil
	})
	// t.inplace changes the value in place: same memory, new bytes.
	weir.Map("t.inplace", func(r weir.Record) (weir.Record, error) {
		for i := range r.Value {
			r.Value[i] = '*'
		}
		return r, nil
	})
}

func TestMapRuns(t *testing.T) {
	for _, c := range []struct {
		op   string
		n    int
		size int
	}{
		{"t.every3", 10, 10}, {"t.every3", 200, 100}, {"t.identity", 1000, 100}, {"t.identity", 3, 5000},
		{"t.inplace", 1000, 50}, {"t.every3", 5000, 30},
	} {
		h := harness(t, c.op)
		in := make([]weir.Record, c.n)
		for i := range in {
			in[i] = weir.Record{Key: []byte(fmt.Sprint("k", i)), Value: bytes.Repeat([]byte{byte('a' + i%26)}, c.size), Timestamp: int64(i)}
		}
		calls := h.Host.OutputCalls
		outs, err := h.Process(in...)
		if err != nil {
			t.Fatal(err)
		}
		if len(outs) != c.n {
			t.Fatalf("%s: %d outputs for %d records", c.op, len(outs), c.n)
		}
		for i, o := range outs {
			wantV, wantTS := string(in[i].Value), in[i].Timestamp
			switch {
			case c.op == "t.every3" && i%3 == 0:
				wantV, wantTS = "changed:"+wantV, wantTS+1
			case c.op == "t.inplace":
				wantV = strings.Repeat("*", c.size)
			}
			if string(o.Record.Key) != string(in[i].Key) || string(o.Record.Value) != wantV || o.Record.Timestamp != wantTS || o.Port != 0 {
				t.Fatalf("%s: output %d = %s@%d, want %s@%d", c.op, i, o.Record.Value, o.Record.Timestamp, wantV, wantTS)
			}
		}
		total := 0
		for _, o := range outs {
			total += wasmabi.EntryHeaderSize + len(o.Record.Key) + len(o.Record.Value)
		}
		if calls := h.Host.OutputCalls - calls; calls > total/(16<<10)+2 {
			t.Errorf("%s: %d output calls for %d bytes", c.op, calls, total)
		}
	}
}

// A filter or map input record from a port other than 0 (which a host
// should not send) still goes out on port 0.
func TestPassThroughPort(t *testing.T) {
	for _, op := range []string{"t.identity", "t.keepall"} {
		h := harness(t, op)
		out, err := h.Call(wasmabi.MethodProcess, h.Batch(weirtest.RecordEntry(0, rec("a", "1", 1)), weirtest.RecordEntry(3, rec("b", "2", 2)), weirtest.RecordEntry(0, rec("c", "3", 3))))
		if err != nil {
			t.Fatal(err)
		}
		outs, err := h.Decode(out)
		check(t, outs, err, "a=1@1 b=2@2 c=3@3")
		for _, o := range outs {
			if o.Port != 0 {
				t.Errorf("%s: output on port %d", op, o.Port)
			}
		}
	}
}
