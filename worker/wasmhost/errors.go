package wasmhost

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/weirstream/weir/wasmabi"
)

// Sentinel errors, one per way a module can fail. Every failure of a module is
// returned as an *Error that wraps one of them, so callers can tell them apart
// with errors.Is.
var (
	ErrInvalidModule = errors.New("wasmhost: not a valid WebAssembly module")
	ErrImport        = errors.New("wasmhost: module imports a function the host does not offer")
	ErrVersion       = errors.New("wasmhost: ABI version mismatch")
	ErrDescriptor    = errors.New("wasmhost: bad operator descriptor")
	ErrNoOperator    = errors.New("wasmhost: no such operator")
	ErrTrap          = errors.New("wasmhost: module trapped")
	ErrExit          = errors.New("wasmhost: module exited")
	ErrTimeout       = errors.New("wasmhost: call exceeded its time limit")
	ErrMemoryLimit   = errors.New("wasmhost: module exceeded its memory limit")
	ErrOutputLimit   = errors.New("wasmhost: call exceeded its output limit")
	ErrBadOutput     = errors.New("wasmhost: malformed output")
	ErrHostCall      = errors.New("wasmhost: bad host function call")
	ErrOperator      = errors.New("wasmhost: operator failed")
	ErrClosed        = errors.New("wasmhost: instance closed")
)

// Error is a failure of one module, operator and call. It says which module,
// which operator, what the host was doing and what happened.
type Error struct {
	Module   string // module name (usually its file name)
	Operator string // operator name, empty when the module as a whole failed
	Method   string // the ABI method or phase ("instantiate", "process", ...)
	Record   int    // index of the failing record in its batch, or -1
	Err      error  // wraps one of the sentinels above
	Detail   string // what the module printed to stderr before it failed, if anything
}

func (e *Error) Error() string {
	where := "module " + e.Module
	if e.Operator != "" {
		where += ", operator " + e.Operator
	}
	if e.Method != "" {
		where += ", " + e.Method
	}
	if e.Record >= 0 {
		where += fmt.Sprintf(", record %d of the batch", e.Record)
	}
	msg := where + ": " + e.Err.Error()
	if e.Detail != "" {
		msg += " (stderr: " + e.Detail + ")"
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Poisoning reports whether the instance that produced e can no longer be
// used. Only an operator's own error (returned through fail) leaves the
// instance healthy; a trap, exit, timeout or limit leaves it in an unknown
// state.
func (e *Error) Poisoning() bool { return !errors.Is(e.Err, ErrOperator) }

// OperatorError is the error of an operator that failed a call with msg
// (through the fail host function, or natively). A message that starts with
// "record N:" or "timer N:" names the failing entry of the batch; Record is
// set from it and the prefix dropped.
func OperatorError(module, operator string, method wasmabi.Method, msg string) *Error {
	rec := -1
	for _, prefix := range []string{"record ", "timer "} {
		rest, ok := strings.CutPrefix(msg, prefix)
		if !ok {
			continue
		}
		if i := strings.IndexByte(rest, ':'); i > 0 {
			if n, err := strconv.Atoi(rest[:i]); err == nil && n >= 0 {
				rec, msg = n, strings.TrimSpace(rest[i+1:])
			}
		}
	}
	return &Error{Module: module, Operator: operator, Method: method.String(), Record: rec,
		Err: fmt.Errorf("%w: %s", ErrOperator, msg)}
}
