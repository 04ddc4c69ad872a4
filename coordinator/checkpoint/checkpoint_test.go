package checkpoint

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/coordinator/jobspec"
	"github.com/weirstream/weir/internal/barrier"
	"github.com/weirstream/weir/internal/scripttest"
)

func parseSubtask(c *scripttest.Cmd, s string) Subtask {
	var st Subtask
	if _, err := fmt.Sscanf(s, "%d[%d]", &st.Vertex, &st.Index); err != nil {
		c.Fatalf("subtask %q: want vertex[index]", s)
	}
	return st
}

// TestScripts runs testdata/*.txt. Every command takes now=D (default:
// the last now) and prints the actions, then "> " and the coordinator's
// state (pending, retained, when the next tick is due).
//
//	new subtasks=(V[I],...) sources=(V[I],...) [interval=D timeout=D min-pause=D
//	    max-concurrent=N tolerable=N mode=M align-timeout=D retained=N]
//	running attempt=N | failed SUBTASK reason=TEXT | ended SUBTASK... [attempt=N] | tick | stopped reason=TEXT
//	ack CKPT SUBTASK... [attempt=N] [size=N] [ended]   one handle chk-CKPT/SUBTASK per subtask
//	decline CKPT SUBTASK [attempt=N] reason=TEXT
//	persisted CKPT | storage-failed CKPT err=TEXT
//	savepoint req=ID [dir=DIR]
//	status req=ID
func TestScripts(t *testing.T) {
	scripttest.Walk(t, "testdata", func(t *testing.T) scripttest.Handler {
		var co *Coordinator
		now := time.Duration(0)
		attempt := 0
		return func(t *testing.T, c *scripttest.Cmd) string {
			now = c.Duration("now", now)
			ckpt := func() uint64 {
				n, err := strconv.ParseUint(c.Positional()[0], 10, 64)
				if err != nil {
					c.Fatalf("checkpoint id: %v", err)
				}
				return n
			}
			subs := func(ss []string) []Subtask {
				var out []Subtask
				for _, s := range ss {
					out = append(out, parseSubtask(c, s))
				}
				return out
			}
			var evs []Event
			switch c.Name {
			case "new":
				d := DefaultConfig()
				cfg := Config{
					Interval: c.Duration("interval", 0), Timeout: c.Duration("timeout", d.Timeout),
					MinPause: c.Duration("min-pause", 0), MaxConcurrent: c.Int("max-concurrent", d.MaxConcurrent),
					TolerableFailures: c.Int("tolerable", 0), Mode: barrier.Mode(c.Str("mode", string(d.Mode))),
					AlignmentTimeout: c.Duration("align-timeout", 0), Retained: c.Int("retained", d.Retained),
				}
				var err error
				co, err = New(cfg, Topology{Subtasks: subs(c.Strs("subtasks")), Sources: subs(c.Strs("sources"))})
				attempt = 0
				if err != nil {
					return "error: " + err.Error()
				}
				return "ok"
			case "running":
				attempt = c.Int("attempt", attempt+1)
				evs = append(evs, JobRunning{Now: now, Attempt: attempt})
			case "ended":
				for _, s := range subs(c.Positional()) {
					evs = append(evs, TaskEnded{Now: now, Subtask: s, Attempt: c.Int("attempt", attempt)})
				}
			case "failed":
				evs = append(evs, TaskFailed{Now: now, Subtask: parseSubtask(c, c.Positional()[0]), Reason: c.Str("reason", "")})
			case "tick":
				evs = append(evs, Tick{Now: now})
			case "stopped":
				evs = append(evs, Stopped{Now: now, Reason: c.Str("reason", "")})
			case "ack":
				id := ckpt()
				att, size := c.Int("attempt", attempt), c.Int("size", 100)
				ss := c.Positional()[1:]
				ended := len(ss) > 0 && ss[len(ss)-1] == "ended"
				if ended {
					ss = ss[:len(ss)-1]
				}
				for _, s := range subs(ss) {
					evs = append(evs, TaskAck{Now: now, Checkpoint: id, Subtask: s, Attempt: att, Ended: ended,
						Handles: []Handle{{Path: fmt.Sprintf("chk-%d/%s", id, s), Size: int64(size)}}})
				}
			case "decline":
				evs = append(evs, TaskDeclined{Now: now, Checkpoint: ckpt(), Subtask: parseSubtask(c, c.Positional()[1]),
					Attempt: c.Int("attempt", attempt), Reason: c.Str("reason", "")})
			case "persisted":
				evs = append(evs, Persisted{Now: now, Checkpoint: ckpt()})
			case "storage-failed":
				evs = append(evs, StorageFailed{Now: now, Checkpoint: ckpt(), Err: c.Str("err", "")})
			case "savepoint":
				evs = append(evs, SavepointRequested{Now: now, RequestID: c.Str("req", ""), Dir: c.Str("dir", "")})
			case "status":
				info, ok := co.SavepointStatus(c.MustStr("req"))
				if !ok {
					return "unknown"
				}
				s := fmt.Sprintf("savepoint %d %s", info.ID, info.State)
				if info.Reason != "" {
					s += ": " + info.Reason
				}
				return s
			default:
				c.Fatalf("unknown command")
			}
			var l scripttest.Lines
			for _, ev := range evs {
				acts, err := co.Step(ev)
				if err != nil {
					l.Printf("error: %v", err)
				}
				for _, a := range acts {
					l.Printf("%s", a)
				}
			}
			next := "none"
			if at, ok := co.Next(); ok {
				next = at.String()
			}
			l.Printf("> pending %v, retained %v, next tick %s", co.Pending(), co.Completed(), next)
			return l.String()
		}
	})
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	bad := []func(*Config){
		func(c *Config) { c.Interval = time.Millisecond },
		func(c *Config) { c.Timeout = 0 },
		func(c *Config) { c.MinPause = -1 },
		func(c *Config) { c.MaxConcurrent = 0 },
		func(c *Config) { c.MaxConcurrent, c.MinPause = 2, time.Second },
		func(c *Config) { c.TolerableFailures = -1 },
		func(c *Config) { c.Mode = "exactly-once" },
		func(c *Config) { c.Mode, c.AlignmentTimeout = barrier.Unaligned, time.Second },
		func(c *Config) { c.Retained = 0 },
	}
	for i, f := range bad {
		cfg := DefaultConfig()
		f(&cfg)
		if err := cfg.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("case %d (%+v): %v; want ErrInvalid", i, cfg, err)
		}
	}
	one := []Subtask{{0, 0}}
	for _, topo := range []Topology{{}, {Subtasks: one}, {Subtasks: one, Sources: []Subtask{{1, 0}}},
		{Subtasks: []Subtask{{0, 0}, {0, 0}}, Sources: one}} {
		if _, err := New(DefaultConfig(), topo); !errors.Is(err, ErrInvalid) {
			t.Errorf("New(%+v) = %v; want ErrInvalid", topo, err)
		}
	}
}

