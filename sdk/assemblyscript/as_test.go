package assdk_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/weirstream/weir/internal/modbuild"
	assdk "github.com/weirstream/weir/sdk/assemblyscript"
	"github.com/weirstream/weir/wasmabi"
	"github.com/weirstream/weir/worker/wasmhost"
)

// The test module (testdata/ops) is built once per test binary with the
// real compiler, through `weir module build`'s code, and run by the real
// host (wasmhost) with the in-memory services below.
var built struct {
	once sync.Once
	wasm []byte
	err  error
}

func cacheDir() string { return filepath.Join(os.TempDir(), "weir-assdk-test-cache") }

func opsModule(t testing.TB) []byte {
	t.Helper()
	built.once.Do(func() {
		out := filepath.Join(os.TempDir(), fmt.Sprintf("weir-assdk-ops-%d.wasm", os.Getpid()))
		defer os.Remove(out)
		if _, built.err = modbuild.Build(context.Background(), modbuild.Options{Dir: "testdata/ops", Out: out, CacheDir: cacheDir()}); built.err != nil {
			return
		}
		built.wasm, built.err = os.ReadFile(out)
	})
	if built.err != nil {
		t.Fatalf("building testdata/ops: %v", built.err)
	}
	return built.wasm
}

// services is an in-memory wasmhost.Services: state in maps, timers and
// logs recorded.
type services struct {
	kinds    []wasmabi.StateKind
	names    []string
	values   map[string][]byte
	lists    map[string][][]byte
	maps     map[string]map[string][]byte
	timers   []string
	logs     []string
	counters map[string]int64
}

func newServices() *services {
	return &services{values: map[string][]byte{}, lists: map[string][][]byte{}, maps: map[string]map[string][]byte{}, counters: map[string]int64{}}
}

func (s *services) StateRegister(name string, kind wasmabi.StateKind) (uint32, error) {
	s.names = append(s.names, name)
	s.kinds = append(s.kinds, kind)
	return uint32(len(s.kinds) - 1), nil
}

func (s *services) State(op wasmabi.StateOp, id uint32, key, ukey, value, out []byte) (int64, error) {
	if int(id) >= len(s.kinds) {
		return 0, fmt.Errorf("unknown state %d", id)
	}
	kind := s.kinds[id]
	if !kind.Keyed() {
		key = nil // operator state ignores the key
	}
	k := strconv.Itoa(int(id)) + "\x00" + string(key)
	get := func(b []byte, ok bool) int64 {
		if !ok {
			return -1
		}
		if len(b) <= len(out) {
			copy(out, b)
		}
		return int64(len(b))
	}
	switch st := kind.Storage(); {
	case st == wasmabi.StateValue && op == wasmabi.StateGet:
		v, ok := s.values[k]
		return get(v, ok), nil
	case st == wasmabi.StateValue && op == wasmabi.StatePut:
		s.values[k] = bytes.Clone(value)
	case st == wasmabi.StateValue:
		delete(s.values, k)
	case st == wasmabi.StateList && op == wasmabi.StateGet:
		var all []byte
		for _, it := range s.lists[k] {
			all = wasmabi.AppendItem(all, it)
		}
		return get(all, len(s.lists[k]) > 0), nil
	case st == wasmabi.StateList && op == wasmabi.StatePut:
		s.lists[k] = append(s.lists[k], bytes.Clone(value))
	case st == wasmabi.StateList:
		delete(s.lists, k)
	case st == wasmabi.StateMap && op == wasmabi.StateGet:
		v, ok := s.maps[k][string(ukey)]
		return get(v, ok), nil
	case st == wasmabi.StateMap && op == wasmabi.StatePut:
		if s.maps[k] == nil {
			s.maps[k] = map[string][]byte{}
		}
		s.maps[k][string(ukey)] = bytes.Clone(value)
	case st == wasmabi.StateMap && op == wasmabi.StateDelete:
		delete(s.maps[k], string(ukey))
	case st == wasmabi.StateMap && op == wasmabi.StateEntries:
		var all []byte
		for _, u := range slices.Sorted(maps.Keys(s.maps[k])) {
			all = wasmabi.AppendItem(wasmabi.AppendItem(all, []byte(u)), s.maps[k][u])
		}
		return get(all, len(s.maps[k]) > 0), nil
	case st == wasmabi.StateMap && op == wasmabi.StateClear:
		delete(s.maps, k)
	default:
		return 0, fmt.Errorf("op %d on state kind %d", op, kind)
	}
	return 0, nil
}

