package wasmhost

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weirstream/weir/wasmabi"
)

const spin = `(loop $l (br $l))`

// healthy proves the process is still responsive after a hostile module: a
// fresh runtime loads a good module and runs a batch through it.
func healthy(t *testing.T) {
	t.Helper()
	rt := newRuntime(t, Limits{CallTimeout: 5 * time.Second})
	mod, err := rt.Load(context.Background(), "healthy.wasm", buildWAT(t, watOpts{}))
	if err != nil {
		t.Fatalf("healthy module after a hostile one: %v", err)
	}
	inst, err := mod.Instantiate(context.Background(), "id", nil)
	if err != nil {
		t.Fatalf("healthy module after a hostile one: %v", err)
	}
	defer inst.Close()
	out, err := inst.Call(wasmabi.MethodProcess, batchOf("ok"))
	if err != nil || len(out) == 0 {
		t.Fatalf("healthy module after a hostile one: out %d bytes, err %v", len(out), err)
	}
}

// wantStage checks that err is an *Error wrapping want whose text names the
// stage and the module (and the operator when there is one by then).
func wantStage(t *testing.T, err, want error, stage string, operator bool) {
	t.Helper()
	var werr *Error
	if !errors.As(err, &werr) || !errors.Is(err, want) {
		t.Fatalf("err = %v, want a *wasmhost.Error wrapping %v", err, want)
	}
	msg := err.Error()
	if werr.Method != stage || !strings.Contains(msg, ", "+stage+":") {
		t.Errorf("err = %q, want it to name the stage %q", msg, stage)
	}
	if !strings.Contains(msg, "module hostile.wasm") {
		t.Errorf("err = %q does not name the module", msg)
	}
	if operator && !strings.Contains(msg, "operator id") {
		t.Errorf("err = %q does not name the operator", msg)
	}
	if strings.Count(msg, "wasmhost:") > 0 {
		t.Errorf("err = %q repeats the package prefix", msg)
	}
}

// TestEveryStageBounded: module code that never returns fails its stage
// with a timeout, whichever stage it is in.
func TestEveryStageBounded(t *testing.T) {
	limits := Limits{CallTimeout: 300 * time.Millisecond}
	loadCases := []struct {
		name, stage string
		o           watOpts
	}{
		{"start function", "start function", watOpts{imports: `(func $spin ` + spin + `) (start $spin)`}},
		{"_initialize", "_initialize", watOpts{imports: `(func (export "_initialize") ` + spin + `)`}},
		{"handshake", "handshake", watOpts{version: spin + ` (i32.const 1)`}},
		{"describe", "describe", watOpts{describe: spin}},
	}
	for _, c := range loadCases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			_, err := newRuntime(t, limits).Load(context.Background(), "hostile.wasm", buildWAT(t, c.o))
			wantStage(t, err, ErrTimeout, c.stage, false)
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("took %v to fail", d)
			}
			healthy(t)
		})
	}
	callCases := []struct {
		stage  string
		method wasmabi.Method
	}{{"open", wasmabi.MethodOpen}, {"process", wasmabi.MethodProcess}, {"timers", wasmabi.MethodTimers}, {"finish", wasmabi.MethodFinish}}
	for _, c := range callCases {
		t.Run(c.stage, func(t *testing.T) {
			call := fmt.Sprintf(`(if (i32.eq (local.get $method) (i32.const %d)) (then %s)) (i32.const 0)`, c.method, spin)
			_, inst := instantiateWAT(t, limits, watOpts{call: call})
			var err error
			if c.method == wasmabi.MethodOpen {
				err = inst.Open(nil)
			} else {
				_, err = inst.Call(c.method, batchOf())
			}
			wantStage(t, err, ErrTimeout, c.stage, true)
			healthy(t)
		})
	}
	t.Run("compile", func(t *testing.T) {
		// Thousands of functions take a while to compile; a compile limit of
		// a microsecond cannot be met by any.
		var fns strings.Builder
		for i := range 3000 {
			fmt.Fprintf(&fns, "(func $f%d (param i32) (result i32) (i32.add (local.get 0) (i32.const %d)))\n", i, i)
		}
		rt := newRuntime(t, Limits{CallTimeout: time.Second, CompileTimeout: time.Microsecond})
		_, err := rt.Load(context.Background(), "hostile.wasm", buildWAT(t, watOpts{imports: fns.String()}))
		wantStage(t, err, ErrTimeout, "compile", false)
		healthy(t)
	})
}

// cancelOnLog cancels a context when the module logs: a deterministic
// signal that the module's call is running.
type cancelOnLog struct {
	Services
	cancel context.CancelFunc
}

func (c cancelOnLog) Log(int, string) { c.cancel() }

