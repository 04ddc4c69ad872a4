package wasmhost

import (
	"context"
	"errors"
	"fmt"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/weirstream/weir/wasmabi"
)

const (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// Bounds on what host functions accept, so a module cannot make the host
// allocate without bound.
const (
	maxFailMsg   = 4 << 10
	maxLogLine   = 4 << 10
	maxLogsCall  = 1000
	maxNameBytes = wasmabi.MaxNameLen
)

type hostFunc struct {
	params, results []api.ValueType
	fn              func(inst *Instance, stack []uint64)
}

// hostFuncs is the "weir" import module of ABI v1.
var hostFuncs = map[string]hostFunc{
	wasmabi.ImportOutput:        {[]api.ValueType{i32, i32}, nil, hostOutput},
	wasmabi.ImportFail:          {[]api.ValueType{i32, i32}, nil, hostFail},
	wasmabi.ImportLog:           {[]api.ValueType{i32, i32, i32}, nil, hostLog},
	wasmabi.ImportCounter:       {[]api.ValueType{i32, i32, i64}, nil, hostCounter},
	wasmabi.ImportStateRegister: {[]api.ValueType{i32, i32, i32}, []api.ValueType{i32}, hostStateRegister},
	wasmabi.ImportState:         {[]api.ValueType{i32, i32, i32, i32, i32, i32, i32, i32}, []api.ValueType{i64}, hostState},
	wasmabi.ImportTimer:         {[]api.ValueType{i32, i32, i64, i32, i32}, nil, hostTimer},
}

func instantiateHostModule(ctx context.Context, rt wazero.Runtime) error {
	b := rt.NewHostModuleBuilder(wasmabi.ImportModule)
	for name, hf := range hostFuncs {
		fn := hf.fn
		b.NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) {
				inst, _ := ctx.Value(instanceKey{}).(*Instance)
				if inst == nil {
					panic(&hostPanic{fmt.Errorf("%w: host function called outside a weir call", ErrHostCall)})
				}
				fn(inst, stack)
			}), hf.params, hf.results).
			Export(name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

// hostPanic carries an error out of a host function: wazero unwinds the
// module's stack and returns it from the call, and classify unwraps it.
type hostPanic struct{ err error }

func (h *hostPanic) Error() string { return h.err.Error() }

func abort(format string, args ...any) {
	panic(&hostPanic{fmt.Errorf("%w: "+format, append([]any{ErrHostCall}, args...)...)})
}

// read returns a view of len bytes of the module's memory at ptr.
func (inst *Instance) read(what string, ptr, n uint64) []byte {
	b, ok := inst.mem.Read(uint32(ptr), uint32(n))
	if !ok {
		abort("%s: %d bytes at %#x are outside the module's memory of %d bytes", what, uint32(n), uint32(ptr), inst.mem.Size())
	}
	return b
}

func hostOutput(inst *Instance, stack []uint64) {
	b := inst.read("output", stack[0], stack[1])
	if len(inst.out)+len(b) > inst.mod.rt.cfg.Limits.OutputBytes {
		panic(&hostPanic{fmt.Errorf("%w of %d bytes", ErrOutputLimit, inst.mod.rt.cfg.Limits.OutputBytes)})
	}
	inst.out = append(inst.out, b...)
}

func hostFail(inst *Instance, stack []uint64) {
	n := min(uint32(stack[1]), maxFailMsg)
	inst.failMsg = string(inst.read("fail", stack[0], uint64(n)))
}

func hostLog(inst *Instance, stack []uint64) {
	inst.logs++
	if inst.svc == nil {
		return
	}
	if inst.logs > maxLogsCall {
		inst.logsDropped++ // logging is not a channel for bulk data
		return
	}
	n := min(uint32(stack[2]), maxLogLine)
	inst.svc.Log(int(int32(stack[0])), Printable(string(inst.read("log", stack[1], uint64(n)))))
}

func hostCounter(inst *Instance, stack []uint64) {
	if uint32(stack[1]) > maxNameBytes {
		abort("counter name of %d bytes, more than %d", uint32(stack[1]), maxNameBytes)
	}
	name := inst.read("counter", stack[0], stack[1])
	if inst.svc == nil {
		return
	}
	if _, ok := inst.counterSet[string(name)]; !ok {
		if len(inst.counterSet) >= MaxCounters {
			panic(&hostPanic{fmt.Errorf("%w: counter %q would be the operator's %d-th distinct counter name; at most %d are kept (put variable parts in records, not in counter names)", ErrHostLimit, Printable(string(name)), MaxCounters+1, MaxCounters)})
		}
		if inst.counterSet == nil {
			inst.counterSet = make(map[string]struct{})
		}
		inst.counterSet[string(name)] = struct{}{}
	}
	inst.svc.Counter(string(name), int64(stack[2]))
}

func (inst *Instance) services(what string) Services {
	if inst.svc == nil {
		abort("%s: %v", what, errNoServices)
	}
	return inst.svc
}

// keyedOnly aborts unless the operator is keyed: keyed state and timers
// need a key.
func (inst *Instance) keyedOnly(what string) {
	if inst.opDesc != nil && !inst.opDesc.Kind.Keyed() {
		abort("%s: operator %s is a %s; only process and co_process operators have keyed state and timers (any operator may declare operator state)", what, inst.opDesc.Name, inst.opDesc.Kind)
	}
}

func hostStateRegister(inst *Instance, stack []uint64) {
	if inst.method != wasmabi.MethodOpen {
		abort("state_register during %s; declare state during open", inst.method)
	}
	if uint32(stack[1]) > maxNameBytes {
		abort("state name of %d bytes, more than %d", uint32(stack[1]), maxNameBytes)
	}
	name := string(inst.read("state_register", stack[0], stack[1]))
	kind := wasmabi.StateKind(uint32(stack[2]))
	if !kind.Valid() {
		abort("state_register %q: unknown state kind %d", name, kind)
	}
	if kind.Keyed() {
		inst.keyedOnly("state_register")
	}
	id, err := inst.services("state_register").StateRegister(name, kind)
	if err != nil {
		abort("state_register %q: %v", name, err)
	}
	stack[0] = uint64(id)
}

func hostState(inst *Instance, stack []uint64) {
	svc := inst.services("state")
	op := wasmabi.StateOp(uint32(stack[0]))
	key := inst.read("state key", stack[2], stack[3])
	ukey := inst.read("state user key", stack[4], stack[5])
	v := inst.read("state value", stack[6], stack[7])
	var value, out []byte
	switch op {
	case wasmabi.StateGet, wasmabi.StateEntries:
		out = v
	case wasmabi.StatePut:
		value = v
	case wasmabi.StateDelete, wasmabi.StateClear:
	default:
		abort("state: unknown op %d", op)
	}
	n, err := svc.State(op, uint32(stack[1]), key, ukey, value, out)
	if err != nil {
		abort("state: %v", err)
	}
	stack[0] = uint64(n)
}

func hostTimer(inst *Instance, stack []uint64) {
	inst.keyedOnly("timer")
	svc := inst.services("timer")
	op := wasmabi.TimerOp(uint32(stack[0]))
	if op != wasmabi.TimerRegister && op != wasmabi.TimerDelete {
		abort("timer: unknown op %d", op)
	}
	domain := wasmabi.TimeDomain(uint32(stack[1]))
	if domain != wasmabi.EventTime && domain != wasmabi.ProcessingTime {
		abort("timer: unknown time domain %d", domain)
	}
	key := inst.read("timer key", stack[3], stack[4])
	if err := svc.Timer(op, domain, int64(stack[2]), key); err != nil {
		if errors.Is(err, ErrHostLimit) {
			panic(&hostPanic{err})
		}
		abort("timer: %v", err)
	}
}
