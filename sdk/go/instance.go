package weir

import (
	"encoding/binary"
	"errors"
	"slices"
	"strconv"
	"unsafe"

	"github.com/weirstream/weir/wasmabi"
)

var le = binary.LittleEndian

// flushSize is the size past which buffered output goes to the host before
// the end of the call.
const flushSize = 64 << 10

// instance is the per-instance state of the SDK: the host, the output and
// scratch buffers, counters and the state ids of each operator. A wasm
// module has one; a native host may make several (NewInstance).
type instance struct {
	host     Host
	out      []byte
	scratch  []byte // results of state reads
	enc      []byte // encoded state values
	ukey     []byte // encoded map state keys
	counters []counterSlot
	ops      []opState
	ctx      Context
	rec      int // index of the entry being processed in the batch, -1 for none
}

type opState struct {
	opened bool
	ids    []int32 // host state ids, by declaration order
}

type counterSlot struct {
	name  string
	delta int64
}

func newInstance(h Host) *instance {
	return &instance{host: h, rec: -1}
}

func (in *instance) opState(op int) *opState {
	if op >= len(in.ops) {
		in.ops = append(in.ops, make([]opState, op+1-len(in.ops))...)
	}
	return &in.ops[op]
}

func (in *instance) counter(name string) Counter {
	for i := range in.counters {
		if in.counters[i].name == name {
			return Counter{in, i}
		}
	}
	in.counters = append(in.counters, counterSlot{name: name})
	return Counter{in, len(in.counters) - 1}
}

// call runs one weir_call: method of operator op over input. It reports
// false after telling the host why with Fail.
func (in *instance) call(op int, method wasmabi.Method, input []byte) (ok bool) {
	in.out = in.out[:0]
	in.rec = -1
	defer func() {
		if v := recover(); v != nil {
			in.fail(panicError(v))
			ok = false
		}
	}()
	if err := in.dispatch(op, method, input); err != nil {
		in.fail(err)
		return false
	}
	if len(in.out) > 0 {
		in.flush()
	}
	for i := range in.counters {
		if c := &in.counters[i]; c.delta != 0 {
			in.host.Counter(c.name, c.delta)
			c.delta = 0
		}
	}
	return true
}

// fail reports err for the entry being processed and drops the call's
// pending output and counter increments.
func (in *instance) fail(err error) {
	msg := err.Error()
	if in.rec >= 0 {
		msg = "record " + strconv.Itoa(in.rec) + ": " + msg
	}
	in.out = in.out[:0]
	for i := range in.counters {
		in.counters[i].delta = 0
	}
	in.ctx = Context{}
	in.host.Fail(msg)
}

// panicError turns a recovered value into the error of the call. It does
// not use fmt, which would add a third of a megabyte to every module (fmt
// is linked only into modules that call Logf).
func panicError(v any) error {
	var msg string
	switch v := v.(type) {
	case usageError:
		return v
	case error:
		msg = v.Error()
	case string:
		msg = v
	case interface{ String() string }:
		msg = v.String()
	case int:
		msg = strconv.Itoa(v)
	case int64:
		msg = strconv.FormatInt(v, 10)
	case int32:
		msg = strconv.FormatInt(int64(v), 10)
	case uint:
		msg = strconv.FormatUint(uint64(v), 10)
	case uint64:
		msg = strconv.FormatUint(v, 10)
	case uint32:
		msg = strconv.FormatUint(uint64(v), 10)
	case float64:
		msg = strconv.FormatFloat(v, 'g', -1, 64)
	case bool:
		msg = strconv.FormatBool(v)
	default:
		msg = "a value of a type that is not an error, a string or a number"
	}
	return errors.New("panic: " + msg)
}

// methodName and kindName name ABI codes without the String methods of
// wasmabi, which use fmt (see panicError).
func methodName(m wasmabi.Method) string {
	if m <= wasmabi.MethodFinish {
		return [...]string{"open", "process", "timers", "agg_add", "agg_merge", "agg_result", "finish"}[m]
	}
	return "method " + strconv.FormatUint(uint64(m), 10)
}

func kindName(k wasmabi.EntryKind) string {
	if k >= wasmabi.EntryRecord && k <= wasmabi.EntryAccumulator {
		return [...]string{"record", "watermark", "timer", "accumulator"}[k-1]
	}
	return "kind " + strconv.FormatUint(uint64(k), 10)
}

