// Package wasmhost runs weir operator modules: it compiles WebAssembly with
// wazero (compiled mode, on-disk compilation cache), checks a module's imports
// and ABI version before trusting it, instantiates one sandboxed instance per
// operator subtask and moves record batches in and out of it under limits on
// memory, time per call and output per call.
//
// A module gets no filesystem, no network and no real clocks or randomness:
// WASI clocks and random are deterministic, and time reaches it only through
// the batch header. Whatever a module does (trap, panic, loop, grow memory,
// write garbage) ends in an *Error naming the module, the operator and what
// happened; it never takes the host process down.
package wasmhost

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/weirstream/weir/wasmabi"
)

// Limits bound what one instance may use. A zero field takes the default;
// CallTimeout and CompileTimeout take NoTimeout for "no limit".
type Limits struct {
	// MemoryPages caps each instance's linear memory, in 64 KiB pages
	// (1 to 65536).
	MemoryPages uint32
	// CallTimeout caps the wall time of every stage that runs module code:
	// the start function and _initialize, the handshake and describe, open,
	// every call (process, timers, finish, aggregate methods). NoTimeout
	// turns enforcement off, which makes tight loops faster but lets a
	// looping module hang its task: only for trusted modules and
	// benchmarks (see docs/RATIONALE.md). Cancelling the context an
	// instance was made with stops its calls either way.
	CallTimeout time.Duration
	// CompileTimeout caps compiling a module to machine code.
	CompileTimeout time.Duration
	// OutputBytes caps the bytes one call may emit.
	OutputBytes int
	// ModuleBytes caps the size of a module's WebAssembly.
	ModuleBytes int
}

// NoTimeout as a CallTimeout or CompileTimeout means no time limit.
const NoTimeout time.Duration = -1

// DefaultLimits are the limits of a module that sets none.
var DefaultLimits = Limits{
	MemoryPages:    1024, // 64 MiB
	CallTimeout:    10 * time.Second,
	CompileTimeout: 10 * time.Minute, // generous: wazero compiles a 3 MB Go module in seconds, but minutes under -race on a loaded machine
	OutputBytes:    16 << 20,
	ModuleBytes:    64 << 20,
}

// Config configures a Runtime.
type Config struct {
	// CacheDir holds compiled machine code between processes, keyed by the
	// module's content. Empty means an in-memory cache for this Runtime only.
	CacheDir string
	Limits   Limits
	// Budget, when set, is the worker's memory budget that modules and
	// instances of this Runtime reserve their worst case from.
	Budget *Budget
	// WazeroInterrupt enforces the time limit with wazero's
	// WithCloseOnContextDone instead of weir's loop-header check. It is
	// several times slower on loops and exists to measure that (weir bench
	// abi); see docs/RATIONALE.md.
	WazeroInterrupt bool
}

// Validate fills defaults and checks the values.
func (c *Config) Validate() error {
	l := &c.Limits
	if l.MemoryPages == 0 {
		l.MemoryPages = DefaultLimits.MemoryPages
	}
	if l.MemoryPages > 65536 {
		return fmt.Errorf("wasmhost: memory limit of %d pages is above the 65536 pages (4 GiB) of wasm32", l.MemoryPages)
	}
	if l.CallTimeout == 0 {
		l.CallTimeout = DefaultLimits.CallTimeout
	}
	if l.CompileTimeout == 0 {
		l.CompileTimeout = DefaultLimits.CompileTimeout
	}
	if l.CallTimeout < 0 {
		l.CallTimeout = NoTimeout
	}
	if l.CompileTimeout < 0 {
		l.CompileTimeout = NoTimeout
	}
	if l.OutputBytes == 0 {
		l.OutputBytes = DefaultLimits.OutputBytes
	}
	if l.OutputBytes < 0 {
		return fmt.Errorf("wasmhost: negative output limit %d", l.OutputBytes)
	}
	if l.ModuleBytes == 0 {
		l.ModuleBytes = DefaultLimits.ModuleBytes
	}
	if l.ModuleBytes < 0 {
		return fmt.Errorf("wasmhost: negative module size limit %d", l.ModuleBytes)
	}
	return nil
}

// DefaultCacheDir is where compiled modules are cached by default:
// $WEIR_CACHE_DIR, else the user cache folder.
func DefaultCacheDir() string {
	if d := os.Getenv("WEIR_CACHE_DIR"); d != "" {
		return filepath.Join(d, "wazero")
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "weir-cache", "wazero")
	}
	return filepath.Join(d, "weir", "wazero")
}

