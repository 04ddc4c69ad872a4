package task_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weirstream/weir/worker/task"
	"github.com/weirstream/weir/worker/wasmhost"
)

// watOp is a WebAssembly operator "op" of the given kind whose weir_call
// walks the batch: for each record at $p (key length at $p+4, value
// length at $p+16, headers length at $p+20, key at $p+24) it runs perRecord,
// and at the end of a process call it emits the input entries unchanged
// (unless perRecord emitted itself and returned early).
func watOp(kind, perRecord, extra string) string {
	desc := `{"operators":[{"name":"op","kind":"` + kind + `"}]}`
	return `(module
  (import "weir" "output" (func $output (param i32 i32)))
  (import "weir" "log" (func $log (param i32 i32 i32)))
  (import "weir" "timer" (func $timer (param i32 i32 i64 i32 i32)))
  (memory (export "memory") 2)
  (data (i32.const 1024) "` + strings.ReplaceAll(desc, `"`, `\"`) + `")
  (data (i32.const 2048) "hello from the module")
  ` + extra + `
  (func (export "weir_abi_version") (result i32) (i32.const 1))
  (func (export "weir_describe") (call $output (i32.const 1024) (i32.const ` + strconv.Itoa(len(desc)) + `)))
  (func (export "weir_buffer") (param $size i32) (result i32)
    (local $need i32)
    (local.set $need (i32.sub (i32.shr_u (i32.add (i32.add (local.get $size) (i32.const 65536)) (i32.const 65535)) (i32.const 16)) (memory.size)))
    (if (i32.gt_s (local.get $need) (i32.const 0))
      (then (if (i32.eq (memory.grow (local.get $need)) (i32.const -1)) (then unreachable))))
    (i32.const 65536))
  (func (export "weir_call") (param $op i32) (param $method i32) (param $len i32) (result i32)
    (local $p i32) (local $end i32) (local $i i32)
    (if (i32.ne (local.get $method) (i32.const 1)) (then (return (i32.const 0))))
    (local.set $p (i32.const 65560))
    (local.set $end (i32.add (i32.const 65536) (local.get $len)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
      ` + perRecord + `
      (local.set $p (i32.add (local.get $p) (i32.add (i32.const 24)
        (i32.add (i32.load (i32.add (local.get $p) (i32.const 4)))
          (i32.add (i32.load (i32.add (local.get $p) (i32.const 16))) (i32.load (i32.add (local.get $p) (i32.const 20))))))))
      (br $next)))
    (call $output (i32.const 65560) (i32.sub (local.get $len) (i32.const 24)))
    (i32.const 0)))`
}

// value13 is true when the record at $p has the value "13".
const value13 = `(i32.and (i32.eq (i32.load (i32.add (local.get $p) (i32.const 16))) (i32.const 2))
        (i32.eq (i32.load16_u (i32.add (i32.add (local.get $p) (i32.const 24)) (i32.load (i32.add (local.get $p) (i32.const 4))))) (i32.const 0x3331)))`