var errMalformed = errors.New("weir: malformed input batch")

func (in *instance) dispatch(opIdx int, method wasmabi.Method, input []byte) error {
	if opIdx < 0 || opIdx >= len(registry) {
		return errors.New("weir: no operator " + strconv.Itoa(opIdx) + "; the module has " + strconv.Itoa(len(registry)))
	}
	op := registry[opIdx]
	st := in.opState(opIdx)
	if method == wasmabi.MethodOpen {
		return in.open(opIdx, op, st, input)
	}
	if len(input) < wasmabi.BatchHeaderSize {
		return errMalformed
	}
	count := le.Uint32(input)
	c := &in.ctx
	*c = Context{in: in, op: op, opIdx: opIdx,
		wm: int64(le.Uint64(input[8:])), pt: int64(le.Uint64(input[16:]))}
	b := input[wasmabi.BatchHeaderSize:]
	if method == wasmabi.MethodFinish {
		return in.finish(op)
	}
	switch op.kind {
	case wasmabi.KindMap, wasmabi.KindFilter, wasmabi.KindFlatMap:
		if method == wasmabi.MethodProcess {
			switch {
			case op.mapFn != nil:
				return in.runMap(op.mapFn, count, b)
			case op.filterFn != nil:
				return in.runFilter(op.filterFn, count, b)
			default:
				return in.runFlatMap(op.flatFn, count, b)
			}
		}
	case wasmabi.KindProcess, wasmabi.KindCoProcess:
		if !st.opened {
			return errors.New("weir: operator " + quote(op.name) + " called before open")
		}
		switch method {
		case wasmabi.MethodProcess:
			return in.keyed(op, count, b)
		case wasmabi.MethodTimers:
			return in.timers(op, count, b)
		}
	case wasmabi.KindAggregate:
		switch method {
		case wasmabi.MethodAggAdd:
			return op.agg.add(in, count, b)
		case wasmabi.MethodAggMerge:
			return op.agg.merge(in, count, b)
		case wasmabi.MethodAggResult:
			return op.agg.result(in, count, b)
		}
	}
	return errors.New("weir: operator " + quote(op.name) + " is a " + string(op.kind) + " and has no method " + methodName(method))
}

func (in *instance) open(opIdx int, op *operator, st *opState, params []byte) error {
	st.opened = false
	st.ids = st.ids[:0]
	o := &OpenContext{in: in, op: op, opIdx: opIdx, params: append([]byte(nil), params...)}
	defer func() { o.done = true }()
	var err error
	switch {
	case op.proc != nil:
		err = op.proc.Open(o)
	case op.coproc != nil:
		err = op.coproc.Open(o)
	}
	if err == nil && op.onOpen != nil {
		err = op.onOpen(o)
	}
	if err != nil {
		return errors.New("open: " + err.Error())
	}
	st.opened = true
	return nil
}

func (in *instance) finish(op *operator) error {
	var err error
	switch {
	case op.onFinish != nil:
		err = op.onFinish(&in.ctx)
	case op.proc != nil:
		if f, ok := op.proc.(Finisher); ok {
			err = f.Finish(&in.ctx)
		}
	case op.coproc != nil:
		if f, ok := op.coproc.(Finisher); ok {
			err = f.Finish(&in.ctx)
		}
	}
	if err != nil {
		return errors.New("finish: " + err.Error())
	}
	return nil
}

// entry is a decoded input entry; its slices alias the input and have no
// spare capacity, so appending to them never writes into the input.
type entry struct {
	kind    wasmabi.EntryKind
	flags   uint8
	port    uint16
	ts      int64
	key     []byte
	value   []byte
	headers []byte
}

// next decodes the entry at the start of b into e and returns the rest.
func next(b []byte, e *entry) ([]byte, error) {
	if len(b) < wasmabi.EntryHeaderSize {
		return nil, errMalformed
	}
	kl := uint64(le.Uint32(b[4:]))
	vl := kl + uint64(le.Uint32(b[16:]))
	hl := vl + uint64(le.Uint32(b[20:]))
	p := b[wasmabi.EntryHeaderSize:]
	if hl > uint64(len(p)) {
		return nil, errMalformed
	}
	e.kind = wasmabi.EntryKind(b[0])
	e.flags = b[1]
	e.port = le.Uint16(b[2:])
	e.ts = int64(le.Uint64(b[8:]))
	e.key = p[:kl:kl]
	e.value = p[kl:vl:vl]
	e.headers = p[vl:hl:hl]
	return p[hl:], nil
}

