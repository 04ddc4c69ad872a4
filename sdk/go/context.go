package weir

import (
	"fmt"
	"math"

	"github.com/weirstream/weir/wasmabi"
)

// NoWatermark is the watermark before any watermark has arrived.
const NoWatermark int64 = math.MinInt64

// TimeDomain tells event-time timers from processing-time timers.
type TimeDomain uint8

const (
	EventTime      = TimeDomain(wasmabi.EventTime)
	ProcessingTime = TimeDomain(wasmabi.ProcessingTime)
)

func (d TimeDomain) String() string {
	if d == ProcessingTime {
		return "processing time"
	}
	return "event time"
}

// Timer is a due timer, handed to OnTimer. Its key is the key of the
// context.
type Timer struct {
	Timestamp int64
	Domain    TimeDomain
}

// Level is the level of a log line.
type Level int

const (
	LevelDebug Level = wasmabi.LogDebug
	LevelInfo  Level = wasmabi.LogInfo
	LevelWarn  Level = wasmabi.LogWarn
	LevelError Level = wasmabi.LogError
)

// ProcessFunction is the user code of a keyed process operator.
type ProcessFunction interface {
	// Open is called once per instance before any record, to read the
	// parameters and declare keyed state.
	Open(o *OpenContext) error
	// ProcessElement is called for each record, with ctx scoped to the
	// record's key.
	ProcessElement(ctx *Context, r Record) error
	// OnTimer is called for each due timer the function registered, with
	// ctx scoped to the timer's key.
	OnTimer(ctx *Context, t Timer) error
}

// CoProcessFunction is the user code of a keyed operator with two inputs.
type CoProcessFunction interface {
	Open(o *OpenContext) error
	// ProcessElement1 is called for each record of the first input.
	ProcessElement1(ctx *Context, r Record) error
	// ProcessElement2 is called for each record of the second input.
	ProcessElement2(ctx *Context, r Record) error
	OnTimer(ctx *Context, t Timer) error
}

// Finisher may be implemented by a ProcessFunction or CoProcessFunction to
// emit final records at the end of a bounded input. There is no current key
// during Finish: keyed state and timers are not available.
type Finisher interface {
	Finish(ctx *Context) error
}

// BaseProcess can be embedded in a process or co-process function to get an
// Open that declares nothing and an OnTimer that ignores timers.
type BaseProcess struct{}

func (BaseProcess) Open(*OpenContext) error       { return nil }
func (BaseProcess) OnTimer(*Context, Timer) error { return nil }

// OpenContext is handed to Open. It is valid only during Open.
type OpenContext struct {
	in     *instance
	op     *operator
	opIdx  int
	params []byte
	done   bool
}

// Name returns the operator's name.
func (o *OpenContext) Name() string { return o.op.name }

// Params returns the operator's parameters, as the job gives them: JSON,
// or empty when there are none. The slice may be kept.
func (o *OpenContext) Params() []byte { return o.params }

// Log writes a log line at info level.
func (o *OpenContext) Log(msg string) { o.in.host.Log(int(LevelInfo), msg) }

// Logf formats a log line at info level, with fmt.Sprintf. (A module that
// calls Logf links fmt, about 0.35 MB of WebAssembly; Log does not.)
func (o *OpenContext) Logf(format string, args ...any) {
	o.in.host.Log(int(LevelInfo), fmt.Sprintf(format, args...))
}

// register declares a state and returns a reference to it.
func (o *OpenContext) register(name string, kind wasmabi.StateKind, what string) stateRef {
	if o == nil || o.done {
		panic(usageError("weir: " + what + "(" + quote(name) + ") must be called during Open"))
	}
	if kind.Keyed() && !o.op.kind.Keyed() {
		panic(usageError("weir: " + what + "(" + quote(name) + "): operator " + quote(o.op.name) +
			" is a " + string(o.op.kind) + "; keyed state needs Process or CoProcess (operator state does not)"))
	}
	if name == "" {
		panic(usageError("weir: " + what + ": empty state name"))
	}
	id := o.in.host.StateRegister(name, kind)
	if id < 0 {
		panic(usageError("weir: " + what + "(" + quote(name) + "): the host refused the state"))
	}
	st := o.in.opState(o.opIdx)
	st.ids = append(st.ids, id)
	return stateRef{op: o.opIdx, slot: len(st.ids) - 1, name: name, operator: !kind.Keyed()}
}

// Context is handed to the functions of an operator for each record or
// timer (and to finish hooks). It is valid only during that call.
type Context struct {
	in    *instance
	op    *operator
	opIdx int
	keyed bool // a current key is set
	key   []byte
	ts    int64
	wm    int64
	pt    int64
}

