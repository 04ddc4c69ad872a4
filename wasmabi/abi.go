package wasmabi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// Version is the ABI version this package describes. A host speaks exactly
// one version; a module reports its own from weir_abi_version.
const Version = 1

// ImportModule is the module name under which the host offers its functions.
const ImportModule = "weir"

// Names of the functions a module exports.
const (
	ExportVersion  = "weir_abi_version"
	ExportDescribe = "weir_describe"
	ExportBuffer   = "weir_buffer"
	ExportCall     = "weir_call"
)

// Names of the functions the host offers under ImportModule.
const (
	ImportOutput        = "output"
	ImportFail          = "fail"
	ImportLog           = "log"
	ImportCounter       = "counter"
	ImportStateRegister = "state_register"
	ImportState         = "state"
	ImportTimer         = "timer"
)

// Method says what a weir_call does with its input.
type Method uint32

const (
	// MethodOpen is called once per instance and operator before any other
	// method; its input is the operator's parameters (JSON, possibly empty).
	// Keyed state is declared here with state_register.
	MethodOpen Method = 0
	// MethodProcess takes a batch of Record entries and emits Record and
	// Watermark entries.
	MethodProcess Method = 1
	// MethodTimers takes a batch of Timer entries that are due (keyed
	// process and co-process operators) and emits what MethodProcess emits.
	MethodTimers Method = 2
	// MethodAggAdd takes groups, each an Accumulator entry (flagged
	// AccumulatorNew for a new accumulator) followed by the Record entries to
	// add to it, and emits exactly one Accumulator entry per group, in order.
	MethodAggAdd Method = 3
	// MethodAggMerge takes pairs of Accumulator entries and emits one merged
	// Accumulator entry per pair.
	MethodAggMerge Method = 4
	// MethodAggResult takes Accumulator entries (key: the group key,
	// timestamp: the window's last millisecond) and emits the result
	// Record entries.
	MethodAggResult Method = 5
	// MethodFinish is called once at the end of a bounded input; the
	// operator may emit final records. Its input batch has no entries.
	MethodFinish Method = 6
)

func (m Method) String() string {
	switch m {
	case MethodOpen:
		return "open"
	case MethodProcess:
		return "process"
	case MethodTimers:
		return "timers"
	case MethodAggAdd:
		return "agg_add"
	case MethodAggMerge:
		return "agg_merge"
	case MethodAggResult:
		return "agg_result"
	case MethodFinish:
		return "finish"
	}
	return fmt.Sprintf("method(%d)", uint32(m))
}

// Kind is the kind of an operator, declared in the module's Descriptor.
type Kind string

const (
	KindMap       Kind = "map"
	KindFilter    Kind = "filter"
	KindFlatMap   Kind = "flat_map"
	KindProcess   Kind = "process"    // keyed process: state and timers
	KindAggregate Kind = "aggregate"  // window aggregate: add / merge / result
	KindCoProcess Kind = "co_process" // two inputs (port 0 and 1), state and timers
)

// Valid reports whether k is a kind this ABI version knows.
func (k Kind) Valid() bool {
	switch k {
	case KindMap, KindFilter, KindFlatMap, KindProcess, KindAggregate, KindCoProcess:
		return true
	}
	return false
}

// Stateless reports whether operators of this kind see no keyed state:
// map, filter and flat_map, which may be run again over a record.
func (k Kind) Stateless() bool { return k == KindMap || k == KindFilter || k == KindFlatMap }

// Keyed reports whether operators of this kind see keyed state and timers.
func (k Kind) Keyed() bool { return k == KindProcess || k == KindCoProcess }

// Methods lists the methods a host may call on an operator of this kind,
// besides MethodOpen and MethodFinish which every kind accepts.
func (k Kind) Methods() []Method {
	switch k {
	case KindProcess, KindCoProcess:
		return []Method{MethodProcess, MethodTimers}
	case KindAggregate:
		return []Method{MethodAggAdd, MethodAggMerge, MethodAggResult}
	}
	return []Method{MethodProcess}
}

// EntryKind is the first byte of every entry.
type EntryKind uint8

