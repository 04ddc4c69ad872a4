package wasmhost

import (
	"github.com/weirstream/weir/wasmabi"
)

// Services is what an instance's host functions reach outside the module:
// keyed state, timers, logs and counters. The task that owns the instance
// provides it; calls arrive on the goroutine that called Invoke.
//
// Keys are the keys the module passes, already checked to be non-nil; a
// Services implementation checks they belong to its key-group range.
type Services interface {
	// StateRegister declares a keyed state and returns its id.
	StateRegister(name string, kind wasmabi.StateKind) (uint32, error)
	// State runs one state operation (see wasmabi.StateOp). For Get and
	// Entries it writes the result to out when it fits and returns the full
	// length, or -1 when there is nothing; else it returns 0.
	State(op wasmabi.StateOp, id uint32, key, userKey, value, out []byte) (int64, error)
	// Timer registers or deletes a timer for key.
	Timer(op wasmabi.TimerOp, domain wasmabi.TimeDomain, ts int64, key []byte) error
	// Log receives one log line of the module.
	Log(level int, msg string)
	// Counter adds delta to the named counter.
	Counter(name string, delta int64)
}
