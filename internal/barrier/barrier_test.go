package barrier

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/scripttest"
)

// TestScripts runs testdata/*.txt. Every command but new prints the
// actions, one per line, then "> " and the gate's state.
//
//	new channels=N
//	barrier CH... ckpt=N [mode=M] [timeout=D] [age=D] [now=D]   mode default aligned
//	data CH... | eos CH | abort N | timeout now=D
func TestScripts(t *testing.T) {
	scripttest.Walk(t, "testdata", func(t *testing.T) scripttest.Handler {
		var a *Aligner
		now := time.Duration(0)
		return func(t *testing.T, c *scripttest.Cmd) string {
			now = c.Duration("now", now)
			if c.Name == "new" {
				var err error
				a, err = New(Config{Channels: c.Int("channels", 0)})
				if err != nil {
					return "error: " + err.Error()
				}
				return "> " + a.String()
			}
			var evs []Event
			ch := func() []int {
				var out []int
				for _, p := range c.Positional() {
					n, err := strconv.Atoi(p)
					if err != nil {
						c.Fatalf("channel %q: %v", p, err)
					}
					out = append(out, n)
				}
				if len(out) == 0 {
					c.Fatalf("want a channel")
				}
				return out
			}
			switch c.Name {
			case "barrier":
				for _, n := range ch() {
					evs = append(evs, Barrier{Channel: n, Checkpoint: uint64(c.Int("ckpt", 0)), Mode: Mode(c.Str("mode", string(Aligned))),
						AlignmentTimeout: c.Duration("timeout", 0), Now: now, Age: c.Duration("age", 0)})
				}
			case "data":
				for _, n := range ch() {
					evs = append(evs, Data{Channel: n})
				}
			case "eos":
				for _, n := range ch() {
					evs = append(evs, EndOfStream{Channel: n})
				}
			case "abort":
				n, _ := strconv.Atoi(c.Positional()[0])
				evs = append(evs, Abort{Checkpoint: uint64(n)})
			case "timeout":
				evs = append(evs, AlignmentTimeout{Now: now})
			default:
				c.Fatalf("unknown command")
			}
			var l scripttest.Lines
			for _, ev := range evs {
				acts, err := a.Step(ev)
				if err != nil {
					l.Printf("error: %v", err)
				}
				for _, x := range acts {
					l.Printf("%s", x)
				}
			}
			l.Printf("> %s", a)
			return l.String()
		}
	})
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{{Channels: 0}, {Channels: MaxChannels + 1}} {
		if _, err := New(c); !errors.Is(err, ErrInvalid) {
			t.Errorf("New(%+v) = %v; want ErrInvalid", c, err)
		}
	}
}

// item is one thing in a channel, in the channel's order.
type item struct {
	kind string // "pre" (a record before the barrier), "b", "post", "e"
	id   int    // of a record
}

