package weir

import (
	"encoding/binary"
	"iter"
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

// Headers are the headers of a record, kept encoded (the ABI's layout:
// repeated u16 name length, name, u32 value length, value), so that records
// pass through an operator without being decoded. The zero value is no
// headers. Build headers with [Headers.Add]:
//
//	var h weir.Headers
//	h = h.Add("trace", traceID)
type Headers []byte

// Get returns the value of the first header called name.
func (h Headers) Get(name string) (value []byte, ok bool) {
	for b := h; ; {
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
	for b := h; ; n++ {
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
		for b := h; ; {
			n, v, rest, ok := nextHeader(b)
			if !ok || !yield(string(n), v) {
				return
			}
			b = rest
		}
	}
}

// Add returns h with one more header. Like append, it may reuse h's
// memory, but never the memory of headers an operator was handed.
func (h Headers) Add(name string, value []byte) Headers {
	h = binary.LittleEndian.AppendUint16(h, uint16(len(name)))
	h = append(h, name...)
	h = binary.LittleEndian.AppendUint32(h, uint32(len(value)))
	return append(h, value...)
}

// Without returns a copy of h without the headers called name.
func (h Headers) Without(name string) Headers {
	var out Headers
	for b := h; ; {
		n, v, rest, ok := nextHeader(b)
		if !ok {
			return out
		}
		if string(n) != name {
			out = out.Add(string(n), v)
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
