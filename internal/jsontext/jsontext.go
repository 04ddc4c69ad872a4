// Package jsontext appends JSON text without reflection or allocation: the
// one string escaper that sinks, the Nexmark encoder and WebAssembly
// operators share. It uses only the standard library, so operator modules
// can import it.
package jsontext

import (
	"unicode/utf8"
	"unsafe"
)

const hexDigits = "0123456789abcdef"

// plain[c] is true for the bytes a JSON string holds as they are: one table
// load per byte instead of four comparisons, which matters most in
// WebAssembly.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// plain8 reports whether the eight bytes of x are all plain (see plain):
// none below 0x20 or from 0x80, none a quote or a backslash. It uses the
// word tricks "has a byte below n", (x-n*ones) &^ x & highs, and "has a
// zero byte" (n = 1, applied to x XOR the byte sought): each is exact for
// the word as a whole, which is all the fast path asks.
func plain8(x uint64) bool {
	q := x ^ ones*'"'
	bs := x ^ ones*'\\'
	bad := (x-ones*0x20)&^x | (q-ones)&^q | (bs-ones)&^bs | x
	return bad&highs == 0
}

// AppendString appends s as a JSON string: quotes, backslashes and control
// characters escaped, and, like encoding/json, U+2028 and U+2029 escaped
// and invalid UTF-8 replaced by U+FFFD.
func AppendString[T ~string | ~[]byte](dst []byte, s T) []byte {
	dst = append(dst, '"')
	start := 0 // s[start:i] is pending and needs no escape
	// A string and a slice begin with the same pointer and length, so
	// either reads as a string here without a copy.
	str := *(*string)(unsafe.Pointer(&s))
	for i := 0; i < len(s); {
		// Eight plain bytes at a time: one unaligned load and a few
		// word operations instead of eight table loads and branches.
		for ; i+8 <= len(str); i += 8 {
			if !plain8(*(*uint64)(unsafe.Pointer(unsafe.StringData(str[i:])))) {
				break
			}
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if plain[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		var buf [utf8.UTFMax]byte
		n := copy(buf[:], s[i:])
		r, size := utf8.DecodeRune(buf[:n])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			start = i + 1
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			start = i + size
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