// TestCancelStopsCall: ending the context an instance was made with (what
// SIGINT and SIGTERM do in weir run) stops a running call at once, long
// before its time limit.
func TestCancelStopsCall(t *testing.T) {
	rt := newRuntime(t, Limits{CallTimeout: time.Minute})
	src := buildWAT(t, watOpts{
		imports: `(import "weir" "log" (func $log (param i32 i32 i32)))`,
		call:    `(call $log (i32.const 1) (i32.const 2048) (i32.const 6)) ` + spin + ` (i32.const 0)`,
	})
	mod, err := rt.Load(context.Background(), "hostile.wasm", src)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	inst, err := mod.Instantiate(ctx, "id", cancelOnLog{cancel: cancel})
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	start := time.Now()
	_, err = inst.Call(wasmabi.MethodProcess, batchOf("a"))
	wantStage(t, err, ErrCanceled, "process", true)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v does not wrap context.Canceled", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("the call took %v to stop, the time limit is a minute", d)
	}
	healthy(t)
}

// TestCancelStopsStartFunction: a cancel reaches a start function too,
// which runs before its instance exists for the caller (here the probe
// instance of Load).
func TestCancelStopsStartFunction(t *testing.T) {
	rt := newRuntime(t, Limits{CallTimeout: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// Cancel once a call is running: the start function.
		for {
			rt.mu.Lock()
			busy := false
			for inst := range rt.mu.running {
				busy = busy || inst.started.Load() != 0
			}
			rt.mu.Unlock()
			if busy {
				cancel()
			}
			if ctx.Err() != nil {
				return
			}
			runtime.Gosched()
		}
	}()
	_, err := rt.Load(ctx, "hostile.wasm", buildWAT(t, watOpts{imports: `(func $spin ` + spin + `) (start $spin)`}))
	wantStage(t, err, ErrCanceled, "start function", false)
	healthy(t)
}

// TestHostCaps: what a module can make the host hold is capped, with an
// error that says which cap.
func TestHostCaps(t *testing.T) {
	t.Run("counter names", func(t *testing.T) {
		// Counter names "c" + a changing 4-byte suffix, in a loop.
		call := `(local $i i32)
    (loop $l
      (i32.store (i32.const 3001) (local.get $i))
      (call $counter (i32.const 3000) (i32.const 5) (i64.const 1))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 100000))))
    (i32.const 0)`
		rt := newRuntime(t, Limits{})
		mod, err := rt.Load(context.Background(), "hostile.wasm", buildWAT(t, watOpts{call: call, imports: `(import "weir" "counter" (func $counter (param i32 i32 i64)))`}))
		if err != nil {
			t.Fatal(err)
		}
		svc := &countingServices{}
		inst, err := mod.Instantiate(context.Background(), "id", svc)
		if err != nil {
			t.Fatal(err)
		}
		defer inst.Close()
		_, err = inst.Call(wasmabi.MethodProcess, batchOf("a"))
		wantStage(t, err, ErrHostLimit, "process", true)
		if !strings.Contains(err.Error(), fmt.Sprintf("at most %d", MaxCounters)) || len(svc.names) != MaxCounters {
			t.Errorf("err = %v, %d names reached the host; want the cap of %d named", err, len(svc.names), MaxCounters)
		}
		healthy(t)
	})
	t.Run("log lines", func(t *testing.T) {
		call := `(local $i i32)
    (loop $l
      (call $log (i32.const 1) (i32.const 2048) (i32.const 6))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 5000))))
    (i32.const 0)`
		rt := newRuntime(t, Limits{})
		mod, err := rt.Load(context.Background(), "hostile.wasm", buildWAT(t, watOpts{call: call, imports: `(import "weir" "log" (func $log (param i32 i32 i32)))`}))
		if err != nil {
			t.Fatal(err)
		}
		svc := &countingServices{}
		inst, err := mod.Instantiate(context.Background(), "id", svc)
		if err != nil {
			t.Fatal(err)
		}
		defer inst.Close()
		if _, err := inst.Call(wasmabi.MethodProcess, batchOf("a")); err != nil {
			t.Fatal(err)
		}
		if len(svc.logs) != maxLogsCall+1 || !strings.Contains(svc.logs[maxLogsCall], fmt.Sprintf("%d more log lines", 5000-maxLogsCall)) {
			t.Errorf("%d lines reached the host, the last %q; want %d and a note of the %d dropped", len(svc.logs), svc.logs[len(svc.logs)-1], maxLogsCall+1, 5000-maxLogsCall)
		}
	})
}

type countingServices struct {
	Services
	names map[string]bool
	logs  []string
}

func (c *countingServices) Counter(name string, _ int64) {
	if c.names == nil {
		c.names = map[string]bool{}
	}
	c.names[name] = true
}

func (c *countingServices) Log(_ int, msg string) { c.logs = append(c.logs, msg) }

// TestFailMessageEscaped: binary bytes in a weir.fail message reach the
// user escaped.
func TestFailMessageEscaped(t *testing.T) {
	_, inst := instantiateWAT(t, Limits{}, watOpts{
		imports: `(data (i32.const 3000) "bad \00\ff\1b[2J end")`,
		call:    `(call $fail (i32.const 3000) (i32.const 14)) (i32.const 1)`,
	})
	_, err := inst.Call(wasmabi.MethodProcess, batchOf("a"))
	want := `operator failed: bad \x00\xff\x1b[2J end`
	if !errors.Is(err, ErrOperator) || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %q, want it to contain %q", err, want)
	}
}

