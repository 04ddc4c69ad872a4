package wasmhost

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"

	"github.com/weirstream/weir/wasmabi"
)

type instanceKey struct{}

// Instance is one sandboxed instance of a module, bound to one operator. It
// is owned by one goroutine (the task that runs the operator subtask): its
// methods must not be called concurrently.
type Instance struct {
	mod    *Module
	op     int // index in the descriptor, -1 before Bind
	opDesc *wasmabi.OperatorDesc
	svc    Services
	desc   *wasmabi.Descriptor // set by handshake

	wasm       api.Module
	mem        api.Memory
	fnCall     api.Function
	fnBuf      api.Function
	ctx        context.Context
	cancel     context.CancelFunc
	caller     context.Context // the context the instance was made with
	stopAfter  func() bool     // unregisters the stop on the caller's context
	stack      [3]uint64
	fuelG      api.Global // the instrumented fuel and refill counters, if any
	refillsG   api.Global
	fuel0      uint64 // their values at the last syncMeter
	refills0   uint64
	syncedTick int64 // the watchdog tick of the last syncMeter
	meter      *Meter
	reserved   int64 // bytes reserved from the budget
	counterSet map[string]struct{}

	stopMu      sync.Mutex
	stop        api.MutableGlobal // the instrumented interrupt flag, if any; under stopMu
	interrupted bool              // under stopMu

	inPtr, inCap uint32

	started  atomic.Int64 // the runtime's tick when the current call began; 0 when idle
	timedOut atomic.Bool
	canceled atomic.Bool // the caller's context ended

	// Per call, written by the host functions.
	method      wasmabi.Method
	out         []byte
	failMsg     string
	hostErr     error
	logs        int
	logsDropped int

	stderr tailBuffer
	dead   error // set once the instance can no longer be used
	closed bool
}

// Instantiate makes a new instance of the module bound to the named
// operator; svc serves its state, timers, logs and counters (nil: none).
func (m *Module) Instantiate(ctx context.Context, operator string, svc Services) (*Instance, error) {
	idx, od, ok := m.desc.Operator(operator)
	if !ok {
		return nil, &Error{Module: m.name, Operator: operator, Method: "instantiate", Record: -1,
			Err: fmt.Errorf("%w %q; the module exports %s", ErrNoOperator, operator, strings.Join(m.desc.Names(), ", "))}
	}
	inst, err := m.instantiate(ctx, svc)
	if err != nil {
		return nil, err
	}
	inst.op, inst.opDesc, inst.desc = idx, od, m.desc
	return inst, nil
}

