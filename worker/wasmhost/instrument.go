package wasmhost

import (
	"errors"
	"fmt"
)

// InterruptExport is the name of the global that instrument adds to a
// module: the host sets it to non-zero to stop the module at its next loop
// iteration.
const InterruptExport = "weir_interrupt"

// StartExport is the name instrument exports a module's start function
// under, after removing the start section: the host calls it right after
// instantiation, under the time limit, instead of wazero calling it inside
// instantiation where the interrupt flag cannot reach it yet.
const StartExport = "weir_start"

// FuelExport and RefillsExport are the globals instrument adds to count a
// module's work: fuel goes down by one at every function entry and every
// stepsPerFuel loop iterations, and is refilled to yieldEvery (counting the
// refill) when it reaches zero. A call's fuel is then
// refills*yieldEvery + fuel before - fuel after: exact, deterministic, and
// free to read (two global loads at each end of a call).
const (
	FuelExport    = "weir_fuel"
	RefillsExport = "weir_fuel_refills"
)

// ErrInstrument wraps every reason instrument refuses a module.
var ErrInstrument = errors.New("wasmhost: cannot instrument module")

// instrument rewrites a WebAssembly binary so that the host can stop it and
// the Go runtime can preempt it. It adds two mutable i32 globals, a fuel
// counter and a stop flag (exported as InterruptExport), and one i32 local
// to every function, a step counter. At the entry of every function it
// inserts the global check
//
//	fuel -= 1
//	if fuel == 0 {
//	    if stop { unreachable }
//	    memory.grow(0)   // returns to Go: a preemption point
//	    fuel = yieldEvery
//	}
//	steps = stepsPerFuel
//
// and at the top of every loop body the local check
//
//	steps -= 1
//	if steps == 0 { <the global check>; steps = stepsPerFuel }
//
// so that a module stops within about yieldEvery calls or yieldEvery *
// stepsPerFuel loop iterations after the watchdog sets the flag, and so that
// a long call does not hold off the Go garbage collector's stop-the-world,
// which waits for every goroutine and cannot interrupt machine code
// (without the yield, a looping module and a collection deadlock: the
// collector waits for the module, the module for the watchdog, the watchdog
// for the collector). Loop tops use a local because it lives in a register:
// Go's WebAssembly code branches back to the top of each function's
// dispatch loop at most of its jumps, so loop tops are hot; a global there
// cost Go modules 4.5x (see docs/RATIONALE.md).
//
// wazero's own mechanism (WithCloseOnContextDone) returns from machine code to
// Go at every loop iteration; these checks are a decrement and a branch.
//
// The input is untrusted: instrument decodes only what it must (section
// headers, types, imports, functions, exports, function bodies), checks
// every length, and fails with ErrInstrument on anything it does not
// understand rather than guess. Custom sections that point into the code by
// offset (DWARF) are dropped, since the offsets move.
func instrument(wasm []byte) ([]byte, error) {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return nil, fmt.Errorf("%w: no WebAssembly magic number", ErrInstrument)
	}
	if string(wasm[4:8]) != "\x01\x00\x00\x00" {
		return nil, fmt.Errorf("%w: binary format version %x, want 1", ErrInstrument, wasm[4:8])
	}
	type section struct {
		id   byte
		body []byte
	}
	var secs []section
	r := reader{b: wasm, off: 8}
	for !r.done() {
		id := r.byte()
		n := r.u32()
		body := r.bytes(int(n))
		if r.err != nil {
			return nil, fmt.Errorf("%w: section %d: %v", ErrInstrument, id, r.err)
		}
		secs = append(secs, section{id, body})
	}

	var importedGlobals, definedGlobals uint32
	haveGlobalSec, haveMemory := false, false
	startFunc := int64(-1)  // the start section's function, moved to StartExport
	var typeParams []uint32 // parameter count by type index
	var funcTypes []uint32  // type index by defined function
	for _, s := range secs {
		switch s.id {
		case secType:
			var err error
			if typeParams, err = paramCounts(s.body); err != nil {
				return nil, err
			}
		case secFunction:
			sr := reader{b: s.body}
			for n := sr.u32(); n > 0 && sr.err == nil; n-- {
				funcTypes = append(funcTypes, sr.u32())
			}
			if sr.err != nil || !sr.done() {
				return nil, fmt.Errorf("%w: function section is malformed", ErrInstrument)
			}
		case secMemory:
			haveMemory = true
		case secStart:
			sr := reader{b: s.body}
			startFunc = int64(sr.u32())
			if sr.err != nil || !sr.done() {
				return nil, fmt.Errorf("%w: start section is malformed", ErrInstrument)
			}
		case secImport:
			n, mems, err := countImports(s.body)
			if err != nil {
				return nil, err
			}
			importedGlobals = n
			haveMemory = haveMemory || mems > 0
		case secGlobal:
			sr := reader{b: s.body}
			definedGlobals = sr.u32()
			if sr.err != nil {
				return nil, fmt.Errorf("%w: global section: %v", ErrInstrument, sr.err)
			}
			haveGlobalSec = true
		}
	}
	if !haveMemory {
		return nil, fmt.Errorf("%w: the module has no memory", ErrInstrument)
	}
	fuel := importedGlobals + definedGlobals // then stop = fuel+1, refills = fuel+2
	check := loopCheck(fuel)

	out := make([]byte, 0, len(wasm)+len(wasm)/16+64)
	out = append(out, wasm[:8]...)
	emit := func(id byte, body []byte) {
		out = append(out, id)
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	newGlobals := append([]byte{0x7f, 0x01, 0x41}, appendS32(nil, yieldEvery)...) // fuel: i32, mutable, i32.const yieldEvery
	newGlobals = append(newGlobals, 0x0b, 0x7f, 0x01, 0x41, 0x00, 0x0b)           // stop: i32, mutable, i32.const 0
	newGlobals = append(newGlobals, 0x7f, 0x01, 0x41, 0x00, 0x0b)                 // refills: i32, mutable, i32.const 0
	haveExportSec := false
	// placeMissing adds a global or export section that the module lacks,
	// at its place in the section order, before a section that comes later.
	placeMissing := func(before int) {
		if !haveGlobalSec && before > order(secGlobal) {
			emit(secGlobal, append([]byte{3}, newGlobals...))
			haveGlobalSec = true
		}
		if !haveExportSec && before > order(secExport) {
			body, _ := addExport([]byte{0}, fuel+1, startFunc)
			emit(secExport, body)
			haveExportSec = true
		}
	}
	for _, s := range secs {
		if s.id != secCustom {
			placeMissing(order(s.id))
		}
		switch s.id {
		case secStart:
			// dropped: exported as StartExport instead
		case secCustom:
			name, _ := customName(s.body)
			if name == "name" || name == "producers" || name == "target_features" {
				emit(s.id, s.body)
			} // others (DWARF) point into the code by offset, which moves
		case secGlobal:
			sr := reader{b: s.body}
			sr.u32()
			body := appendU32(nil, definedGlobals+3)
			body = append(body, s.body[sr.off:]...)
			emit(s.id, append(body, newGlobals...))
		case secExport:
			body, err := addExport(s.body, fuel+1, startFunc)
			if err != nil {
				return nil, err
			}
			emit(s.id, body)
			haveExportSec = true
		case secCode:
			params := make([]uint32, len(funcTypes))
			for i, t := range funcTypes {
				if int(t) >= len(typeParams) {
					return nil, fmt.Errorf("%w: function %d has type %d, which does not exist", ErrInstrument, i, t)
				}
				params[i] = typeParams[t]
			}
			body, err := instrumentCode(s.body, check, params)
			if err != nil {
				return nil, err
			}
			emit(s.id, body)
		default:
			emit(s.id, s.body)
		}
	}
	placeMissing(order(0xff))
	return out, nil
}