const (
	EntryRecord      EntryKind = 1
	EntryWatermark   EntryKind = 2 // timestamp is the watermark; no payload
	EntryTimer       EntryKind = 3 // key and timestamp of a due timer; flags = TimeDomain
	EntryAccumulator EntryKind = 4 // value is an aggregate accumulator
)

func (k EntryKind) String() string {
	switch k {
	case EntryRecord:
		return "record"
	case EntryWatermark:
		return "watermark"
	case EntryTimer:
		return "timer"
	case EntryAccumulator:
		return "accumulator"
	}
	return fmt.Sprintf("entry kind %d", uint8(k))
}

// TimeDomain tells event-time from processing-time timers.
type TimeDomain uint8

const (
	EventTime      TimeDomain = 0
	ProcessingTime TimeDomain = 1
)

// AccumulatorNew in the flags of an Accumulator entry of MethodAggAdd asks
// for a new accumulator (its value is ignored). An accumulator may encode to
// zero bytes, so emptiness cannot say it.
const AccumulatorNew uint8 = 1

// StateKind is the kind of a state declared with state_register. Kinds 1-3
// are keyed state, scoped to the key of the record or timer at hand; kinds
// 4-6 are operator state, one per operator subtask, whatever the key (the
// key argument of the state host function is ignored for them).
type StateKind uint32

const (
	StateValue StateKind = 1
	StateList  StateKind = 2
	StateMap   StateKind = 3
	// StateOperatorList is a list per operator subtask; when a job is
	// rescaled its items are split among the new subtasks. Ops as list
	// state.
	StateOperatorList StateKind = 4
	// StateUnionList is a list per operator subtask; when a job is
	// restored every subtask gets the union of all the lists. Ops as list
	// state.
	StateUnionList StateKind = 5
	// StateBroadcast is a map per operator subtask, meant to hold the same
	// entries in every subtask (written from a broadcast input). Ops as map
	// state.
	StateBroadcast StateKind = 6
)

// String names the kind as job specs, savepoints and messages do: value,
// list, map, operator_list, union_list, broadcast.
func (k StateKind) String() string {
	switch k {
	case StateValue:
		return "value"
	case StateList:
		return "list"
	case StateMap:
		return "map"
	case StateOperatorList:
		return "operator_list"
	case StateUnionList:
		return "union_list"
	case StateBroadcast:
		return "broadcast"
	}
	return "kind " + strconv.Itoa(int(k))
}

// Keyed reports whether k is keyed state (value, list or map).
func (k StateKind) Keyed() bool { return k >= StateValue && k <= StateMap }

// Valid reports whether k is a known kind.
func (k StateKind) Valid() bool { return k >= StateValue && k <= StateBroadcast }

// Storage is the keyed kind whose operations k has: list for the operator
// lists, map for broadcast state, k itself for keyed kinds.
func (k StateKind) Storage() StateKind {
	switch k {
	case StateOperatorList, StateUnionList:
		return StateList
	case StateBroadcast:
		return StateMap
	}
	return k
}

// StateOp is the first argument of the state host function. Every op acts on
// the state registered as id, scoped to the key passed in kptr/klen, which
// must be the key of the record (or timer) being processed.
//
//	op          value state        list state              map state (u = user key)
//	StateGet    value -> v         all items (ListItems)   value of u -> v
//	StatePut    set v              append v                set u = v
//	StateDelete clear              clear                   remove u
//	StateEntries -                 -                       all entries (MapEntries)
//	StateClear  clear              clear                   clear all entries
//
// Get and Entries write at most vlen bytes to vptr and return the full
// length, or -1 when there is nothing; a result longer than vlen is not
// written, so the module grows its buffer and asks again. Put, Delete and
// Clear return 0.
type StateOp uint32

const (
	StateGet     StateOp = 1
	StatePut     StateOp = 2
	StateDelete  StateOp = 3
	StateEntries StateOp = 4
	StateClear   StateOp = 5
)

// TimerOp is the first argument of the timer host function.
type TimerOp uint32

const (
	TimerRegister TimerOp = 1
	TimerDelete   TimerOp = 2
)

