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

	wasm   api.Module
	mem    api.Memory
	fnCall api.Function
	fnBuf  api.Function
	ctx    context.Context
	cancel context.CancelFunc
	stop   api.MutableGlobal // the instrumented interrupt flag, if any
	stack  [3]uint64

	inPtr, inCap uint32

	started  atomic.Int64 // the runtime's tick when the current call began; 0 when idle
	timedOut atomic.Bool

	// Per call, written by the host functions.
	method  wasmabi.Method
	out     []byte
	failMsg string
	hostErr error
	logs    int

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
	inst := &Instance{mod: m, op: -1, svc: svc}
	inst.ctx, inst.cancel = context.WithCancel(context.WithValue(context.Background(), instanceKey{}, inst))
	cfg := wazero.NewModuleConfig().
		WithName(""). // anonymous: many instances of one module may live in one runtime
		WithStderr(&inst.stderr).
		WithStdout(&inst.stderr).
		WithStartFunctions()
	if err := m.rt.track(inst); err != nil {
		return nil, &Error{Module: m.name, Method: "instantiate", Record: -1, Err: err}
	}
	inst.begin() // _initialize runs under the time limit too
	wm, err := m.rt.rt.InstantiateModule(inst.ctx, m.compiled, cfg)
	if err == nil {
		inst.stop, _ = wm.ExportedGlobal(InterruptExport).(api.MutableGlobal)
		if m.initFunc {
			_, err = wm.ExportedFunction("_initialize").Call(inst.ctx)
		}
	}
	inst.end()
	if err != nil {
		m.rt.untrack(inst)
		inst.cancel()
		if wm != nil {
			wm.Close(context.Background())
		}
		return nil, inst.classify("instantiate", err)
	}
	inst.wasm = wm
	inst.mem = wm.Memory()
	inst.fnCall = wm.ExportedFunction(wasmabi.ExportCall)
	inst.fnBuf = wm.ExportedFunction(wasmabi.ExportBuffer)
	return inst, nil
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
func (inst *Instance) begin() { inst.started.Store(inst.mod.rt.ticks.Load()) }
func (inst *Instance) end()   { inst.started.Store(0) }

// interrupt stops the instance's current call: the instrumented loop check
// traps at the next iteration (or wazero closes the module, with
// Config.WazeroInterrupt). Called by the watchdog goroutine.
func (inst *Instance) interrupt() {
	inst.timedOut.Store(true)
	if inst.stop != nil {
		inst.stop.Set(1)
	}
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
	inst.failMsg, inst.hostErr, inst.logs = "", nil, 0
	inst.stack = [3]uint64{uint64(inst.op), uint64(method), uint64(n)}
	inst.begin()
	err := inst.fnCall.CallWithStack(inst.ctx, inst.stack[:])
	inst.end()
	if err == nil && inst.timedOut.Load() {
		err = ErrTimeout // finished, but past the limit: the flag is set now
	}
	if err != nil {
		return nil, inst.poison(inst.classify(method.String(), err))
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

// Open runs MethodOpen with the operator's parameters.
func (inst *Instance) Open(params []byte) error {
	_, err := inst.Call(wasmabi.MethodOpen, params)
	return err
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
	inst.closed = true
	if inst.dead == nil {
		inst.dead = &Error{Module: inst.mod.name, Operator: inst.opName(), Method: "call", Record: -1, Err: ErrClosed}
	}
	inst.mod.rt.untrack(inst)
	inst.cancel()
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