// Section ids.
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
	secTag       = 13
)

// order is a section's place in the required order (the tag section sits
// between memory and global; data count between element and code).
func order(id byte) int {
	switch id {
	case secType, secImport, secFunction, secTable, secMemory:
		return int(id)
	case secTag:
		return 6
	case secGlobal:
		return 7
	case secExport:
		return 8
	case secStart:
		return 9
	case secElement:
		return 10
	case secDataCount:
		return 11
	case secCode:
		return 12
	case secData:
		return 13
	}
	return 100 // the end
}

func customName(body []byte) (string, error) {
	r := reader{b: body}
	n := r.u32()
	name := r.bytes(int(n))
	return string(name), r.err
}

// countImports counts the imported globals and memories.
func countImports(body []byte) (globals, memories uint32, err error) {
	r := reader{b: body}
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		r.bytes(int(r.u32())) // module
		r.bytes(int(r.u32())) // name
		switch kind := r.byte(); kind {
		case 0x00: // function: type index
			r.u32()
		case 0x01: // table: reftype, limits
			r.byte()
			r.limits()
		case 0x02: // memory: limits
			r.limits()
			memories++
		case 0x03: // global: valtype, mutability
			r.byte()
			r.byte()
			globals++
		case 0x04: // tag: attribute, type index
			r.byte()
			r.u32()
		default:
			r.fail(fmt.Errorf("import %d has unknown kind %d", i, kind))
		}
	}
	if r.err != nil {
		return 0, 0, fmt.Errorf("%w: import section: %v", ErrInstrument, r.err)
	}
	return globals, memories, nil
}

