package keygroup

import (
	"fmt"
	"hash/fnv"
	"testing"
)

// reference computes a key's key group the long way, with the standard
// library's FNV-1a and big-number arithmetic spelled out, to check the fast
// path against.
func reference(key []byte, maxParallelism int) int {
	f := fnv.New64a()
	f.Write(key)
	h := f.Sum64()
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	// floor(h * m / 2^64), computed in 32-bit halves.
	m := uint64(maxParallelism)
	hi, lo := h>>32, h&0xffffffff
	return int((hi*m + (lo*m)>>32) >> 32)
}

func TestOfMatchesReference(t *testing.T) {
	for _, m := range []int{1, 2, 7, 128, 1000, MaxMaxParallelism} {
		for i := 0; i < 5000; i++ {
			key := []byte(fmt.Sprintf("key-%d", i))
			if got, want := Of(key, m), reference(key, m); got != want {
				t.Fatalf("Of(%q, %d) = %d, want %d", key, m, got, want)
			}
		}
	}
	if Of(nil, 128) != reference(nil, 128) {
		t.Fatal("empty key")
	}
}

func TestOfSpreadsKeys(t *testing.T) {
	const m, n = 128, 128 * 1000
	counts := make([]int, m)
	for i := 0; i < n; i++ {
		counts[Of([]byte(fmt.Sprintf("user%d", i)), m)]++
	}
	for kg, c := range counts {
		if c < 850 || c > 1150 { // 1000 expected; ~5 standard deviations
			t.Errorf("key group %d got %d of %d keys", kg, c, n)
		}
	}
}

func TestRangesPartitionKeyGroups(t *testing.T) {
	for _, m := range []int{1, 5, 128, 129, 4096} {
		for p := 1; p <= min(m, 70); p++ {
			owner := make([]int, m)
			for i := range owner {
				owner[i] = -1
			}
			minLen, maxLen := m, 0
			for i := 0; i < p; i++ {
				r := RangeFor(i, p, m)
				minLen, maxLen = min(minLen, r.Len()), max(maxLen, r.Len())
				for kg := r.Start; kg <= r.End; kg++ {
					if owner[kg] != -1 {
						t.Fatalf("m=%d p=%d: key group %d in ranges of %d and %d", m, p, kg, owner[kg], i)
					}
					owner[kg] = i
				}
			}
			for kg, o := range owner {
				if o == -1 {
					t.Fatalf("m=%d p=%d: key group %d owned by no subtask", m, p, kg)
				}
				if s := Subtask(kg, p, m); s != o {
					t.Fatalf("m=%d p=%d: Subtask(%d) = %d, but range %d holds it", m, p, kg, s, o)
				}
			}
			if maxLen-minLen > 1 {
				t.Fatalf("m=%d p=%d: range sizes from %d to %d", m, p, minLen, maxLen)
			}
		}
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct{ p, m int }{{0, 128}, {129, 128}, {1, 0}, {1, MaxMaxParallelism + 1}} {
		if Validate(c.p, c.m) == nil {
			t.Errorf("Validate(%d, %d) accepted", c.p, c.m)
		}
	}
	if err := Validate(4, 128); err != nil {
		t.Error(err)
	}
}

func BenchmarkOf(b *testing.B) {
	key := []byte("user-12345678")
	for i := 0; i < b.N; i++ {
		Of(key, 128)
	}
}
