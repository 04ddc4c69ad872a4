package weir

import (
	"encoding/binary"
	"errors"
	"math"
	"strconv"
)

// Codec encodes values of type T to bytes and back: the values of keyed
// state, the keys of map state and the accumulators of aggregates.
//
// Decode gets bytes that are only valid during the call: a codec whose T
// holds the bytes (like []byte) must copy them.
type Codec[T any] interface {
	Append(dst []byte, v T) []byte
	Decode(b []byte) (T, error)
}

// Codecs for common types. Int64Codec and Float64Codec use 8 bytes, little
// endian; StringCodec and BytesCodec use the bytes as they are.
var (
	Int64Codec   Codec[int64]   = int64Codec{}
	Float64Codec Codec[float64] = float64Codec{}
	StringCodec  Codec[string]  = stringCodec{}
	BytesCodec   Codec[[]byte]  = bytesCodec{}
)

type int64Codec struct{}

func (int64Codec) Append(dst []byte, v int64) []byte {
	return binary.LittleEndian.AppendUint64(dst, uint64(v))
}

func (int64Codec) Decode(b []byte) (int64, error) {
	if len(b) != 8 {
		return 0, lengthError("int64", len(b))
	}
	return int64(binary.LittleEndian.Uint64(b)), nil
}

type float64Codec struct{}

func (float64Codec) Append(dst []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
}

func (float64Codec) Decode(b []byte) (float64, error) {
	if len(b) != 8 {
		return 0, lengthError("float64", len(b))
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(b)), nil
}

type stringCodec struct{}

func (stringCodec) Append(dst []byte, v string) []byte { return append(dst, v...) }
func (stringCodec) Decode(b []byte) (string, error)    { return string(b), nil }

type bytesCodec struct{}

func (bytesCodec) Append(dst []byte, v []byte) []byte { return append(dst, v...) }
func (bytesCodec) Decode(b []byte) ([]byte, error)    { return append([]byte{}, b...), nil }

func lengthError(typ string, n int) error {
	return errors.New("weir: cannot decode " + typ + " from " + strconv.Itoa(n) + " bytes, want 8")
}
