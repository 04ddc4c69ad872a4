package checkpoint

import (
	"errors"
	"fmt"
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
//	running attempt=N | failed SUBTASK reason=TEXT | tick
//	ack CKPT SUBTASK... [attempt=N] [size=N]   one handle chk-CKPT/SUBTASK per subtask
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
			case "failed":
				evs = append(evs, TaskFailed{Now: now, Subtask: parseSubtask(c, c.Positional()[0]), Reason: c.Str("reason", "")})
			case "tick":
				evs = append(evs, Tick{Now: now})
			case "ack":
				id := ckpt()
				att, size := c.Int("attempt", attempt), c.Int("size", 100)
				for _, s := range subs(c.Positional()[1:]) {
					evs = append(evs, TaskAck{Now: now, Checkpoint: id, Subtask: s, Attempt: att,
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
