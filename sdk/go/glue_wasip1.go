//go:build wasip1

package weir

import (
	"unsafe"

	"github.com/weirstream/weir/wasmabi"
)

// This file is the glue of a WebAssembly module: the imports of module
// "weir" behind the Host interface, and the four exports of ABI v1.

//go:wasmimport weir output
func weirOutput(ptr unsafe.Pointer, n uint32)

//go:wasmimport weir fail
func weirFail(ptr unsafe.Pointer, n uint32)

//go:wasmimport weir log
func weirLog(level uint32, ptr unsafe.Pointer, n uint32)

//go:wasmimport weir counter
func weirCounter(ptr unsafe.Pointer, n uint32, delta int64)

//go:wasmimport weir state_register
func weirStateRegister(ptr unsafe.Pointer, n uint32, kind uint32) int32

//go:wasmimport weir state
func weirState(op uint32, id int32, kptr unsafe.Pointer, klen uint32, uptr unsafe.Pointer, ulen uint32, vptr unsafe.Pointer, vlen uint32) int64

//go:wasmimport weir timer
func weirTimer(op uint32, domain uint32, ts int64, kptr unsafe.Pointer, klen uint32)

func bytesPtr(b []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(b)) }
func strPtr(s string) unsafe.Pointer   { return unsafe.Pointer(unsafe.StringData(s)) }

type wasmHost struct{}

func (wasmHost) Output(b []byte)           { weirOutput(bytesPtr(b), uint32(len(b))) }
func (wasmHost) Fail(msg string)           { weirFail(strPtr(msg), uint32(len(msg))) }
func (wasmHost) Log(level int, msg string) { weirLog(uint32(level), strPtr(msg), uint32(len(msg))) }
func (wasmHost) Counter(name string, delta int64) {
	weirCounter(strPtr(name), uint32(len(name)), delta)
}
func (wasmHost) StateRegister(name string, kind wasmabi.StateKind) int32 {
	return weirStateRegister(strPtr(name), uint32(len(name)), uint32(kind))
}
func (wasmHost) State(op wasmabi.StateOp, id int32, key, userKey, value []byte) int64 {
	return weirState(uint32(op), id, bytesPtr(key), uint32(len(key)), bytesPtr(userKey), uint32(len(userKey)),
		bytesPtr(value), uint32(len(value)))
}
func (wasmHost) Timer(op wasmabi.TimerOp, domain wasmabi.TimeDomain, ts int64, key []byte) {
	weirTimer(uint32(op), uint32(domain), ts, bytesPtr(key), uint32(len(key)))
}

// module is the module's only instance.
var module = newInstance(wasmHost{})

// input is the buffer the host writes its input to; it only grows, and Go's
// garbage collector does not move it.
var input []byte

//go:wasmexport weir_abi_version
func weirABIVersion() int32 { return wasmabi.Version }

//go:wasmexport weir_describe
func weirDescribe() {
	d := Describe()
	weirOutput(bytesPtr(d), uint32(len(d)))
}

//go:wasmexport weir_buffer
func weirBuffer(size uint32) uint32 {
	if int(size) > len(input) || input == nil {
		input = make([]byte, max(int(size), 64))
	}
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(input))))
}

//go:wasmexport weir_call
func weirCall(op, method, n uint32) uint32 {
	if int(n) > len(input) {
		msg := "weir: weir_call with more input than weir_buffer gave"
		weirFail(strPtr(msg), uint32(len(msg)))
		return wasmabi.CallFailed
	}
	if module.call(int(op), wasmabi.Method(method), input[:n:n]) {
		return wasmabi.CallOK
	}
	return wasmabi.CallFailed
}
