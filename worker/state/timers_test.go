package state

import (
	"fmt"
	"math"
	"testing"

	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/wasmabi"
)

func TestTimers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend, c *fakeClock) {
		id, err := b.RegisterTimers("j", "op")
		if err != nil {
			t.Fatal(err)
		}
		if again, _ := b.RegisterTimers("j", "op"); again != id {
			t.Fatal("timers registered twice got two ids")
		}
		other, _ := b.RegisterTimers("j2", "op")
		ev, pt := wasmabi.EventTime, wasmabi.ProcessingTime
		add := func(id TimersID, kg uint16, d wasmabi.TimeDomain, ts int64, key, ns string) {
			t.Helper()
			if err := b.AddTimer(id, kg, d, ts, []byte(key), []byte(ns)); err != nil {
				t.Fatal(err)
			}
		}
		add(id, 5, ev, 10, "b", "")
		add(id, 2, ev, 10, "a", "")
		add(id, 2, ev, 10, "a", "") // again: one timer
		add(id, 2, ev, 10, "a", "w")
		add(id, 7, ev, -3, "zz", "")
		add(id, 7, ev, 30, "c", "")
		add(id, 9, ev, 1, "outside", "")
		add(id, 5, pt, 1, "p", "")
		add(other, 2, ev, 0, "other job", "")
		if err := b.DeleteTimer(id, 7, ev, 30, []byte("c"), nil); err != nil {
			t.Fatal(err)
		}
		r := keygroup.Range{Start: 0, End: 8}
		if ts, ok, err := b.NextTimer(id, r, ev); err != nil || !ok || ts != -3 {
			t.Fatalf("next timer %d %v %v, want -3", ts, ok, err)
		}
		due, err := b.PopDueTimers(id, r, ev, 10, nil)
		if err != nil {
			t.Fatal(err)
		}
		var got string
		for _, tm := range due {
			got += fmt.Sprintf("%d:%d:%s:%s ", tm.KeyGroup, tm.Time, tm.Key, tm.Namespace)
		}
		// By time, then key (shorter first), then namespace; the deleted
		// timer, the one outside the range, the other domain and the other
		// job's are not there.
		if want := "7:-3:zz: 2:10:a: 2:10:a:w 5:10:b: "; got != want {
			t.Fatalf("due timers %q, want %q", got, want)
		}
		if _, ok, _ := b.NextTimer(id, r, ev); ok {
			t.Fatal("timers left after popping all")
		}
		if due, _ := b.PopDueTimers(id, keygroup.Range{Start: 0, End: 20}, pt, math.MaxInt64, nil); len(due) != 1 || string(due[0].Key) != "p" {
			t.Fatalf("processing-time timers %v", due)
		}
		if err := b.AddTimer(id, 40000, ev, 0, nil, nil); err == nil {
			t.Fatal("timer in key group 40000 accepted")
		}
		if err := b.AddTimer(id, 1, 5, 0, nil, nil); err == nil {
			t.Fatal("timer of domain 5 accepted")
		}
		if err := b.AddTimer(99, 1, ev, 0, nil, nil); err == nil {
			t.Fatal("unknown timers id accepted")
		}
	})
}