// TestOutputContract: a map emits one record per input, a filter a
// subsequence of its input unchanged, and open emits nothing.
func TestOutputContract(t *testing.T) {
	twice := `(call $output (i32.const 65560) (i32.sub (local.get $len) (i32.const 24)))
    (call $output (i32.const 65560) (i32.sub (local.get $len) (i32.const 24))) (i32.const 0)`
	// Changes the first record's value (key "a", so the value starts 25
	// bytes into the entry) in the module's copy, then emits it.
	changed := `(i32.store8 (i32.const 65585) (i32.const 90)) ` + identityCall
	cases := []struct {
		name, kind, call string
		ok               bool
		want             string
	}{
		{"map identity", "map", identityCall, true, ""},
		{"map twice", "map", twice, false, "exactly one main-output record per input record; this call had 3 inputs and emitted 6"},
		{"map none", "map", `(i32.const 0)`, false, "had 3 inputs and emitted 0"},
		{"filter identity", "filter", identityCall, true, ""},
		{"filter none", "filter", `(i32.const 0)`, true, ""},
		{"filter twice", "filter", twice, false, "main-output record 3 of this call is not"},
		{"filter changed", "filter", changed, false, "main-output record 0 of this call is not"},
		{"flat_map twice", "flat_map", twice, true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, inst := instantiateWAT(t, Limits{}, watOpts{kind: c.kind, call: c.call})
			in := batchOf("x", "y", "z")
			out, err := inst.Call(wasmabi.MethodProcess, in)
			if err == nil {
				err = inst.CheckOutput(wasmabi.MethodProcess, in[wasmabi.BatchHeaderSize:], 3, out)
			}
			if c.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantStage(t, err, ErrContract, "process", true)
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %q, want %q", err, c.want)
			}
		})
	}
	t.Run("open emits", func(t *testing.T) {
		_, inst := instantiateWAT(t, Limits{}, watOpts{call: `(call $output (i32.const 65560) (i32.const 0)) (if (i32.eqz (local.get $method)) (then (i32.store8 (i32.const 70000) (i32.const 1)) (call $output (i32.const 70000) (i32.const 24)))) (i32.const 0)`})
		err := inst.Open(nil)
		wantStage(t, err, ErrContract, "open", true)
	})
}

// TestUsage: an instance reports its calls, time and memory.
func TestUsage(t *testing.T) {
	limits := Limits{MemoryPages: 64, OutputBytes: 1 << 20}
	_, inst := instantiateWAT(t, limits, watOpts{})
	for range 3 {
		if _, err := inst.Call(wasmabi.MethodProcess, batchOf("a", "b")); err != nil {
			t.Fatal(err)
		}
	}
	u := inst.Usage()
	// The module starts with 2 pages and weir_buffer grows it to hold
	// 64 KiB (the smallest input buffer) at 64 KiB: 2 pages.
	if u.Calls < 3 || u.Fuel <= 0 || u.Memory != 2*65536 || u.PeakMemory != 2*65536 || u.HostBytes < hostFixedBytes || u.WorstCase != limits.InstanceWorstCase() {
		t.Fatalf("usage %+v", u)
	}
	inst.Close()
	if u := inst.Usage(); u.Memory != 0 || u.Calls < 3 {
		t.Fatalf("after close: %+v", u)
	}
}

// TestFuel: a call's fuel is exact: one unit per function entry and per
// 1024 loop iterations, whatever the refills of the counter in between.
func TestFuel(t *testing.T) {
	const iterations = 10 << 20
	call := fmt.Sprintf(`(local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const %d))))
    (i32.const 0)`, iterations)
	_, inst := instantiateWAT(t, Limits{CallTimeout: time.Minute}, watOpts{call: call})
	// The first call also asks weir_buffer for the input buffer.
	if _, err := inst.Call(wasmabi.MethodProcess, batchOf("a")); err != nil {
		t.Fatal(err)
	}
	before := inst.Usage().Fuel
	if _, err := inst.Call(wasmabi.MethodProcess, batchOf("a")); err != nil {
		t.Fatal(err)
	}
	// weir_call's entry, and one unit per 1024 iterations.
	if got, want := inst.Usage().Fuel-before, int64(1+iterations/1024); got != want {
		t.Fatalf("fuel of the call = %d, want %d", got, want)
	}
}

