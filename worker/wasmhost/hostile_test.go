package wasmhost

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/wasmabi"
)

// watModule is a complete ABI v1 module in WebAssembly text: an identity
// operator whose weir_call body, version and extra imports a test replaces to
// make it hostile. The input buffer lives at 64 KiB; the descriptor at 1024.
const watModule = `(module
  (import "weir" "output" (func $output (param i32 i32)))
  (import "weir" "fail" (func $fail (param i32 i32)))
  {{IMPORTS}}
  (memory (export "memory") 2)
  (data (i32.const 1024) "{{DESC}}")
  (data (i32.const 2048) "record 2: amount is negative")
  (func (export "weir_abi_version") (result i32) {{VERSION}})
  (func (export "weir_describe") {{DESCRIBE}} (call $output (i32.const 1024) (i32.const {{DESCLEN}})))
  (func (export "weir_buffer") (param $size i32) (result i32)
    (local $need i32)
    ;; grow memory so that [65536, 65536+size) fits
    (local.set $need (i32.sub (i32.shr_u (i32.add (i32.add (local.get $size) (i32.const 65536)) (i32.const 65535)) (i32.const 16)) (memory.size)))
    (if (i32.gt_s (local.get $need) (i32.const 0))
      (then (if (i32.eq (memory.grow (local.get $need)) (i32.const -1)) (then unreachable))))
    (i32.const 65536))
  (func (export "weir_call") (param $op i32) (param $method i32) (param $len i32) (result i32)
    {{CALL}})
)`

const identityCall = `(if (i32.eq (local.get $method) (i32.const 1))
      (then (call $output (i32.const 65560) (i32.sub (local.get $len) (i32.const 24)))))
    (i32.const 0)`

// watOpts fill the template: call is weir_call's body, version
// weir_abi_version's, imports more fields after the imports (functions,
// a start section, exports), describe code run before weir_describe
// outputs the descriptor, kind the operator's kind (default map).
type watOpts struct{ call, version, imports, describe, kind string }

func buildWAT(t testing.TB, o watOpts) []byte {
	t.Helper()
	if o.call == "" {
		o.call = identityCall
	}
	if o.version == "" {
		o.version = "(i32.const 1)"
	}
	if o.kind == "" {
		o.kind = "map"
	}
	desc := `{"sdk":"wat","operators":[{"name":"id","kind":"` + o.kind + `"}]}`
	src := strings.NewReplacer("{{CALL}}", o.call, "{{VERSION}}", o.version, "{{IMPORTS}}", o.imports, "{{DESCRIBE}}", o.describe,
		"{{DESC}}", strings.ReplaceAll(desc, `"`, `\"`), "{{DESCLEN}}", strconv.Itoa(len(desc))).Replace(watModule)
	return mustWAT(t, src)
}