// TestFromSpec checks that a parsed spec's block gives a Config that
// validates, field by field.
func TestFromSpec(t *testing.T) {
	spec := jobspec.Checkpoints{Interval: time.Second, Timeout: time.Minute, MinPause: 2 * time.Second, MaxConcurrent: 1,
		TolerableFailures: 3, Mode: barrier.Aligned, AlignmentTimeout: 5 * time.Second, Retained: 4, Dir: "/x"}
	got := FromSpec(spec)
	want := Config{Interval: time.Second, Timeout: time.Minute, MinPause: 2 * time.Second, MaxConcurrent: 1,
		TolerableFailures: 3, Mode: barrier.Aligned, AlignmentTimeout: 5 * time.Second, Retained: 4}
	if got != want {
		t.Fatalf("FromSpec = %+v\nwant %+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestPeriodicSchedule drives a coordinator whose checkpoints complete at
// once with ticks every millisecond and checks the start times against
// the rule computed here: a checkpoint starts at the first tick at or
// after both the previous start plus the interval and the previous end
// plus the min pause.
func TestPeriodicSchedule(t *testing.T) {
	for _, tc := range []struct{ interval, pause, work time.Duration }{
		{100 * time.Millisecond, 0, 30 * time.Millisecond},
		{100 * time.Millisecond, 80 * time.Millisecond, 30 * time.Millisecond},
		{50 * time.Millisecond, 10 * time.Millisecond, 70 * time.Millisecond},
	} {
		cfg := DefaultConfig()
		cfg.Interval, cfg.MinPause = tc.interval, tc.pause
		s := Subtask{0, 0}
		co, err := New(cfg, Topology{Subtasks: []Subtask{s}, Sources: []Subtask{s}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := co.Step(JobRunning{Attempt: 1}); err != nil {
			t.Fatal(err)
		}
		var starts []time.Duration
		var endAt, lastEnd time.Duration
		var open uint64
		wantNext := tc.interval
		for now := time.Duration(0); now < 2*time.Second; now += time.Millisecond {
			if open != 0 && now == endAt {
				mustStep(t, co, TaskAck{Now: now, Checkpoint: open, Subtask: s, Attempt: 1})
				mustStep(t, co, Persisted{Now: now, Checkpoint: open})
				open, lastEnd = 0, now
				wantNext = max(starts[len(starts)-1]+tc.interval, lastEnd+tc.pause)
			}
			for _, a := range mustStep(t, co, Tick{Now: now}) {
				if tr, ok := a.(TriggerCheckpoint); ok {
					starts = append(starts, now)
					if now != wantNext {
						t.Fatalf("%+v: checkpoint %d started at %s; want %s", tc, tr.ID, now, wantNext)
					}
					open, endAt = tr.ID, now+tc.work
				}
			}
		}
		if len(starts) < 10 {
			t.Fatalf("%+v: only %d checkpoints", tc, len(starts))
		}
	}
}

func mustStep(t *testing.T, co *Coordinator, ev Event) []Action {
	t.Helper()
	acts, err := co.Step(ev)
	if err != nil {
		t.Fatal(err)
	}
	return acts
}

// Make sure every action prints on one line (scripts depend on it).
func TestActionStrings(t *testing.T) {
	for _, a := range []Action{TriggerCheckpoint{}, AbortCheckpoint{}, Complete{}, NotifyComplete{}, Discard{},
		DiscardState{}, RefuseSavepoint{}, FailJob{}} {
		if strings.Contains(a.String(), "\n") {
			t.Errorf("%T prints more than one line", a)
		}
	}
}

// TestRandomEvents drives coordinators with random events, answered as a
// JobManager would but at random times and sometimes wrongly (late,
// repeated, from a dead attempt), and checks the protocol from the actions
// alone, with bookkeeping of its own:
//
//   - every checkpoint ends once (aborted, or completed and then
//     notified), and no action names it afterwards but a late ack's
//     DiscardState or the Discard of a retained one;
//   - checkpoints start only while the job runs, at most MaxConcurrent
//     periodic ones at a time;
//   - NotifyComplete follows Persisted of a Complete, in rising order;
//   - the retained checkpoints are the last Retained notified;
//   - a Tick before Next does nothing, one at or after it something;
//   - FailJob comes exactly when more than TolerableFailures periodic
//     checkpoints in a row were aborted for their own failure (timeout,
//     decline, storage), a notification resetting the count.
func TestRandomEvents(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	subs := []Subtask{{0, 0}, {0, 1}, {1, 0}}
	seen := map[string]int{} // actions over all runs, so the test shows it exercised them
	for run := 0; run < 300; run++ {
		cfg := DefaultConfig()
		cfg.Interval = time.Duration(1+r.IntN(5)) * time.Second
		cfg.Timeout = time.Duration(5+r.IntN(20)) * time.Second
		cfg.MaxConcurrent = 1 + r.IntN(3)
		if cfg.MaxConcurrent == 1 && r.IntN(2) == 0 {
			cfg.MinPause = time.Duration(r.IntN(3)) * time.Second
		}
		cfg.TolerableFailures = r.IntN(3)
		cfg.Retained = 1 + r.IntN(3)
		co, err := New(cfg, Topology{Subtasks: subs, Sources: subs[:2]})
		if err != nil {
			t.Fatal(err)
		}
		var (
			now           time.Duration
			attempt       int
			running       bool
			live          = map[uint64]bool{} // triggered, not ended
			savepoint     = map[uint64]bool{}
			completing    = map[uint64]bool{}
			persistedSent = map[uint64]bool{}
			ended         = map[uint64]bool{}
			finalOf       = map[uint64]bool{}
			notified      []uint64
			discarded     = map[uint64]bool{}
			failures      int
			endedSubs     = map[Subtask]bool{}
			final         bool // the final checkpoint completed
			maxID         uint64
			reqs          int
			trace         []string
		)
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("run %d %+v\n%s\n%s", run, cfg, strings.Join(trace, "\n"), fmt.Sprintf(format, args...))
		}
		for step := 0; step < 300; step++ {
			now += time.Duration(r.IntN(1500)) * time.Millisecond
			var ev Event
			var inProgress []uint64
			for id := range live {
				inProgress = append(inProgress, id)
			}
			slices.Sort(inProgress)
			pick := func() uint64 {
				switch {
				case maxID == 0:
					return 0
				case len(inProgress) > 0 && r.IntN(5) > 0:
					return inProgress[r.IntN(len(inProgress))]
				}
				return 1 + uint64(r.IntN(int(maxID)))
			}
			switch k := r.IntN(20); {
			case k < 6 || attempt == 0:
				if attempt == 0 || !running && r.IntN(3) == 0 {
					attempt++
					ev = JobRunning{Now: now, Attempt: attempt}
				} else {
					ev = Tick{Now: now}
				}
			case k < 14:
				if id := pick(); id != 0 {
					att := attempt
					if r.IntN(10) == 0 {
						att--
					}
					s := subs[r.IntN(len(subs))]
					ev = TaskAck{Now: now, Checkpoint: id, Subtask: s, Attempt: att, Ended: endedSubs[s] || r.IntN(8) == 0,
						Handles: []Handle{{Path: fmt.Sprintf("f%d", step), Size: 1}}}
				}
			case k < 15:
				if id := pick(); id != 0 && r.IntN(3) == 0 {
					ev = TaskDeclined{Now: now, Checkpoint: id, Subtask: subs[r.IntN(len(subs))], Attempt: attempt, Reason: "x"}
				}
			case k < 17:
				for _, id := range inProgress {
					if completing[id] && (!persistedSent[id] || r.IntN(4) == 0) {
						ev = Persisted{Now: now, Checkpoint: id}
						persistedSent[id] = true
						break
					}
				}
			case k < 18:
				if id := pick(); id != 0 && r.IntN(3) == 0 {
					ev = StorageFailed{Now: now, Checkpoint: id, Err: "full"}
				}
			case k < 19:
				if r.IntN(2) == 0 {
					ev = TaskEnded{Now: now, Subtask: subs[r.IntN(len(subs))], Attempt: attempt}
					break
				}
				ev = TaskFailed{Now: now, Subtask: subs[r.IntN(len(subs))], Reason: "boom"}
			default:
				if r.IntN(3) > 0 {
					reqs++
				}
				ev = SavepointRequested{Now: now, RequestID: fmt.Sprintf("r%d", reqs), Dir: "/sp"}
			}
			if ev == nil {
				continue
			}
			next, due := co.Next()
			acts, err := co.Step(ev)
			trace = append(trace, fmt.Sprintf("%T%+v -> %v %v", ev, ev, acts, err))
			if err != nil {
				fail("error: %v", err)
			}
			if _, tick := ev.(Tick); tick && (!due || now < next) && len(acts) > 0 {
				fail("a tick at %s before Next (%s, %v) did something", now, next, due)
			}
			if _, tick := ev.(Tick); tick && due && now >= next && len(acts) == 0 {
				fail("a tick at %s, at or after Next (%s), did nothing", now, next)
			}
			counts := false
			switch ev.(type) {
			case JobRunning:
				running, failures, final = true, 0, false
				clear(endedSubs)
			case TaskEnded:
				if e := ev.(TaskEnded); running && e.Attempt == attempt {
					endedSubs[e.Subtask] = true
				}
			case TaskAck:
				if e := ev.(TaskAck); running && e.Ended && e.Attempt == attempt && live[e.Checkpoint] && !completing[e.Checkpoint] {
					endedSubs[e.Subtask] = true
				}
			case TaskFailed:
				running = false
			case TaskDeclined, StorageFailed, Tick:
				counts = true
			}
			for _, a := range acts {
				seen[fmt.Sprintf("%T", a)]++
				switch a := a.(type) {
				case TriggerCheckpoint:
					if !running || final || a.ID != maxID+1 || a.Attempt != attempt {
						fail("trigger %d (running %v, final %v, latest %d, attempt %d)", a.ID, running, final, maxID, attempt)
					}
					if !slices.Equal(a.Sources, subs[:2]) {
						fail("trigger %d at %v; sources %v", a.ID, a.Sources, subs[:2])
					}
					maxID = a.ID
					live[a.ID], savepoint[a.ID] = true, a.Savepoint
					n := 0
					for id := range live {
						if !savepoint[id] {
							n++
						}
					}
					if n > cfg.MaxConcurrent {
						fail("%d periodic checkpoints at once", n)
					}
				case Complete:
					if !live[a.ID] || completing[a.ID] || len(a.Acks) != len(subs) {
						fail("complete %d", a.ID)
					}
					all := !a.Savepoint
					for _, ack := range a.Acks {
						all = all && ack.Ended
					}
					if a.Final != all {
						fail("complete %d: final %v, acks %+v", a.ID, a.Final, a.Acks)
					}
					finalOf[a.ID] = a.Final
					completing[a.ID] = true
				case AbortCheckpoint:
					if !live[a.ID] {
						fail("abort of %d, not in progress", a.ID)
					}
					delete(live, a.ID)
					delete(completing, a.ID)
					ended[a.ID] = true
					if counts && !a.Savepoint && !strings.HasPrefix(a.Reason, "subsumed") && !strings.HasPrefix(a.Reason, "the job fails") {
						failures++
					}
				case NotifyComplete:
					if !completing[a.ID] || !persistedSent[a.ID] || len(notified) > 0 && a.ID <= notified[len(notified)-1] {
						fail("notify %d", a.ID)
					}
					delete(live, a.ID)
					delete(completing, a.ID)
					ended[a.ID] = true
					notified = append(notified, a.ID)
					failures = 0
					if a.Final != finalOf[a.ID] {
						fail("notify %d: final %v, its Complete said %v", a.ID, a.Final, finalOf[a.ID])
					}
					final = final || a.Final
				case FailJob:
					if failures != cfg.TolerableFailures+1 {
						fail("fail job after %d failures in a row", failures)
					}
					failures, running, counts = 0, false, false
				case Discard:
					if discarded[a.ID] || !slices.Contains(notified, a.ID) {
						fail("discard %d", a.ID)
					}
					discarded[a.ID] = true
				case DiscardState:
					if live[a.Checkpoint] {
						fail("discard state of %d, in progress", a.Checkpoint)
					}
				case RefuseSavepoint:
					if running && !final {
						fail("savepoint refused while running, before the final checkpoint")
					}
				}
			}
			// A savepoint completes silently: it leaves Pending.
			for id := range live {
				if !slices.Contains(co.Pending(), id) {
					if !savepoint[id] || !completing[id] {
						fail("%d left Pending without an action", id)
					}
					delete(live, id)
					delete(completing, id)
				}
			}
			if failures > cfg.TolerableFailures {
				fail("%d failures in a row and no FailJob", failures)
			}
			var kept []uint64
			for _, id := range notified {
				if !discarded[id] {
					kept = append(kept, id)
				}
			}
			if want := notified[max(0, len(notified)-cfg.Retained):]; !slices.Equal(kept, want) || !slices.Equal(co.Completed(), want) {
				fail("retained %v (Completed %v); want %v", kept, co.Completed(), want)
			}
		}
	}
	for _, a := range []Action{TriggerCheckpoint{}, AbortCheckpoint{}, Complete{}, NotifyComplete{}, Discard{}, DiscardState{}, RefuseSavepoint{}, FailJob{}} {
		if name := fmt.Sprintf("%T", a); seen[name] < 10 {
			t.Errorf("%s seen %d times over all runs; the random events do not exercise it", name, seen[name])
		}
	}
	t.Logf("actions over all runs: %v", seen)
}

// Ended counts the running attempt's ended subtasks until its final
// checkpoint completed, and none when no attempt runs.
func TestEndedCount(t *testing.T) {
	a, b := Subtask{0, 0}, Subtask{1, 0}
	co, err := New(Config{Interval: time.Second, Timeout: time.Minute, MaxConcurrent: 1, Mode: barrier.Aligned, Retained: 1}, Topology{Subtasks: []Subtask{a, b}, Sources: []Subtask{a}})
	if err != nil {
		t.Fatal(err)
	}
	step := func(ev Event) []Action {
		t.Helper()
		acts, err := co.Step(ev)
		if err != nil {
			t.Fatal(err)
		}
		return acts
	}
	count := func(want int) {
		t.Helper()
		if n, all := co.Ended(); n != want || all != 2 {
			t.Fatalf("ended %d of %d, want %d of 2", n, all, want)
		}
	}
	step(TaskEnded{Subtask: a, Attempt: 1})
	count(0) // not running yet
	step(JobRunning{Attempt: 1})
	count(1)
	step(TaskFailed{Subtask: b, Reason: "x"})
	count(0)
	step(JobRunning{Now: time.Second, Attempt: 2})
	count(0)
	step(TaskEnded{Now: time.Second, Subtask: a, Attempt: 2})
	step(TaskEnded{Now: time.Second, Subtask: b, Attempt: 2})
	count(2)
	var id uint64
	for _, act := range step(Tick{Now: time.Second}) {
		if tr, ok := act.(TriggerCheckpoint); ok {
			id = tr.ID
		}
	}
	if id == 0 {
		t.Fatal("no final checkpoint once every subtask ended")
	}
	step(TaskAck{Now: time.Second, Checkpoint: id, Subtask: a, Attempt: 2, Ended: true})
	step(TaskAck{Now: time.Second, Checkpoint: id, Subtask: b, Attempt: 2, Ended: true})
	step(Persisted{Now: time.Second, Checkpoint: id})
	count(0)
}
