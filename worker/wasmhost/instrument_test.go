package wasmhost

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/weirstream/weir/wasmabi"
)

// TestInterruptUnderGC: a module spinning in a loop must not hold off the
// garbage collector (whose stop-the-world cannot interrupt machine code), and
// must still be stopped by the watchdog while collections run.
func TestInterruptUnderGC(t *testing.T) {
	_, inst := instantiateWAT(t, Limits{CallTimeout: 200 * time.Millisecond}, watOpts{call: `(loop $l (br $l)) (i32.const 0)`})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	gcs := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				runtime.GC()
				gcs++
			}
		}
	}()
	_, err := inst.Call(wasmabi.MethodProcess, batchOf("a"))
	close(stop)
	wg.Wait()
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if gcs < 2 {
		t.Fatalf("only %d collections completed while the module looped", gcs)
	}
}

// TestInterruptRecursion: a recursive function without loops is stopped too
// (the check sits at function entries). TestIdentityWAT and the SDK tests
// run instrumented modules that must compute what they did before.
func TestInterruptRecursion(t *testing.T) {
	recursive := watOpts{
		imports: `(func $spin (param i32) (result i32) (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 0)) (else (call $spin (i32.sub (local.get 0) (i32.const 1))) (call $spin (i32.sub (local.get 0) (i32.const 1))) (i32.add))))`,
		call:    `(drop (call $spin (i32.const 60))) (i32.const 0)`,
	}
	_, inst := instantiateWAT(t, Limits{CallTimeout: 200 * time.Millisecond}, recursive)
	if _, err := inst.Call(wasmabi.MethodProcess, batchOf("a")); !errors.Is(err, ErrTimeout) {
		t.Fatalf("2^60 calls: err = %v, want a timeout", err)
	}
}

func TestInstrumentRejects(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":        nil,
		"bad magic":    []byte("\x00wsm\x01\x00\x00\x00"),
		"version 2":    []byte("\x00asm\x02\x00\x00\x00"),
		"cut section":  []byte("\x00asm\x01\x00\x00\x00\x01\x10\x00"),
		"no memory":    mustWAT(t, `(module (func (export "f") (loop (br 0))))`),
		"already used": mustWAT(t, `(module (memory 1) (global (export "weir_interrupt") i32 (i32.const 0)))`),
	} {
		if _, err := instrument(b); !errors.Is(err, ErrInstrument) {
			t.Errorf("%s: err = %v, want ErrInstrument", name, err)
		}
	}
}

// FuzzInstrument: instrument reads untrusted bytes. It must never panic, and
// whatever wazero accepts before instrumenting it must accept after.
func FuzzInstrument(f *testing.F) {
	f.Add(buildWAT(f, watOpts{}))
	f.Add(buildWAT(f, watOpts{call: `(loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1)))) unreachable`}))
	f.Add(mustWAT(f, `(module (memory 1) (func (param i32) (result i32) (block (loop (br_table 0 1 1 (local.get 0)))) (i32.const 7)) (data (i32.const 0) "x"))`))
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := instrument(b)
		if err != nil {
			return
		}
		rt := wazero.NewRuntime(ctx)
		defer rt.Close(ctx)
		if _, err := rt.CompileModule(ctx, b); err != nil {
			return // invalid before: nothing to keep
		}
		if _, err := rt.CompileModule(ctx, out); err != nil {
			t.Fatalf("valid module became invalid: %v", err)
		}
	})
}
