// Package suggest finds the known name a mistyped one was probably meant to
// be, for "did you mean" hints in error messages.
package suggest

import (
	"math"
	"strings"
)

// MaxLen bounds the names compared: the distance is quadratic, and a typo
// of a long name is not worth the time (input comes from users).
const MaxLen = 64

// Closest returns the candidate nearest to s by edit distance, ignoring
// case, and that distance; "" when there is none or s is too long.
func Closest(s string, candidates []string) (string, int) {
	if len(s) > MaxLen {
		return "", math.MaxInt
	}
	best, bestD := "", math.MaxInt
	for _, c := range candidates {
		if len(c) > MaxLen {
			continue
		}
		if d := Distance(strings.ToLower(s), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best, bestD
}

// Distance is the Levenshtein distance between a and b, in bytes.
func Distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
