package wasmhost

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Fixed host-side bounds per instance, besides the Limits: what a module can
// make the host hold for it however it behaves.
const (
	// MaxCounters is how many distinct counter names one instance may use.
	MaxCounters = 256
	// hostFixedBytes covers an instance's small host buffers: the stderr
	// tail, the fail message, one log line in flight, the counter names
	// (MaxCounters x wasmabi.MaxNameLen) and wazero's per-instance
	// bookkeeping.
	hostFixedBytes = tailMax + maxFailMsg + maxLogLine + MaxCounters*maxNameBytes + 256<<10
)

// InstanceWorstCase is the most memory, in bytes, one instance under these
// limits can make the process hold, whatever its module does: its linear
// memory (mapped outside the Go heap, so counted once), and twice its host
// buffers — the output buffer and the task's copy of side outputs, each at
// most OutputBytes, plus the fixed small buffers — because they live on the
// Go heap, which the collector lets grow to twice what is live (GOGC=100).
// Compiled code is per module (CodeWorstCase); keyed state and timers are
// the task's and the state backend's (see docs/abi.md).
func (l Limits) InstanceWorstCase() int64 {
	linear := int64(l.MemoryPages) * 65536
	host := 2*int64(max(l.OutputBytes, 0)) + hostFixedBytes
	return linear + 2*host
}

// CodeWorstCase is the memory the compiled machine code of a module of
// wasmBytes bytes may take, shared by all its instances: wazero's code is
// measured at 2-4 times the size of the WebAssembly (docs/RATIONALE.md), so
// 6 times plus 1 MiB is the bound the budget uses.
func CodeWorstCase(wasmBytes int) int64 { return 6*int64(wasmBytes) + 1<<20 }

// Budget is a worker's total memory budget for modules: loading a module
// reserves its code's worst case, instantiating one the instance's worst
// case, and closing them gives it back. A deploy that does not fit fails
// before it runs with ErrBudget, saying how much is reserved and by how
// many. It is safe for concurrent use.
type Budget struct {
	mu        sync.Mutex
	total     int64
	used      int64
	instances int
	modules   int
}

// NewBudget makes a budget of total bytes.
func NewBudget(total int64) *Budget { return &Budget{total: total} }

// Reserve takes n bytes for what ("instance of op", "module m.wasm"), or
// fails with ErrBudget.
func (b *Budget) Reserve(n int64, what string) error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.total {
		return fmt.Errorf("%w: %s needs up to %s, and %s of the worker's %s are reserved by %d instances and %d modules; lower --memory-pages or --output-limit, or run fewer subtasks on this worker",
			ErrBudget, what, mib(n), mib(b.used), mib(b.total), b.instances, b.modules)
	}
	b.used += n
	return nil
}

// Release gives back n bytes reserved earlier.
func (b *Budget) Release(n int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

func (b *Budget) count(instances, modules int) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.instances += instances
	b.modules += modules
	b.mu.Unlock()
}

// Used and Total report the budget in bytes.
func (b *Budget) Used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

func (b *Budget) Total() int64 { return b.total }

// Admit checks that n more instances of mod fit the budget, without
// reserving: what a worker asks before it accepts a deployment.
func (r *Runtime) Admit(mod *Module, n int) error {
	b := r.cfg.Budget
	if b == nil {
		return nil
	}
	need := int64(n) * r.cfg.Limits.InstanceWorstCase()
	b.mu.Lock()
	used, total := b.used, b.total
	b.mu.Unlock()
	if used+need > total {
		return fmt.Errorf("%w: %d instances of %s need up to %s, and %s of the worker's %s are reserved", ErrBudget, n, mod.name, mib(need), mib(used), mib(total))
	}
	return nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// Usage is what an instance has used so far.
type Usage struct {
	// Fuel is the work the module's calls did, exactly and
	// deterministically: one unit per function entry and per 1024 loop
	// iterations (see instrument). 0 without a call time limit, when
	// modules are not instrumented.
	Fuel int64 `json:"fuel"`
	// CPU is the time spent inside the module's calls (its code and the
	// host functions it called), estimated from the watchdog's ticks: exact
	// on average over many calls, in steps of the tick (the call time
	// limit / 8, at most 100 ms) for few. 0 without a call time limit.
	CPU   time.Duration `json:"cpu_ns"`
	Calls int64         `json:"calls"`
	// Memory is the instance's linear memory now (0 once closed), and
	// PeakMemory the most it had.
	Memory     int64 `json:"memory_bytes"`
	PeakMemory int64 `json:"peak_memory_bytes"`
	// HostBytes is what the host holds for the instance: the capacity of
	// its output buffer plus the fixed small buffers.
	HostBytes int64 `json:"host_bytes"`
	// WorstCase is InstanceWorstCase of the limits it runs under.
	WorstCase int64 `json:"worst_case_bytes"`
}

// Add sums usages (of the subtasks of one operator).
func (u Usage) Add(v Usage) Usage {
	return Usage{Fuel: u.Fuel + v.Fuel, CPU: u.CPU + v.CPU, Calls: u.Calls + v.Calls, Memory: u.Memory + v.Memory,
		PeakMemory: u.PeakMemory + v.PeakMemory, HostBytes: u.HostBytes + v.HostBytes, WorstCase: u.WorstCase + v.WorstCase}
}

// Meter is an instance's Usage, updated by the instance after every call
// and readable from any goroutine. It outlives the instance.
type Meter struct {
	fuel, cpu, calls, mem, peak, host, worst atomic.Int64
}

// Usage reads the meter.
func (m *Meter) Usage() Usage {
	return Usage{Fuel: m.fuel.Load(), CPU: time.Duration(m.cpu.Load()), Calls: m.calls.Load(), Memory: m.mem.Load(),
		PeakMemory: m.peak.Load(), HostBytes: m.host.Load(), WorstCase: m.worst.Load()}
}