// Runtime compiles and instantiates modules under one set of limits.
// It is safe for concurrent use; Close releases everything it made.
type Runtime struct {
	cfg   Config
	rt    wazero.Runtime
	cache wazero.CompilationCache
	wasi  map[string]bool // function names the WASI host module offers

	stopWatchdog context.CancelFunc
	watchdogDone chan struct{}
	ticks        atomic.Int64  // advanced by the watchdog; starts at 1, so 0 can mean idle
	tick         time.Duration // the watchdog's period; 0 without a watchdog

	bg sync.WaitGroup // compilations that outlived their time limit

	mu struct {
		sync.Mutex
		running map[*Instance]struct{} // live instances, for the watchdog
		closed  bool
	}
}

// NewRuntime makes a Runtime.
func NewRuntime(ctx context.Context, cfg Config) (*Runtime, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Runtime{cfg: cfg}
	var err error
	if cfg.CacheDir != "" {
		if r.cache, err = wazero.NewCompilationCacheWithDir(cfg.CacheDir); err != nil {
			return nil, fmt.Errorf("wasmhost: opening compilation cache %s: %w", cfg.CacheDir, err)
		}
	} else {
		r.cache = wazero.NewCompilationCache()
	}
	rc := wazero.NewRuntimeConfigCompiler().
		WithCompilationCache(r.cache).
		WithMemoryLimitPages(cfg.Limits.MemoryPages).
		WithCloseOnContextDone(cfg.WazeroInterrupt && cfg.Limits.CallTimeout > 0)
	r.rt = wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, r.rt); err != nil {
		r.rt.Close(ctx)
		return nil, fmt.Errorf("wasmhost: instantiating WASI: %w", err)
	}
	r.wasi = make(map[string]bool)
	for name := range r.rt.Module(wasi_snapshot_preview1.ModuleName).ExportedFunctionDefinitions() {
		r.wasi[name] = true
	}
	if err := instantiateHostModule(ctx, r.rt); err != nil {
		r.rt.Close(ctx)
		return nil, fmt.Errorf("wasmhost: instantiating host functions: %w", err)
	}
	r.mu.running = make(map[*Instance]struct{})
	r.ticks.Store(1)
	if cfg.Limits.CallTimeout > 0 {
		wctx, cancel := context.WithCancel(context.Background())
		r.stopWatchdog = cancel
		r.watchdogDone = make(chan struct{})
		r.tick = watchdogTick(cfg.Limits.CallTimeout)
		go r.watchdog(wctx)
	}
	return r, nil
}

// Limits returns the limits this Runtime enforces.
func (r *Runtime) Limits() Limits { return r.cfg.Limits }

// Close closes every instance and module the Runtime made and waits for its
// goroutines. It is idempotent.
func (r *Runtime) Close() error {
	r.mu.Lock()
	if r.mu.closed {
		r.mu.Unlock()
		return nil
	}
	r.mu.closed = true
	live := make([]*Instance, 0, len(r.mu.running))
	for inst := range r.mu.running {
		live = append(live, inst)
	}
	r.mu.Unlock()
	if r.stopWatchdog != nil {
		r.stopWatchdog()
		<-r.watchdogDone
	}
	// Stop calls still running (a caller that closes the runtime under a
	// running task) before their memory is unmapped under them.
	for _, inst := range live {
		if inst.started.Load() != 0 {
			inst.interrupt(false)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		busy := false
		for _, inst := range live {
			busy = busy || inst.started.Load() != 0
		}
		if !busy {
			break
		}
		time.Sleep(time.Millisecond)
	}
	r.bg.Wait()
	err := r.rt.Close(context.Background())
	if cerr := r.cache.Close(context.Background()); err == nil {
		err = cerr
	}
	return err
}

// watchdog stops any instance whose current call has run past the time
// limit. One goroutine serves all instances: it advances a tick counter, and a
// call records the tick it began at with one atomic store, so calls need
// neither a timer nor the clock. A call is stopped between one and two ticks
// past the limit.
func (r *Runtime) watchdog(ctx context.Context) {
	defer close(r.watchdogDone)
	limit := r.cfg.Limits.CallTimeout
	tick := r.tick
	limitTicks := int64((limit + tick - 1) / tick)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			now := r.ticks.Add(1)
			r.mu.Lock()
			for inst := range r.mu.running {
				if s := inst.started.Load(); s != 0 && now-s > limitTicks {
					inst.interrupt(true)
				}
			}
			r.mu.Unlock()
		}
	}
}

