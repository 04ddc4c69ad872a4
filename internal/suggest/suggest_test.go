package suggest

import (
	"strings"
	"testing"
)

func TestDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"a", "", 1}, {"kitten", "sitting", 3}, {"paralelism", "parallelism", 1}, {"abc", "abc", 0}, {"flaw", "lawn", 2}} {
		if got := Distance(c.a, c.b); got != c.d {
			t.Errorf("Distance(%q, %q) = %d, want %d", c.a, c.b, got, c.d)
		}
		if got := Distance(c.b, c.a); got != c.d {
			t.Errorf("Distance(%q, %q) = %d, want %d (symmetric)", c.b, c.a, got, c.d)
		}
	}
}

func TestClosest(t *testing.T) {
	known := []string{"parallelism", "max_parallelism", "name", "state"}
	if got, d := Closest("Paralelism", known); got != "parallelism" || d != 1 {
		t.Errorf("Closest = %q %d", got, d)
	}
	if got, _ := Closest(strings.Repeat("x", MaxLen+1), known); got != "" {
		t.Errorf("a name longer than MaxLen got %q", got)
	}
	if got, _ := Closest("x", nil); got != "" {
		t.Errorf("no candidates gave %q", got)
	}
}