// addExport adds the export of the interrupt global gidx and, when
// startFunc >= 0, of that function as StartExport.
func addExport(body []byte, gidx uint32, startFunc int64) ([]byte, error) {
	r := reader{b: body}
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		name := r.bytes(int(r.u32()))
		if string(name) == InterruptExport || string(name) == StartExport || string(name) == FuelExport || string(name) == RefillsExport {
			return nil, fmt.Errorf("%w: the module already exports %q, a name the host reserves", ErrInstrument, name)
		}
		r.byte()
		r.u32()
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: export section: %v", ErrInstrument, r.err)
	}
	first := reader{b: body}
	first.u32()
	added := uint32(3)
	if startFunc >= 0 {
		added++
	}
	out := appendU32(nil, n+added)
	out = append(out, body[first.off:]...)
	out = appendU32(out, uint32(len(InterruptExport)))
	out = append(out, InterruptExport...)
	out = append(out, 0x03) // global
	out = appendU32(out, gidx)
	for i, name := range []string{FuelExport, RefillsExport} {
		out = appendU32(out, uint32(len(name)))
		out = append(out, name...)
		out = append(out, 0x03)
		out = appendU32(out, gidx-1+uint32(2*i)) // fuel is gidx-1, refills gidx+1
	}
	if startFunc >= 0 {
		out = appendU32(out, uint32(len(StartExport)))
		out = append(out, StartExport...)
		out = append(out, 0x00) // function
		out = appendU32(out, uint32(startFunc))
	}
	return out, nil
}

// yieldEvery is how many function calls (and blocks of stepsPerFuel loop
// iterations inside one call) a module runs between two returns to Go.
const yieldEvery = 1 << 14

// stepsPerFuel is how many loop iterations within one function call take
// one unit of fuel.
const stepsPerFuel = 1 << 10

// maxLocals is wazero's limit on a function's parameters and locals.
const maxLocals = 50000