func (s *services) Timer(op wasmabi.TimerOp, domain wasmabi.TimeDomain, ts int64, key []byte) error {
	s.timers = append(s.timers, fmt.Sprintf("%d/%d/%d/%s", op, domain, ts, key))
	return nil
}

func (s *services) Log(level int, msg string) {
	s.logs = append(s.logs, fmt.Sprintf("%d %s", level, msg))
}

func (s *services) Counter(name string, delta int64) { s.counters[name] += delta }

type inst struct {
	*wasmhost.Instance
	svc *services
	t   testing.TB
}

var (
	rtOnce sync.Once
	rtMod  *wasmhost.Module
	rtErr  error
)

func instantiate(t testing.TB, op string, params string) *inst {
	t.Helper()
	wasm := opsModule(t)
	ctx := context.Background()
	rtOnce.Do(func() {
		var rt *wasmhost.Runtime
		if rt, rtErr = wasmhost.NewRuntime(ctx, wasmhost.Config{CacheDir: filepath.Join(cacheDir(), "wazero")}); rtErr != nil {
			return
		}
		rtMod, rtErr = rt.Load(ctx, "ops.wasm", wasm)
	})
	if rtErr != nil {
		t.Fatal(rtErr)
	}
	svc := newServices()
	in, err := rtMod.Instantiate(ctx, op, svc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	if err := in.Open([]byte(params)); err != nil {
		t.Fatalf("open %s: %v", op, err)
	}
	return &inst{in, svc, t}
}

func rec(key, value string, ts int64) wasmabi.Entry {
	return wasmabi.Entry{Kind: wasmabi.EntryRecord, Key: []byte(key), Value: []byte(value), Timestamp: ts}
}

func batchOf(wm int64, entries ...wasmabi.Entry) []byte {
	b := wasmabi.AppendBatchHeader(nil, wasmabi.BatchHeader{Count: uint32(len(entries)), Watermark: wm, ProcessingTime: 1_700_000_000_000})
	for i := range entries {
		b = wasmabi.AppendEntry(b, &entries[i])
	}
	return b
}

// call runs method over entries and returns the output, shown one entry a
// line as "[port] key=value@ts", "wm@ts" or "acc key=value@ts".
func (in *inst) call(method wasmabi.Method, wm int64, entries ...wasmabi.Entry) (string, error) {
	out, err := in.Call(method, batchOf(wm, entries...))
	if err != nil {
		return "", err
	}
	return show(in.t, out), nil
}

func (in *inst) mustCall(method wasmabi.Method, wm int64, entries ...wasmabi.Entry) string {
	in.t.Helper()
	s, err := in.call(method, wm, entries...)
	if err != nil {
		in.t.Fatalf("%s: %v", method, err)
	}
	return s
}

func show(t testing.TB, b []byte) string {
	t.Helper()
	var lines []string
	for len(b) > 0 {
		var e wasmabi.Entry
		var err error
		if b, err = wasmabi.ReadEntry(b, &e); err != nil {
			t.Fatalf("output: %v", err)
		}
		switch e.Kind {
		case wasmabi.EntryWatermark:
			lines = append(lines, fmt.Sprintf("wm@%d", e.Timestamp))
		case wasmabi.EntryAccumulator:
			lines = append(lines, fmt.Sprintf("acc %s=%x@%d", e.Key, e.Value, e.Timestamp))
		default:
			s := fmt.Sprintf("[%d] %s=%s@%d", e.Port, e.Key, e.Value, e.Timestamp)
			if len(e.Headers) > 0 {
				s += fmt.Sprintf(" h=%q", e.Headers)
			}
			lines = append(lines, s)
		}
	}
	return strings.Join(lines, "\n")
}

func expect(t *testing.T, got string, want ...string) {
	t.Helper()
	if w := strings.Join(want, "\n"); got != w {
		t.Fatalf("output:\n%s\nwant:\n%s", got, w)
	}
}

func TestDescriptor(t *testing.T) {
	in := instantiate(t, "identity", "")
	_ = in
	desc, err := describe(t)
	if err != nil {
		t.Fatal(err)
	}
	want := []wasmabi.OperatorDesc{
		{Name: "identity", Kind: wasmabi.KindMap},
		{Name: "upper", Kind: wasmabi.KindMap},
		{Name: "describe", Kind: wasmabi.KindMap},
		{Name: "nonempty", Kind: wasmabi.KindFilter},
		{Name: "words", Kind: wasmabi.KindFlatMap, SideOutputs: []string{"tags"}},
		{Name: "sessions", Kind: wasmabi.KindProcess, SideOutputs: []string{"late"}},
		{Name: "keyless", Kind: wasmabi.KindProcess},
		{Name: "join", Kind: wasmabi.KindCoProcess},
		{Name: "stats", Kind: wasmabi.KindAggregate},
		{Name: "inventory", Kind: wasmabi.KindMap},
		{Name: "badstate", Kind: wasmabi.KindMap},
		{Name: "digits", Kind: wasmabi.KindFlatMap},
	}
	if desc.SDK != "assemblyscript/0.1" || fmt.Sprint(desc.Operators) != fmt.Sprint(want) {
		t.Fatalf("descriptor %+v\nwant sdk assemblyscript/0.1, %+v", desc, want)
	}
}

// describe reads the descriptor the way the host does, from the module.
func describe(t *testing.T) (*wasmabi.Descriptor, error) {
	d := rtMod.Descriptor()
	if d == nil {
		return nil, errors.New("no descriptor")
	}
	return d, nil
}

func TestImportsOnlyWeir(t *testing.T) {
	// The module imports nothing but weir functions: no env.abort, no WASI.
	instantiate(t, "identity", "")
	for _, imp := range rtMod.Imports() {
		if !strings.HasPrefix(imp, wasmabi.ImportModule+".") {
			t.Errorf("the module imports %s", imp)
		}
	}
	if len(rtMod.Imports()) == 0 {
		t.Error("no imports listed")
	}
}

func TestIdentityPassesThrough(t *testing.T) {
	in := instantiate(t, "identity", "")
	hdrs := wasmabi.AppendHeader(nil, "h", []byte("v"))
	e := rec("k", "v", 7)
	e.Headers = hdrs
	e2 := rec("", "", -5)
	e3 := rec("k3", "port one", 9)
	e3.Port = 1 // an input port set on a one-input operator reads as port 0
	expect(t, in.mustCall(wasmabi.MethodProcess, 0, e, e2, e3), `[0] k=v@7 h="\x01\x00h\x01\x00\x00\x00v"`, "[0] =@-5", "[0] k3=port one@9")
	// Many records, more than one output buffer's worth.
	var es []wasmabi.Entry
	var want []string
	for i := range 3000 {
		v := strings.Repeat("x", i%50)
		es = append(es, rec("key"+strconv.Itoa(i), v, int64(i)))
		want = append(want, fmt.Sprintf("[0] key%d=%s@%d", i, v, i))
	}
	expect(t, in.mustCall(wasmabi.MethodProcess, 0, es...), want...)
}

func TestUpperInPlace(t *testing.T) {
	in := instantiate(t, "upper", "")
	var es []wasmabi.Entry
	var want []string
	for i := range 500 {
		v := fmt.Sprintf("value %d with Text-%c", i, 'a'+i%26)
		es = append(es, rec(strconv.Itoa(i), v, int64(i*3)))
		want = append(want, fmt.Sprintf("[0] %d=%s@%d", i, strings.ToUpper(v), i*3))
	}
	expect(t, in.mustCall(wasmabi.MethodProcess, 0, es...), want...)
}

func TestDescribeRewritesAndFails(t *testing.T) {
	in := instantiate(t, "describe", "")
	e := rec("a", "one", 10)
	e.Headers = wasmabi.AppendHeader(nil, "h", []byte("hv"))
	wantH := string(wasmabi.AppendHeader(wasmabi.AppendHeader(nil, "h", []byte("hv")), "seen", []byte("yes")))
	wantH2 := string(wasmabi.AppendHeader(nil, "seen", []byte("yes")))
	expect(t, in.mustCall(wasmabi.MethodProcess, 0, e, rec("b", "two", 20)),
		fmt.Sprintf("[0] k:a=a|one|hv@11 h=%q", wantH), fmt.Sprintf("[0] k:b=b|two|-@21 h=%q", wantH2))
	_, err := in.call(wasmabi.MethodProcess, 0, rec("a", "fine", 1), rec("b", "fine", 2), rec("c", "x", 3))
	var we *wasmhost.Error
	if !errors.As(err, &we) || we.Record != 2 || !strings.Contains(err.Error(), "no good: x") || we.Poisoning() {
		t.Fatalf("err = %v, want record 2 failing with \"no good: x\", instance kept", err)
	}
	// The instance goes on after an operator's error.
	expect(t, in.mustCall(wasmabi.MethodProcess, 0, rec("z", "z", 0)), fmt.Sprintf("[0] k:z=z|z|-@1 h=%q", wantH2))
}

func TestFilter(t *testing.T) {
	in := instantiate(t, "nonempty", "")
	expect(t, in.mustCall(wasmabi.MethodProcess, 0, rec("a", "1", 1), rec("b", "", 2), rec("c", "3", 3), rec("d", "", 4)),
		"[0] a=1@1", "[0] c=3@3")
	_, err := in.call(wasmabi.MethodProcess, 0, rec("a", "1", 1), rec("b", "bad", 2))
	if err == nil || !strings.Contains(err.Error(), "record 1") || !strings.Contains(err.Error(), "bad value") {
		t.Fatalf("err = %v", err)
	}
}

func TestFlatMapSideOutputsWatermarksCountersLogs(t *testing.T) {
	in := instantiate(t, "words", `{"p":1}`)
	if got := strings.Join(in.svc.logs, ";"); got != `1 words open words params={"p":1}` {
		t.Fatalf("logs = %q", got)
	}
	expect(t, in.mustCall(wasmabi.MethodProcess, 0, rec("", "the #go way", 5), rec("", " wm=42 end", 6)),
		"[0] the=1@5", "[1] #go=tag@5", "[0] way=1@5", "wm@42", "[0] end=1@6")
	if in.svc.counters["words"] != 3 || in.svc.counters["tags"] != 1 {
		t.Fatalf("counters = %v", in.svc.counters)
	}
	expect(t, in.mustCall(wasmabi.MethodFinish, 0), "[0] =end of words@0")
	_, err := in.call(wasmabi.MethodProcess, 0, rec("", "a side=?", 1))
	if err == nil || !strings.Contains(err.Error(), `side output "nosuch"`) || !strings.Contains(err.Error(), "record 0") {
		t.Fatalf("err = %v", err)
	}
	// A failed call sends no counters.
	if in.svc.counters["words"] != 3 {
		t.Fatalf("counters after a failed call = %v", in.svc.counters)
	}
}

// TestSessions checks keyed value, list and map state, timers and the late
// side output against a model computed here.
func TestSessions(t *testing.T) {
	in := instantiate(t, "sessions", "")
	if len(in.svc.logs) != 1 || in.svc.logs[0] != "2 sessions open" {
		t.Fatalf("logs = %q", in.svc.logs)
	}
	type model struct {
		n      int
		seen   []string
		counts map[string]int
	}
	m := map[string]*model{}
	var es []wasmabi.Entry
	var want []string
	var wantTimers []string
	for i := range 60 {
		key := fmt.Sprintf("k%d", i%4)
		val := fmt.Sprintf("v%d", i%3)
		ts := int64(1000 + i)
		es = append(es, rec(key, val, ts))
		s := m[key]
		if s == nil {
			s = &model{counts: map[string]int{}}
			m[key] = s
		}
		s.n++
		s.seen = append(s.seen, val)
		s.counts[val]++
		want = append(want, fmt.Sprintf("[0] %s=%d:%s@%d", key, s.n, strings.Join(s.seen, ","), ts))
		wantTimers = append(wantTimers, fmt.Sprintf("1/0/%d/%s", ts+100, key))
	}
	late := rec("k1", "old", 10)
	es = append(es, late)
	want = append(want, "[1] k1=old@10")
	expect(t, in.mustCall(wasmabi.MethodProcess, 500, es...), want...)
	if fmt.Sprint(in.svc.timers) != fmt.Sprint(wantTimers) {
		t.Fatalf("timers:\n%v\nwant\n%v", in.svc.timers, wantTimers)
	}
	if in.svc.counters["records"] != 60 {
		t.Fatalf("counters = %v", in.svc.counters)
	}
	// Timers fire: each reports its key's state, then clears it.
	timer := func(key string, ts int64) wasmabi.Entry {
		return wasmabi.Entry{Kind: wasmabi.EntryTimer, Key: []byte(key), Timestamp: ts}
	}
	var wantT []string
	for _, key := range []string{"k0", "k2"} {
		s := m[key]
		var d []string
		for _, v := range slices.Sorted(maps.Keys(s.counts)) {
			d = append(d, fmt.Sprintf("%s=%d", v, s.counts[v]))
		}
		wantT = append(wantT, fmt.Sprintf("[0] %s=timer %s %d %s@2000", key, key, s.n, strings.Join(d, ",")))
	}
	expect(t, in.mustCall(wasmabi.MethodTimers, 2000, timer("k0", 2000), timer("k2", 2000)), wantT...)
	// k0 was cleared: it starts again at 1; k1 was not.
	expect(t, in.mustCall(wasmabi.MethodProcess, 0, rec("k0", "x", 3000), rec("k1", "y", 3001)),
		"[0] k0=1:x@3000", fmt.Sprintf("[0] k1=%d:%s,y@3001", m["k1"].n+1, strings.Join(m["k1"].seen, ",")))
	_, err := in.call(wasmabi.MethodProcess, 0, rec("k0", "fine", 1), rec("k0", "boom", 77))
	if err == nil || !strings.Contains(err.Error(), "boom at 77") || !strings.Contains(err.Error(), "record 1") {
		t.Fatalf("err = %v", err)
	}
	expect(t, in.mustCall(wasmabi.MethodFinish, 0), "[0] =sessions done@0")
}

func TestProcessingTimersAndKeylessState(t *testing.T) {
	in := instantiate(t, "keyless", "")
	expect(t, in.mustCall(wasmabi.MethodProcess, 0, rec("a", "", 1)))
	if want := fmt.Sprintf("1/1/%d/a", 1_700_000_000_005); len(in.svc.timers) != 1 || in.svc.timers[0] != want {
		t.Fatalf("timers = %v, want %s", in.svc.timers, want)
	}
	expect(t, in.mustCall(wasmabi.MethodTimers, 0, wasmabi.Entry{Kind: wasmabi.EntryTimer, Flags: 1, Key: []byte("a"), Timestamp: 9}), "[0] a=processing@9")
	_, err := in.call(wasmabi.MethodFinish, 0)
	if err == nil || !strings.Contains(err.Error(), "keyed state or timers used outside") {
		t.Fatalf("err = %v", err)
	}
}

func TestCoProcessJoin(t *testing.T) {
	in := instantiate(t, "join", "")
	order := func(key, v string, ts int64) wasmabi.Entry {
		e := rec(key, v, ts)
		e.Port = 1
		return e
	}
	expect(t, in.mustCall(wasmabi.MethodProcess, 0, order("u1", "book", 1), order("u1", "pen", 2), rec("u2", "bob", 3), order("u2", "cup", 4)),
		"[0] u2=bob ordered cup@4")
	expect(t, in.mustCall(wasmabi.MethodProcess, 0, rec("u1", "ann", 5), order("u1", "ink", 6)),
		"[0] u1=ann ordered book@5", "[0] u1=ann ordered pen@5", "[0] u1=ann ordered ink@6")
}

func acc(key string, ts int64, flags uint8, value []byte) wasmabi.Entry {
	return wasmabi.Entry{Kind: wasmabi.EntryAccumulator, Key: []byte(key), Timestamp: ts, Flags: flags, Value: value}
}

func TestAggregate(t *testing.T) {
	in := instantiate(t, "stats", "")
	// Two groups from new accumulators.
	out, err := in.Call(wasmabi.MethodAggAdd, batchOf(0, acc("a", 99, wasmabi.AccumulatorNew, nil), rec("a", "5", 1), rec("a", "-3", 2),
		acc("b", 99, wasmabi.AccumulatorNew, nil), rec("b", "10", 3)))
	if err != nil {
		t.Fatal(err)
	}
	var accs []wasmabi.Entry
	for len(out) > 0 {
		var e wasmabi.Entry
		if out, err = wasmabi.ReadEntry(out, &e); err != nil {
			t.Fatal(err)
		}
		e.Key, e.Value = bytes.Clone(e.Key), bytes.Clone(e.Value)
		accs = append(accs, e)
	}
	if len(accs) != 2 || string(accs[0].Key) != "a" || string(accs[1].Key) != "b" {
		t.Fatalf("accumulators %v", accs)
	}
	// Add to an existing one, merge, result.
	out, err = in.Call(wasmabi.MethodAggAdd, batchOf(0, acc("a", 99, 0, accs[0].Value), rec("a", "7", 4)))
	if err != nil {
		t.Fatal(err)
	}
	var a2 wasmabi.Entry
	if _, err := wasmabi.ReadEntry(out, &a2); err != nil {
		t.Fatal(err)
	}
	a2.Value = bytes.Clone(a2.Value)
	out, err = in.Call(wasmabi.MethodAggMerge, batchOf(0, acc("a", 99, 0, a2.Value), acc("a", 99, 0, accs[1].Value)))
	if err != nil {
		t.Fatal(err)
	}
	var merged wasmabi.Entry
	if _, err := wasmabi.ReadEntry(out, &merged); err != nil {
		t.Fatal(err)
	}
	merged.Value = bytes.Clone(merged.Value)
	expect(t, in.mustCall(wasmabi.MethodAggResult, 0, acc("a", 99, 0, merged.Value), acc("b", 199, 0, accs[1].Value)),
		// a: 5, -3, 7 merged with b's 10.
		"[0] a=a: n=4 sum=19 max=10@99", "[0] b=b: n=1 sum=10 max=10@199")
	// A corrupt accumulator fails with its index.
	_, err = in.call(wasmabi.MethodAggResult, 0, acc("a", 99, 0, merged.Value), acc("b", 1, 0, []byte("short")))
	if err == nil || !strings.Contains(err.Error(), "record 1") || !strings.Contains(err.Error(), "accumulator") {
		t.Fatalf("err = %v", err)
	}
	if _, err := in.call(wasmabi.MethodProcess, 0, rec("a", "1", 1)); err == nil {
		t.Fatal("process on an aggregate succeeded")
	}
}

func TestOperatorState(t *testing.T) {
	in := instantiate(t, "inventory", "")
	wantKinds := []wasmabi.StateKind{wasmabi.StateOperatorList, wasmabi.StateUnionList, wasmabi.StateBroadcast}
	if fmt.Sprint(in.svc.kinds) != fmt.Sprint(wantKinds) {
		t.Fatalf("state kinds %v, want %v", in.svc.kinds, wantKinds)
	}
	expect(t, in.mustCall(wasmabi.MethodProcess, 0, rec("a", "x", 1), rec("b", "y", 2), rec("a", "z", 3)),
		"[0] a=1/1/x@1", "[0] b=2/2/y@2", "[0] a=3/3/z@3")
}

func TestKeyedStateInAMapIsRefused(t *testing.T) {
	ctx := context.Background()
	opsModule(t)
	instantiate(t, "identity", "") // loads the module
	in, err := rtMod.Instantiate(ctx, "badstate", newServices())
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if err := in.Open(nil); err == nil || !strings.Contains(err.Error(), "keyed state needs a process or co_process operator") {
		t.Fatalf("open = %v", err)
	}
}

func TestEmitValueAndBatchErrors(t *testing.T) {
	in := instantiate(t, "digits", "")
	expect(t, in.mustCall(wasmabi.MethodProcess, 0, rec("k", strings.Repeat("a", 123), 1), rec("", "", 2)), "[0] k=123@1", "[0] =0@2")
	// A truncated batch and one with bytes after its count.
	b := batchOf(0, rec("k", "v", 1))
	if _, err := in.Call(wasmabi.MethodProcess, b[:len(b)-1]); err == nil || !strings.Contains(err.Error(), "truncated entry") {
		t.Fatalf("truncated: %v", err)
	}
	b = append(b, 0)
	if _, err := in.Call(wasmabi.MethodProcess, b); err == nil || !strings.Contains(err.Error(), "bytes left") {
		t.Fatalf("trailing: %v", err)
	}
	if _, err := in.Call(wasmabi.MethodTimers, batchOf(0)); err == nil || !strings.Contains(err.Error(), "timers go to") {
		t.Fatalf("timers to a flat map: %v", err)
	}
}

// TestManyCallsCollectGarbage runs an allocating operator over many calls:
// memory must stay bounded because the SDK collects between calls.
func TestManyCallsCollectGarbage(t *testing.T) {
	in := instantiate(t, "describe", "")
	var es []wasmabi.Entry
	for i := range 200 {
		es = append(es, rec("key", strings.Repeat("v", 200+i), int64(i)))
	}
	b := batchOf(0, es...)
	for range 300 {
		if _, err := in.Call(wasmabi.MethodProcess, b); err != nil {
			t.Fatal(err)
		}
	}
	// 300 calls x 200 records x ~1 KB of garbage = ~60 MB, past the 64 MiB
	// default memory limit had nothing been freed.
}

func TestBuildErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "assembly"), 0o755); err != nil {
		t.Fatal(err)
	}
	src := "import { map, Record } from \"weir\";\n\nmap(\"m\", (r: Record): Error | null => {\n  return undefinedThing;\n});\n"
	if err := os.WriteFile(filepath.Join(dir, "assembly", "index.ts"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := modbuild.Build(context.Background(), modbuild.Options{Dir: dir, CacheDir: cacheDir()})
	if err == nil {
		t.Fatal("a broken module built")
	}
	first, _, _ := strings.Cut(err.Error(), "\n")
	if !strings.HasPrefix(first, "assdk: assembly/index.ts:4:") || !strings.Contains(first, "undefinedThing") {
		t.Fatalf("first line %q, want the compiler's first error with file:line", first)
	}
	if got := assdk.FirstError("ERROR TS2304: Cannot find name 'x'.\n :\n 4 │ x\n   └─ in /d/assembly/index.ts(4,10)\n\nFAILURE 1 compile error(s)", "/d"); got != "assembly/index.ts:4:10: ERROR TS2304: Cannot find name 'x'." {
		t.Fatalf("FirstError = %q", got)
	}
}

func TestMissingCompiler(t *testing.T) {
	t.Setenv("WEIR_ASC", "/nonexistent/asc")
	_, err := assdk.Asc("")
	if !errors.Is(err, assdk.ErrNoAsc) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v, want one line wrapping ErrNoAsc", err)
	}
	t.Setenv("WEIR_ASC", "")
	t.Setenv("PATH", t.TempDir())
	_, err = assdk.Asc(t.TempDir())
	if !errors.Is(err, assdk.ErrNoAsc) || !strings.Contains(err.Error(), "nodejs") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v, want one line saying to install nodejs", err)
	}
}

