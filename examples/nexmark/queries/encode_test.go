//go:build !wasip1

package queries

import (
	"strconv"
	"strings"
	"testing"
)

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
