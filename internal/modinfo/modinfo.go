// Package modinfo reads what an operator module declares about itself —
// its ABI version, its operators and its imports — without trusting it.
// Describe checks the bytes are WebAssembly, checks the imports against the
// ABI contract (wasmabi.Imports), and instantiates the module once in a
// fresh wazero runtime of its own (no filesystem, no network, fake clocks,
// no host state) under a memory and a time limit, to run the version
// handshake and the describe export, in wazero's interpreter.
//
// It exists so that the coordinator's module registry can validate uploads
// without importing the worker's host (worker/wasmhost): the dependency
// rule keeps the coordinator and the worker apart, and both may import this
// leaf. The worker still checks every module again when it loads one.
package modinfo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/weirstream/weir/wasmabi"
)

// Defaults of Limits.
const (
	DefaultMaxBytes    = 64 << 20
	DefaultMemoryPages = 1024 // 64 MiB
	DefaultTimeout     = 10 * time.Second
)

// Limits bound one Describe.
type Limits struct {
	// MaxBytes is the largest module accepted (default 64 MiB).
	MaxBytes int
	// MemoryPages caps the module's linear memory, in 64 KiB pages
	// (default 1024, 64 MiB).
	MemoryPages uint32
	// Timeout caps compiling, instantiating and describing together
	// (default 10s).
	Timeout time.Duration
}

// Validate fills defaults and checks the values.
func (l *Limits) Validate() error {
	if l.MaxBytes == 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MemoryPages == 0 {
		l.MemoryPages = DefaultMemoryPages
	}
	if l.Timeout == 0 {
		l.Timeout = DefaultTimeout
	}
	switch {
	case l.MaxBytes < 0:
		return fmt.Errorf("modinfo: negative size limit %d", l.MaxBytes)
	case l.MemoryPages > 65536:
		return fmt.Errorf("modinfo: memory limit of %d pages is above the 65536 pages (4 GiB) of wasm32", l.MemoryPages)
	case l.Timeout < 0:
		return fmt.Errorf("modinfo: negative time limit %v", l.Timeout)
	}
	return nil
}

// Info is what a module declares, and its identity.
type Info struct {
	// Digest is the lowercase hex sha256 of the module's bytes.
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
	// ABI is the ABI version the module reported (always wasmabi.Version:
	// Describe refuses others).
	ABI       int                    `json:"abi"`
	SDK       string                 `json:"sdk,omitempty"`
	Operators []wasmabi.OperatorDesc `json:"operators"`
	// Imports lists the module's imports as "module.name", sorted.
	Imports []string `json:"imports"`
}

// Errors Describe wraps; every error it returns wraps exactly one.
var (
	ErrNotWasm  = errors.New("modinfo: not a WebAssembly module")
	ErrTooLarge = errors.New("modinfo: module too large")
	ErrABI      = errors.New("modinfo: module built for another ABI version")
	ErrInvalid  = errors.New("modinfo: invalid module")
	ErrLimit    = errors.New("modinfo: module exceeded a limit while describing itself")
)

// wasmMagic is the preamble of binary WebAssembly version 1.
var wasmMagic = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

// Digest returns the lowercase hex sha256 of b, the identity of a module.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Describe checks wasm and returns what it declares. ctx may cancel it
// early; lim bounds it.
func Describe(ctx context.Context, wasm []byte, lim Limits) (*Info, error) {
	if err := lim.Validate(); err != nil {
		return nil, err
	}
	if len(wasm) > lim.MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(wasm), lim.MaxBytes)
	}
	if !bytes.HasPrefix(wasm, wasmMagic) {
		what := "it does not start with the WebAssembly preamble \\0asm"
		if bytes.HasPrefix(wasm, wasmMagic[:4]) {
			what = "it is WebAssembly of another binary version than 1"
		} else if bytes.HasPrefix(bytes.TrimSpace(wasm), []byte("(module")) {
			what = "it is WebAssembly text; compile it to binary first (wat2wasm)"
		}
		return nil, fmt.Errorf("%w: %s", ErrNotWasm, what)
	}
	ctx, cancel := context.WithTimeout(ctx, lim.Timeout)
	defer cancel()
	d := &describer{}
	info, err := d.run(ctx, wasm, lim)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) && !errors.Is(err, ErrNotWasm) && !errors.Is(err, ErrABI) {
			return nil, fmt.Errorf("%w: describing took more than %v (%v)", ErrLimit, lim.Timeout, err)
		}
		return nil, err
	}
	info.Digest = Digest(wasm)
	info.Size = int64(len(wasm))
	return info, nil
}