// TestBudget: instances reserve their worst case from the worker's budget;
// one that does not fit is refused before it runs, and closing gives back.
func TestBudget(t *testing.T) {
	limits := Limits{MemoryPages: 16, OutputBytes: 1 << 20}
	wasm := buildWAT(t, watOpts{})
	lc := limits
	(&Config{Limits: lc}).Validate()
	b := NewBudget(CodeWorstCase(len(wasm)) + 2*lc.InstanceWorstCase() + lc.InstanceWorstCase()/2)
	rt, err := NewRuntime(context.Background(), Config{Limits: limits, Budget: b})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	mod, err := rt.Load(context.Background(), "hostile.wasm", wasm)
	if err != nil {
		t.Fatal(err)
	}
	a, err := mod.Instantiate(context.Background(), "id", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Admit(mod, 2); !errors.Is(err, ErrBudget) {
		t.Errorf("Admit 2 more: %v, want ErrBudget", err)
	}
	if err := rt.Admit(mod, 1); err != nil {
		t.Errorf("Admit 1 more: %v", err)
	}
	c, err := mod.Instantiate(context.Background(), "id", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = mod.Instantiate(context.Background(), "id", nil)
	if !errors.Is(err, ErrBudget) || !strings.Contains(err.Error(), "reserved by 2 instances and 1 modules") {
		t.Fatalf("third instance: %v, want ErrBudget naming what is reserved", err)
	}
	c.Close()
	d, err := mod.Instantiate(context.Background(), "id", nil)
	if err != nil {
		t.Fatalf("after closing one: %v", err)
	}
	a.Close()
	d.Close()
	mod.Close()
	if b.Used() != 0 {
		t.Fatalf("%d bytes still reserved after closing everything", b.Used())
	}
}

// TestPeakRSS: a module that fills its memory to the limit and one that
// fills its output to the limit cost the process no more than
// InstanceWorstCase. Each runs in a child process (this test binary), whose
// peak RSS is compared with a child that runs a healthy module.
func TestPeakRSS(t *testing.T) {
	if os.Getenv("WEIR_RSS_CASE") != "" {
		rssChild(t, os.Getenv("WEIR_RSS_CASE"))
		return
	}
	peak := func(c string) int64 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestPeakRSS$", "-test.v")
		cmd.Env = append(os.Environ(), "WEIR_RSS_CASE="+c)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "rss child done") {
			t.Fatalf("child %s: %v\n%s", c, err, out)
		}
		return cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss * 1024
	}
	base := peak("healthy")
	worst := rssLimits.InstanceWorstCase()
	for _, c := range []string{"memory", "output"} {
		got := peak(c) - base
		t.Logf("%s: peak RSS %d MiB above the healthy child's; worst case %d MiB", c, got>>20, worst>>20)
		if got > worst {
			t.Errorf("%s: peak RSS grew by %d MiB, more than the worst case of %d MiB", c, got>>20, worst>>20)
		}
	}
	// The memory bomb must really have cost its memory, or the test
	// measures nothing.
	if got := peak("memory") - base; got < int64(rssLimits.MemoryPages)*65536/2 {
		t.Errorf("the memory bomb raised peak RSS by only %d MiB", got>>20)
	}
}

var rssLimits = Limits{MemoryPages: 1024, OutputBytes: 8 << 20, CallTimeout: 20 * time.Second}

func rssChild(t *testing.T, c string) {
	calls := map[string]string{
		"healthy": identityCall,
		// Grow to the limit, touching every page, then trap.
		"memory": `(local $p i32)
    (loop $l
      (if (i32.ne (memory.grow (i32.const 1)) (i32.const -1))
        (then (memory.fill (i32.mul (i32.sub (memory.size) (i32.const 1)) (i32.const 65536)) (i32.const 7) (i32.const 65536)) (br $l))))
    unreachable`,
		// Emit 64 KiB at a time until the output limit stops it.
		"output": `(loop $l (call $output (i32.const 0) (i32.const 65536)) (br $l)) (i32.const 0)`,
	}
	rt := newRuntime(t, rssLimits)
	mod, err := rt.Load(context.Background(), "hostile.wasm", buildWAT(t, watOpts{call: calls[c]}))
	if err != nil {
		t.Fatal(err)
	}
	inst, err := mod.Instantiate(context.Background(), "id", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = inst.Call(wasmabi.MethodProcess, batchOf("a"))
	if (c == "healthy") != (err == nil) {
		t.Fatalf("%s: %v", c, err)
	}
	inst.Close()
	fmt.Println("rss child done")
}
