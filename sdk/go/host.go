package weir

import "github.com/weirstream/weir/wasmabi"

// Host is what the SDK calls out to: the functions a weir worker offers a
// module under the import module "weir", with Go slices and strings in place
// of pointers and lengths. In a WebAssembly module the SDK implements it
// with the module's imports; natively, [NewInstance] and [SetHost] take one,
// for tests (package weirtest has an in-memory Host) and for hosts that run
// operators in-process.
//
// Slices passed to a Host are only valid during the method call. The SDK
// calls a Host from one goroutine at a time.
type Host interface {
	// Output appends encoded output entries (wasmabi.AppendEntry layout, no
	// batch header) to the output of the current call. It may be called
	// several times per call; the host concatenates.
	Output(entries []byte)
	// Fail sets the error message of the current call, which then fails.
	Fail(msg string)
	// Log writes one log line at a wasmabi log level.
	Log(level int, msg string)
	// Counter adds delta to the named counter. The SDK calls it at most
	// once per counter and call, at the end of the call.
	Counter(name string, delta int64)
	// StateRegister declares a keyed state of the operator being opened
	// and returns its id, or a negative number if the host refuses.
	StateRegister(name string, kind wasmabi.StateKind) int32
	// State runs one state operation (see wasmabi.StateOp) on state id for
	// key. For StatePut value holds the value to store; for StateGet and
	// StateEntries it is the buffer to write the result to, which is
	// written only if the whole result fits, and the result is the full
	// length, or -1 when there is nothing. Other operations return 0.
	State(op wasmabi.StateOp, id int32, key, userKey, value []byte) int64
	// Timer registers or deletes a timer for key.
	Timer(op wasmabi.TimerOp, domain wasmabi.TimeDomain, ts int64, key []byte)
}
