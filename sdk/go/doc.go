// Package weir is the Go SDK for writing weir operators: the user code of a
// weir stream processing job, compiled to a WebAssembly module and run by the
// weir workers in a sandbox.
//
// A module registers its operators from init functions (a WASI reactor runs
// package initialization, never main, which must still exist):
//
//	package main
//
//	import weir "github.com/weirstream/weir/sdk/go"
//
//	func init() {
//		weir.Map("upper", func(r weir.Record) (weir.Record, error) {
//			r.Value = bytes.ToUpper(r.Value)
//			return r, nil
//		})
//	}
//
//	func main() {}
//
// and is built with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o op.wasm .
//
// # Kinds of operators
//
//   - [Map], [Filter] and [FlatMap]: stateless, one record at a time.
//   - [Process]: keyed; a [ProcessFunction] with typed keyed state
//     ([NewValueState], [NewListState], [NewMapState]) and timers.
//   - [CoProcess]: keyed with two inputs, a [CoProcessFunction].
//   - [Aggregate]: a window aggregate, an [AggregateFunction] with an
//     accumulator of any type and its [Codec].
//
// Operators are registered in order; the order is the operator's index in the
// module's descriptor. Names may use letters, digits, '_', '-' and '.'.
//
// # Lifetimes
//
// Records are handed to operators in batches. The Key, Value and Headers of a
// [Record] an operator receives alias the module's input buffer: they are
// valid only until the operator returns, and the operator may change those
// bytes in place (the buffer belongs to the module during the call), for
// instance r.Value = strconv.AppendInt(r.Value[:0], n, 10) when the result
// fits. Copy them to keep them. Emitted records are copied at once, so an
// operator may emit bytes that live on its stack or in a reused buffer.
// A [*Context] or [Emitter] is valid only during the call it was passed to.
//
// # Errors
//
// An error returned by an operator, or a panic in it, fails the whole batch:
// the host gets a message that starts with the index of the failing record
// in the batch ("record 17: ..."). Misusing the SDK (emitting to an
// undeclared side output, using state outside a keyed call) panics with a
// message that says so, and fails the batch the same way.
//
// # Testing
//
// The package also builds natively, with a glue ([NewInstance], [SetHost],
// [Call], [Describe]) that runs the registered operators against an
// in-process [Host]. Package weirtest provides an in-memory host and a
// harness for unit tests of operators.
package weir
