package task

import (
	"testing"
	"time"

	"github.com/weirstream/weir/internal/barrier"
)

// Barriers pack id, mode, savepoint and injection time into one value and
// read them back; malformed values are refused.
func TestBarrierValue(t *testing.T) {
	for _, c := range []struct {
		id       uint64
		mode     barrier.Mode
		sp       bool
		injected uint32
	}{
		{1, barrier.Aligned, false, 0},
		{7, barrier.Unaligned, true, millisMask},
		{maxBarrierID, barrier.AtLeastOnce, false, 12345},
	} {
		id, mode, sp, inj, err := parseBarrier(barrierValue(c.id, c.mode, c.sp, c.injected))
		if err != nil || id != c.id || mode != c.mode || sp != c.sp || inj != c.injected {
			t.Errorf("%+v: read back %d %s %v %d %v", c, id, mode, sp, inj, err)
		}
	}
	for _, v := range []int64{0, 3, 1 << 40} {
		if _, _, _, _, err := parseBarrier(v); err == nil {
			t.Errorf("%#x: accepted", v)
		}
	}
	// Ages by the same clock, across the wrap of the 24-bit milliseconds,
	// and a clock behind the injecting one's.
	now := wallMillis()
	if a := barrierAge(now); a > time.Second {
		t.Errorf("age of a barrier injected now: %s", a)
	}
	if a := barrierAge((now - 1500) & millisMask); a < 1500*time.Millisecond || a > 3*time.Second {
		t.Errorf("age of a barrier injected 1.5s ago: %s", a)
	}
	if a := barrierAge((now + 60000) & millisMask); a != 0 {
		t.Errorf("age of a barrier injected a minute ahead: %s, want 0", a)
	}
}
