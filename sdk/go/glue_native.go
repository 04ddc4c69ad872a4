//go:build !wasip1

package weir

import (
	"sync"

	"github.com/weirstream/weir/wasmabi"
)

// This file is the glue of a native build: the registered operators run
// in-process against a Go Host, for unit tests (see package weirtest) and for
// hosts that run the same operator source without WebAssembly.

// Instance is one independent instance of the module's registered operators
// bound to a Host: it has its own buffers, counters and state ids, like one
// instance of the WebAssembly module. An Instance must not be called
// concurrently; different Instances may be.
//
// Operators are registered once per process and shared by all Instances:
// functions must not keep mutable data outside keyed state if Instances run
// concurrently. A process function's Open runs once per Instance; the state
// handles it declares are the same values in every Instance, so Open all
// Instances before processing with any of them if Open stores the handles
// in a shared ProcessFunction.
type Instance struct {
	in *instance
}

// NewInstance returns a new Instance bound to h.
func NewInstance(h Host) *Instance {
	if h == nil {
		panic("weir: NewInstance with a nil Host")
	}
	return &Instance{in: newInstance(h)}
}

// Call runs method of the operator at index op (its position in
// [Describe]'s list) over input, which is laid out as for weir_call: the
// operator's parameters for wasmabi.MethodOpen, else a batch (header and
// entries). It returns false when the call failed, after calling the host's
// Fail with the reason. Output goes to the host's Output, in one or more
// calls, before Call returns.
//
// The operator may modify input in place during the call: pass a buffer the
// host does not need afterwards, as a host writes its batch into a module's
// memory.
func (i *Instance) Call(op int, method wasmabi.Method, input []byte) bool {
	return i.in.call(op, method, input)
}

var (
	defaultMu   sync.Mutex
	defaultInst *Instance
)

// SetHost binds the package's default Instance, the one [Call] uses, to a
// new instance for h.
func SetHost(h Host) {
	inst := NewInstance(h)
	defaultMu.Lock()
	defaultInst = inst
	defaultMu.Unlock()
}

// Call runs a call on the default Instance (see [SetHost] and
// [Instance.Call]). It panics if no host was set.
func Call(op int, method wasmabi.Method, input []byte) bool {
	defaultMu.Lock()
	inst := defaultInst
	defaultMu.Unlock()
	if inst == nil {
		panic("weir: Call before SetHost")
	}
	return inst.Call(op, method, input)
}
