// Command bench is the Go operator module of `weir bench abi`: two maps that
// measure what crossing the WebAssembly boundary costs per record.
//
//   - "identity" returns each record unchanged.
//   - "rewrite" parses values of the form id=<6 digits>;amt=<digits>;... (100
//     ASCII bytes, padded) and emits key = the id digits, value = amt*2 in
//     decimal, timestamp and headers unchanged. A value of another form is an
//     error, which fails the batch.
//
// Neither allocates: rewrite writes its result into the record's own bytes,
// which belong to the operator during the call. It reads the digits eight
// bytes at a time (SWAR), as the C module does: in Go compiled to
// WebAssembly every loop iteration and branch is dear.
package main

import (
	"encoding/binary"
	"errors"
	"math/bits"
	"strconv"

	weir "github.com/weirstream/weir/sdk/go"
)

func init() {
	weir.Map("identity", identity)
	weir.Map("rewrite", rewrite)
}

func identity(r weir.Record) (weir.Record, error) { return r, nil }

var errValue = errors.New("rewrite: the value is not id=<6 digits>;amt=<digits>[;...]")

// maxAmtDigits keeps amt*2 within an int64.
const maxAmtDigits = 18

var le = binary.LittleEndian

func rewrite(r weir.Record) (weir.Record, error) {
	v := r.Value
	if len(v) < 15 {
		return r, errValue
	}
	// v[0:8] is "id=" and five digits, v[8] the sixth, v[9:14] ";amt=".
	w := le.Uint64(v)
	if w&0xffffff != 'i'|'d'<<8|'='<<16 || nonDigits(w)&0x8080808080000000 != 0 || nonDigits(uint64(v[8]))&0x80 != 0 ||
		le.Uint32(v[9:]) != ';'|'a'<<8|'m'<<16|'t'<<24 || v[13] != '=' {
		return r, errValue
	}
	amt, n := int64(0), 0
	if len(v) >= 22 {
		x := le.Uint64(v[14:])
		n = bits.TrailingZeros64(nonDigits(x)) / 8 // digits at the start of x
		if n > 0 && n < 8 {
			amt = int64(parseDigits(x, n))
		}
	}
	if n == 8 || len(v) < 22 { // long amounts and short values: one digit at a time
		amt, n = 0, 0
		for _, c := range v[14:] {
			if c < '0' || c > '9' {
				break
			}
			amt = amt*10 + int64(c-'0')
			n++
		}
	}
	if n == 0 || n > maxAmtDigits || 14+n < len(v) && v[14+n] != ';' {
		return r, errValue
	}
	r.Key = v[3:9]
	// amt*2 has at most n+1 digits and v[10:] holds n+4 bytes: the result
	// fits in place, after the key.
	r.Value = appendInt(v[10:10], amt*2)
	return r, nil
}

// nonDigits sets the top bit of each byte of x that is not an ASCII digit.
// Only the lowest such byte is exact (borrows and carries can run upwards),
// which is all the callers use: a mask of bytes that must all be digits, or
// the position of the first non-digit.
func nonDigits(x uint64) uint64 {
	return ((x + 0x4646464646464646) | (x - 0x3030303030303030)) & 0x8080808080808080
}

// parseDigits returns the value of the n (1 to 7) ASCII digits in the low
// bytes of x, the first digit in the lowest byte.
func parseDigits(x uint64, n int) uint64 {
	shift := uint(8 * (8 - n))
	x = x<<shift | 0x3030303030303030>>(64-shift) // as eight digits, leading '0's
	x -= 0x3030303030303030
	x = x*10 + x>>8 // pairs
	x = (x&0x000000FF000000FF)*(100+1000000<<32) + (x>>16&0x000000FF000000FF)*(1+10000<<32)
	return x >> 32
}

// appendInt appends n >= 0 in decimal to dst, in place when dst has the
// room (strconv.AppendInt formats into a buffer and copies).
func appendInt(dst []byte, n int64) []byte {
	u := uint64(n)
	digits := 1
	for t := u; t >= 10; t /= 10 {
		digits++
	}
	l := len(dst)
	if cap(dst)-l < digits {
		return strconv.AppendInt(dst, n, 10)
	}
	b := dst[l : l+digits]
	for i := digits - 1; i > 0; i-- {
		q := u / 10
		b[i] = byte('0' + u - q*10)
		u = q
	}
	b[0] = byte('0' + u)
	return dst[:l+digits]
}

func main() {}