// loopCheck is the global check inserted at function entries, for the fuel
// global fuel, the stop flag fuel+1 and the refill count fuel+2 (which the
// host reads, with fuel, to meter the work a call did).
func loopCheck(fuel uint32) []byte {
	g := appendU32(nil, fuel)
	stop := appendU32(nil, fuel+1)
	refills := appendU32(nil, fuel+2)
	var c []byte
	c = append(append(c, 0x23), g...)       // global.get fuel
	c = append(c, 0x41, 0x01, 0x6b)         // i32.const 1, i32.sub
	c = append(append(c, 0x24), g...)       // global.set fuel
	c = append(append(c, 0x23), g...)       // global.get fuel
	c = append(c, 0x45, 0x04, 0x40)         // i32.eqz, if
	c = append(append(c, 0x23), stop...)    // global.get stop
	c = append(c, 0x04, 0x40, 0x00, 0x0b)   // if unreachable end
	c = append(c, 0x41, 0x00, 0x40, 0x00)   // i32.const 0, memory.grow 0
	c = append(c, 0x1a)                     // drop
	c = append(append(c, 0x23), refills...) // global.get refills
	c = append(c, 0x41, 0x01, 0x6a)         // i32.const 1, i32.add
	c = append(append(c, 0x24), refills...) // global.set refills
	c = append(c, 0x41)                     // i32.const
	c = appendS32(c, yieldEvery)            // yieldEvery
	c = append(append(c, 0x24), g...)       // global.set fuel
	return append(c, 0x0b)                  // end
}

// resetSteps appends steps = stepsPerFuel for the step counter local l.
func resetSteps(dst []byte, l uint32) []byte {
	dst = appendS32(append(dst, 0x41), stepsPerFuel) // i32.const stepsPerFuel
	return appendU32(append(dst, 0x21), l)           // local.set l
}

// entryCheck is the code at a function's entry.
func entryCheck(check []byte, l uint32) []byte {
	return resetSteps(append([]byte(nil), check...), l)
}

// stepCheck is the code at a loop top.
func stepCheck(check []byte, l uint32) []byte {
	var c []byte
	c = appendU32(append(c, 0x20), l) // local.get l
	c = append(c, 0x41, 0x01, 0x6b)   // i32.const 1, i32.sub
	c = appendU32(append(c, 0x22), l) // local.tee l
	c = append(c, 0x45, 0x04, 0x40)   // i32.eqz, if
	c = append(c, check...)
	c = resetSteps(c, l)
	return append(c, 0x0b) // end
}

// paramCounts decodes the type section: the parameter count of each type.
func paramCounts(body []byte) ([]uint32, error) {
	r := reader{b: body}
	n := r.u32()
	var out []uint32
	for i := uint32(0); i < n && r.err == nil; i++ {
		if form := r.byte(); form != 0x60 && r.err == nil {
			return nil, fmt.Errorf("%w: type %d: form 0x%02x is not a function type", ErrInstrument, i, form)
		}
		params := r.u32()
		for j := uint32(0); j < params && r.err == nil; j++ {
			r.valType()
		}
		results := r.u32()
		for j := uint32(0); j < results && r.err == nil; j++ {
			r.valType()
		}
		out = append(out, params)
	}
	if r.err != nil || !r.done() {
		return nil, fmt.Errorf("%w: type section is malformed: %v", ErrInstrument, r.err)
	}
	return out, nil
}

// instrumentCode rewrites the code section; params holds the parameter
// count of each function.
func instrumentCode(body []byte, check []byte, params []uint32) ([]byte, error) {
	r := reader{b: body}
	n := r.u32()
	if r.err == nil && int(n) != len(params) {
		return nil, fmt.Errorf("%w: %d function bodies for %d functions", ErrInstrument, n, len(params))
	}
	out := appendU32(make([]byte, 0, len(body)+len(body)/8), n)
	var fn []byte
	for i := uint32(0); i < n; i++ {
		size := r.u32()
		code := r.bytes(int(size))
		if r.err != nil {
			return nil, fmt.Errorf("%w: function body %d: %v", ErrInstrument, i, r.err)
		}
		var err error
		fn, err = instrumentBody(fn[:0], code, check, params[i])
		if err != nil {
			return nil, fmt.Errorf("%w: function body %d: %v", ErrInstrument, i, err)
		}
		out = appendU32(out, uint32(len(fn)))
		out = append(out, fn...)
	}
	if !r.done() {
		return nil, fmt.Errorf("%w: %d bytes after the last function body", ErrInstrument, len(r.b)-r.off)
	}
	return out, nil
}