// watchdogTick is the watchdog's period for a call time limit.
func watchdogTick(limit time.Duration) time.Duration {
	return min(max(limit/8, time.Millisecond), 100*time.Millisecond)
}

func (r *Runtime) track(inst *Instance) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.closed {
		return ErrClosed
	}
	r.mu.running[inst] = struct{}{}
	return nil
}

func (r *Runtime) untrack(inst *Instance) {
	r.mu.Lock()
	delete(r.mu.running, inst)
	r.mu.Unlock()
}

// Module is a compiled, checked module. Instantiate makes instances of it.
type Module struct {
	rt        *Runtime
	name      string
	compiled  wazero.CompiledModule
	desc      *wasmabi.Descriptor
	size      int
	imports   []string // "module.name" of every import
	initFunc  bool     // exports _initialize (a WASI reactor)
	startFunc bool     // has a start function, moved by instrument to StartExport
	reserved  int64    // bytes reserved from the budget for the code
}

// Name is the module's name as given to Load.
func (m *Module) Name() string { return m.name }

// Descriptor is what the module declared about its operators.
func (m *Module) Descriptor() *wasmabi.Descriptor { return m.desc }

// Limits are the limits its instances run under.
func (m *Module) Limits() Limits { return m.rt.cfg.Limits }

// Size is the module's size in bytes.
func (m *Module) Size() int { return m.size }

// Imports lists the module's imports as "module.name".
func (m *Module) Imports() []string { return m.imports }

// Load compiles wasm, checks its imports, instantiates it once to run the
// version handshake and read its descriptor, and returns the Module. name
// identifies the module in errors (a file name or registry name@version).
func (r *Runtime) Load(ctx context.Context, name string, wasm []byte) (*Module, error) {
	fail := func(method string, err error) error {
		return &Error{Module: name, Method: method, Record: -1, Err: err}
	}
	size := len(wasm)
	if size > r.cfg.Limits.ModuleBytes {
		return nil, fail("load", fmt.Errorf("%w: %d bytes, more than the limit of %d", ErrInvalidModule, size, r.cfg.Limits.ModuleBytes))
	}
	instrumented := r.cfg.Limits.CallTimeout > 0 && !r.cfg.WazeroInterrupt
	if instrumented {
		var err error
		if wasm, err = instrument(wasm); err != nil {
			if isMagicErr(err) {
				return nil, fail("compile", fmt.Errorf("%w: %v", ErrInvalidModule, err))
			}
			return nil, fail("instrument", fmt.Errorf("%w: %v", ErrInvalidModule, err))
		}
	}
	reserve := CodeWorstCase(size)
	if err := r.cfg.Budget.Reserve(reserve, "module "+name); err != nil {
		return nil, fail("load", err)
	}
	compiled, err := r.compile(ctx, wasm)
	if err != nil {
		r.cfg.Budget.Release(reserve)
		var werr *Error
		if errors.As(err, &werr) {
			werr.Module = name
			return nil, werr
		}
		if isMemoryLimitCompileErr(err) {
			return nil, fail("compile", fmt.Errorf("%w: %v", ErrMemoryLimit, err))
		}
		return nil, fail("compile", fmt.Errorf("%w: %v", ErrInvalidModule, err))
	}
	r.cfg.Budget.count(0, 1)
	m := &Module{rt: r, name: name, compiled: compiled, size: size, reserved: reserve}
	if err := m.checkImports(); err != nil {
		m.Close()
		return nil, fail("check imports", err)
	}
	exports := compiled.ExportedFunctions()
	for _, fn := range []string{wasmabi.ExportVersion, wasmabi.ExportDescribe, wasmabi.ExportBuffer, wasmabi.ExportCall} {
		if _, ok := exports[fn]; !ok {
			m.Close()
			return nil, fail("check exports", fmt.Errorf("%w: the module does not export %s, so it was not built with a weir SDK for ABI v%d", ErrVersion, fn, wasmabi.Version))
		}
	}
	_, m.initFunc = exports["_initialize"]
	_, m.startFunc = exports[StartExport]
	m.startFunc = m.startFunc && instrumented

	probe, err := m.instantiate(ctx, nil)
	if err != nil {
		m.Close()
		return nil, err
	}
	defer probe.Close()
	if err := probe.handshake(); err != nil {
		m.Close()
		return nil, err
	}
	m.desc = probe.desc
	return m, nil
}

