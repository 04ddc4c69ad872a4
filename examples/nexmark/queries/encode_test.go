//go:build !wasip1

package queries

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// validUTF8 replaces each byte of s that is not part of valid UTF-8 with
// U+FFFD, as a JSON decoder reading appendJSONString's output must see it.
func validUTF8(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		b.WriteRune(r) // RuneError for an invalid byte
		i += n
	}
	return b.String()
}

func checkJSONString(t *testing.T, s string) {
	enc := appendJSONString(nil, s)
	var got string
	if err := json.Unmarshal(enc, &got); err != nil {
		t.Fatalf("appendJSONString(%q) = %s: not JSON: %v", s, enc, err)
	}
	if want := validUTF8(s); got != want {
		t.Fatalf("appendJSONString(%q) = %s, decodes to %q, want %q", s, enc, got, want)
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", `"quoted" \back\slash`, "ctl\x00\x01\x1f\n\r\t", "ünïcödé ☃ 𝄞", "bad \xff\xfe utf8 \xe2\x82", "<&>\u2028"} {
		checkJSONString(t, s)
	}
}

func FuzzAppendJSONString(f *testing.F) {
	f.Add("a\"b\\c\x00\xff☃")
	f.Fuzz(checkJSONString)
}

func TestParseKey(t *testing.T) {
	for _, n := range []int64{0, 7, -7, 1436918400000, 999999999999999999, -999999999999999999} {
		k := appendKey(nil, n)
		got, err := parseKey(k)
		if err != nil || got != n {
			t.Errorf("parseKey(%q) = %d, %v; want %d", k, got, err, n)
		}
	}
	for _, k := range []string{"", "-", "1x", "+1", " 1", "1234567890123456789", "key-1"} {
		if n, err := parseKey([]byte(k)); err == nil {
			t.Errorf("parseKey(%q) = %d, want an error", k, n)
		}
	}
}

func TestPair(t *testing.T) {
	p := pair{-5, 1 << 40}
	got, err := decodePair(appendPair(nil, p))
	if err != nil || got != p {
		t.Errorf("pair round trip: %v, %v", got, err)
	}
	if _, err := decodePair(make([]byte, 15)); err == nil || !strings.Contains(err.Error(), strconv.Itoa(15)) {
		t.Errorf("decodePair of 15 bytes: %v", err)
	}
}

func TestWindowStart(t *testing.T) {
	for _, c := range [][2]int64{{0, 0}, {9999, 0}, {10000, 10000}, {-1, -10000}, {-10000, -10000}, {-10001, -20000}} {
		if got := windowStart(c[0]); got != c[1] {
			t.Errorf("windowStart(%d) = %d, want %d", c[0], got, c[1])
		}
	}
}