func newRuntime(t testing.TB, limits Limits) *Runtime {
	t.Helper()
	rt, err := NewRuntime(context.Background(), Config{Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt
}

// instantiateWAT loads a WAT module under limits and instantiates its
// operator "id"; everything is closed when the test ends.
func instantiateWAT(t *testing.T, limits Limits, o watOpts) (*Module, *Instance) {
	t.Helper()
	rt := newRuntime(t, limits)
	mod, err := rt.Load(context.Background(), "hostile.wasm", buildWAT(t, o))
	if err != nil {
		t.Fatal(err)
	}
	inst, err := mod.Instantiate(context.Background(), "id", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.Close() })
	return mod, inst
}

func batchOf(values ...string) []byte {
	b := wasmabi.AppendBatchHeader(nil, wasmabi.BatchHeader{Count: uint32(len(values)), Watermark: wasmabi.NoWatermark})
	for i, v := range values {
		b = wasmabi.AppendEntry(b, &wasmabi.Entry{Kind: wasmabi.EntryRecord, Key: []byte{byte('a' + i)}, Value: []byte(v), Timestamp: int64(i)})
	}
	return b
}

func TestIdentityWAT(t *testing.T) {
	rt := newRuntime(t, Limits{})
	mod, err := rt.Load(context.Background(), "id.wasm", buildWAT(t, watOpts{}))
	if err != nil {
		t.Fatal(err)
	}
	if got := mod.Descriptor().Names(); len(got) != 1 || got[0] != "id" {
		t.Fatalf("operators = %v", got)
	}
	inst, err := mod.Instantiate(context.Background(), "id", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	in := batchOf("x", "hello", "")
	for round := 0; round < 3; round++ { // the instance is reusable
		out, err := inst.Call(wasmabi.MethodProcess, in)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, in[wasmabi.BatchHeaderSize:]) {
			t.Fatalf("round %d: output differs from input entries", round)
		}
	}
	// A batch bigger than the first buffer makes the host ask for more.
	big := make([]string, 5000)
	for i := range big {
		big[i] = strings.Repeat("v", 100)
	}
	in = batchOf(big...)
	out, err := inst.Call(wasmabi.MethodProcess, in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, in[wasmabi.BatchHeaderSize:]) {
		t.Fatal("big batch: output differs from input entries")
	}
	if _, err := mod.Instantiate(context.Background(), "nope", nil); !errors.Is(err, ErrNoOperator) || !strings.Contains(err.Error(), "exports id") {
		t.Fatalf("unknown operator: %v", err)
	}
}

// TestHostileModules: every way a module can misbehave ends in a typed error
// naming the module and operator, and the host (this test process) goes on.
func TestHostileModules(t *testing.T) {
	limits := Limits{MemoryPages: 64, CallTimeout: 2 * time.Second, OutputBytes: 1 << 20} // generous: CI machines are busy, and -race is slow
	cases := []struct {
		name    string
		opts    watOpts
		loadErr error // expected from Load, else from the first call
		callErr error
		want    string // a substring of the message
	}{
		{name: "infinite loop", opts: watOpts{call: `(loop $l (br $l)) (i32.const 0)`}, callErr: ErrTimeout, want: "time limit"},
		{name: "memory bomb", opts: watOpts{call: `(loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1)))) unreachable`}, callErr: ErrMemoryLimit, want: "64 pages"},
		{name: "trap", opts: watOpts{call: `(i32.div_u (i32.const 1) (i32.const 0))`}, callErr: ErrTrap, want: "integer divide by zero"},
		{name: "unreachable", opts: watOpts{call: `unreachable`}, callErr: ErrTrap, want: "unreachable"},
		{name: "malformed output", opts: watOpts{call: `(call $output (i32.const 1024) (i32.const 30)) (i32.const 0)`}, callErr: ErrBadOutput, want: "entry 0"},
		{name: "output outside memory", opts: watOpts{call: `(call $output (i32.const 131000) (i32.const 1000)) (i32.const 0)`}, callErr: ErrHostCall, want: "outside the module's memory"},
		{name: "output limit", opts: watOpts{call: `(loop $l (call $output (i32.const 0) (i32.const 65536)) (br $l)) (i32.const 0)`}, callErr: ErrOutputLimit, want: "1048576 bytes"},
		{name: "operator error", opts: watOpts{call: `(call $fail (i32.const 2048) (i32.const 28)) (i32.const 1)`}, callErr: ErrOperator, want: "process, record 2 of the batch: operator failed: amount is negative"},
		{name: "unknown import", opts: watOpts{imports: `(import "env" "socket" (func (param i32) (result i32)))`}, loadErr: ErrImport, want: "env.socket"},
		{name: "unknown weir import", opts: watOpts{imports: `(import "weir" "teleport" (func))`}, loadErr: ErrImport, want: "weir.teleport is not a weir ABI v1 function"},
		{name: "wrong signature", opts: watOpts{imports: `(import "weir" "log" (func (param i64)))`}, loadErr: ErrImport, want: "wrong signature"},
		{name: "other ABI version", opts: watOpts{version: `(i32.const 2)`}, loadErr: ErrVersion, want: "speaks ABI v2, this host speaks v1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.loadErr != nil {
				_, err := newRuntime(t, limits).Load(context.Background(), "hostile.wasm", buildWAT(t, c.opts))
				checkErr(t, err, c.loadErr, c.want)
				return
			}
			mod, inst := instantiateWAT(t, limits, c.opts)
			start := time.Now()
			_, err := inst.Call(wasmabi.MethodProcess, batchOf("a", "b", "c"))
			checkErr(t, err, c.callErr, c.want)
			if time.Since(start) > 10*time.Second {
				t.Errorf("the call took %v to fail", time.Since(start))
			}
			var werr *Error
			errors.As(err, &werr)
			if werr.Module != "hostile.wasm" || werr.Operator != "id" {
				t.Errorf("error names module %q operator %q", werr.Module, werr.Operator)
			}
			// After a poisoning error the instance refuses work; after an
			// operator error it keeps serving.
			_, err2 := inst.Call(wasmabi.MethodProcess, batchOf("a"))
			if werr.Poisoning() && err2 != err {
				t.Errorf("after a poisoning error the next call returned %v", err2)
			}
			if !werr.Poisoning() && err2 != nil && !errors.Is(err2, ErrOperator) {
				t.Errorf("after an operator error the next call returned %v", err2)
			}
			// The module can still be instantiated again.
			inst2, err := mod.Instantiate(context.Background(), "id", nil)
			if err != nil {
				t.Fatalf("re-instantiating after %s: %v", c.name, err)
			}
			inst2.Close()
		})
	}
}

func checkErr(t *testing.T, err, want error, substr string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	var werr *Error
	if !errors.As(err, &werr) {
		t.Fatalf("err is a %T, want *wasmhost.Error", err)
	}
	if !strings.Contains(err.Error(), substr) {
		t.Fatalf("err = %q, want it to contain %q", err, substr)
	}
	if !strings.Contains(err.Error(), "hostile.wasm") {
		t.Fatalf("err = %q does not name the module", err)
	}
}

func TestInvalidModule(t *testing.T) {
	rt := newRuntime(t, Limits{})
	for name, b := range map[string][]byte{
		"empty":      nil,
		"text":       []byte("hello, I am not wasm"),
		"truncated":  buildWAT(t, watOpts{})[:40],
		"no exports": mustWAT(t, `(module (memory (export "memory") 1))`),
	} {
		_, err := rt.Load(context.Background(), "hostile.wasm", b)
		if err == nil {
			t.Errorf("%s: loaded", name)
			continue
		}
		if !errors.Is(err, ErrInvalidModule) && !errors.Is(err, ErrVersion) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func mustWAT(t testing.TB, src string) []byte {
	t.Helper()
	wat2wasm, err := exec.LookPath("wat2wasm")
	if err != nil {
		t.Fatalf("wat2wasm not found: install the Debian package wabt (apt-get install wabt), or run `go tool task deps`")
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "m.wat"), filepath.Join(dir, "m.wasm")
	os.WriteFile(in, []byte(src), 0o644)
	if b, err := exec.Command(wat2wasm, in, "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm: %v\n%s", err, b)
	}
	b, _ := os.ReadFile(out)
	return b
}