// describer holds what the host functions collect during one Describe.
type describer struct {
	out     []byte
	failMsg string
}

// hostError carries an error out of a host function.
type hostError struct{ err error }

func (h *hostError) Error() string { return h.err.Error() }

func (d *describer) run(ctx context.Context, wasm []byte, lim Limits) (*Info, error) {
	// The interpreter, not the compiler: a describe runs a module once,
	// and compiling a 2.4 MiB Go module to machine code costs several
	// seconds where the interpreter's translation and the run together
	// take about one (docs/RATIONALE.md, "Why does the registry describe
	// modules in wazero's interpreter?").
	rc := wazero.NewRuntimeConfigInterpreter().
		WithMemoryLimitPages(lim.MemoryPages).
		WithCloseOnContextDone(true)
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	defer rt.Close(context.Background())

	compiled, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		return nil, fmt.Errorf("%w: compiling: %v", ErrInvalid, err)
	}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		return nil, fmt.Errorf("modinfo: instantiating WASI: %w", err)
	}
	info := &Info{}
	if err := checkImports(compiled, rt.Module(wasi_snapshot_preview1.ModuleName), info); err != nil {
		return nil, err
	}
	exports := compiled.ExportedFunctions()
	for _, fn := range []string{wasmabi.ExportVersion, wasmabi.ExportDescribe, wasmabi.ExportBuffer, wasmabi.ExportCall} {
		if _, ok := exports[fn]; !ok {
			return nil, fmt.Errorf("%w: the module does not export %s, so it was not built with a weir SDK for ABI v%d", ErrABI, fn, wasmabi.Version)
		}
	}
	if len(compiled.ExportedMemories()) == 0 {
		return nil, fmt.Errorf("%w: the module exports no memory", ErrInvalid)
	}
	if err := d.hostModule(ctx, rt); err != nil {
		return nil, fmt.Errorf("modinfo: instantiating host functions: %w", err)
	}
	cfg := wazero.NewModuleConfig().WithName("").WithStdout(io.Discard).WithStderr(io.Discard).WithStartFunctions()
	mod, err := rt.InstantiateModule(ctx, compiled, cfg)
	if err != nil {
		return nil, d.callErr("instantiating", err)
	}
	if _, ok := exports["_initialize"]; ok {
		if _, err := mod.ExportedFunction("_initialize").Call(ctx); err != nil {
			return nil, d.callErr("initializing (_initialize)", err)
		}
	}
	res, err := mod.ExportedFunction(wasmabi.ExportVersion).Call(ctx)
	if err != nil {
		return nil, d.callErr("calling "+wasmabi.ExportVersion, err)
	}
	if len(res) != 1 {
		return nil, fmt.Errorf("%w: %s returns %d values, want 1", ErrABI, wasmabi.ExportVersion, len(res))
	}
	if v := int32(uint32(res[0])); v != wasmabi.Version {
		return nil, fmt.Errorf("%w: the module speaks ABI v%d, this cluster speaks v%d; rebuild it with a weir SDK for v%d", ErrABI, v, wasmabi.Version, wasmabi.Version)
	}
	info.ABI = wasmabi.Version
	if _, err := mod.ExportedFunction(wasmabi.ExportDescribe).Call(ctx); err != nil {
		return nil, d.callErr("calling "+wasmabi.ExportDescribe, err)
	}
	desc, err := wasmabi.ParseDescriptor(d.out)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	info.SDK = desc.SDK
	info.Operators = desc.Operators
	return info, nil
}