func (e *entry) record() Record {
	return Record{Key: e.key, Value: e.value, Timestamp: e.ts, Headers: HeadersFromBytes(e.headers)}
}

func unexpected(kind wasmabi.EntryKind, method string) error {
	return errors.New("weir: unexpected " + kindName(kind) + " entry in a " + method + " batch")
}

// badEntry explains why the entry at the start of b is not a record entry
// that fits in b.
func badEntry(b []byte, method string) error {
	var e entry
	if _, err := next(b, &e); err != nil {
		return err
	}
	return unexpected(e.kind, method)
}

// The loops of the stateless kinds are the hot path. They decode entries in
// place, inline (a call per record costs more than the decoding in Go's
// WebAssembly), and build the Record argument from locals. A record that
// leaves unchanged (a filter's, or what a map returns as it got it, bytes
// changed in place or not) is not re-encoded: runs of such entries are
// copied to the output as they are, in one piece.

// Go's WebAssembly code pays for every branch that joins back, so the checks
// of the hot loops below are computed without && and ||.

// notRecord reports whether an entry of kind whose payload ends at h (see
// the loops) is not a record entry that fits in p.
func notRecord(kind byte, h uint64, p []byte) bool {
	// uint64(len(p))-h wraps around, setting the top bit, when h > len(p);
	// lengths are far below 2^63.
	return (uint64(len(p))-h)>>63|uint64(kind^byte(wasmabi.EntryRecord)) != 0
}

// diff is zero when r holds exactly key, value, hdr and ts: the same
// memory, whatever its content.
func diff(r *Record, key, value []byte, hdr Headers, ts int64) uint64 {
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(r.Key)))^uintptr(unsafe.Pointer(unsafe.SliceData(key)))) |
		uint64(len(r.Key)^len(key)) |
		uint64(uintptr(unsafe.Pointer(unsafe.SliceData(r.Value)))^uintptr(unsafe.Pointer(unsafe.SliceData(value)))) |
		uint64(len(r.Value)^len(value)) |
		uint64(uintptr(unsafe.Pointer(r.Headers.p))^uintptr(unsafe.Pointer(hdr.p))) | uint64(r.Headers.n^hdr.n) |
		uint64(r.Timestamp^ts)
}

func (in *instance) runMap(fn func(Record) (Record, error), count uint32, batch []byte) error {
	b := batch
	var r Record
	rs, re := 0, 0 // pending run of unchanged entries: batch[rs:re]
	for i := 0; i < int(count); i++ {
		in.rec = i
		if len(b) < wasmabi.EntryHeaderSize {
			return errMalformed
		}
		k := uint64(le.Uint32(b[4:]))
		v := k + uint64(le.Uint32(b[16:]))
		h := v + uint64(le.Uint32(b[20:]))
		p := b[wasmabi.EntryHeaderSize:]
		if notRecord(b[0], h, p) {
			return badEntry(b, "process")
		}
		key, value, hdr, ts := p[:k:k], p[k:v:v], HeadersFromBytes(p[v:h:h]), int64(le.Uint64(b[8:]))
		r.Key, r.Value, r.Timestamp, r.Headers = key, value, ts, hdr
		var err error
		if r, err = fn(r); err != nil {
			return err
		}
		if diff(&r, key, value, hdr, ts)|uint64(b[2])|uint64(b[3]) == 0 {
			off := len(batch) - len(b)
			if off != re {
				in.appendRun(batch[rs:re])
				rs = off
			}
			re = off + wasmabi.EntryHeaderSize + int(h)
		} else {
			in.appendRun(batch[rs:re])
			rs, re = 0, 0
			in.appendRecord(0, &r)
		}
		b = p[h:]
	}
	in.appendRun(batch[rs:re])
	in.rec = -1
	return nil
}