func (m *Module) instantiate(ctx context.Context, svc Services) (*Instance, error) {
	inst := &Instance{mod: m, op: -1, svc: svc, meter: &Meter{}}
	worst := m.rt.cfg.Limits.InstanceWorstCase()
	if err := m.rt.cfg.Budget.Reserve(worst, "an instance of "+m.name); err != nil {
		return nil, &Error{Module: m.name, Method: "instantiate", Record: -1, Err: err}
	}
	inst.reserved = worst
	m.rt.cfg.Budget.count(1, 0)
	inst.meter.worst.Store(worst)
	inst.meter.host.Store(hostFixedBytes)
	base := context.WithValue(context.Background(), instanceKey{}, inst)
	if memoryAllocator != nil {
		base = experimental.WithMemoryAllocator(base, memoryAllocator)
	}
	inst.ctx, inst.cancel = context.WithCancel(base)
	// Ending the caller's context (Ctrl-C, a cancelled or failed job) stops
	// a running call at its next loop check, not at the time limit.
	inst.caller = ctx
	inst.stopAfter = context.AfterFunc(ctx, func() { inst.interrupt(false) })
	cfg := wazero.NewModuleConfig().
		WithName(""). // anonymous: many instances of one module may live in one runtime
		WithStderr(&inst.stderr).
		WithStdout(&inst.stderr).
		WithStartFunctions()
	if err := m.rt.track(inst); err != nil {
		inst.release()
		return nil, &Error{Module: m.name, Method: "instantiate", Record: -1, Err: err}
	}
	stage := "instantiate"
	inst.begin() // the start function and _initialize run under the time limit too
	wm, err := m.rt.rt.InstantiateModule(inst.ctx, m.compiled, cfg)
	if err == nil {
		inst.wasm = wm
		inst.mem = wm.Memory()
		stop, _ := wm.ExportedGlobal(InterruptExport).(api.MutableGlobal)
		if f, r := wm.ExportedGlobal(FuelExport), wm.ExportedGlobal(RefillsExport); f != nil && r != nil {
			// The start function and _initialize are metered from here.
			inst.fuelG, inst.refillsG = f, r
			inst.fuel0, inst.refills0 = f.Get(), r.Get()
		}
		inst.stopMu.Lock()
		inst.stop = stop
		if inst.interrupted && stop != nil {
			stop.Set(1)
		}
		inst.stopMu.Unlock()
		if m.startFunc {
			stage = "start function"
			_, err = wm.ExportedFunction(StartExport).Call(inst.ctx)
		}
		if err == nil && m.initFunc {
			stage = "_initialize"
			_, err = wm.ExportedFunction("_initialize").Call(inst.ctx)
		}
	}
	inst.end()
	if err == nil && (inst.timedOut.Load() || inst.canceled.Load()) {
		err = ErrTimeout // finished, but past the limit or after the cancel
	}
	if err != nil {
		err = inst.classify(stage, err)
		inst.dead = err
		inst.Close()
		return nil, err
	}
	inst.fnCall = wm.ExportedFunction(wasmabi.ExportCall)
	inst.fnBuf = wm.ExportedFunction(wasmabi.ExportBuffer)
	return inst, nil
}

// release gives back what instantiate reserved.
func (inst *Instance) release() {
	if inst.stopAfter != nil {
		inst.stopAfter()
	}
	if inst.cancel != nil {
		inst.cancel()
	}
	if inst.reserved > 0 {
		inst.mod.rt.cfg.Budget.Release(inst.reserved)
		inst.mod.rt.cfg.Budget.count(-1, 0)
		inst.reserved = 0
	}
}

// Meter is the instance's usage meter, readable from any goroutine.
func (inst *Instance) Meter() *Meter { return inst.meter }

// Usage is what the instance has used so far, exactly. Other goroutines
// read the Meter, which calls bring up to date once per watchdog tick.
func (inst *Instance) Usage() Usage {
	if !inst.closed {
		inst.syncMeter(inst.mod.rt.ticks.Load())
	}
	return inst.meter.Usage()
}

// handshake checks the module's ABI version and reads its descriptor.
func (inst *Instance) handshake() error {
	res, err := inst.callRaw(wasmabi.ExportVersion)
	if err != nil {
		return inst.classify("handshake", err)
	}
	if v := int32(uint32(res)); v != wasmabi.Version {
		return &Error{Module: inst.mod.name, Method: "handshake", Record: -1,
			Err: fmt.Errorf("%w: the module speaks ABI v%d, this host speaks v%d; rebuild it with a weir SDK for v%d", ErrVersion, v, wasmabi.Version, wasmabi.Version)}
	}
	inst.out = inst.out[:0]
	if _, err := inst.callRaw(wasmabi.ExportDescribe); err != nil {
		return inst.classify("describe", err)
	}
	d, err := wasmabi.ParseDescriptor(inst.out)
	if err != nil {
		return &Error{Module: inst.mod.name, Method: "describe", Record: -1, Err: fmt.Errorf("%w: %v", ErrDescriptor, err)}
	}
	inst.desc = d
	return nil
}

func (inst *Instance) callRaw(name string) (uint64, error) {
	inst.begin()
	res, err := inst.wasm.ExportedFunction(name).Call(inst.ctx)
	inst.end()
	if err != nil {
		return 0, err
	}
	if len(res) == 0 {
		return 0, nil
	}
	return res[0], nil
}

