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
//	new channels=N [timeout=D]
//	barrier CH ckpt=N [mode=M] [now=D]   mode default aligned
//	data CH... | eos CH | abort N | timeout now=D
func TestScripts(t *testing.T) {
	scripttest.Walk(t, "testdata", func(t *testing.T) scripttest.Handler {
		var a *Aligner
		now := time.Duration(0)
		return func(t *testing.T, c *scripttest.Cmd) string {
			now = c.Duration("now", now)
			if c.Name == "new" {
				var err error
				a, err = New(Config{Channels: c.Int("channels", 0), AlignmentTimeout: c.Duration("timeout", 0)})
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
					evs = append(evs, Barrier{Channel: n, Checkpoint: uint64(c.Int("ckpt", 0)), Mode: Mode(c.Str("mode", string(Aligned))), Now: now})
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
	for _, c := range []Config{{Channels: 0}, {Channels: MaxChannels + 1}, {Channels: 1, AlignmentTimeout: -time.Second}} {
		if _, err := New(c); !errors.Is(err, ErrInvalid) {
			t.Errorf("New(%+v) = %v; want ErrInvalid", c, err)
		}
	}
}

// TestAlignedRandom delivers, over many random interleavings, streams of
// records on n channels, each stream's records before and after the barrier
// of checkpoint 1, honouring Block and Unblock as a runtime would, and
// checks what exactly-once means, counted independently of the Aligner:
// when the snapshot is taken every record before a barrier has been
// processed and none after one; every record is processed exactly once;
// and the aligner is idle afterwards. At-least-once gets the weaker check:
// every pre-barrier record is processed before the snapshot.
func TestAlignedRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for run := 0; run < 2000; run++ {
		n := 1 + r.IntN(4)
		mode := Aligned
		if run%2 == 1 {
			mode = AtLeastOnce
		}
		a, err := New(Config{Channels: n})
		if err != nil {
			t.Fatal(err)
		}
		// queue[ch]: items in channel order; "b" is the barrier, "e" the
		// end of stream, "pre"/"post" records.
		queue := make([][]string, n)
		pre, post, hasBarrier := 0, 0, false
		for ch := range queue {
			k, m := r.IntN(4), r.IntN(4)
			for i := 0; i < k; i++ {
				queue[ch] = append(queue[ch], "pre")
			}
			pre += k
			if r.IntN(5) == 0 {
				queue[ch] = append(queue[ch], "e") // ends before the barrier
				continue
			}
			queue[ch] = append(queue[ch], "b")
			hasBarrier = true
			for i := 0; i < m; i++ {
				queue[ch] = append(queue[ch], "post")
			}
			post += m
			queue[ch] = append(queue[ch], "e")
		}
		blocked := make([]bool, n)
		donePre, donePost, snapshots := 0, 0, 0
		trace := []string{}
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
			ch := ready[r.IntN(len(ready))]
			item := queue[ch][0]
			queue[ch] = queue[ch][1:]
			trace = append(trace, fmt.Sprintf("%d:%s", ch, item))
			var acts []Action
			switch item {
			case "b":
				acts, err = a.Step(Barrier{Channel: ch, Checkpoint: 1, Mode: mode})
			case "e":
				acts, err = a.Step(EndOfStream{Channel: ch})
			default:
				var v Verdict
				v, err = a.Admit(ch)
				if v.Hold || v.Persist != 0 {
					t.Fatalf("run %d %v: verdict %+v for a record of an unblocked channel", run, trace, v)
				}
				if item == "pre" {
					donePre++
				} else {
					if mode == Aligned && snapshots == 0 {
						t.Fatalf("run %d %v: a record after the barrier processed before the snapshot", run, trace)
					}
					donePost++
				}
			}
			if err != nil {
				t.Fatalf("run %d %v: %v", run, trace, err)
			}
			for _, x := range acts {
				switch x := x.(type) {
				case Block:
					blocked[x.Channel] = true
				case Unblock:
					blocked[x.Channel] = false
				case Snapshot:
					snapshots++
					if donePre != pre {
						t.Fatalf("run %d %v: snapshot after %d of %d records before the barrier", run, trace, donePre, pre)
					}
				}
			}
		}
		wantSnap := 0
		if hasBarrier {
			wantSnap = 1
		}
		if snapshots != wantSnap || donePre != pre || donePost != post {
			t.Fatalf("run %d %v: %d snapshots, %d/%d pre, %d/%d post", run, trace, snapshots, donePre, pre, donePost, post)
		}
		if id, _ := a.Pending(); id != 0 {
			t.Fatalf("run %d %v: still aligning %d", run, trace, id)
		}
	}
}
