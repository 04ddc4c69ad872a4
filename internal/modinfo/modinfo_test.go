package modinfo_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/modbuild"
	"github.com/weirstream/weir/internal/modinfo"
	"github.com/weirstream/weir/internal/modinfo/modinfotest"
	"github.com/weirstream/weir/wasmabi"
)

func TestDescribeWAT(t *testing.T) {
	ops := modinfotest.Ops("split:flat_map", "count:process")
	ops[1].SideOutputs = []string{"late"}
	b := modinfotest.Module(t, modinfotest.Options{Operators: ops})
	info, err := modinfo.Describe(context.Background(), b, modinfo.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if info.Digest != hex.EncodeToString(sum[:]) || info.Size != int64(len(b)) || info.ABI != wasmabi.Version || info.SDK != "wat" {
		t.Errorf("info = %+v", info)
	}
	if !reflect.DeepEqual(info.Operators, ops) {
		t.Errorf("operators = %+v, want %+v", info.Operators, ops)
	}
	if want := []string{"weir.fail", "weir.output"}; !reflect.DeepEqual(info.Imports, want) {
		t.Errorf("imports = %v, want %v", info.Imports, want)
	}
}

// TestDescribeC describes a real module built by clang with the C SDK.
func TestDescribeC(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile("../../examples/c-upper/upper.c")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "upper.c"), src, 0o644)
	res, err := modbuild.Build(context.Background(), modbuild.Options{Dir: dir, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(res.Out)
	if err != nil {
		t.Fatal(err)
	}
	info, err := modinfo.Describe(context.Background(), b, modinfo.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	// The operators WEIR_OPERATORS in upper.c declares.
	want := []wasmabi.OperatorDesc{
		{Name: "upper", Kind: wasmabi.KindMap}, {Name: "nonempty", Kind: wasmabi.KindFilter},
		{Name: "words", Kind: wasmabi.KindFlatMap}, {Name: "count", Kind: wasmabi.KindProcess, SideOutputs: []string{"expired"}},
	}
	if !reflect.DeepEqual(info.Operators, want) {
		t.Errorf("operators = %+v, want %+v", info.Operators, want)
	}
}

func TestDescribeRefuses(t *testing.T) {
	valid := modinfotest.Module(t, modinfotest.Options{})
	cases := []struct {
		name string
		wasm []byte
		lim  modinfo.Limits
		want error
		msg  string
	}{
		{"empty", nil, modinfo.Limits{}, modinfo.ErrNotWasm, "preamble"},
		{"text", []byte("hello, world"), modinfo.Limits{}, modinfo.ErrNotWasm, "preamble"},
		{"wat", []byte("  (module)"), modinfo.Limits{}, modinfo.ErrNotWasm, "wat2wasm"},
		{"binary version 2", append([]byte{0, 'a', 's', 'm', 2, 0, 0, 0}, valid[8:]...), modinfo.Limits{}, modinfo.ErrNotWasm, "binary version"},
		{"truncated", valid[:len(valid)/2], modinfo.Limits{}, modinfo.ErrInvalid, "compiling"},
		{"too large", valid, modinfo.Limits{MaxBytes: len(valid) - 1}, modinfo.ErrTooLarge, "limit"},
		{"abi v2", modinfotest.Module(t, modinfotest.Options{Version: "(i32.const 2)"}), modinfo.Limits{}, modinfo.ErrABI, "ABI v2"},
		{"unknown import", modinfotest.Module(t, modinfotest.Options{Imports: `(import "weir" "teleport" (func (param i32)))`}), modinfo.Limits{}, modinfo.ErrABI, "weir.teleport"},
		{"wrong signature", modinfotest.Module(t, modinfotest.Options{Imports: `(import "weir" "log" (func (param i32)))`}), modinfo.Limits{}, modinfo.ErrABI, "(i32, i32, i32)"},
		{"foreign import", modinfotest.Module(t, modinfotest.Options{Imports: `(import "env" "socket" (func))`}), modinfo.Limits{}, modinfo.ErrInvalid, "env.socket"},
		{"imported memory", modinfotest.Compile(t, `(module (import "env" "mem" (memory 1)))`), modinfo.Limits{}, modinfo.ErrInvalid, "memory"},
		{"no exports", modinfotest.Compile(t, `(module (memory (export "memory") 1))`), modinfo.Limits{}, modinfo.ErrABI, "weir_abi_version"},
		{"loops", modinfotest.Module(t, modinfotest.Options{Describe: `(loop $l (br $l))`}), modinfo.Limits{Timeout: 200 * time.Millisecond}, modinfo.ErrLimit, "200ms"},
		{"traps", modinfotest.Module(t, modinfotest.Options{Describe: `unreachable`}), modinfo.Limits{}, modinfo.ErrInvalid, "weir_describe"},
		{"fails", modinfotest.Module(t, modinfotest.Options{Describe: `(call $fail (i32.const 1024) (i32.const 3)) unreachable`}), modinfo.Limits{}, modinfo.ErrInvalid, `failed: {"s`},
		{"bad descriptor", modinfotest.Module(t, modinfotest.Options{Describe: `(call $output (i32.const 1024) (i32.const 5))`}), modinfo.Limits{}, modinfo.ErrInvalid, "descriptor"},
		{"reads outside memory", modinfotest.Module(t, modinfotest.Options{Describe: `(call $output (i32.const 200000) (i32.const 5))`}), modinfo.Limits{}, modinfo.ErrInvalid, "outside"},
		{"huge descriptor", modinfotest.Module(t, modinfotest.Options{Describe: `(loop $l (call $output (i32.const 0) (i32.const 65536)) (br $l))`}), modinfo.Limits{}, modinfo.ErrLimit, "larger than"},
		{"calls state", modinfotest.Module(t, modinfotest.Options{
			Imports:  `(import "weir" "timer" (func $timer (param i32 i32 i64 i32 i32)))`,
			Describe: `(call $timer (i32.const 0) (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0))`}), modinfo.Limits{}, modinfo.ErrInvalid, "weir.timer"},
		{"memory above limit", modinfotest.Module(t, modinfotest.Options{Memory: `(memory (export "memory") 300)`}), modinfo.Limits{MemoryPages: 256}, modinfo.ErrInvalid, "memory"},
		{"grows above limit", modinfotest.Module(t, modinfotest.Options{Describe: `(if (i32.eq (memory.grow (i32.const 1000)) (i32.const -1)) (then unreachable))`}), modinfo.Limits{MemoryPages: 256}, modinfo.ErrInvalid, "unreachable"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			info, err := modinfo.Describe(context.Background(), c.wasm, c.lim)
			if err == nil {
				t.Fatalf("no error; info %+v", info)
			}
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("err = %v; want %v containing %q", err, c.want, c.msg)
			}
		})
	}
}

func FuzzDescribe(f *testing.F) {
	f.Add([]byte{0, 'a', 's', 'm', 1, 0, 0, 0})
	f.Add([]byte{0, 'a', 's', 'm', 1, 0, 0, 0, 1, 4, 1, 0x60, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := modinfo.Describe(context.Background(), b, modinfo.Limits{Timeout: time.Second})
		if err == nil {
			return
		}
		for _, e := range []error{modinfo.ErrNotWasm, modinfo.ErrTooLarge, modinfo.ErrABI, modinfo.ErrInvalid, modinfo.ErrLimit} {
			if errors.Is(err, e) {
				return
			}
		}
		t.Fatalf("error wraps no modinfo error: %v", err)
	})
}