// begin and end bracket every call into the module, for the watchdog. They
// read the runtime's tick counter rather than the clock, which costs tens of
// nanoseconds per call on some virtual machines.
//
// They also meter the call: its fuel and time (global and tick loads, no
// clock: clock reads cost 70 ns each on this project's virtual machines,
// half a small call), and the instance's memory after it.
func (inst *Instance) begin() {
	inst.started.Store(inst.mod.rt.ticks.Load())
}

func (inst *Instance) end() {
	rt := inst.mod.rt
	now := rt.ticks.Load()
	m := inst.meter
	// Time: the watchdog ticks the call saw. A call of d crosses d/tick
	// tick boundaries on average, so the sum over many calls is an
	// unbiased estimate of their time, for the price of a load.
	m.cpu.Add((now - inst.started.Load()) * int64(rt.tick))
	inst.started.Store(0)
	m.calls.Add(1)
	if now != inst.syncedTick {
		inst.syncMeter(now)
	}
}

// syncMeter brings the meter's fuel and memory up to date. Reading wazero's
// globals costs about 70 ns each, so calls do it at most once per watchdog
// tick; Usage and Close do it always. Linear memory never shrinks, so its
// size now is also its peak.
func (inst *Instance) syncMeter(tick int64) {
	inst.syncedTick = tick
	m := inst.meter
	if inst.fuelG != nil {
		// The counters only move while module code runs, so the fuel since
		// the last sync is the refills since then plus the fuel spent.
		f, r := inst.fuelG.Get(), inst.refillsG.Get()
		m.fuel.Add(int64(uint32(r)-uint32(inst.refills0))*yieldEvery + int64(int32(uint32(inst.fuel0))) - int64(int32(uint32(f))))
		inst.fuel0, inst.refills0 = f, r
	}
	if inst.mem != nil && !inst.closed {
		size := int64(inst.mem.Size())
		m.mem.Store(size)
		m.peak.Store(size)
	}
	m.host.Store(int64(cap(inst.out)) + hostFixedBytes)
}

// interrupt stops the instance's current call: the instrumented loop check
// traps at the next iteration (or wazero closes the module, with
// Config.WazeroInterrupt). Called by the watchdog goroutine (timeout) or
// when the caller's context ends.
func (inst *Instance) interrupt(timeout bool) {
	if timeout {
		inst.timedOut.Store(true)
	} else {
		inst.canceled.Store(true)
	}
	inst.stopMu.Lock()
	inst.interrupted = true
	if inst.stop != nil {
		inst.stop.Set(1)
	}
	inst.stopMu.Unlock()
	inst.cancel()
}

// Operator is the description of the operator this instance runs.
func (inst *Instance) Operator() *wasmabi.OperatorDesc { return inst.opDesc }

// Input returns a zero-length slice of the module's input buffer with a
// capacity of at least n bytes, so a batch can be encoded straight into the
// module's memory. It stays valid until the next call into the instance.
func (inst *Instance) Input(n int) ([]byte, error) {
	if inst.dead != nil {
		return nil, inst.dead
	}
	if n < 0 || n > int(inst.mod.rt.cfg.Limits.MemoryPages)*65536 {
		return nil, inst.fail("buffer", fmt.Errorf("%w: input of %d bytes cannot fit the memory limit", ErrMemoryLimit, n))
	}
	if uint32(n) > inst.inCap {
		want := max(uint32(n), 2*inst.inCap, 64<<10)
		inst.stack[0] = uint64(want)
		inst.begin()
		err := inst.fnBuf.CallWithStack(inst.ctx, inst.stack[:])
		inst.end()
		if err != nil {
			return nil, inst.poison(inst.classify("buffer", err))
		}
		inst.inPtr, inst.inCap = uint32(inst.stack[0]), want
	}
	b, ok := inst.mem.Read(inst.inPtr, inst.inCap)
	if !ok {
		return nil, inst.poison(inst.fail("buffer", fmt.Errorf("%w: weir_buffer returned %d bytes at %#x, outside its memory", ErrBadOutput, inst.inCap, inst.inPtr)))
	}
	return b[:0], nil
}