func (in *instance) runFilter(fn func(Record) (bool, error), count uint32, batch []byte) error {
	b := batch
	rs, re := 0, 0 // pending run of kept entries: batch[rs:re]
	for i := 0; i < int(count); i++ {
		in.rec = i
		if len(b) < wasmabi.EntryHeaderSize {
			return errMalformed
		}
		k := uint64(le.Uint32(b[4:]))
		v := k + uint64(le.Uint32(b[16:]))
		h := v + uint64(le.Uint32(b[20:]))
		p := b[wasmabi.EntryHeaderSize:]
		if notRecord(b[0], h, p) {
			return badEntry(b, "process")
		}
		keep, err := fn(Record{Key: p[:k:k], Value: p[k:v:v], Timestamp: int64(le.Uint64(b[8:])),
			Headers: HeadersFromBytes(p[v:h:h])})
		if err != nil {
			return err
		}
		if keep {
			if b[2]|b[3] != 0 { // from another port than 0: re-encode on port 0
				in.appendRun(batch[rs:re])
				rs, re = 0, 0
				in.appendRecord(0, &Record{Key: p[:k:k], Value: p[k:v:v], Timestamp: int64(le.Uint64(b[8:])),
					Headers: HeadersFromBytes(p[v:h:h])})
			} else {
				off := len(batch) - len(b)
				if off != re {
					in.appendRun(batch[rs:re])
					rs = off
				}
				re = off + wasmabi.EntryHeaderSize + int(h)
			}
		}
		b = p[h:]
	}
	in.appendRun(batch[rs:re])
	in.rec = -1
	return nil
}

func (in *instance) runFlatMap(fn func(Record, Emitter) error, count uint32, b []byte) error {
	out := Emitter{&in.ctx}
	for i := 0; i < int(count); i++ {
		in.rec = i
		if len(b) < wasmabi.EntryHeaderSize {
			return errMalformed
		}
		k := uint64(le.Uint32(b[4:]))
		v := k + uint64(le.Uint32(b[16:]))
		h := v + uint64(le.Uint32(b[20:]))
		p := b[wasmabi.EntryHeaderSize:]
		if notRecord(b[0], h, p) {
			return badEntry(b, "process")
		}
		if err := fn(Record{Key: p[:k:k], Value: p[k:v:v], Timestamp: int64(le.Uint64(b[8:])),
			Headers: HeadersFromBytes(p[v:h:h])}, out); err != nil {
			return err
		}
		b = p[h:]
	}
	in.rec = -1
	return nil
}

// keyed runs a process or co_process operator over a batch of records.
func (in *instance) keyed(op *operator, count uint32, b []byte) error {
	var e entry
	var err error
	c := &in.ctx
	for i := 0; i < int(count); i++ {
		in.rec = i
		if b, err = next(b, &e); err != nil {
			return err
		}
		if e.kind != wasmabi.EntryRecord {
			return unexpected(e.kind, "process")
		}
		c.keyed, c.key, c.ts = true, e.key, e.ts
		switch {
		case op.proc != nil:
			err = op.proc.ProcessElement(c, e.record())
		case e.port == 0:
			err = op.coproc.ProcessElement1(c, e.record())
		case e.port == 1:
			err = op.coproc.ProcessElement2(c, e.record())
		default:
			err = errors.New("weir: record on input " + strconv.Itoa(int(e.port)) + " of a two-input operator")
		}
		if err != nil {
			return err
		}
	}
	c.keyed, c.key = false, nil
	in.rec = -1
	return nil
}

// timers runs OnTimer of a process or co_process operator over a batch of
// due timers.
func (in *instance) timers(op *operator, count uint32, b []byte) error {
	var e entry
	var err error
	c := &in.ctx
	for i := 0; i < int(count); i++ {
		in.rec = i
		if b, err = next(b, &e); err != nil {
			return err
		}
		if e.kind != wasmabi.EntryTimer {
			return unexpected(e.kind, "timers")
		}
		c.keyed, c.key, c.ts = true, e.key, e.ts
		t := Timer{Timestamp: e.ts, Domain: TimeDomain(e.flags)}
		if op.proc != nil {
			err = op.proc.OnTimer(c, t)
		} else {
			err = op.coproc.OnTimer(c, t)
		}
		if err != nil {
			return err
		}
	}
	c.keyed, c.key = false, nil
	in.rec = -1
	return nil
}

// appendRecord appends r as a record entry to the output.
func (in *instance) appendRecord(port uint16, r *Record) {
	in.appendEntry(port, r.Key, r.Value, r.Timestamp, r.Headers)
}