// watStage swaps the native operator of the job's first operator node
// for a WebAssembly one, compiled from src under limits.
func watStage(t *testing.T, job *task.Job, src string, limits wasmhost.Limits) *wasmhost.Runtime {
	t.Helper()
	rt, err := wasmhost.NewRuntime(context.Background(), wasmhost.Config{Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	mod, err := rt.Load(context.Background(), "hostile.wasm", compileWAT(t, src))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range job.Vertices {
		for _, n := range v.Nodes {
			if n.Kind == task.NodeOperator {
				_, n.Desc, _ = mod.Descriptor().Operator("op")
				n.New = func(ctx context.Context, _ int, svc task.Services) (task.Operator, error) {
					return mod.Instantiate(ctx, "op", svc)
				}
				return rt
			}
		}
	}
	t.Fatal("no operator node")
	return nil
}

func compileWAT(t *testing.T, src string) []byte {
	t.Helper()
	bin, err := exec.LookPath("wat2wasm")
	if err != nil {
		t.Fatal("wat2wasm not found: install the Debian package wabt")
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "m.wat"), filepath.Join(dir, "m.wasm")
	os.WriteFile(in, []byte(src), 0o644)
	if b, err := exec.Command(bin, in, "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm: %v\n%s", err, b)
	}
	b, _ := os.ReadFile(out)
	return b
}

func numbered(n int) []rec {
	var in []rec
	for i := range n {
		in = append(in, rec{"k" + strconv.Itoa(i), strconv.Itoa(i), int64(i)})
	}
	return in
}

// healthyAlongside runs a healthy native job while f runs a hostile one,
// and checks that it finishes with every record: one bad module does not
// take the process, or the other jobs in it, down.
func healthyAlongside(t *testing.T, f func()) {
	t.Helper()
	in := numbered(200)
	job, out := build(t, "healthy-"+t.Name(), in, 1, task.WatermarkSpec{Strategy: task.WatermarkBounded},
		stage{op: "t_split", parallelism: 2, partition: task.Rebalance})
	done := make(chan error, 1)
	go func() { done <- run(t, job) }()
	f()
	if err := <-done; err != nil {
		t.Fatalf("the healthy job beside the hostile one failed: %v", err)
	}
	if len(out.recs) != len(in) {
		t.Fatalf("the healthy job beside the hostile one emitted %d records of %d", len(out.recs), len(in))
	}
}

// TestTrapNamesRecord: a trap in a stateless operator is narrowed down to
// its record, which the error names (offset and key) and which on_error
// skip drops, a fresh instance running the rest.
func TestTrapNamesRecord(t *testing.T) {
	trap13 := watOp("map", `(if `+value13+` (then unreachable))`, "")
	in := numbered(30)
	healthyAlongside(t, func() {
		job, _ := build(t, "trap-fail", in, 1, task.WatermarkSpec{Strategy: task.WatermarkBounded},
			stage{op: "t_fail13", parallelism: 1, partition: task.Forward})
		watStage(t, job, trap13, wasmhost.Limits{})
		err := run(t, job)
		var werr *wasmhost.Error
		if !errors.As(err, &werr) || !errors.Is(err, wasmhost.ErrTrap) {
			t.Fatalf("err = %v, want a trap", err)
		}
		for _, want := range []string{"operator op0 subtask 0", "module hostile.wasm", "operator op)", "process", `record 13 of the subtask's input (key "k13")`, "module trapped", "unreachable"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("err = %q lacks %q", err, want)
			}
		}
		if strings.Contains(err.Error(), "wasmhost:") {
			t.Errorf("err = %q repeats the package prefix", err)
		}
	})
	for _, policy := range []task.ErrorPolicy{task.OnErrorSkip, task.OnErrorDivert} {
		t.Run(string(policy), func(t *testing.T) {
			job, out := build(t, "trap-"+string(policy), in, 1, task.WatermarkSpec{Strategy: task.WatermarkBounded},
				stage{op: "t_fail13", parallelism: 1, partition: task.Forward, onError: policy, side: []string{"errors"}})
			watStage(t, job, trap13, wasmhost.Limits{})
			r, err := task.Start(context.Background(), job, task.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Wait(); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range out.recs {
				got = append(got, r.value)
			}
			want := []string{}
			for _, r := range in {
				if r.value != "13" {
					want = append(want, r.value)
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("%s: got %v, want every record but 13, once, in order", policy, got)
			}
			if c := r.Counters()["op0.records_failed"]; c != 1 {
				t.Errorf("records_failed = %d, want 1", c)
			}
		})
	}
	t.Run("stateful", func(t *testing.T) {
		// A keyed process that traps cannot be retried record by record:
		// the error names the batch's records instead.
		job, _ := build(t, "trap-process", in, 1, task.WatermarkSpec{Strategy: task.WatermarkBounded},
			stage{op: "t_count", parallelism: 1, partition: task.KeyBy, onError: task.OnErrorSkip})
		watStage(t, job, watOp("process", `(if `+value13+` (then unreachable))`, ""), wasmhost.Limits{})
		err := run(t, job)
		if !errors.Is(err, wasmhost.ErrTrap) || !strings.Contains(err.Error(), "one of records") || !strings.Contains(err.Error(), "on_error: skip applies to map, filter and flat_map") {
			t.Fatalf("err = %v, want the batch's records named and why skip does not apply", err)
		}
	})
}

// TestContractInJob: a map that emits two records per input fails its job
// with the contract named.
func TestContractInJob(t *testing.T) {
	healthyAlongside(t, func() {
		job, _ := build(t, "contract", numbered(20), 1, task.WatermarkSpec{Strategy: task.WatermarkBounded},
			stage{op: "t_fail13", parallelism: 1, partition: task.Forward})
		// Emits each record on its own, then the whole batch again.
		twice := watOp("map", `(call $output (local.get $p) (i32.add (i32.const 24) (i32.add (i32.load (i32.add (local.get $p) (i32.const 4))) (i32.load (i32.add (local.get $p) (i32.const 16))))))`, "")
		watStage(t, job, twice, wasmhost.Limits{})
		err := run(t, job)
		if !errors.Is(err, wasmhost.ErrContract) || !strings.Contains(err.Error(), "operator op0 subtask 0") || !strings.Contains(err.Error(), "exactly one main-output record per input record") {
			t.Fatalf("err = %v, want the map contract named", err)
		}
	})
}

// captureHandler keeps the records a Logger receives.
type captureHandler struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *captureHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *captureHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.recs = append(h.recs, r)
	h.mu.Unlock()
	return nil
}
func (h *captureHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *captureHandler) WithGroup(string) slog.Handler      { return h }

// TestLogsRateLimited: a module that logs in a loop reaches the Logger at
// the rate limit with a count of what was dropped, and the job keeps a
// bounded ring of recent lines per subtask.
func TestLogsRateLimited(t *testing.T) {
	spam := watOp("map", `(local.set $i (i32.const 0))
      (loop $l
        (call $log (i32.const 1) (i32.const 2048) (i32.const 21))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $i) (i32.const 100))))`, "")
	job, out := build(t, "logs", numbered(70), 1, task.WatermarkSpec{Strategy: task.WatermarkBounded},
		stage{op: "t_fail13", parallelism: 1, partition: task.Forward})
	watStage(t, job, spam, wasmhost.Limits{})
	h := &captureHandler{}
	r, err := task.Start(context.Background(), job, task.Options{Logger: slog.New(h)})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Wait(); err != nil {
		t.Fatal(err)
	}
	if len(out.recs) != 70 {
		t.Fatalf("%d records out of 70", len(out.recs))
	}
	// 70 records x 100 lines, at most 1000 per call: batches of 7 records
	// log 700 lines each, 10 batches.
	stats := r.LogStats()
	if len(stats) != 1 || stats[0].Operator != "op0" || stats[0].Lines != 7000 || stats[0].Dropped == 0 {
		t.Fatalf("log stats %+v, want 7000 lines of op0 subtask 0, some dropped", stats)
	}
	lines := r.Logs("op0")
	if len(lines) == 0 || len(lines) > 128 || lines[0].Message != "hello from the module" || lines[0].Operator != "op0" {
		t.Fatalf("%d lines kept (first %+v), want at most 128 of op0", len(lines), lines[0])
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	passed := int64(len(h.recs))
	if passed+stats[0].Dropped < 7000 || passed > 7000-stats[0].Dropped+int64(len(h.recs)) || passed > 400 {
		t.Fatalf("%d records reached the Logger with %d dropped of 7000; want the rate limit to hold", passed, stats[0].Dropped)
	}
}

// TestTimerCap: a module that registers timers without end fails with the
// cap named, instead of growing the host.
func TestTimerCap(t *testing.T) {
	healthyAlongside(t, func() {
		// For the first record's key, register a million event-time timers.
		flood := watOp("process", `(local.set $i (i32.const 0))
      (loop $l
        (call $timer (i32.const 1) (i32.const 0) (i64.extend_i32_u (local.get $i)) (i32.add (local.get $p) (i32.const 24)) (i32.load (i32.add (local.get $p) (i32.const 4))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $i) (i32.const 1000000))))`, "")
		job, _ := build(t, "timers", numbered(5), 1, task.WatermarkSpec{Strategy: task.WatermarkBounded},
			stage{op: "t_count", parallelism: 1, partition: task.KeyBy})
		watStage(t, job, flood, wasmhost.Limits{})
		err := run(t, job)
		if !errors.Is(err, wasmhost.ErrHostLimit) || !strings.Contains(err.Error(), "timers of operator op0 subtask 0 hold") {
			t.Fatalf("err = %v, want the timer cap named", err)
		}
	})
}

// TestCancelStopsRunningCall: cancelling a job stops a call that loops,
// long before its time limit.
func TestCancelStopsRunningCall(t *testing.T) {
	loop := watOp("map", `(call $log (i32.const 1) (i32.const 2048) (i32.const 21)) (loop $forever (br $forever))`, "")
	job, _ := build(t, "cancel-loop", numbered(5), 1, task.WatermarkSpec{Strategy: task.WatermarkBounded},
		stage{op: "t_fail13", parallelism: 1, partition: task.Forward})
	watStage(t, job, loop, wasmhost.Limits{CallTimeout: 10 * time.Minute})
	var r *task.Run
	logged := make(chan struct{})
	var once sync.Once
	h := logFunc(func() { once.Do(func() { close(logged) }) })
	r, err := task.Start(context.Background(), job, task.Options{Logger: slog.New(h)})
	if err != nil {
		t.Fatal(err)
	}
	<-logged // the module is in its loop
	start := time.Now()
	r.Cancel()
	err = r.Wait()
	if !errors.Is(err, context.Canceled) || !errors.Is(err, wasmhost.ErrCanceled) {
		t.Fatalf("err = %v, want the call stopped by the cancel", err)
	}
	t.Logf("stopped %v after Cancel", time.Since(start))
	if d := time.Since(start); d > time.Minute {
		t.Fatalf("took %v to stop", d)
	}
}

type logFunc func()

func (f logFunc) Enabled(context.Context, slog.Level) bool  { return true }
func (f logFunc) Handle(context.Context, slog.Record) error { f(); return nil }
func (f logFunc) WithAttrs([]slog.Attr) slog.Handler        { return f }
func (f logFunc) WithGroup(string) slog.Handler             { return f }