// Log levels for the log host function.
const (
	LogDebug = 0
	LogInfo  = 1
	LogWarn  = 2
	LogError = 3
)

// Call results of weir_call.
const (
	CallOK     = 0
	CallFailed = 1
)

// NoWatermark is the watermark before any watermark has arrived.
const NoWatermark = math.MinInt64

// Sizes of the fixed headers.
const (
	BatchHeaderSize = 24
	EntryHeaderSize = 24
)

// MaxHeaders bounds the number of headers one record may carry.
const MaxHeaders = 1024

// Errors returned by the codec. They are wrapped with the offset where the
// problem was found.
var (
	ErrShort     = errors.New("wasmabi: truncated")
	ErrEntryKind = errors.New("wasmabi: unknown entry kind")
	ErrHeaders   = errors.New("wasmabi: malformed headers")
	ErrCount     = errors.New("wasmabi: entry count does not match")
)

var le = binary.LittleEndian

// BatchHeader is the header of an input batch.
//
//	offset size field
//	0      4    count of entries (u32)
//	4      4    flags (reserved, 0)
//	8      8    current watermark of the task (i64 ms, NoWatermark if none)
//	16     8    processing time at the host (i64 ms since the Unix epoch)
type BatchHeader struct {
	Count          uint32
	Flags          uint32
	Watermark      int64
	ProcessingTime int64
}

// AppendBatchHeader appends h to dst.
func AppendBatchHeader(dst []byte, h BatchHeader) []byte {
	dst = le.AppendUint32(dst, h.Count)
	dst = le.AppendUint32(dst, h.Flags)
	dst = le.AppendUint64(dst, uint64(h.Watermark))
	return le.AppendUint64(dst, uint64(h.ProcessingTime))
}

// PutBatchCount overwrites the count of a batch that starts at b[0].
func PutBatchCount(b []byte, n uint32) { le.PutUint32(b, n) }

// ReadBatchHeader decodes the header at the start of b and returns the rest.
func ReadBatchHeader(b []byte) (BatchHeader, []byte, error) {
	if len(b) < BatchHeaderSize {
		return BatchHeader{}, nil, fmt.Errorf("batch header: %d of %d bytes: %w", len(b), BatchHeaderSize, ErrShort)
	}
	h := BatchHeader{
		Count:          le.Uint32(b),
		Flags:          le.Uint32(b[4:]),
		Watermark:      int64(le.Uint64(b[8:])),
		ProcessingTime: int64(le.Uint64(b[16:])),
	}
	return h, b[BatchHeaderSize:], nil
}

// Entry is one decoded entry. Its slices alias the buffer it was decoded
// from; copy them to keep them past the buffer's life.
//
//	offset size field
//	0      1    kind (EntryKind)
//	1      1    flags (TimeDomain for timers, else 0)
//	2      2    port: input index of a two-input operator, or output index
//	            (0 main, n = the n-th side output of the Descriptor)
//	4      4    key length K
//	8      8    timestamp (i64 ms, event time)
//	16     4    value length V
//	20     4    headers length H
//	24     K+V+H key, value, headers
//
// Headers are H bytes of repeated (u16 name length, name, u32 value length,
// value).
type Entry struct {
	Kind      EntryKind
	Flags     uint8
	Port      uint16
	Timestamp int64
	Key       []byte
	Value     []byte
	Headers   []byte // encoded; walk with NextHeader
}

// Size is the encoded size of e.
func (e *Entry) Size() int {
	return EntryHeaderSize + len(e.Key) + len(e.Value) + len(e.Headers)
}

// AppendEntry appends e, encoded, to dst. It grows dst at most once.
func AppendEntry(dst []byte, e *Entry) []byte {
	n := EntryHeaderSize + len(e.Key) + len(e.Value) + len(e.Headers)
	off := len(dst)
	if cap(dst)-off < n {
		dst = append(dst[:cap(dst)], make([]byte, off+n-cap(dst))...)[:off]
	}
	dst = dst[:off+n]
	b := dst[off:]
	PutEntryHeader(b, e.Kind, e.Flags, e.Port, len(e.Key), e.Timestamp, len(e.Value), len(e.Headers))
	p := EntryHeaderSize
	if len(e.Key) > 0 {
		p += copy(b[p:], e.Key)
	}
	p += copy(b[p:], e.Value)
	if len(e.Headers) > 0 {
		copy(b[p:], e.Headers)
	}
	return dst
}

