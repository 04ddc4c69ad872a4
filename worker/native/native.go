// Package native runs operators registered with the Go SDK in this process,
// without WebAssembly: the same operator source, linked into the binary. It
// exists to measure what the sandbox costs (weir bench nexmark --native)
// and to debug operators with native tools. Native operators are not
// isolated: use them only for code you trust.
package native

import (
	"context"
	"errors"
	"fmt"

	weir "github.com/weirstream/weir/sdk/go"
	"github.com/weirstream/weir/wasmabi"
	"github.com/weirstream/weir/worker/task"
	"github.com/weirstream/weir/worker/wasmhost"
)

// ModuleName is how errors name the native module.
const ModuleName = "native"

// Descriptor returns the operators registered in this process.
func Descriptor() (*wasmabi.Descriptor, error) {
	d, err := wasmabi.ParseDescriptor(weir.Describe())
	if err != nil {
		return nil, fmt.Errorf("native: the registered operators: %w", err)
	}
	return d, nil
}

// Factory returns a factory of instances of the registered operator name.
func Factory(name string) (task.OperatorFactory, *wasmabi.OperatorDesc, error) {
	d, err := Descriptor()
	if err != nil {
		return nil, nil, err
	}
	idx, desc, ok := d.Operator(name)
	if !ok {
		return nil, nil, fmt.Errorf("native: no operator %q is linked into this binary (linked: %v)", name, d.Names())
	}
	f := func(ctx context.Context, subtask int, svc task.Services) (task.Operator, error) {
		o := &operator{idx: idx, name: name, svc: svc}
		o.inst = weir.NewInstance(o)
		return o, nil
	}
	return f, desc, nil
}

// operator is one native instance; it is the SDK's Host too.
type operator struct {
	idx     int
	name    string
	inst    *weir.Instance
	svc     task.Services
	out     []byte
	failMsg string
	hostErr error
	in      []byte
}

func (o *operator) Open(params []byte) error {
	_, err := o.Call(wasmabi.MethodOpen, params)
	return err
}

func (o *operator) Call(method wasmabi.Method, in []byte) ([]byte, error) {
	o.out, o.failMsg, o.hostErr = o.out[:0], "", nil
	// The SDK may modify its input in place; in is the caller's to reuse,
	// and it does not read it after the call, so no copy is needed.
	ok := o.inst.Call(o.idx, method, in)
	if o.hostErr != nil {
		return nil, &wasmhost.Error{Module: ModuleName, Operator: o.name, Method: method.String(), Record: -1, Err: fmt.Errorf("%w: %v", wasmhost.ErrHostCall, o.hostErr)}
	}
	if !ok {
		return nil, wasmhost.OperatorError(ModuleName, o.name, method, o.failMsg)
	}
	return o.out, nil
}

func (o *operator) Close() error { return nil }

// Host methods.

func (o *operator) Output(entries []byte) { o.out = append(o.out, entries...) }
func (o *operator) Fail(msg string)       { o.failMsg = msg }
func (o *operator) Log(level int, msg string) {
	o.svc.Log(level, msg)
}
func (o *operator) Counter(name string, delta int64) { o.svc.Counter(name, delta) }

func (o *operator) StateRegister(name string, kind wasmabi.StateKind) int32 {
	id, err := o.svc.StateRegister(name, kind)
	if err != nil {
		o.setErr(err)
		return -1
	}
	return int32(id)
}

func (o *operator) State(op wasmabi.StateOp, id int32, key, userKey, value []byte) int64 {
	if id < 0 {
		o.setErr(errors.New("state id is negative"))
		return -1
	}
	var n int64
	var err error
	if op == wasmabi.StateGet || op == wasmabi.StateEntries {
		n, err = o.svc.State(op, uint32(id), key, userKey, nil, value)
	} else {
		n, err = o.svc.State(op, uint32(id), key, userKey, value, nil)
	}
	if err != nil {
		o.setErr(err)
		return -1
	}
	return n
}

func (o *operator) Timer(op wasmabi.TimerOp, domain wasmabi.TimeDomain, ts int64, key []byte) {
	if err := o.svc.Timer(op, domain, ts, key); err != nil {
		o.setErr(err)
	}
}

func (o *operator) setErr(err error) {
	if o.hostErr == nil {
		o.hostErr = err
	}
}