// Invoke runs method over the first n bytes of the input buffer (filled
// through Input) and returns the output entries, validated. The output is
// owned by the instance and valid until the next call.
func (inst *Instance) Invoke(method wasmabi.Method, n int) ([]byte, error) {
	if inst.dead != nil {
		return nil, inst.dead
	}
	if inst.op < 0 {
		return nil, inst.fail(method.String(), errors.New("instance is not bound to an operator"))
	}
	if uint32(n) > inst.inCap {
		return nil, inst.fail(method.String(), fmt.Errorf("%w: %d input bytes, the buffer holds %d", ErrHostCall, n, inst.inCap))
	}
	inst.method = method
	inst.out = inst.out[:0]
	inst.failMsg, inst.hostErr, inst.logs, inst.logsDropped = "", nil, 0, 0
	inst.stack = [3]uint64{uint64(inst.op), uint64(method), uint64(n)}
	inst.begin()
	err := inst.fnCall.CallWithStack(inst.ctx, inst.stack[:])
	inst.end()
	if err == nil && (inst.timedOut.Load() || inst.canceled.Load()) {
		err = ErrTimeout // finished, but past the limit or after a cancel: the flag is set now
	}
	if err != nil {
		return nil, inst.poison(inst.classify(method.String(), err))
	}
	if inst.logsDropped > 0 && inst.svc != nil {
		inst.svc.Log(wasmabi.LogWarn, fmt.Sprintf("(%d more log lines of this %s call dropped: at most %d per call)", inst.logsDropped, method, maxLogsCall))
	}
	if inst.stack[0] != wasmabi.CallOK {
		return nil, inst.operatorError(method)
	}
	if err := inst.validateOutput(method); err != nil {
		return nil, inst.poison(inst.fail(method.String(), err))
	}
	return inst.out, nil
}

// Call copies in into the input buffer and invokes method; see Invoke.
func (inst *Instance) Call(method wasmabi.Method, in []byte) ([]byte, error) {
	buf, err := inst.Input(len(in))
	if err != nil {
		return nil, err
	}
	copy(buf[:len(in)], in)
	return inst.Invoke(method, len(in))
}

// Open runs MethodOpen with the operator's parameters. Open may declare
// state, log and count, but not emit: there is no input to answer yet and
// no watermark, so records emitted during open are refused with
// ErrContract rather than dropped or sent before the stream starts.
func (inst *Instance) Open(params []byte) error {
	out, err := inst.Call(wasmabi.MethodOpen, params)
	if err != nil {
		return err
	}
	if len(out) > 0 {
		n, _ := wasmabi.ScanEntries(out, recordsAndWatermarks, uint16(len(inst.opDesc.SideOutputs)))
		return inst.poison(inst.fail("open", fmt.Errorf("%w: open emitted %d entries; emit records from process, timers or finish", ErrContract, n)))
	}
	return nil
}

// operatorError turns a failed weir_call into an *Error, reading a leading
// "record N: " or "timer N: " of the module's message as the index of the
// failing entry.
func (inst *Instance) operatorError(method wasmabi.Method) error {
	msg := inst.failMsg
	if msg == "" {
		msg = "weir_call returned " + strconv.FormatUint(inst.stack[0], 10) + " without a message"
	}
	return OperatorError(inst.mod.name, inst.opName(), method, msg)
}

var (
	recordsAndWatermarks = wasmabi.Kinds(wasmabi.EntryRecord, wasmabi.EntryWatermark)
	accumulators         = wasmabi.Kinds(wasmabi.EntryAccumulator)
)

// validateOutput checks every entry of the call's output: well-formed, of a
// kind the method may emit, to a port the operator declared.
func (inst *Instance) validateOutput(method wasmabi.Method) error {
	allowed := recordsAndWatermarks
	if method == wasmabi.MethodAggAdd || method == wasmabi.MethodAggMerge {
		allowed = accumulators
	}
	if _, err := wasmabi.ScanEntries(inst.out, allowed, uint16(len(inst.opDesc.SideOutputs))); err != nil {
		return fmt.Errorf("%w from %s: %v", ErrBadOutput, method, err)
	}
	return nil
}