// appendEntry appends a record entry to the output. It takes the fields of
// a Record rather than a Record so that emitting a record built in place
// does not copy the Record first (a 72-byte block copy in WebAssembly).
func (in *instance) appendEntry(port uint16, key, value []byte, ts int64, hdr Headers) {
	kl, vl, hl := len(key), len(value), hdr.n
	n := wasmabi.EntryHeaderSize + kl + vl + hl
	l := len(in.out)
	if cap(in.out)-l < n {
		in.reserve(n)
	}
	b := in.out[l : l+n]
	_ = b[wasmabi.EntryHeaderSize-1]
	// kind, flags 0, port, key length | timestamp | value length, headers length
	le.PutUint64(b, uint64(wasmabi.EntryRecord)|uint64(port)<<16|uint64(kl)<<32)
	le.PutUint64(b[8:], uint64(ts))
	le.PutUint64(b[16:], uint64(vl)|uint64(hl)<<32)
	if kl > 0 {
		copy(b[wasmabi.EntryHeaderSize:], key)
	}
	if vl > 0 {
		copy(b[wasmabi.EntryHeaderSize+kl:], value)
	}
	if hl > 0 {
		copy(b[wasmabi.EntryHeaderSize+kl+vl:], hdr.Bytes())
	}
	in.out = in.out[:l+n]
	if l+n >= flushSize {
		in.flush()
	}
}

// directRun is the size from which a run of unchanged input entries goes to
// the host straight from the input buffer instead of through the output
// buffer.
const directRun = 4 << 10

// appendRun appends encoded entries, unchanged, to the output.
func (in *instance) appendRun(run []byte) {
	if len(run) == 0 {
		return
	}
	if len(run) >= directRun {
		if len(in.out) > 0 {
			in.flush()
		}
		in.host.Output(run)
		return
	}
	l := len(in.out)
	if cap(in.out)-l < len(run) {
		in.reserve(len(run))
	}
	in.out = in.out[:l+len(run)]
	copy(in.out[l:], run)
	if l+len(run) >= flushSize {
		in.flush()
	}
}

func (in *instance) appendWatermark(ts int64) {
	l := len(in.out)
	if cap(in.out)-l < wasmabi.EntryHeaderSize {
		in.reserve(wasmabi.EntryHeaderSize)
	}
	in.out = in.out[:l+wasmabi.EntryHeaderSize]
	b := in.out[l:]
	clear(b)
	b[0] = byte(wasmabi.EntryWatermark)
	le.PutUint64(b[8:], uint64(ts))
	if len(in.out) >= flushSize {
		in.flush()
	}
}

// reserve makes room for n more bytes of output.
func (in *instance) reserve(n int) {
	if in.out == nil {
		in.out = make([]byte, 0, max(flushSize+flushSize/4, n))
		return
	}
	in.out = slices.Grow(in.out, n)
}

func (in *instance) flush() {
	in.host.Output(in.out)
	in.out = in.out[:0]
}

// stateRead runs a Get or Entries state operation and returns the result in
// the scratch buffer, valid until the next state operation.
func (in *instance) stateRead(op wasmabi.StateOp, id int32, key, ukey []byte) ([]byte, bool) {
	if in.scratch == nil {
		in.scratch = make([]byte, 256)
	}
	for {
		n := in.host.State(op, id, key, ukey, in.scratch)
		if n < 0 {
			return nil, false
		}
		if n <= int64(len(in.scratch)) {
			return in.scratch[:n], true
		}
		if n > 1<<31 {
			panic(usageError("weir: the host returned a state of " + strconv.FormatInt(n, 10) + " bytes"))
		}
		in.scratch = make([]byte, max(int(n), 2*len(in.scratch)))
	}
}

// stateTake is stateRead for a result that must outlive further state
// operations (while a Range runs user code): the instance gives up its
// scratch buffer and gets it back with stateGive.
func (in *instance) stateTake(op wasmabi.StateOp, id int32, key, ukey []byte) ([]byte, bool) {
	b, ok := in.stateRead(op, id, key, ukey)
	if ok {
		in.scratch = nil
	}
	return b, ok
}

func (in *instance) stateGive(b []byte) {
	if in.scratch == nil {
		in.scratch = b[:cap(b)]
	}
}