// instrumentBody copies one function body to dst, adding the step counter
// local, the entry check and, after the block type of every loop, the step
// check.
func instrumentBody(dst, code, check []byte, params uint32) ([]byte, error) {
	r := reader{b: code}
	groups := r.u32()
	declStart := r.off
	locals := uint64(params)
	for i := uint32(0); i < groups && r.err == nil; i++ {
		locals += uint64(r.u32()) // count
		r.valType()
	}
	if r.err != nil {
		return nil, r.err
	}
	if locals+1 > maxLocals {
		return nil, fmt.Errorf("%d parameters and locals, the most a function may have", locals)
	}
	steps := uint32(locals) // the index of the new local
	dst = appendU32(dst, groups+1)
	dst = append(dst, code[declStart:r.off]...)
	dst = append(dst, 0x01, 0x7f) // one i32
	dst = append(dst, entryCheck(check, steps)...)
	loopCode := stepCheck(check, steps)
	depth := 1
	for r.err == nil && !r.done() {
		start := r.off
		op := r.byte()
		isLoop := false
		switch {
		case op == 0x02 || op == 0x04 || op == 0x06: // block, if, try
			r.blockType()
			depth++
		case op == 0x03: // loop
			r.blockType()
			depth++
			isLoop = true
		case op == 0x1f: // try_table
			r.blockType()
			for n := r.u32(); n > 0 && r.err == nil; n-- {
				switch kind := r.byte(); kind {
				case 0x00, 0x01: // catch, catch_ref: tag, label
					r.u32()
					r.u32()
				case 0x02, 0x03: // catch_all, catch_all_ref: label
					r.u32()
				default:
					r.fail(fmt.Errorf("unknown catch clause %d", kind))
				}
			}
			depth++
		case op == 0x0b: // end
			depth--
		case op == 0x18: // delegate: ends a try
			r.u32()
			depth--
		case op == 0x00 || op == 0x01 || op == 0x05 || op == 0x0a || op == 0x0f || op == 0x19 || op == 0x1a || op == 0x1b || op == 0xd1:
			// no immediates
		case op == 0x07 || op == 0x08 || op == 0x09 || op == 0x0c || op == 0x0d || op == 0x10 || op == 0x12 || op == 0xd2:
			r.u32() // catch/throw tag, rethrow/br/br_if label, call/return_call/ref.func index
		case op == 0x0e: // br_table
			for n := r.u32(); n > 0 && r.err == nil; n-- {
				r.u32()
			}
			r.u32()
		case op == 0x11 || op == 0x13: // call_indirect, return_call_indirect
			r.u32()
			r.u32()
		case op == 0x1c: // select t*
			for n := r.u32(); n > 0 && r.err == nil; n-- {
				r.byte()
			}
		case op >= 0x20 && op <= 0x26: // locals, globals, table.get/set
			r.u32()
		case op >= 0x28 && op <= 0x3e: // loads and stores
			r.memarg()
		case op == 0x3f || op == 0x40: // memory.size, memory.grow
			r.u32()
		case op == 0x41:
			r.s64()
		case op == 0x42:
			r.s64()
		case op == 0x43:
			r.bytes(4)
		case op == 0x44:
			r.bytes(8)
		case op >= 0x45 && op <= 0xc4: // numeric, sign extension
		case op == 0xd0: // ref.null heap type
			r.s64()
		case op == 0xfc:
			r.prefixFC()
		case op == 0xfd:
			r.prefixFD()
		case op == 0xfe:
			r.prefixFE()
		default:
			r.fail(fmt.Errorf("unsupported opcode 0x%02x at offset %d", op, start))
		}
		if r.err != nil {
			break
		}
		dst = append(dst, code[start:r.off]...)
		if isLoop {
			dst = append(dst, loopCode...)
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if depth != 0 {
		return nil, fmt.Errorf("unbalanced blocks (depth %d at the end)", depth)
	}
	return dst, nil
}

// reader decodes a WebAssembly binary. The first error sticks; later reads
// return zeros.
type reader struct {
	b   []byte
	off int
	err error
}

var errTruncated = errors.New("truncated")

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.off = len(r.b)
}

func (r *reader) done() bool { return r.off >= len(r.b) }

func (r *reader) byte() byte {
	if r.off >= len(r.b) {
		r.fail(errTruncated)
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

// valType reads a value type; reference types of the GC proposal, which
// wazero does not run, are refused.
func (r *reader) valType() {
	switch t := r.byte(); t {
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
	default:
		if r.err == nil {
			r.fail(fmt.Errorf("unsupported value type 0x%02x", t))
		}
	}
}

func (r *reader) bytes(n int) []byte {
	if n < 0 || n > len(r.b)-r.off {
		r.fail(errTruncated)
		return nil
	}
	b := r.b[r.off : r.off+n]
	r.off += n
	return b
}

// u32 reads an unsigned LEB128 of at most 5 bytes.
func (r *reader) u32() uint32 {
	var v uint32
	for shift := 0; shift < 35; shift += 7 {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			return v
		}
	}
	r.fail(errors.New("LEB128 longer than 5 bytes"))
	return 0
}

// s64 skips a signed LEB128 of at most 10 bytes.
func (r *reader) s64() {
	for i := 0; i < 10; i++ {
		c := r.byte()
		if r.err != nil || c&0x80 == 0 {
			return
		}
	}
	r.fail(errors.New("LEB128 longer than 10 bytes"))
}

func (r *reader) limits() {
	flags := r.byte()
	r.s64() // min (u32 or u64; both fit the skip)
	if flags&1 != 0 {
		r.s64()
	}
}

func (r *reader) blockType() {
	if r.off >= len(r.b) {
		r.fail(errTruncated)
		return
	}
	switch c := r.b[r.off]; {
	case c == 0x40 || (c >= 0x6f && c <= 0x7f): // empty or a value type
		r.off++
	default: // a type index, as s33
		r.s64()
	}
}

func (r *reader) memarg() {
	align := r.u32()
	if align&0x40 != 0 { // multi-memory: a memory index follows
		r.u32()
	}
	r.s64() // offset: u32, or u64 with memory64
}

func (r *reader) prefixFC() {
	switch sub := r.u32(); {
	case sub <= 7: // saturating truncation
	case sub == 8: // memory.init data mem
		r.u32()
		r.u32()
	case sub == 9: // data.drop
		r.u32()
	case sub == 10: // memory.copy mem mem
		r.u32()
		r.u32()
	case sub == 11: // memory.fill mem
		r.u32()
	case sub == 12 || sub == 14: // table.init elem table, table.copy table table
		r.u32()
		r.u32()
	case sub == 13 || sub == 15 || sub == 16 || sub == 17: // elem.drop, table.grow/size/fill
		r.u32()
	default:
		r.fail(fmt.Errorf("unsupported instruction 0xfc %d", sub))
	}
}

func (r *reader) prefixFD() {
	switch sub := r.u32(); {
	case sub <= 11 || sub == 92 || sub == 93: // loads, store, load zero
		r.memarg()
	case sub == 12 || sub == 13: // v128.const, i8x16.shuffle
		r.bytes(16)
	case sub >= 21 && sub <= 34: // extract/replace lane
		r.byte()
	case sub >= 84 && sub <= 91: // load/store lane
		r.memarg()
		r.byte()
	case sub <= 275: // the rest of SIMD has no immediates
	default:
		r.fail(fmt.Errorf("unsupported instruction 0xfd %d", sub))
	}
}

func (r *reader) prefixFE() {
	switch sub := r.u32(); {
	case sub == 3: // atomic.fence
		r.byte()
	case sub <= 0x4e:
		r.memarg()
	default:
		r.fail(fmt.Errorf("unsupported instruction 0xfe %d", sub))
	}
}

// appendS32 appends v as a signed LEB128.
func appendS32(dst []byte, v int32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(dst, c)
		}
		dst = append(dst, c|0x80)
	}
}

func appendU32(dst []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(dst, c)
		}
		dst = append(dst, c|0x80)
	}
}
