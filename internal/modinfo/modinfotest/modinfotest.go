// Package modinfotest makes small, real ABI modules for tests of the code
// around modules (the registry, the Dispatcher, the CLI): WebAssembly text
// compiled to binary by wat2wasm (Debian package wabt), exporting the
// operators a test names. Their weir_call does nothing useful; they are
// for uploading and describing, not for running records.
package modinfotest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weirstream/weir/wasmabi"
)

// Options shape a module; the zero value is a valid ABI module with one
// map operator "id".
type Options struct {
	// Operators to declare; default one map "id".
	Operators []wasmabi.OperatorDesc
	// Version is the body of weir_abi_version; default the current one.
	Version string
	// Describe is the body of weir_describe; default output the descriptor.
	Describe string
	// Imports are extra import lines.
	Imports string
	// Memory is the memory declaration; default `(memory (export "memory") 2)`.
	Memory string
	// Salt is put in a data segment, so modules with equal operators can
	// still have different digests.
	Salt string
}

const tmpl = `(module
  (import "weir" "output" (func $output (param i32 i32)))
  (import "weir" "fail" (func $fail (param i32 i32)))
  {{IMPORTS}}
  {{MEMORY}}
  (data (i32.const 1024) "{{DESC}}")
  (data (i32.const 60000) "{{SALT}}")
  (func (export "weir_abi_version") (result i32) {{VERSION}})
  (func (export "weir_describe") {{DESCRIBE}})
  (func (export "weir_buffer") (param $size i32) (result i32) (i32.const 4096))
  (func (export "weir_call") (param $op i32) (param $method i32) (param $len i32) (result i32) (i32.const 0))
)`

// WAT returns the text of the module o describes.
func WAT(o Options) string {
	if len(o.Operators) == 0 {
		o.Operators = []wasmabi.OperatorDesc{{Name: "id", Kind: wasmabi.KindMap}}
	}
	desc, err := json.Marshal(wasmabi.Descriptor{SDK: "wat", Operators: o.Operators})
	if err != nil {
		panic(err)
	}
	if o.Version == "" {
		o.Version = fmt.Sprintf("(i32.const %d)", wasmabi.Version)
	}
	if o.Describe == "" {
		o.Describe = fmt.Sprintf("(call $output (i32.const 1024) (i32.const %d))", len(desc))
	}
	if o.Memory == "" {
		o.Memory = `(memory (export "memory") 2)`
	}
	esc := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return strings.NewReplacer("{{IMPORTS}}", o.Imports, "{{MEMORY}}", o.Memory, "{{DESC}}", esc.Replace(string(desc)),
		"{{SALT}}", esc.Replace(o.Salt), "{{VERSION}}", o.Version, "{{DESCRIBE}}", o.Describe).Replace(tmpl)
}

// Module compiles the module o describes.
func Module(t testing.TB, o Options) []byte {
	t.Helper()
	return Compile(t, WAT(o))
}

// Ops is a shorthand for Options.Operators: "name:kind" pairs.
func Ops(pairs ...string) []wasmabi.OperatorDesc {
	out := make([]wasmabi.OperatorDesc, len(pairs))
	for i, p := range pairs {
		name, kind, _ := strings.Cut(p, ":")
		out[i] = wasmabi.OperatorDesc{Name: name, Kind: wasmabi.Kind(kind)}
	}
	return out
}

// Compile turns WebAssembly text into binary with wat2wasm.
func Compile(t testing.TB, src string) []byte {
	t.Helper()
	wat2wasm, err := exec.LookPath("wat2wasm")
	if err != nil {
		t.Fatalf("wat2wasm not found: install the Debian package wabt (apt-get install wabt), or run `go tool task deps`")
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "m.wat"), filepath.Join(dir, "m.wasm")
	if err := os.WriteFile(in, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(wat2wasm, in, "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm: %v\n%s\n%s", err, b, src)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
