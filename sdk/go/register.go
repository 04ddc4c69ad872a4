package weir

import (
	"sync"

	"github.com/weirstream/weir/wasmabi"
)

// SDKVersion is the "sdk" field of the descriptor the module reports.
const SDKVersion = "go/0.1"

// An operator as registered.
type operator struct {
	name     string
	kind     wasmabi.Kind
	side     []string
	onOpen   func(*OpenContext) error
	onFinish func(*Context) error

	mapFn    func(Record) (Record, error)
	filterFn func(Record) (bool, error)
	flatFn   func(Record, Emitter) error
	proc     ProcessFunction
	coproc   CoProcessFunction
	agg      aggRunner
}

// registry holds the operators in registration order; the index is the op
// argument of weir_call. Operators are registered from init functions, before
// any call, and never change afterwards.
var registry []*operator

// Option configures an operator at registration.
type Option func(*operator)

// SideOutputs declares named side outputs the operator may emit to with
// EmitTo, in addition to its main output.
func SideOutputs(names ...string) Option {
	return func(o *operator) { o.side = append(o.side, names...) }
}

// OnOpen runs fn when the operator is opened, before any record; fn can read
// the operator's parameters. For Process and CoProcess operators it runs
// after the function's Open.
func OnOpen(fn func(*OpenContext) error) Option {
	return func(o *operator) { o.onOpen = fn }
}

// OnFinish runs fn at the end of a bounded input, after the last record;
// it may emit final records. There is no current key: keyed state and
// timers are not available. Process and CoProcess functions can instead
// implement [Finisher].
func OnFinish(fn func(ctx *Context) error) Option {
	return func(o *operator) { o.onFinish = fn }
}

// Map registers a map operator: one record in, one record out. The returned
// record may be the input, changed.
func Map(name string, fn func(r Record) (Record, error), opts ...Option) {
	register(&operator{name: name, kind: wasmabi.KindMap, mapFn: fn}, fn == nil, opts)
}

// Filter registers a filter operator: records for which fn returns true
// pass unchanged.
func Filter(name string, fn func(r Record) (bool, error), opts ...Option) {
	register(&operator{name: name, kind: wasmabi.KindFilter, filterFn: fn}, fn == nil, opts)
}

// FlatMap registers a flat-map operator: fn emits any number of records for
// each record, to the main output or to side outputs declared with
// [SideOutputs], and may emit watermarks.
func FlatMap(name string, fn func(r Record, out Emitter) error, opts ...Option) {
	register(&operator{name: name, kind: wasmabi.KindFlatMap, flatFn: fn}, fn == nil, opts)
}

// Process registers a keyed process operator. Its input is partitioned by
// record key; p sees keyed state and timers scoped to the key of the record
// or timer at hand.
func Process(name string, p ProcessFunction, opts ...Option) {
	register(&operator{name: name, kind: wasmabi.KindProcess, proc: p}, p == nil, opts)
}

// CoProcess registers a keyed operator with two inputs.
func CoProcess(name string, p CoProcessFunction, opts ...Option) {
	register(&operator{name: name, kind: wasmabi.KindCoProcess, coproc: p}, p == nil, opts)
}

// Aggregate registers a window aggregate over accumulators of type A, which
// codec stores between calls. The host groups records by key and window;
// fn folds them into accumulators and turns each final accumulator into a
// result record.
func Aggregate[A any](name string, fn AggregateFunction[A], codec Codec[A], opts ...Option) {
	register(&operator{name: name, kind: wasmabi.KindAggregate, agg: &aggOp[A]{fn: fn, codec: codec}},
		fn == nil || codec == nil, opts)
}

func register(o *operator, missing bool, opts []Option) {
	if err := validName(o.name); err != "" {
		panic(usageError("weir: cannot register operator: " + err))
	}
	if missing {
		panic(usageError("weir: operator " + quote(o.name) + ": nil function or codec"))
	}
	for _, r := range registry {
		if r.name == o.name {
			panic(usageError("weir: operator " + quote(o.name) + " registered twice"))
		}
	}
	for _, opt := range opts {
		opt(o)
	}
	if len(o.side) > 0 && o.kind == wasmabi.KindAggregate {
		panic(usageError("weir: operator " + quote(o.name) + ": an aggregate has no side outputs"))
	}
	if len(o.side) > wasmabi.MaxSideOutputs {
		panic(usageError("weir: operator " + quote(o.name) + ": too many side outputs"))
	}
	for i, s := range o.side {
		if err := validName(s); err != "" {
			panic(usageError("weir: operator " + quote(o.name) + ": side output: " + err))
		}
		for _, t := range o.side[:i] {
			if s == t {
				panic(usageError("weir: operator " + quote(o.name) + ": side output " + quote(s) + " declared twice"))
			}
		}
	}
	if len(registry) == wasmabi.MaxOperators {
		panic(usageError("weir: too many operators"))
	}
	registry = append(registry, o)
	descMu.Lock()
	descriptor = nil
	descMu.Unlock()
}

func validName(s string) string {
	if s == "" {
		return "empty name"
	}
	if len(s) > wasmabi.MaxNameLen {
		return "name " + quote(s[:32]) + "... is too long"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return "name " + quote(s) + ": only letters, digits, '_', '-' and '.' are allowed"
		}
	}
	return ""
}

var (
	descMu     sync.Mutex
	descriptor []byte
)

// Describe returns the module's descriptor, the JSON document weir_describe
// writes: the SDK version and the registered operators, in order. The
// result must not be modified.
func Describe() []byte {
	descMu.Lock()
	defer descMu.Unlock()
	if descriptor != nil {
		return descriptor
	}
	b := []byte(`{"sdk":` + quote(SDKVersion) + `,"operators":[`)
	for i, o := range registry {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = appendQuoted(b, o.name)
		b = append(b, `,"kind":`...)
		b = appendQuoted(b, string(o.kind))
		if len(o.side) > 0 {
			b = append(b, `,"side_outputs":[`...)
			for j, s := range o.side {
				if j > 0 {
					b = append(b, ',')
				}
				b = appendQuoted(b, s)
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	descriptor = append(b, "]}"...)
	return descriptor
}

func quote(s string) string { return string(appendQuoted(nil, s)) }

// appendQuoted appends s as a JSON string.
func appendQuoted(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