// PutEntryHeader writes an entry header to the first EntryHeaderSize bytes
// of b, for encoders that write the payload in place.
func PutEntryHeader(b []byte, kind EntryKind, flags uint8, port uint16, keyLen int, ts int64, valueLen, headersLen int) {
	_ = b[EntryHeaderSize-1]
	b[0] = byte(kind)
	b[1] = flags
	le.PutUint16(b[2:], port)
	le.PutUint32(b[4:], uint32(keyLen))
	le.PutUint64(b[8:], uint64(ts))
	le.PutUint32(b[16:], uint32(valueLen))
	le.PutUint32(b[20:], uint32(headersLen))
}

// ReadEntry decodes the entry at the start of b and returns the rest of b.
// It checks every length against b and the kind against the known kinds, so
// it is safe on untrusted bytes; it does not walk the headers (see
// ValidHeaders).
func ReadEntry(b []byte, e *Entry) ([]byte, error) {
	if len(b) < EntryHeaderSize {
		return nil, fmt.Errorf("entry header: %d of %d bytes: %w", len(b), EntryHeaderSize, ErrShort)
	}
	kind := EntryKind(b[0])
	if kind < EntryRecord || kind > EntryAccumulator {
		return nil, fmt.Errorf("%w %d", ErrEntryKind, b[0])
	}
	kl := uint64(le.Uint32(b[4:]))
	vl := uint64(le.Uint32(b[16:]))
	hl := uint64(le.Uint32(b[20:]))
	rest := b[EntryHeaderSize:]
	if kl+vl+hl > uint64(len(rest)) {
		return nil, fmt.Errorf("entry of %d payload bytes with %d left: %w", kl+vl+hl, len(rest), ErrShort)
	}
	e.Kind = kind
	e.Flags = b[1]
	e.Port = le.Uint16(b[2:])
	e.Timestamp = int64(le.Uint64(b[8:]))
	e.Key = rest[:kl:kl]
	e.Value = rest[kl : kl+vl : kl+vl]
	e.Headers = rest[kl+vl : kl+vl+hl : kl+vl+hl]
	return rest[kl+vl+hl:], nil
}

// KindSet is a set of entry kinds, for ScanEntries.
type KindSet uint8

// Kinds makes a KindSet.
func Kinds(kinds ...EntryKind) KindSet {
	var s KindSet
	for _, k := range kinds {
		s |= 1 << k
	}
	return s
}

// ScanError is what ScanEntries found wrong, and at which entry.
type ScanError struct {
	Entry int
	Err   error
}

func (e *ScanError) Error() string { return fmt.Sprintf("entry %d: %v", e.Entry, e.Err) }
func (e *ScanError) Unwrap() error { return e.Err }

// ScanEntries checks that b is a sequence of well-formed entries, each of a
// kind in allowed and to a port no higher than maxPort, with well-formed
// headers, and returns how many there are. It is the host's check of a
// module's output: one pass, no allocation.
func ScanEntries(b []byte, allowed KindSet, maxPort uint16) (int, error) {
	n, off := 0, 0
	// One offset walks the buffer: each entry's lengths give the next
	// offset, a dependency chain, so the loop keeps it short.
	for off < len(b) {
		rest := len(b) - off
		if rest < EntryHeaderSize {
			return n, &ScanError{n, fmt.Errorf("entry header: %d of %d bytes: %w", rest, EntryHeaderSize, ErrShort)}
		}
		h := b[off : off+EntryHeaderSize : off+EntryHeaderSize]
		kind := h[0]
		size := EntryHeaderSize + uint64(le.Uint32(h[4:])) + uint64(le.Uint32(h[16:])) + uint64(le.Uint32(h[20:]))
		if kind > 7 || allowed&(1<<kind) == 0 || le.Uint16(h[2:]) > maxPort || size > uint64(rest) || h[20]|h[21]|h[22]|h[23] != 0 {
			if err := entryProblem(b[off:], allowed, maxPort); err != nil {
				return n, &ScanError{n, err}
			}
		}
		off += int(size)
		n++
	}
	return n, nil
}