// callErr explains a failed call into the module.
func (d *describer) callErr(what string, err error) error {
	var he *hostError
	if errors.As(err, &he) {
		return fmt.Errorf("%s: %w", what, he.err)
	}
	if d.failMsg != "" {
		return fmt.Errorf("%w: %s: the module failed: %s", ErrInvalid, what, d.failMsg)
	}
	return fmt.Errorf("%w: %s: %v", ErrInvalid, what, err)
}

func checkImports(compiled wazero.CompiledModule, wasi api.Module, info *Info) error {
	wasiFuncs := wasi.ExportedFunctionDefinitions()
	for _, def := range compiled.ImportedFunctions() {
		mod, fn, _ := def.Import()
		info.Imports = append(info.Imports, mod+"."+fn)
		switch mod {
		case wasmabi.ImportModule:
			want, ok := wasmabi.Imports[fn]
			if !ok {
				return fmt.Errorf("%w: it imports %s.%s, which ABI v%d does not have (a module built for a newer ABI?)", ErrABI, mod, fn, wasmabi.Version)
			}
			have := wasmabi.Signature{Params: def.ParamTypes(), Results: def.ResultTypes()}
			if !have.Equal(want) {
				return fmt.Errorf("%w: it imports %s.%s as %s, ABI v%d has %s", ErrABI, mod, fn, have, wasmabi.Version, want)
			}
		case wasi_snapshot_preview1.ModuleName:
			if _, ok := wasiFuncs[fn]; !ok {
				return fmt.Errorf("%w: it imports %s.%s, which WASI preview 1 does not have", ErrInvalid, mod, fn)
			}
		default:
			return fmt.Errorf("%w: it imports %s.%s (only %q and %q are offered)", ErrInvalid, mod, fn, wasmabi.ImportModule, wasi_snapshot_preview1.ModuleName)
		}
	}
	for _, def := range compiled.ImportedMemories() {
		mod, name, _ := def.Import()
		return fmt.Errorf("%w: it imports memory %s.%s (a module must define its own memory)", ErrInvalid, mod, name)
	}
	sort.Strings(info.Imports)
	return nil
}

// Bounds on what the host functions accept while describing.
const maxFailMsg = 4 << 10

// hostModule offers every ABI function: output collects the descriptor,
// fail keeps the message, log and counter are dropped, and state and
// timers, which a module has no business calling while it describes
// itself, fail the describe.
func (d *describer) hostModule(ctx context.Context, rt wazero.Runtime) error {
	b := rt.NewHostModuleBuilder(wasmabi.ImportModule)
	for name, sig := range wasmabi.Imports {
		var fn api.GoModuleFunc
		switch name {
		case wasmabi.ImportOutput:
			fn = func(_ context.Context, m api.Module, stack []uint64) {
				p := read(m, "output", stack[0], stack[1])
				if len(d.out)+len(p) > wasmabi.MaxDescriptorBytes {
					panic(&hostError{fmt.Errorf("%w: the descriptor is larger than %d bytes", ErrLimit, wasmabi.MaxDescriptorBytes)})
				}
				d.out = append(d.out, p...)
			}
		case wasmabi.ImportFail:
			fn = func(_ context.Context, m api.Module, stack []uint64) {
				n := min(uint32(stack[1]), maxFailMsg)
				d.failMsg = string(read(m, "fail", stack[0], uint64(n)))
			}
		case wasmabi.ImportLog, wasmabi.ImportCounter:
			fn = func(context.Context, api.Module, []uint64) {}
		default:
			fn = func(context.Context, api.Module, []uint64) {
				panic(&hostError{fmt.Errorf("%w: it called %s.%s while describing itself; state and timers exist only in a running task", ErrInvalid, wasmabi.ImportModule, name)})
			}
		}
		b.NewFunctionBuilder().WithGoModuleFunction(fn, sig.Params, sig.Results).Export(name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

func read(m api.Module, what string, ptr, n uint64) []byte {
	p, ok := m.Memory().Read(uint32(ptr), uint32(n))
	if !ok {
		panic(&hostError{fmt.Errorf("%w: %s: %d bytes at %#x are outside the module's memory", ErrInvalid, what, uint32(n), uint32(ptr))})
	}
	return p
}