// classify turns an error from wazero into an *Error with the right sentinel.
func (inst *Instance) classify(method string, err error) error {
	var herr *hostPanic
	var exit *sys.ExitError
	switch {
	case errors.As(err, &herr):
		err = herr.err
	case inst.canceled.Load():
		err = fmt.Errorf("%w: %w", ErrCanceled, context.Cause(inst.caller))
	case inst.timedOut.Load():
		err = fmt.Errorf("%w of %v", ErrTimeout, inst.mod.rt.cfg.Limits.CallTimeout)
	case errors.As(err, &exit):
		if inst.outOfMemory() {
			err = fmt.Errorf("%w of %d pages (%d MiB)", ErrMemoryLimit, inst.mod.rt.cfg.Limits.MemoryPages, inst.mod.rt.cfg.Limits.MemoryPages/16)
		} else {
			err = fmt.Errorf("%w with code %d", ErrExit, exit.ExitCode())
		}
	case isMemoryLimitCompileErr(err):
		err = fmt.Errorf("%w: %v", ErrMemoryLimit, firstLine(err.Error()))
	default:
		if inst.outOfMemory() {
			err = fmt.Errorf("%w of %d pages (%d MiB): %v", ErrMemoryLimit, inst.mod.rt.cfg.Limits.MemoryPages, inst.mod.rt.cfg.Limits.MemoryPages/16, firstLine(err.Error()))
		} else {
			err = fmt.Errorf("%w: %v", ErrTrap, firstLine(err.Error()))
		}
	}
	return &Error{Module: inst.mod.name, Operator: inst.opName(), Method: method, Record: -1, Err: err, Detail: inst.stderr.String()}
}

// outOfMemory guesses whether a failed call ran out of memory: the memory is
// at its limit, or a language runtime said so before it gave up.
func (inst *Instance) outOfMemory() bool {
	s := inst.stderr.String()
	if strings.Contains(s, "out of memory") {
		return true
	}
	if inst.mem == nil {
		return false
	}
	limit := uint64(inst.mod.rt.cfg.Limits.MemoryPages) * 65536
	return uint64(inst.mem.Size())+65536 > limit
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func (inst *Instance) fail(method string, err error) error {
	return &Error{Module: inst.mod.name, Operator: inst.opName(), Method: method, Record: -1, Err: err}
}

func (inst *Instance) opName() string {
	if inst.opDesc != nil {
		return inst.opDesc.Name
	}
	return ""
}

// poison marks the instance unusable after err and closes it.
func (inst *Instance) poison(err error) error {
	inst.dead = err
	inst.Close()
	return err
}

// Close releases the instance. It is idempotent.
func (inst *Instance) Close() error {
	if inst.closed {
		return nil
	}
	if inst.wasm != nil {
		inst.syncMeter(inst.mod.rt.ticks.Load())
	}
	inst.closed = true
	if inst.dead == nil {
		inst.dead = &Error{Module: inst.mod.name, Operator: inst.opName(), Method: "call", Record: -1, Err: ErrClosed}
	}
	inst.mod.rt.untrack(inst)
	inst.release()
	inst.meter.mem.Store(0)
	inst.meter.host.Store(0)
	inst.meter.worst.Store(0)
	if inst.wasm != nil {
		return inst.wasm.Close(context.Background())
	}
	return nil
}

// tailBuffer keeps the last bytes a module wrote to stdout or stderr, so a
// crash can be explained without letting a module fill the host's memory.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

const tailMax = 2048

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if len(p) > tailMax {
		p = p[len(p)-tailMax:]
	}
	t.buf = append(t.buf, p...)
	if len(t.buf) > tailMax {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-tailMax:]...)
	}
	return n, nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.buf))
	s = strings.ReplaceAll(s, "\n", " | ")
	return s
}
