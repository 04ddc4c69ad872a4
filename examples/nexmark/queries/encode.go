package queries

import (
	"encoding/binary"
	"errors"
	"strconv"

	"github.com/weirstream/weir/internal/jsontext"
)

// The helpers below build results and keys without allocating: they append
// to a caller's buffer, usually an array on the stack, which Emit copies.

// appendIntField appends `"name":v` preceded by sep ('{' or ',').
func appendIntField(dst []byte, sep byte, name string, v int64) []byte {
	dst = append(dst, sep, '"')
	dst = append(dst, name...)
	dst = append(dst, '"', ':')
	return strconv.AppendInt(dst, v, 10)
}

// appendStringField appends `"name":"v"` preceded by sep ('{' or ',').
func appendStringField(dst []byte, sep byte, name, v string) []byte {
	dst = append(dst, sep, '"')
	dst = append(dst, name...)
	dst = append(dst, '"', ':')
	return jsontext.AppendString(dst, v)
}

// appendKey appends the decimal text of id, the form of every key.
func appendKey(dst []byte, id int64) []byte { return strconv.AppendInt(dst, id, 10) }

// parseKey parses a decimal key.
func parseKey(b []byte) (int64, error) {
	digits := b
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	// 18 digits cannot overflow an int64.
	if len(digits) == 0 || len(digits) > 18 {
		return 0, errors.New("key " + strconv.Quote(string(b)) + " is not a decimal id")
	}
	var n int64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, errors.New("key " + strconv.Quote(string(b)) + " is not a decimal id")
		}
		n = n*10 + int64(c-'0')
	}
	if len(digits) < len(b) {
		n = -n
	}
	return n, nil
}

// pair is two int64s, the fixed 16-byte little-endian value passed between
// the stages of q4 and q5.
type pair struct{ a, b int64 }

func appendPair(dst []byte, p pair) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, uint64(p.a))
	return binary.LittleEndian.AppendUint64(dst, uint64(p.b))
}

func decodePair(b []byte) (pair, error) {
	if len(b) != 16 {
		return pair{}, errors.New("value of " + strconv.Itoa(len(b)) + " bytes, want a 16-byte pair")
	}
	return pair{int64(binary.LittleEndian.Uint64(b)), int64(binary.LittleEndian.Uint64(b[8:]))}, nil
}