// entryProblem says what is wrong with the entry at the start of b, if
// anything: the slow path of ScanEntries, which also walks the headers.
func entryProblem(b []byte, allowed KindSet, maxPort uint16) error {
	kind := b[0]
	if kind > 7 || allowed&(1<<kind) == 0 {
		if kind < byte(EntryRecord) || kind > byte(EntryAccumulator) {
			return fmt.Errorf("%w %d", ErrEntryKind, kind)
		}
		return fmt.Errorf("a %s is not allowed here", EntryKind(kind))
	}
	if port := le.Uint16(b[2:]); port > maxPort {
		return fmt.Errorf("output %d does not exist (%d side outputs declared)", port, maxPort)
	}
	kl := uint64(le.Uint32(b[4:]))
	vl := uint64(le.Uint32(b[16:]))
	hl := uint64(le.Uint32(b[20:]))
	if size := EntryHeaderSize + kl + vl + hl; size > uint64(len(b)) {
		return fmt.Errorf("entry of %d payload bytes with %d left: %w", kl+vl+hl, len(b)-EntryHeaderSize, ErrShort)
	}
	return ValidHeaders(b[EntryHeaderSize+kl+vl : EntryHeaderSize+kl+vl+hl])
}

// Header is one record header.
type Header struct {
	Name  string
	Value []byte
}

// AppendHeader appends one encoded header to dst.
func AppendHeader(dst []byte, name string, value []byte) []byte {
	dst = le.AppendUint16(dst, uint16(len(name)))
	dst = append(dst, name...)
	dst = le.AppendUint32(dst, uint32(len(value)))
	return append(dst, value...)
}

// NextHeader decodes the first header of the encoded headers b and returns
// the rest.
func NextHeader(b []byte) (name, value, rest []byte, err error) {
	if len(b) < 2 {
		return nil, nil, nil, fmt.Errorf("header name length: %w", ErrHeaders)
	}
	nl := int(le.Uint16(b))
	b = b[2:]
	if len(b) < nl+4 {
		return nil, nil, nil, fmt.Errorf("header name of %d bytes: %w", nl, ErrHeaders)
	}
	name, b = b[:nl], b[nl:]
	vl := uint64(le.Uint32(b))
	b = b[4:]
	if vl > uint64(len(b)) {
		return nil, nil, nil, fmt.Errorf("header value of %d bytes with %d left: %w", vl, len(b), ErrHeaders)
	}
	return name, b[:vl], b[vl:], nil
}

// ValidHeaders checks that b is a well-formed headers block of at most
// MaxHeaders headers.
func ValidHeaders(b []byte) error {
	for n := 0; len(b) > 0; n++ {
		if n == MaxHeaders {
			return fmt.Errorf("more than %d headers: %w", MaxHeaders, ErrHeaders)
		}
		var err error
		if _, _, b, err = NextHeader(b); err != nil {
			return err
		}
	}
	return nil
}

// Items of list state and entries of map state, as the state host function
// returns them: repeated (u32 length, bytes) for a list; repeated (u32 key
// length, key, u32 value length, value) for a map.

// AppendItem appends one length-prefixed item.
func AppendItem(dst, item []byte) []byte {
	dst = le.AppendUint32(dst, uint32(len(item)))
	return append(dst, item...)
}

// NextItem decodes the first length-prefixed item of b and returns the rest.
func NextItem(b []byte) (item, rest []byte, err error) {
	if len(b) < 4 {
		return nil, nil, fmt.Errorf("item length: %w", ErrShort)
	}
	n := uint64(le.Uint32(b))
	if n > uint64(len(b)-4) {
		return nil, nil, fmt.Errorf("item of %d bytes with %d left: %w", n, len(b)-4, ErrShort)
	}
	return b[4 : 4+n : 4+n], b[4+n:], nil
}