// TestMalformedBatchesNeverTrap feeds mutated batches to operators of every
// kind: each call succeeds or fails with the operator's own error, and the
// instance stays usable (a trap would poison it).
func TestMalformedBatchesNeverTrap(t *testing.T) {
	valid := batchOf(0, rec("k1", "1", 1), rec("k2", "22", 2), acc("k3", 3, wasmabi.AccumulatorNew, nil), rec("k3", "3", 3))
	rng := uint64(1)
	next := func(n int) int {
		rng ^= rng << 13
		rng ^= rng >> 7
		rng ^= rng << 17
		return int(rng % uint64(n))
	}
	for _, c := range []struct {
		op     string
		method wasmabi.Method
	}{
		{"identity", wasmabi.MethodProcess}, {"nonempty", wasmabi.MethodProcess}, {"digits", wasmabi.MethodProcess},
		{"sessions", wasmabi.MethodTimers}, {"join", wasmabi.MethodProcess},
		{"stats", wasmabi.MethodAggAdd}, {"stats", wasmabi.MethodAggMerge}, {"stats", wasmabi.MethodAggResult},
	} {
		in := instantiate(t, c.op, "")
		for i := range 300 {
			b := bytes.Clone(valid)
			for range 1 + next(4) {
				b[next(len(b))] = byte(next(256))
			}
			if i%7 == 0 {
				b = b[:next(len(b))]
			}
			_, err := in.Call(c.method, b)
			var we *wasmhost.Error
			if err != nil && (!errors.As(err, &we) || we.Poisoning()) {
				t.Fatalf("%s %s, batch %x: %v", c.op, c.method, b, err)
			}
		}
	}
}