// compile compiles wasm under the compile time limit. wazero cannot stop a
// compilation, so one that runs out of time goes on in the background (its
// length is bounded by ModuleBytes) and its result is dropped; Close waits
// for it.
func (r *Runtime) compile(ctx context.Context, wasm []byte) (wazero.CompiledModule, error) {
	type result struct {
		m   wazero.CompiledModule
		err error
	}
	done := make(chan result, 1)
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		m, err := r.rt.CompileModule(context.Background(), wasm)
		done <- result{m, err}
	}()
	var timeout <-chan time.Time
	if limit := r.cfg.Limits.CompileTimeout; limit > 0 {
		t := time.NewTimer(limit)
		defer t.Stop()
		timeout = t.C
	}
	abandon := func() {
		r.bg.Add(1)
		go func() {
			defer r.bg.Done()
			if res := <-done; res.m != nil {
				res.m.Close(context.Background())
			}
		}()
	}
	select {
	case res := <-done:
		return res.m, res.err
	case <-timeout:
		abandon()
		return nil, &Error{Method: "compile", Record: -1, Err: fmt.Errorf("%w: compiling took longer than %v (a module this large or complex is refused; raise the compile time limit only for modules you trust)", ErrTimeout, r.cfg.Limits.CompileTimeout)}
	case <-ctx.Done():
		abandon()
		return nil, &Error{Method: "compile", Record: -1, Err: fmt.Errorf("%w: %w", ErrCanceled, context.Cause(ctx))}
	}
}

func isMagicErr(err error) bool { return strings.Contains(err.Error(), "magic number") }

func isMemoryLimitCompileErr(err error) bool {
	s := err.Error()
	return containsAny(s, "exceeds memory limit", "memory limit", "max 65536 pages")
}

func (m *Module) checkImports() error {
	for _, def := range m.compiled.ImportedFunctions() {
		mod, fn, _ := def.Import()
		m.imports = append(m.imports, mod+"."+fn)
		switch mod {
		case wasmabi.ImportModule:
			want, ok := hostFuncs[fn]
			if !ok {
				return fmt.Errorf("%w: %s.%s is not a weir ABI v%d function (a module built for a newer ABI?)", ErrImport, mod, fn, wasmabi.Version)
			}
			if !sameTypes(def.ParamTypes(), want.params) || !sameTypes(def.ResultTypes(), want.results) {
				return fmt.Errorf("%w: %s.%s has the wrong signature %s, ABI v%d has %s", ErrImport, mod, fn,
					sig(def.ParamTypes(), def.ResultTypes()), wasmabi.Version, sig(want.params, want.results))
			}
		case wasi_snapshot_preview1.ModuleName:
			if !m.rt.wasi[fn] {
				return fmt.Errorf("%w: %s.%s", ErrImport, mod, fn)
			}
		default:
			return fmt.Errorf("%w: %s.%s (only %q and %q are offered)", ErrImport, mod, fn, wasmabi.ImportModule, wasi_snapshot_preview1.ModuleName)
		}
	}
	for _, def := range m.compiled.ImportedMemories() {
		mod, name, _ := def.Import()
		return fmt.Errorf("%w: memory %s.%s (a module must define its own memory)", ErrImport, mod, name)
	}
	if len(m.compiled.ExportedMemories()) == 0 {
		return fmt.Errorf("%w: the module exports no memory", ErrInvalidModule)
	}
	return nil
}

func sameTypes(a, b []api.ValueType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func sig(params, results []api.ValueType) string {
	s := "("
	for i, p := range params {
		if i > 0 {
			s += ", "
		}
		s += api.ValueTypeName(p)
	}
	s += ")"
	if len(results) > 0 {
		s += " -> " + api.ValueTypeName(results[0])
	}
	return s
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// Close releases the compiled code. Instances made from it must be closed
// first.
func (m *Module) Close() error {
	if m.compiled == nil {
		return nil
	}
	err := m.compiled.Close(context.Background())
	m.compiled = nil
	m.rt.cfg.Budget.Release(m.reserved)
	m.rt.cfg.Budget.count(0, -1)
	return err
}

var errNoServices = errors.New("state and timers are not available here")