// Key returns the key of the record or timer being processed. It aliases
// the input buffer.
func (c *Context) Key() []byte { return c.key }

// Timestamp returns the timestamp of the record or timer being processed.
func (c *Context) Timestamp() int64 { return c.ts }

// Watermark returns the current event-time watermark of the task, or
// NoWatermark.
func (c *Context) Watermark() int64 { return c.wm }

// ProcessingTime returns the host's processing time when the batch was
// sent, in milliseconds since the Unix epoch.
func (c *Context) ProcessingTime() int64 { return c.pt }

// Emit emits r to the main output. Its bytes are copied.
func (c *Context) Emit(r Record) { c.in.appendEntry(0, r.Key, r.Value, r.Timestamp, r.Headers) }

// EmitTo emits r to the named side output, which the operator must have
// declared with [SideOutputs].
func (c *Context) EmitTo(sideOutput string, r Record) {
	c.in.appendEntry(c.port(sideOutput), r.Key, r.Value, r.Timestamp, r.Headers)
}

// EmitWatermark emits a watermark: no record with a smaller timestamp
// should follow on this operator's output.
func (c *Context) EmitWatermark(ts int64) { c.in.appendWatermark(ts) }

func (c *Context) port(side string) uint16 {
	for i, s := range c.op.side {
		if s == side {
			return uint16(i + 1)
		}
	}
	panic(usageError("weir: EmitTo: operator " + quote(c.op.name) + " declares no side output " + quote(side) +
		"; declare it with weir.SideOutputs"))
}

func (c *Context) currentKey(what string) []byte {
	if !c.keyed {
		panic(usageError("weir: " + what + ": no current key here (state and timers are for ProcessElement and OnTimer)"))
	}
	return c.key
}

// RegisterEventTimer registers a timer for the current key that fires when
// the watermark passes ts. Registering the same timer twice is one timer.
func (c *Context) RegisterEventTimer(ts int64) {
	c.in.host.Timer(wasmabi.TimerRegister, wasmabi.EventTime, ts, c.currentKey("RegisterEventTimer"))
}

// RegisterProcessingTimer registers a timer for the current key that fires
// when the processing time reaches ts.
func (c *Context) RegisterProcessingTimer(ts int64) {
	c.in.host.Timer(wasmabi.TimerRegister, wasmabi.ProcessingTime, ts, c.currentKey("RegisterProcessingTimer"))
}

// DeleteEventTimer deletes an event-time timer of the current key.
func (c *Context) DeleteEventTimer(ts int64) {
	c.in.host.Timer(wasmabi.TimerDelete, wasmabi.EventTime, ts, c.currentKey("DeleteEventTimer"))
}

// DeleteProcessingTimer deletes a processing-time timer of the current key.
func (c *Context) DeleteProcessingTimer(ts int64) {
	c.in.host.Timer(wasmabi.TimerDelete, wasmabi.ProcessingTime, ts, c.currentKey("DeleteProcessingTimer"))
}

// Log writes a log line at info level.
func (c *Context) Log(msg string) { c.in.host.Log(int(LevelInfo), msg) }

// Logf formats a log line at info level, with fmt.Sprintf (see
// [OpenContext.Logf]).
func (c *Context) Logf(format string, args ...any) {
	c.in.host.Log(int(LevelInfo), fmt.Sprintf(format, args...))
}

// LogAt writes a log line at the given level.
func (c *Context) LogAt(level Level, msg string) { c.in.host.Log(int(level), msg) }

// Counter returns the named counter. Additions are summed in the module and
// reach the host once per batch.
func (c *Context) Counter(name string) Counter { return c.in.counter(name) }

// Counter is a named metric counter; see [Context.Counter].
type Counter struct {
	in *instance
	i  int
}

// Add adds n to the counter.
func (k Counter) Add(n int64) { k.in.counters[k.i].delta += n }

// Emitter is handed to a FlatMap function to emit its records. It is valid
// only during the call.
type Emitter struct{ c *Context }

// Emit emits r to the main output. Its bytes are copied.
func (e Emitter) Emit(r Record) { e.c.in.appendEntry(0, r.Key, r.Value, r.Timestamp, r.Headers) }

// EmitTo emits r to the named side output, declared with [SideOutputs].
func (e Emitter) EmitTo(sideOutput string, r Record) { e.c.EmitTo(sideOutput, r) }

// EmitWatermark emits a watermark.
func (e Emitter) EmitWatermark(ts int64) { e.c.in.appendWatermark(ts) }

// usageError is the panic value of a misuse of the SDK; its message is
// reported as is, without "panic:".
type usageError string

func (e usageError) Error() string { return string(e) }