// TestRandomInterleavings delivers, over many random interleavings,
// streams of records on n channels, each stream's records before and after
// the barrier of checkpoint 1, acting on the actions as a runtime would
// (Block and Unblock; an unaligned barrier may overtake the records queued
// ahead of it; PersistInFlight and Verdict.Persist persist records), and
// checks what each mode promises, counted independently of the Aligner:
//
//   - exactly-once (aligned, unaligned, aligned switching to unaligned on
//     timeouts): every record before a barrier is either in the snapshot
//     (processed before it) or persisted with it, never both, never
//     neither; no record after a barrier is in either;
//   - at-least-once: every record before a barrier is processed before
//     the snapshot; none is persisted.
//
// And every record is processed exactly once, one snapshot is taken when
// any barrier was sent, and the Aligner is idle at the end.
func TestRandomInterleavings(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	modes := []Mode{Aligned, Unaligned, AtLeastOnce, Aligned}
	for run := 0; run < 4000; run++ {
		n := 1 + r.IntN(4)
		mode := modes[run%len(modes)]
		timeouts := run%len(modes) == 3 // aligned, with alignment timeouts
		cfg := Config{Channels: n}
		var timeout time.Duration
		if timeouts {
			timeout = time.Duration(1+r.IntN(10)) * time.Second
		}
		a, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		queue := make([][]item, n)
		isPre, isRecord := map[int]bool{}, map[int]bool{}
		nextID, hasBarrier := 0, false
		for ch := range queue {
			add := func(kind string) {
				queue[ch] = append(queue[ch], item{kind: kind, id: nextID})
				isPre[nextID] = kind == "pre"
				isRecord[nextID] = kind == "pre" || kind == "post"
				nextID++
			}
			for k := r.IntN(4); k > 0; k-- {
				add("pre")
			}
			if r.IntN(5) > 0 {
				add("b")
				hasBarrier = true
				for k := r.IntN(4); k > 0; k-- {
					add("post")
				}
			}
			add("e")
		}
		blocked := make([]bool, n)
		processed := map[int]int{}
		persisted := map[int]int{}
		inSnapshot := map[int]bool{}
		snapshots := 0
		now := time.Duration(0)
		var trace []string
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("run %d (%s, %d channels, timeout %s) %v: %s", run, mode, n, timeout, trace, fmt.Sprintf(format, args...))
		}
		apply := func(acts []Action, err error) {
			t.Helper()
			if err != nil {
				fail("%v", err)
			}
			for _, x := range acts {
				switch x := x.(type) {
				case Block:
					blocked[x.Channel] = true
				case Unblock:
					blocked[x.Channel] = false
				case Snapshot:
					snapshots++
					for id, k := range processed {
						if k > 0 {
							inSnapshot[id] = true
						}
					}
				case PersistInFlight:
					for _, it := range queue[x.Channel] {
						if it.kind == "pre" {
							persisted[it.id]++
						}
					}
				}
			}
		}
		for {
			var ready []int
			for ch := range queue {
				if len(queue[ch]) > 0 && !blocked[ch] {
					ready = append(ready, ch)
				}
			}
			if len(ready) == 0 {
				break
			}
			now += time.Duration(r.IntN(2000)) * time.Millisecond
			if timeouts && r.IntN(3) == 0 {
				trace = append(trace, "timeout@"+now.String())
				apply(a.Step(AlignmentTimeout{Now: now}))
			}
			ch := ready[r.IntN(len(ready))]
			pos := 0
			if mode == Unaligned && r.IntN(2) == 0 {
				// The barrier, when already queued, overtakes the records
				// ahead of it.
				for i, it := range queue[ch] {
					if it.kind == "b" {
						pos = i
					}
				}
			}
			it := queue[ch][pos]
			queue[ch] = append(queue[ch][:pos:pos], queue[ch][pos+1:]...)
			trace = append(trace, fmt.Sprintf("%d:%s%d", ch, it.kind, it.id))
			switch it.kind {
			case "b":
				apply(a.Step(Barrier{Channel: ch, Checkpoint: 1, Mode: mode, AlignmentTimeout: timeout, Now: now}))
			case "e":
				apply(a.Step(EndOfStream{Channel: ch}))
			default:
				v, err := a.Admit(ch)
				if err != nil || v.Hold {
					fail("verdict %+v, %v for a record of an unblocked channel", v, err)
				}
				processed[it.id]++
				if v.Persist != 0 {
					persisted[it.id]++
				}
			}
		}
		for ch := range queue {
			if len(queue[ch]) > 0 {
				fail("channel %d stuck with %v", ch, queue[ch])
			}
		}
		want := 0
		if hasBarrier {
			want = 1
		}
		if snapshots != want {
			fail("%d snapshots", snapshots)
		}
		for id := 0; id < nextID; id++ {
			if !isRecord[id] {
				continue // a barrier or an end
			}
			if processed[id] != 1 {
				fail("record %d processed %d times", id, processed[id])
			}
			if !hasBarrier {
				continue
			}
			switch {
			case persisted[id] > 1:
				fail("record %d persisted %d times", id, persisted[id])
			case mode == AtLeastOnce && isPre[id] && (!inSnapshot[id] || persisted[id] > 0):
				fail("record %d before the barrier: in snapshot %v, persisted %d", id, inSnapshot[id], persisted[id])
			case mode != AtLeastOnce && isPre[id] && inSnapshot[id] == (persisted[id] == 1):
				fail("record %d before the barrier: in snapshot %v, persisted %d", id, inSnapshot[id], persisted[id])
			case !isPre[id] && (persisted[id] > 0 || mode != AtLeastOnce && inSnapshot[id]):
				fail("record %d after the barrier: in snapshot %v, persisted %d", id, inSnapshot[id], persisted[id])
			}
		}
		if id, _ := a.Pending(); id != 0 {
			fail("still aligning %d", id)
		}
	}
}

// TestAdmitAllocates nothing: Admit runs once per buffer.
func TestAdmitAllocates(t *testing.T) {
	a, err := New(Config{Channels: 4})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Step(Barrier{Channel: 0, Checkpoint: 1, Mode: Unaligned}); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(1000, func() { _, _ = a.Admit(1) }); n != 0 {
		t.Fatalf("Admit allocates %v times per call", n)
	}
}

func BenchmarkAdmit(b *testing.B) {
	a, err := New(Config{Channels: 4})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := a.Step(Barrier{Channel: 0, Checkpoint: 1, Mode: Aligned}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := a.Admit(i & 3); err != nil {
			b.Fatal(err)
		}
	}
}
