package weir

import (
	"encoding/binary"
	"iter"
	"unsafe"
)

// Record is one element of a stream.
//
// A Record handed to an operator aliases the module's input buffer: its
// Key, Value and Headers are valid only during the call (see the package
// documentation). Records an operator emits are copied when emitted.
type Record struct {
	Key       []byte
	Value     []byte
	Timestamp int64 // event time, milliseconds since the Unix epoch
	Headers   Headers
}

// Headers are the headers of a record: an ordered list of (name, value)
// pairs, where a name may repeat. The zero value is no headers.
//
// Headers are kept encoded, as they cross the ABI, so that records pass
// through an operator without decoding them; Headers is two words, which
// keeps a Record small enough to be passed in registers. Build headers with
// [Headers.Add]:
//
//	var h weir.Headers
//	h = h.Add("trace", traceID)
type Headers struct {
	p *byte // encoded headers: repeated (u16 name length, name, u32 value length, value)
	n int
}

// maxHeaders bounds the size of encoded headers (1 GiB, far beyond what a record carries).
const maxHeaders = 1 << 30

// HeadersFromBytes returns the headers encoded in b (the ABI layout:
// repeated u16 name length, name, u32 value length, value), without copying
// b. Malformed bytes read as the headers before the fault.
func HeadersFromBytes(b []byte) Headers {
	if len(b) == 0 {
		return Headers{}
	}
	return Headers{unsafe.SliceData(b), len(b)}
}

// Bytes returns the encoded headers (see [HeadersFromBytes]); they alias h.
func (h Headers) Bytes() []byte {
	if h.n == 0 {
		return nil
	}
	// Not unsafe.Slice: in WebAssembly it calls a function to check the size.
	return (*[maxHeaders]byte)(unsafe.Pointer(h.p))[:h.n:h.n]
}

// Get returns the value of the first header called name.
func (h Headers) Get(name string) (value []byte, ok bool) {
	for b := h.Bytes(); ; {
		n, v, rest, ok := nextHeader(b)
		if !ok {
			return nil, false
		}
		if string(n) == name {
			return v, true
		}
		b = rest
	}
}

// Len returns the number of headers.
func (h Headers) Len() int {
	n := 0
	for b := h.Bytes(); ; n++ {
		_, _, rest, ok := nextHeader(b)
		if !ok {
			return n
		}
		b = rest
	}
}

// All iterates over the headers in order. Values alias h.
func (h Headers) All() iter.Seq2[string, []byte] {
	return func(yield func(string, []byte) bool) {
		for b := h.Bytes(); ; {
			n, v, rest, ok := nextHeader(b)
			if !ok || !yield(string(n), v) {
				return
			}
			b = rest
		}
	}
}

// Add returns h with one more header at the end. h is not modified: Add
// copies the headers.
func (h Headers) Add(name string, value []byte) Headers {
	old := h.Bytes()
	b := make([]byte, 0, len(old)+6+len(name)+len(value))
	b = append(b, old...)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(name)))
	b = append(b, name...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(value)))
	b = append(b, value...)
	return HeadersFromBytes(b)
}

// Without returns h without the headers called name.
func (h Headers) Without(name string) Headers {
	var out []byte
	for b := h.Bytes(); ; {
		n, v, rest, ok := nextHeader(b)
		if !ok {
			return HeadersFromBytes(out)
		}
		if string(n) != name {
			out = binary.LittleEndian.AppendUint16(out, uint16(len(n)))
			out = append(out, n...)
			out = binary.LittleEndian.AppendUint32(out, uint32(len(v)))
			out = append(out, v...)
		}
		b = rest
	}
}

// nextHeader decodes the first header of b; ok is false at the end of b or
// on malformed bytes.
func nextHeader(b []byte) (name, value, rest []byte, ok bool) {
	if len(b) < 2 {
		return nil, nil, nil, false
	}
	nl := int(binary.LittleEndian.Uint16(b))
	b = b[2:]
	if len(b) < nl+4 {
		return nil, nil, nil, false
	}
	name, b = b[:nl], b[nl:]
	vl := uint64(binary.LittleEndian.Uint32(b))
	b = b[4:]
	if vl > uint64(len(b)) {
		return nil, nil, nil, false
	}
	return name, b[:vl:vl], b[vl:], true
}
