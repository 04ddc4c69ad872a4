package csdk_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	csdk "github.com/weirstream/weir/sdk/c"
	"github.com/weirstream/weir/wasmabi"
)

// The example modules and testdata/sdktest.c (the corners of the SDK), built
// once per test binary with the SDK's own clang invocation plus -Wall -Wextra
// -Werror, so the header stays warning-free.
var examples = map[string]string{
	"upper":   "../../examples/c-upper/upper.c",
	"bench":   "../../examples/bench/c/bench.c",
	"sdktest": "testdata/sdktest.c",
}

var built struct {
	once sync.Once
	dir  string
	err  error
}

func moduleBytes(t testing.TB, name string) []byte {
	t.Helper()
	built.once.Do(func() {
		if _, err := csdk.Clang(); err != nil {
			built.err = err
			return
		}
		built.dir, built.err = os.MkdirTemp("", "weir-csdk-test-")
		if built.err != nil {
			return
		}
		for name, src := range examples {
			out := filepath.Join(built.dir, name+".wasm")
			cmd := csdk.BuildCommand([]string{src}, out, ".")
			cmd.Args = append(cmd.Args, "-Wall", "-Wextra", "-Werror")
			if b, err := cmd.CombinedOutput(); err != nil {
				built.err = fmt.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, b)
				return
			}
		}
	})
	if built.err != nil {
		t.Fatalf("building the C examples: %v\n(the C SDK tests need clang: install `clang lld wasi-libc libclang-rt-14-dev-wasm32`)", built.err)
	}
	b, err := os.ReadFile(filepath.Join(built.dir, name+".wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// testHost is a minimal weir host: output collects bytes, fail records the
// message, state lives in Go maps and timers are recorded.
type testHost struct {
	t            testing.TB
	out          []byte
	outCalls     int
	failMsg      string
	failed       bool
	logs         []string
	counters     map[string]int64
	counterCalls int
	states       []string // registered state names; id = index
	stateKinds   []wasmabi.StateKind
	values       map[string][]byte            // value state by id and key
	lists        map[string][][]byte          // list state by id and key
	maps         map[string]map[string][]byte // map state by id and key
	timers       []timerCall
	method       wasmabi.Method
	keys         map[string]bool // keys of the batch being processed
}

type timerCall struct {
	op     wasmabi.TimerOp
	domain wasmabi.TimeDomain
	ts     int64
	key    string
}

type instance struct {
	h      *testHost
	rt     wazero.Runtime
	mod    api.Module
	mem    api.Memory
	call   api.Function
	buf    api.Function
	bufPtr uint32
	bufCap uint32
	stack  [3]uint64
	desc   *wasmabi.Descriptor
}

var ctx = context.Background()

func (h *testHost) read(m api.Module, ptr, n uint64) []byte {
	b, ok := m.Memory().Read(uint32(ptr), uint32(n))
	if !ok {
		h.t.Fatalf("module passed %d bytes at %#x, outside its memory", n, ptr)
	}
	return b
}

func stateKey(id uint32, key []byte) string { return strconv.Itoa(int(id)) + "\x00" + string(key) }

func (h *testHost) functions() map[string]struct {
	fn              api.GoModuleFunc
	params, results []api.ValueType
} {
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	type f = struct {
		fn              api.GoModuleFunc
		params, results []api.ValueType
	}
	return map[string]f{
		wasmabi.ImportOutput: {func(_ context.Context, m api.Module, s []uint64) {
			h.outCalls++
			h.out = append(h.out, h.read(m, s[0], s[1])...)
		}, []api.ValueType{i32, i32}, nil},
		wasmabi.ImportFail: {func(_ context.Context, m api.Module, s []uint64) {
			h.failed = true
			h.failMsg = string(h.read(m, s[0], s[1]))
		}, []api.ValueType{i32, i32}, nil},
		wasmabi.ImportLog: {func(_ context.Context, m api.Module, s []uint64) {
			h.logs = append(h.logs, fmt.Sprintf("%d %s", int32(s[0]), h.read(m, s[1], s[2])))
		}, []api.ValueType{i32, i32, i32}, nil},
		wasmabi.ImportCounter: {func(_ context.Context, m api.Module, s []uint64) {
			h.counterCalls++
			h.counters[string(h.read(m, s[0], s[1]))] += int64(s[2])
		}, []api.ValueType{i32, i32, i64}, nil},
		wasmabi.ImportStateRegister: {func(_ context.Context, m api.Module, s []uint64) {
			if h.method != wasmabi.MethodOpen {
				h.t.Errorf("state_register during %s", h.method)
			}
			h.states = append(h.states, string(h.read(m, s[0], s[1])))
			h.stateKinds = append(h.stateKinds, wasmabi.StateKind(uint32(s[2])))
			s[0] = uint64(len(h.states) - 1)
		}, []api.ValueType{i32, i32, i32}, []api.ValueType{i32}},
		wasmabi.ImportState: {func(_ context.Context, m api.Module, s []uint64) {
			op, id := wasmabi.StateOp(uint32(s[0])), uint32(s[1])
			if int(id) >= len(h.states) {
				h.t.Fatalf("state: unknown id %d", id)
			}
			h.checkKey("state", h.read(m, s[2], s[3]))
			k := stateKey(id, h.read(m, s[2], s[3]))
			u := string(h.read(m, s[4], s[5]))
			v := h.read(m, s[6], s[7])
			// get returns the full length and writes only what fits; -1 for nothing.
			get := func(cur []byte, ok bool) uint64 {
				if !ok {
					return uint64(1<<64 - 1)
				}
				if len(cur) <= len(v) {
					copy(v, cur)
				}
				return uint64(len(cur))
			}
			s[0] = 0
			switch kind := h.stateKinds[id]; {
			case kind == wasmabi.StateValue && op == wasmabi.StateGet:
				cur, ok := h.values[k]
				s[0] = get(cur, ok)
			case kind == wasmabi.StateValue && op == wasmabi.StatePut:
				h.values[k] = bytes.Clone(v)
			case kind == wasmabi.StateValue && (op == wasmabi.StateDelete || op == wasmabi.StateClear):
				delete(h.values, k)
			case kind == wasmabi.StateList && op == wasmabi.StateGet:
				var all []byte
				for _, item := range h.lists[k] {
					all = wasmabi.AppendItem(all, item)
				}
				s[0] = get(all, len(h.lists[k]) > 0)
			case kind == wasmabi.StateList && op == wasmabi.StatePut:
				h.lists[k] = append(h.lists[k], bytes.Clone(v))
			case kind == wasmabi.StateList && (op == wasmabi.StateDelete || op == wasmabi.StateClear):
				delete(h.lists, k)
			case kind == wasmabi.StateMap && op == wasmabi.StateGet:
				cur, ok := h.maps[k][u]
				s[0] = get(cur, ok)
			case kind == wasmabi.StateMap && op == wasmabi.StatePut:
				if h.maps[k] == nil {
					h.maps[k] = map[string][]byte{}
				}
				h.maps[k][u] = bytes.Clone(v)
			case kind == wasmabi.StateMap && op == wasmabi.StateDelete:
				delete(h.maps[k], u)
			case kind == wasmabi.StateMap && op == wasmabi.StateEntries:
				var all []byte
				for _, uk := range slices.Sorted(maps.Keys(h.maps[k])) {
					all = wasmabi.AppendItem(wasmabi.AppendItem(all, []byte(uk)), h.maps[k][uk])
				}
				s[0] = get(all, len(h.maps[k]) > 0)
			case kind == wasmabi.StateMap && op == wasmabi.StateClear:
				delete(h.maps, k)
			default:
				h.t.Fatalf("state: op %d on state kind %d", op, kind)
			}
		}, []api.ValueType{i32, i32, i32, i32, i32, i32, i32, i32}, []api.ValueType{i64}},
		wasmabi.ImportTimer: {func(_ context.Context, m api.Module, s []uint64) {
			h.checkKey("timer", h.read(m, s[3], s[4]))
			h.timers = append(h.timers, timerCall{wasmabi.TimerOp(uint32(s[0])), wasmabi.TimeDomain(uint32(s[1])),
				int64(s[2]), string(h.read(m, s[3], s[4]))})
		}, []api.ValueType{i32, i32, i64, i32, i32}, nil},
	}
}

// checkKey checks that state and timers are scoped to a key of the batch.
func (h *testHost) checkKey(what string, key []byte) {
	if !h.keys[string(key)] {
		h.t.Errorf("%s with key %q, which is not a key of the batch", what, key)
	}
}

// instantiate runs the module in a fresh runtime, as the weir host does:
// _initialize when exported, the version handshake and the descriptor.
func instantiate(t testing.TB, name string) *instance {
	t.Helper()
	wasm := moduleBytes(t, name)
	h := &testHost{t: t, counters: map[string]int64{}, values: map[string][]byte{},
		lists: map[string][][]byte{}, maps: map[string]map[string][]byte{}}
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	t.Cleanup(func() { rt.Close(ctx) })
	b := rt.NewHostModuleBuilder(wasmabi.ImportModule)
	for name, f := range h.functions() {
		b.NewFunctionBuilder().WithGoModuleFunction(f.fn, f.params, f.results).Export(name)
	}
	if _, err := b.Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	compiled, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	mod, err := rt.InstantiateModule(ctx, compiled, wazero.NewModuleConfig().WithStartFunctions())
	if err != nil {
		t.Fatal(err)
	}
	if init := mod.ExportedFunction("_initialize"); init != nil {
		if _, err := init.Call(ctx); err != nil {
			t.Fatal(err)
		}
	}
	in := &instance{h: h, rt: rt, mod: mod, mem: mod.Memory(),
		call: mod.ExportedFunction(wasmabi.ExportCall), buf: mod.ExportedFunction(wasmabi.ExportBuffer)}
	res, err := mod.ExportedFunction(wasmabi.ExportVersion).Call(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v := int32(res[0]); v != wasmabi.Version {
		t.Fatalf("weir_abi_version = %d, want %d", v, wasmabi.Version)
	}
	if _, err := mod.ExportedFunction(wasmabi.ExportDescribe).Call(ctx); err != nil {
		t.Fatal(err)
	}
	if in.desc, err = wasmabi.ParseDescriptor(h.out); err != nil {
		t.Fatalf("descriptor %q: %v", h.out, err)
	}
	h.out = h.out[:0]
	return in
}

func (in *instance) op(name string) int {
	i, _, ok := in.desc.Operator(name)
	if !ok {
		in.h.t.Fatalf("no operator %q in %v", name, in.desc.Names())
	}
	return i
}

// invoke copies input into the module's buffer and runs method of op. It
// returns weir_call's result; the output and failure are in in.h.
func (in *instance) invoke(op int, method wasmabi.Method, input []byte) uint64 {
	t := in.h.t
	t.Helper()
	if uint32(len(input)) > in.bufCap || in.bufPtr == 0 {
		want := max(uint32(len(input)), 2*in.bufCap, 64<<10)
		in.stack[0] = uint64(want)
		if err := in.buf.CallWithStack(ctx, in.stack[:]); err != nil {
			t.Fatal(err)
		}
		in.bufPtr, in.bufCap = uint32(in.stack[0]), want
		if in.bufPtr == 0 {
			t.Fatal("weir_buffer returned 0")
		}
	}
	if !in.mem.Write(in.bufPtr, input) {
		t.Fatalf("weir_buffer returned %#x, outside memory", in.bufPtr)
	}
	in.h.out, in.h.outCalls, in.h.failMsg, in.h.failed, in.h.method = in.h.out[:0], 0, "", false, method
	in.h.keys = map[string]bool{}
	if _, rest, err := wasmabi.ReadBatchHeader(input); method != wasmabi.MethodOpen && err == nil {
		for len(rest) > 0 {
			var e wasmabi.Entry
			if rest, err = wasmabi.ReadEntry(rest, &e); err != nil {
				break // a malformed batch of an error test
			}
			in.h.keys[string(e.Key)] = true
		}
	}
	in.stack = [3]uint64{uint64(op), uint64(method), uint64(len(input))}
	if err := in.call.CallWithStack(ctx, in.stack[:]); err != nil {
		t.Fatalf("weir_call(%d, %s): %v", op, method, err)
	}
	return in.stack[0]
}

// mustInvoke is invoke that expects success, returning the decoded output.
func (in *instance) mustInvoke(op int, method wasmabi.Method, input []byte) []wasmabi.Entry {
	t := in.h.t
	t.Helper()
	if rc := in.invoke(op, method, input); rc != wasmabi.CallOK {
		t.Fatalf("weir_call(%s, %s) = %d, fail message %q", in.desc.Operators[op].Name, method, rc, in.h.failMsg)
	}
	if in.h.failed {
		t.Fatalf("weir_call succeeded but called fail(%q)", in.h.failMsg)
	}
	return decode(t, in.h.out)
}

func decode(t testing.TB, b []byte) []wasmabi.Entry {
	t.Helper()
	var out []wasmabi.Entry
	for len(b) > 0 {
		var e wasmabi.Entry
		var err error
		if b, err = wasmabi.ReadEntry(b, &e); err != nil {
			t.Fatalf("output entry %d: %v", len(out), err)
		}
		if err := wasmabi.ValidHeaders(e.Headers); err != nil {
			t.Fatalf("output entry %d: %v", len(out), err)
		}
		e.Key, e.Value, e.Headers = bytes.Clone(e.Key), bytes.Clone(e.Value), bytes.Clone(e.Headers)
		out = append(out, e)
	}
	return out
}

func batch(entries ...wasmabi.Entry) []byte {
	b := wasmabi.AppendBatchHeader(nil, wasmabi.BatchHeader{Count: uint32(len(entries)), Watermark: 500, ProcessingTime: 1_700_000_000_000})
	for i := range entries {
		b = wasmabi.AppendEntry(b, &entries[i])
	}
	return b
}

func rec(key, value string, ts int64) wasmabi.Entry {
	return wasmabi.Entry{Kind: wasmabi.EntryRecord, Key: []byte(key), Value: []byte(value), Timestamp: ts}
}

func sameEntry(a, b *wasmabi.Entry) bool {
	return a.Kind == b.Kind && a.Flags == b.Flags && a.Port == b.Port && a.Timestamp == b.Timestamp &&
		bytes.Equal(a.Key, b.Key) && bytes.Equal(a.Value, b.Value) && bytes.Equal(a.Headers, b.Headers)
}

func checkEntries(t *testing.T, got, want []wasmabi.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d output entries, want %d:\n got %s\nwant %s", len(got), len(want), show(got), show(want))
	}
	for i := range want {
		if !sameEntry(&got[i], &want[i]) {
			t.Fatalf("output entry %d:\n got %s\nwant %s", i, show(got[i:i+1]), show(want[i:i+1]))
		}
	}
}

func show(es []wasmabi.Entry) string {
	var s []string
	for _, e := range es {
		s = append(s, fmt.Sprintf("{%s port=%d flags=%d key=%q value=%q ts=%d headers=%q}", e.Kind, e.Port, e.Flags, e.Key, e.Value, e.Timestamp, e.Headers))
	}
	return "[" + strings.Join(s, " ") + "]"
}

func asciiUpper(b []byte) []byte {
	out := bytes.Clone(b)
	for i, c := range out {
		if c >= 'a' && c <= 'z' {
			out[i] = c - 32
		}
	}
	return out
}

func TestDescriptor(t *testing.T) {
	up := instantiate(t, "upper")
	want := []wasmabi.OperatorDesc{
		{Name: "upper", Kind: wasmabi.KindMap},
		{Name: "nonempty", Kind: wasmabi.KindFilter},
		{Name: "words", Kind: wasmabi.KindFlatMap},
		{Name: "count", Kind: wasmabi.KindProcess, SideOutputs: []string{"expired"}},
	}
	if fmt.Sprint(up.desc.Operators) != fmt.Sprint(want) || up.desc.SDK != "c/0.1" {
		t.Fatalf("descriptor = %+v, want sdk c/0.1 and %+v", up.desc, want)
	}
	b := instantiate(t, "bench")
	if got := strings.Join(b.desc.Names(), ","); got != "identity,rewrite" {
		t.Fatalf("bench operators = %s", got)
	}
}

// TestImports checks that the modules import only what they use, all from
// module "weir": no WASI at all.
func TestImports(t *testing.T) {
	for name, want := range map[string]string{
		"bench":   "weir.fail weir.output",
		"upper":   "weir.counter weir.fail weir.output weir.state weir.state_register weir.timer",
		"sdktest": "weir.counter weir.fail weir.log weir.output weir.state weir.state_register",
	} {
		rt := wazero.NewRuntime(ctx)
		compiled, err := rt.CompileModule(ctx, moduleBytes(t, name))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, f := range compiled.ImportedFunctions() {
			mod, fn, _ := f.Import()
			got = append(got, mod+"."+fn)
		}
		slices.Sort(got)
		if strings.Join(got, " ") != want {
			t.Errorf("%s imports %v, want %s", name, got, want)
		}
		exports := compiled.ExportedFunctions()
		for _, fn := range []string{wasmabi.ExportVersion, wasmabi.ExportDescribe, wasmabi.ExportBuffer, wasmabi.ExportCall, "_initialize"} {
			if _, ok := exports[fn]; !ok {
				t.Errorf("%s does not export %s", name, fn)
			}
		}
		t.Logf("%s.wasm: %d bytes, imports %v", name, len(moduleBytes(t, name)), got)
		rt.Close(ctx)
	}
}

func TestUpper(t *testing.T) {
	in := instantiate(t, "upper")
	op := in.op("upper")
	var hdr []byte
	hdr = wasmabi.AppendHeader(hdr, "trace", []byte("abc"))
	inputs := []wasmabi.Entry{
		rec("k1", "hello, world", 1),
		rec("", "", -5),
		rec("k3", "MiXeD 123 \xff\xc3\xa9z", 1<<40),
		{Kind: wasmabi.EntryRecord, Key: []byte("h"), Value: []byte("with headers"), Headers: hdr, Timestamp: 7},
	}
	for round := 0; round < 2; round++ { // twice: the buffers are reused
		out := in.mustInvoke(op, wasmabi.MethodProcess, batch(inputs...))
		want := make([]wasmabi.Entry, len(inputs))
		for i, e := range inputs {
			want[i] = e
			want[i].Value = []byte(strings.ToUpper(string(e.Value)))
			if i == 2 { // not ASCII: the operator changes ASCII letters only
				want[i].Value = asciiUpper(e.Value)
			}
		}
		checkEntries(t, out, want)
	}
}

// TestUpperLarge pushes more than 64 KiB of output through one call, and one
// value larger than the output buffer, so the SDK flushes and grows.
func TestUpperLarge(t *testing.T) {
	in := instantiate(t, "upper")
	op := in.op("upper")
	var inputs, want []wasmabi.Entry
	for i := range 3000 {
		v := fmt.Sprintf("record number %d of the large batch", i)
		inputs = append(inputs, rec(strconv.Itoa(i), v, int64(i)))
		want = append(want, rec(strconv.Itoa(i), strings.ToUpper(v), int64(i)))
	}
	big := strings.Repeat("abcdefghij", 20_000) // 200 KB
	inputs = append(inputs, rec("big", big, 1))
	want = append(want, rec("big", strings.ToUpper(big), 1))
	out := in.mustInvoke(op, wasmabi.MethodProcess, batch(inputs...))
	checkEntries(t, out, want)
	if in.h.outCalls < 3 {
		t.Errorf("%d bytes of output in %d output calls; want a flush at every 64 KiB", len(in.h.out), in.h.outCalls)
	}
}

func TestNonempty(t *testing.T) {
	in := instantiate(t, "upper")
	op := in.op("nonempty")
	var inputs, want []wasmabi.Entry
	for i := range 200 {
		v := ""
		if i%3 != 0 || i > 150 { // kept runs of two, then one long run
			v = fmt.Sprintf("v%d", i)
		}
		e := rec(fmt.Sprintf("k%d", i), v, int64(i))
		if i == 7 {
			e.Headers = wasmabi.AppendHeader(nil, "h", []byte("x"))
		}
		inputs = append(inputs, e)
		if v != "" {
			want = append(want, e)
		}
	}
	out := in.mustInvoke(op, wasmabi.MethodProcess, batch(inputs...))
	checkEntries(t, out, want)

	out = in.mustInvoke(op, wasmabi.MethodProcess, batch(rec("a", "", 1), rec("b", "", 2)))
	checkEntries(t, out, nil)
}

func TestWords(t *testing.T) {
	in := instantiate(t, "upper")
	op := in.op("words")
	values := []string{"the quick  brown fox", "", "   ", "one", " lead and trail "}
	var inputs, want []wasmabi.Entry
	for i, v := range values {
		e := rec(fmt.Sprintf("k%d", i), v, int64(100+i))
		inputs = append(inputs, e)
		for _, w := range strings.FieldsFunc(v, func(r rune) bool { return r == ' ' }) {
			want = append(want, rec(string(e.Key), w, e.Timestamp))
		}
	}
	checkEntries(t, in.mustInvoke(op, wasmabi.MethodProcess, batch(inputs...)), want)
}

func TestCount(t *testing.T) {
	in := instantiate(t, "upper")
	op := in.op("count")
	in.mustInvoke(op, wasmabi.MethodOpen, nil)
	if len(in.h.states) != 1 || in.h.states[0] != "count" {
		t.Fatalf("states registered: %v", in.h.states)
	}
	out := in.mustInvoke(op, wasmabi.MethodProcess, batch(rec("a", "x", 10), rec("b", "y", 20), rec("a", "z", 30)))
	checkEntries(t, out, []wasmabi.Entry{rec("a", "1", 10), rec("b", "1", 20), rec("a", "2", 30)})
	out = in.mustInvoke(op, wasmabi.MethodProcess, batch(rec("a", "w", 40)))
	checkEntries(t, out, []wasmabi.Entry{rec("a", "3", 40)})
	wantTimers := []timerCall{
		{wasmabi.TimerRegister, wasmabi.EventTime, 60010, "a"},
		{wasmabi.TimerRegister, wasmabi.EventTime, 60020, "b"},
	}
	if fmt.Sprint(in.h.timers) != fmt.Sprint(wantTimers) {
		t.Fatalf("timers = %v, want %v", in.h.timers, wantTimers)
	}
	if in.h.counters["records_counted"] != 4 {
		t.Fatalf("counters = %v", in.h.counters)
	}

	timer := wasmabi.Entry{Kind: wasmabi.EntryTimer, Flags: uint8(wasmabi.EventTime), Key: []byte("a"), Timestamp: 60010}
	out = in.mustInvoke(op, wasmabi.MethodTimers, batch(timer))
	want := rec("a", "3", 60010)
	want.Port = 1
	checkEntries(t, out, []wasmabi.Entry{want})
	if _, ok := in.h.values[stateKey(0, []byte("a"))]; ok {
		t.Fatal("state of a not cleared by its timer")
	}
	if v := in.h.values[stateKey(0, []byte("b"))]; binary.LittleEndian.Uint64(v) != 1 {
		t.Fatalf("state of b = %x", v)
	}
	// a starts over, with a new timer.
	out = in.mustInvoke(op, wasmabi.MethodProcess, batch(rec("a", "again", 70000)))
	checkEntries(t, out, []wasmabi.Entry{rec("a", "1", 70000)})
	if n := len(in.h.timers); n != 3 || in.h.timers[2].ts != 130000 {
		t.Fatalf("timers = %v", in.h.timers)
	}
	// Timers go to process operators only.
	if rc := in.invoke(in.op("upper"), wasmabi.MethodTimers, batch(timer)); rc != wasmabi.CallFailed || in.h.failMsg == "" {
		t.Fatalf("timers on a map: rc %d, message %q", rc, in.h.failMsg)
	}
}

func TestIdentity(t *testing.T) {
	in := instantiate(t, "bench")
	op := in.op("identity")
	inputs := benchRecords(1024)
	var hdr []byte
	hdr = wasmabi.AppendHeader(hdr, "a", []byte("1"))
	inputs[3].Headers = hdr
	inputs[5].Flags = 1 // not passed through as is: the output has flags 0
	b := batch(inputs...)
	out := in.mustInvoke(op, wasmabi.MethodProcess, b)
	want := append([]wasmabi.Entry(nil), inputs...)
	want[5].Flags = 0
	checkEntries(t, out, want)
	if in.h.outCalls > 5 {
		t.Errorf("identity used %d output calls for one batch", in.h.outCalls)
	}
	inputs[5].Flags = 0
	in.mustInvoke(op, wasmabi.MethodProcess, batch(inputs...))
	if !bytes.Equal(in.h.out, batch(inputs...)[wasmabi.BatchHeaderSize:]) || in.h.outCalls != 1 {
		t.Errorf("identity output differs from its input, or took %d output calls", in.h.outCalls)
	}
	// An empty batch and finish.
	checkEntries(t, in.mustInvoke(op, wasmabi.MethodProcess, batch()), nil)
	checkEntries(t, in.mustInvoke(op, wasmabi.MethodFinish, batch()), nil)
	in.mustInvoke(op, wasmabi.MethodOpen, []byte(`{"x":1}`))
}

// benchValue is the rewrite input: id=<6 digits>;amt=<digits>;note=<text>
// padded with spaces to 100 bytes.
func benchValue(i int) string {
	v := fmt.Sprintf("id=%06d;amt=%d;note=record %d", i%1_000_000, i*37+5, i)
	return v + strings.Repeat(" ", 100-len(v))
}

func benchRecords(n int) []wasmabi.Entry {
	es := make([]wasmabi.Entry, n)
	for i := range es {
		es[i] = rec(fmt.Sprintf("key%05d", i), benchValue(i), int64(1_700_000_000_000+i))
	}
	return es
}

func TestRewrite(t *testing.T) {
	in := instantiate(t, "bench")
	op := in.op("rewrite")
	inputs := benchRecords(3000) // about 100 KiB of output: flushed at 64 KiB
	inputs = append(inputs, rec("x", "id=000001;amt=999999999999999999;note=", 5), rec("y", "id=123456;amt=0;note=zero", -1))
	var want []wasmabi.Entry
	for _, e := range inputs {
		v := string(e.Value)
		id := v[3:9]
		amtStr := v[strings.Index(v, "amt=")+4:]
		amtStr = amtStr[:strings.IndexByte(amtStr, ';')]
		amt, err := strconv.ParseInt(amtStr, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, rec(id, strconv.FormatInt(amt*2, 10), e.Timestamp))
	}
	checkEntries(t, in.mustInvoke(op, wasmabi.MethodProcess, batch(inputs...)), want)
	if in.h.outCalls != 2 {
		t.Errorf("%d bytes of output in %d output calls, want 2", len(in.h.out), in.h.outCalls)
	}
}

func TestRewriteFailure(t *testing.T) {
	in := instantiate(t, "bench")
	op := in.op("rewrite")
	for _, bad := range []string{
		"garbage", "", "id=12345x;amt=1;note=a", "id=123456;amt=;note=a", "id=123456;amt=12;nope=a",
		"id=123456;amt=12", "id=123456;amt=1234567890123456789;note=", "id=123456,amt=12;note=",
	} {
		inputs := benchRecords(40)
		inputs[17].Value = []byte(bad)
		if rc := in.invoke(op, wasmabi.MethodProcess, batch(inputs...)); rc != wasmabi.CallFailed {
			t.Fatalf("rewrite of %q: weir_call = %d, want %d", bad, rc, wasmabi.CallFailed)
		}
		if !strings.HasPrefix(in.h.failMsg, "record 17: ") || !strings.Contains(in.h.failMsg, "amt") {
			t.Fatalf("rewrite of %q: fail message %q, want \"record 17: ...\"", bad, in.h.failMsg)
		}
	}
	// The instance keeps working after a failed call.
	out := in.mustInvoke(op, wasmabi.MethodProcess, batch(benchRecords(2)...))
	if len(out) != 2 || string(out[1].Key) != "000001" {
		t.Fatalf("after a failure: %s", show(out))
	}
}

func TestCallErrors(t *testing.T) {
	in := instantiate(t, "bench")
	cases := []struct {
		name   string
		op     int
		method wasmabi.Method
		input  []byte
		want   string
	}{
		{"bad operator", 9, wasmabi.MethodProcess, batch(), "no operator"},
		{"aggregate method", 0, wasmabi.MethodAggAdd, batch(), "not supported"},
		{"short batch", 0, wasmabi.MethodProcess, []byte{1, 2, 3}, "24-byte header"},
		{"count too high", 0, wasmabi.MethodProcess, func() []byte {
			b := batch(rec("k", "v", 1))
			wasmabi.PutBatchCount(b, 2)
			return b
		}(), "record 1: truncated"},
		{"count too low", 0, wasmabi.MethodProcess, func() []byte {
			b := batch(rec("k", "v", 1))
			wasmabi.PutBatchCount(b, 0)
			return b
		}(), "bytes left"},
		{"timer entry", 0, wasmabi.MethodProcess, batch(rec("k", "v", 1), wasmabi.Entry{Kind: wasmabi.EntryTimer, Key: []byte("k")}), "record 1: not a record"},
	}
	for _, c := range cases {
		if rc := in.invoke(c.op, c.method, c.input); rc != wasmabi.CallFailed || !strings.Contains(in.h.failMsg, c.want) {
			t.Errorf("%s: rc %d, message %q, want %q", c.name, rc, in.h.failMsg, c.want)
		}
	}
}

// TestBuild builds a module with Build and the embedded header only, as the
// weir CLI does outside this repository.
func TestBuild(t *testing.T) {
	moduleBytes(t, "bench") // fails with the install hint when clang is missing
	dir := t.TempDir()
	src := filepath.Join(dir, "op.c")
	code := `#include "weir.h"
static int keep(const weir_record *in) { return in->key.len > 0; }
WEIR_OPERATORS(WEIR_FILTER("keyed", keep));
`
	if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "op.wasm")
	var log bytes.Buffer
	if err := csdk.Build(ctx, []string{src}, out, "", &log); err != nil {
		t.Fatal(err)
	}
	wasm, err := os.ReadFile(out)
	if err != nil || !bytes.HasPrefix(wasm, []byte("\x00asm")) {
		t.Fatalf("built %d bytes, err %v", len(wasm), err)
	}
	err = csdk.Build(ctx, []string{src}, out, t.TempDir(), nil) // no weir.h there
	if err == nil || !strings.Contains(err.Error(), "weir.h") {
		t.Fatalf("build without the header: %v", err)
	}
	// Two files, the table in one: fine. The table in both: a clear error.
	helper := filepath.Join(dir, "helper.c")
	if err := os.WriteFile(helper, []byte("#include \"weir.h\"\nint twice(int x) { return weir_error(\"no\") + 2 * x; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := csdk.Build(ctx, []string{src, helper}, out, "", nil); err != nil {
		t.Fatalf("two files: %v", err)
	}
	err = csdk.Build(ctx, []string{src, src}, out, "", nil)
	if err == nil || !strings.Contains(err.Error(), "WEIR_OPERATORS is expanded in more than one file") {
		t.Fatalf("the table twice: %v", err)
	}
}

func u64le(v uint64) string { return string(binary.LittleEndian.AppendUint64(nil, v)) }

func TestNumbers(t *testing.T) {
	in := instantiate(t, "sdktest")
	op := in.op("udec")
	vals := []uint64{0, 1<<64 - 1, 1 << 63, 1<<63 - 1, 1 << 32, 1<<32 - 1, 1<<32 + 1}
	for p := uint64(1); p < 1e19; p *= 10 {
		vals = append(vals, p-1, p, p+1, 2*p, 9*p, 9*p+p-1)
	}
	vals = append(vals, 1e19, 1e19+1, 18446744073709551615/3)
	for i := range uint64(3000) {
		vals = append(vals, i, i*i*i*7919, i*0x9E3779B97F4A7C15)
	}
	var inputs, want []wasmabi.Entry
	for _, v := range vals {
		inputs = append(inputs, rec("", u64le(v), 5))
		want = append(want, rec(strconv.FormatInt(int64(v), 10), strconv.FormatUint(v, 10), 5))
	}
	checkEntries(t, in.mustInvoke(op, wasmabi.MethodProcess, batch(inputs...)), want)
}

func TestMapMustEmitOne(t *testing.T) {
	in := instantiate(t, "sdktest")
	for name, want := range map[string]string{
		"twice":  "record 0: a map operator emitted more than one record",
		"none":   "record 0: a map operator emitted no record",
		"silent": "record 0: operator silent returned 7 without calling weir_error",
		"udec":   "record 1: want 8 bytes",
	} {
		rc := in.invoke(in.op(name), wasmabi.MethodProcess, batch(rec("k", u64le(1), 1), rec("k", "v", 2)))
		if rc != wasmabi.CallFailed || !strings.HasPrefix(in.h.failMsg, want) {
			t.Errorf("%s: rc %d, message %q, want %q", name, rc, in.h.failMsg, want)
		}
	}
}

func TestPassThroughOrder(t *testing.T) {
	in := instantiate(t, "sdktest")
	op := in.op("dup")
	if got := in.desc.Operators[op].SideOutputs; len(got) != 1 || got[0] != "side" {
		t.Fatalf("side outputs %v", got)
	}
	var inputs, want []wasmabi.Entry
	for i := range 40 {
		e := rec(fmt.Sprintf("k%d", i), strings.Repeat("v", i*50), int64(i))
		inputs = append(inputs, e)
		x := e
		x.Value = []byte("x")
		side := e
		side.Port = 1
		want = append(want, e, e, x, e, side)
	}
	checkEntries(t, in.mustInvoke(op, wasmabi.MethodProcess, batch(inputs...)), want)
}

func TestHeaderHelpers(t *testing.T) {
	in := instantiate(t, "sdktest")
	var h []byte
	h = wasmabi.AppendHeader(h, "other", []byte("z"))
	h = wasmabi.AppendHeader(h, "want", []byte("yes"))
	h = wasmabi.AppendHeader(h, "want", []byte("second"))
	withHdr := rec("a", "v", 1)
	withHdr.Headers = h
	out := in.mustInvoke(in.op("hdr"), wasmabi.MethodProcess, batch(withHdr, rec("b", "v", 2)))
	checkEntries(t, out, []wasmabi.Entry{rec("3", "yes", 1), rec("0", "-", 2)})

	out = in.mustInvoke(in.op("reserve"), wasmabi.MethodProcess, batch(rec("a", "abc", 9), rec("b", "", 10)))
	hv := wasmabi.AppendHeader(nil, "h", []byte("v"))
	want := []wasmabi.Entry{rec("k", "cba", 9), rec("k", "", 10)}
	want[0].Headers, want[1].Headers = hv, hv
	checkEntries(t, out, want)
}

func TestScratch(t *testing.T) {
	in := instantiate(t, "sdktest")
	op := in.op("scratch")
	for range 3 { // the arena is reset and reused between calls
		out := in.mustInvoke(op, wasmabi.MethodProcess, batch(rec("a", "", 1), rec("b", "", 2)))
		checkEntries(t, out, []wasmabi.Entry{
			rec("a", strings.Repeat("a", 100), 1), rec("a", strings.Repeat("c", 20000), 1),
			rec("b", strings.Repeat("a", 100), 2), rec("b", strings.Repeat("c", 20000), 2),
		})
	}
}

func TestFilterResults(t *testing.T) {
	in := instantiate(t, "sdktest")
	op := in.op("failneg")
	out := in.mustInvoke(op, wasmabi.MethodProcess, batch(rec("a", "ab", 1), rec("b", "", 2), rec("c", "xyz", 3)))
	checkEntries(t, out, []wasmabi.Entry{rec("a", "ab", 1), rec("c", "xyz", 3)})
	rc := in.invoke(op, wasmabi.MethodProcess, batch(rec("a", "ab", 1), rec("b", "", 2), rec("c", "xyz", 3), rec("d", "bad", 4)))
	if rc != wasmabi.CallFailed || in.h.failMsg != "record 3: bad value" {
		t.Fatalf("rc %d, message %q", rc, in.h.failMsg)
	}
}

func TestMetaOpenFinish(t *testing.T) {
	in := instantiate(t, "sdktest")
	op := in.op("meta")
	in.mustInvoke(op, wasmabi.MethodOpen, []byte(`{"p":1}`))
	out := in.mustInvoke(op, wasmabi.MethodProcess, batch(rec("a", "v", 77), rec("b", "w", 78)))
	checkEntries(t, out, []wasmabi.Entry{
		{Kind: wasmabi.EntryWatermark, Timestamp: 77}, rec("a", "wm=500 pt=1700000000000", 77),
		{Kind: wasmabi.EntryWatermark, Timestamp: 78}, rec("b", "wm=500 pt=1700000000000", 78),
	})
	if len(in.h.logs) != 2 || in.h.logs[0] != "1 meta called" || in.h.counters["meta_records"] != 4 || in.h.counterCalls != 1 {
		t.Fatalf("logs %q, counters %v in %d calls; want one call with the sum", in.h.logs, in.h.counters, in.h.counterCalls)
	}
	// A failed call drops its counters.
	if rc := in.invoke(op, wasmabi.MethodProcess, batch(rec("a", "v", 1), rec("b", "fail", 2))); rc != wasmabi.CallFailed ||
		in.h.failMsg != "record 1: asked to fail" || in.h.counters["meta_records"] != 4 {
		t.Fatalf("rc %d, message %q, counters %v", rc, in.h.failMsg, in.h.counters)
	}
	out = in.mustInvoke(op, wasmabi.MethodFinish, batch())
	checkEntries(t, out, []wasmabi.Entry{rec("", `done:{"p":1}`, 0)})
}

func TestStateHelpers(t *testing.T) {
	in := instantiate(t, "sdktest")
	op := in.op("states")
	in.mustInvoke(op, wasmabi.MethodOpen, nil)
	if fmt.Sprintf("%v %d", in.h.states, in.h.stateKinds) != "[last items seen] [1 2 3]" {
		t.Fatalf("states %v %v", in.h.states, in.h.stateKinds)
	}
	big := strings.Repeat("z", 1000) // list and map loads beyond the first 256-byte try
	out := in.mustInvoke(op, wasmabi.MethodProcess, batch(
		rec("k", "a", 1), rec("k", "b", 2), rec("k2", "q", 3), rec("k", big, 4), rec("k", "forget", 5), rec("k", "clear", 6)))
	checkEntries(t, out, []wasmabi.Entry{
		rec("k", "prev= items=1:1 seen=1", 1),
		rec("k", "prev=a items=2:2 seen=2", 2),
		rec("k2", "prev= items=1:1 seen=1", 3),
		rec("k", "prev=b items=3:1002 seen=3", 4),
		rec("k", "prev="+big[:32]+" items=3:1002 seen=2", 5),
		rec("k", "prev=forget items=0:0 seen=0", 6),
	})
}

func benchCall(b *testing.B, opName string, n int) {
	in := instantiate(b, "bench")
	op := in.op(opName)
	input := batch(benchRecords(n)...)
	in.mustInvoke(op, wasmabi.MethodProcess, input)
	outLen := len(in.h.out)
	b.SetBytes(int64(len(input)))
	b.ResetTimer()
	for b.Loop() {
		// The host's work per batch: copy the batch in, call, copy the output out.
		in.mem.Write(in.bufPtr, input)
		in.h.out = in.h.out[:0]
		in.stack = [3]uint64{uint64(op), uint64(wasmabi.MethodProcess), uint64(len(input))}
		if err := in.call.CallWithStack(ctx, in.stack[:]); err != nil || in.stack[0] != 0 {
			b.Fatal(err, in.h.failMsg)
		}
	}
	if len(in.h.out) != outLen {
		b.Fatalf("output of %d bytes, want %d", len(in.h.out), outLen)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
}

// BenchmarkIdentity is identity at batch 1024 with 100-byte values, host
// copies included.
func BenchmarkIdentity(b *testing.B) { benchCall(b, "identity", 1024) }

// BenchmarkRewrite is rewrite at batch 1024.
func BenchmarkRewrite(b *testing.B) { benchCall(b, "rewrite", 1024) }
