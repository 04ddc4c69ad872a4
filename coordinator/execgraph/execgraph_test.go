package execgraph

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/coordinator/jobspec"
	"github.com/weirstream/weir/coordinator/restart"
	"github.com/weirstream/weir/coordinator/slots"
	"github.com/weirstream/weir/internal/scripttest"
)

type half struct{}

func (half) Float64() float64 { return 0.5 }

// TestScripts runs testdata/*.txt. Every event command takes now=D
// (default: the last now) and attempt=N (default: the current attempt).
//
//	plan [strategy=S attempts=N delay=D initial=D max=D multiplier=F reset=D max-failures=N interval=D]
//	    input: one vertex per line, ids from 0: "NAME p=N [group=G] [source]"
//	start
//	assign               input: "w1/0: src[0] sink[0]" per slot
//	slots-failed reason=TEXT
//	deployed SUBTASK... [err=TEXT]
//	report SUBTASK... STATE [cause=TEXT]
//	lost WORKER [reason=TEXT]
//	cancel | stop | tick
//	status               the subtasks
func TestScripts(t *testing.T) {
	scripttest.Walk(t, "testdata", func(t *testing.T) scripttest.Handler {
		var g *Graph
		now := time.Duration(0)
		return func(t *testing.T, c *scripttest.Cmd) string {
			now = c.Duration("now", now)
			if c.Name == "plan" {
				p := Plan{Job: "j"}
				for i, l := range c.InputLines() {
					args, err := scripttest.ParseLine(l)
					if err != nil {
						c.Fatalf("%v", err)
					}
					v := Vertex{ID: i, Name: args[0].Key, Parallelism: 1, SlotSharingGroup: "default"}
					for _, a := range args[1:] {
						switch a.Key {
						case "p":
							v.Parallelism, _ = strconv.Atoi(a.Vals[0])
						case "group":
							v.SlotSharingGroup = a.Vals[0]
						case "source":
							v.Source = true
						}
					}
					p.Vertices = append(p.Vertices, v)
				}
				var policy *restart.Policy
				if s := c.Str("strategy", ""); s != "" {
					var err error
					policy, err = restart.New(jobspec.Restart{
						Strategy: jobspec.RestartStrategy(s), Attempts: c.Int("attempts", 0), Delay: c.Duration("delay", 0),
						InitialDelay: c.Duration("initial", 0), MaxDelay: c.Duration("max", 0), Multiplier: c.Float("multiplier", 0),
						ResetAfter: c.Duration("reset", 0), MaxFailures: c.Int("max-failures", 0), Interval: c.Duration("interval", 0),
					}, half{})
					if err != nil {
						c.Fatalf("%v", err)
					}
				}
				var err error
				g, err = New(p, policy)
				if err != nil {
					return "error: " + err.Error()
				}
				return status(g)
			}
			if g == nil {
				c.Fatalf("plan first")
			}
			attempt := c.Int("attempt", g.Attempt())
			byName := map[string]SubtaskID{}
			for _, s := range g.Subtasks() {
				byName[s.Name] = s.ID
			}
			sub := func(name string) SubtaskID {
				id, ok := byName[name]
				if !ok {
					c.Fatalf("no subtask %s", name)
				}
				return id
			}
			var evs []Event
			switch c.Name {
			case "start":
				evs = append(evs, Start{Now: now})
			case "assign":
				e := SlotsAssigned{Now: now, Attempt: attempt}
				for _, l := range c.InputLines() {
					slot, names, _ := strings.Cut(l, ":")
					w, i, _ := strings.Cut(slot, "/")
					n, _ := strconv.Atoi(i)
					for _, name := range strings.Fields(names) {
						id := sub(name)
						e.Assignments = append(e.Assignments, slots.Assignment{Vertex: id.Vertex, Index: id.Index, Slot: slots.SlotID{Worker: w, Index: n}})
					}
				}
				evs = append(evs, e)
			case "slots-failed":
				evs = append(evs, SlotRequestFailed{Now: now, Attempt: attempt, Reason: c.MustStr("reason")})
			case "deployed":
				for _, name := range c.Positional() {
					evs = append(evs, Deployed{Now: now, Subtask: sub(name), Attempt: attempt, Err: c.Str("err", "")})
				}
			case "report":
				pos := c.Positional()
				st, err := ParseState(pos[len(pos)-1])
				if err != nil {
					c.Fatalf("%v", err)
				}
				for _, name := range pos[:len(pos)-1] {
					evs = append(evs, TaskState{Now: now, Subtask: sub(name), Attempt: attempt, State: st, Cause: c.Str("cause", "")})
				}
			case "lost":
				evs = append(evs, WorkerLost{Now: now, Worker: c.Positional()[0], Reason: c.Str("reason", "no heartbeat")})
			case "cancel":
				evs = append(evs, Cancel{Now: now})
			case "stop":
				evs = append(evs, Stop{Now: now})
			case "tick":
				evs = append(evs, Tick{Now: now})
			case "status":
				var out scripttest.Lines
				for _, s := range g.Subtasks() {
					slot := "-"
					if s.Slot != nil {
						slot = s.Slot.String()
					}
					line := s.Name + " " + s.State.String() + " " + slot
					if s.Cause != "" {
						line += " (" + s.Cause + ")"
					}
					out.Printf("%s", line)
				}
				for _, f := range g.Failures() {
					out.Printf("failure at %s, attempt %d: %s", f.At, f.Attempt, f.Cause)
				}
				return out.String() + status(g)
			default:
				c.Fatalf("unknown command")
			}
			var out scripttest.Lines
			for _, ev := range evs {
				acts, err := g.Step(ev)
				if err != nil {
					out.Printf("error: %v", err)
				}
				for _, a := range acts {
					out.Printf("%s", a)
				}
			}
			return out.String() + status(g)
		}
	})
}

func status(g *Graph) string {
	s := "> " + string(g.Status()) + ", attempt " + strconv.Itoa(g.Attempt())
	if at, ok := g.RestartAt(); ok {
		s += ", restart due at " + at.String()
	}
	if r := g.Reason(); r != "" {
		s += ": " + r
	}
	return s
}

// TestRandomRuns drives graphs through random runs against a simulated
// cluster that answers every action (with random failures, lost workers
// and cancels) and checks what the graph does against the simulation's
// own books: deploys only to slots the attempt was given, every slot of
// an attempt released once unless its worker was lost, no cancel of an
// ended subtask, restarts within the strategy's attempts, and every run
// ends with one JobTerminal whose status matches Status().
func TestRandomRuns(t *testing.T) {
	r := newRand(11)
	const attempts = 3
	for run := 0; run < 300; run++ {
		p := Plan{Job: "j", Vertices: []Vertex{
			{ID: 0, Name: "src", Parallelism: 1 + r.IntN(3), SlotSharingGroup: "default", Source: true},
			{ID: 1, Name: "op", Parallelism: 1 + r.IntN(3), SlotSharingGroup: []string{"default", "b"}[r.IntN(2)]},
		}}
		policy, err := restart.New(jobspec.Restart{Strategy: jobspec.RestartFixedDelay, Attempts: attempts, Delay: time.Second}, nil)
		if err != nil {
			t.Fatal(err)
		}
		g, err := New(p, policy)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Duration(0)
		var queue []Event // what the cluster will say, in order
		assigned := map[int]map[slots.SlotID]bool{}
		released := map[int]map[slots.SlotID]bool{}
		lost := map[int]map[string]bool{} // by attempt: workers lost during it
		var terminal []JobTerminal
		restarts := 0
		var trace []string
		step := func(ev Event) {
			acts, err := g.Step(ev)
			trace = append(trace, fmt.Sprintf("%#v -> %v  [%s]", ev, acts, g.Status()))
			var recount [len(stateNames)]int
			for _, s := range g.subtasks {
				recount[s.state]++
			}
			if recount != g.count {
				t.Fatalf("run %d: state counts %v; the subtasks have %v", run, g.count, recount)
			}
			if _, cancel := ev.(Cancel); err != nil && !(cancel && errors.Is(err, ErrTerminal)) {
				t.Fatalf("run %d: %#v: %v", run, ev, err)
			}
			if e, ok := ev.(SlotsAssigned); ok && len(acts) > 0 {
				if _, deploys := acts[0].(Deploy); deploys {
					assigned[e.Attempt] = map[slots.SlotID]bool{}
					for _, as := range e.Assignments {
						assigned[e.Attempt][as.Slot] = true
					}
				}
			}
			for _, a := range acts {
				if len(terminal) > 0 {
					if _, ok := a.(ReleaseSlots); !ok {
						t.Fatalf("run %d: %v after the end", run, a)
					}
				}
				switch a := a.(type) {
				case RequestSlots:
					// Hand out slots on one of three workers, one slot per
					// index of each group, as the pool does.
					w := []string{"w1", "w2", "w3"}[r.IntN(3)]
					if r.IntN(10) == 0 {
						queue = append(queue, SlotRequestFailed{Attempt: a.Attempt, Reason: "no"})
						continue
					}
					e := SlotsAssigned{Attempt: a.Attempt}
					base := map[string]int{"default": 0, "b": 10}
					for _, task := range a.Tasks {
						for i := range task.Parallelism {
							e.Assignments = append(e.Assignments, slots.Assignment{Vertex: task.Vertex, Index: i, Slot: slots.SlotID{Worker: w, Index: base[task.SlotSharingGroup] + i}})
						}
					}
					queue = append(queue, e)
				case Deploy:
					if !assigned[a.Attempt][a.Slot] {
						t.Fatalf("run %d: %v to a slot the attempt was not given", run, a)
					}
					if r.IntN(20) == 0 {
						queue = append(queue, Deployed{Subtask: a.Subtask, Attempt: a.Attempt, Err: "refused"})
						continue
					}
					queue = append(queue, Deployed{Subtask: a.Subtask, Attempt: a.Attempt})
					end := []State{Finished, Finished, Finished, Failed}[r.IntN(4)]
					queue = append(queue, TaskState{Subtask: a.Subtask, Attempt: a.Attempt, State: Running},
						TaskState{Subtask: a.Subtask, Attempt: a.Attempt, State: end, Cause: "random"})
				case CancelTask:
					for _, s := range g.Subtasks() {
						if s.ID == a.Subtask && s.State != Canceling {
							t.Fatalf("run %d: %v of a subtask in state %s", run, a, s.State)
						}
					}
					queue = append(queue, TaskState{Subtask: a.Subtask, Attempt: a.Attempt, State: Canceled})
				case ReleaseSlots:
					for _, s := range a.Slots {
						if released[a.Attempt][s] {
							t.Fatalf("run %d: %v releases %s twice", run, a, s)
						}
						if released[a.Attempt] == nil {
							released[a.Attempt] = map[slots.SlotID]bool{}
						}
						released[a.Attempt][s] = true
					}
				case RestartJob:
					restarts++
					if restarts > attempts || a.Attempt != g.Attempt()+1 {
						t.Fatalf("run %d: %v, restart %d of %d", run, a, restarts, attempts)
					}
					queue = append(queue, Tick{Now: a.At})
				case JobTerminal:
					terminal = append(terminal, a)
				}
			}
		}
		step(Start{})
		for n := 0; len(queue) > 0; n++ {
			if n > 10000 {
				t.Fatalf("run %d: no end after %d events", run, n)
			}
			// Deliver a random one of the first few: the network reorders,
			// except a worker's reports of one subtask (they travel in
			// order on its connection).
			i := r.IntN(min(len(queue), 3))
			for j := 0; j < i; j++ {
				a, okA := queue[j].(TaskState)
				b, okB := queue[i].(TaskState)
				if okA && okB && a.Subtask == b.Subtask && a.Attempt == b.Attempt {
					i = j
					break
				}
			}
			ev := queue[i]
			queue = append(queue[:i:i], queue[i+1:]...)
			now += time.Duration(r.IntN(500)) * time.Millisecond
			switch k := r.IntN(60); {
			case k == 0:
				w := []string{"w1", "w2", "w3"}[r.IntN(3)]
				if lost[g.Attempt()] == nil {
					lost[g.Attempt()] = map[string]bool{}
				}
				lost[g.Attempt()][w] = true
				step(WorkerLost{Now: now, Worker: w})
			case k == 1:
				step(Cancel{Now: now})
			}
			ev = withNow(ev, now)
			step(ev)
		}
		if len(terminal) != 1 || terminal[0].Status != g.Status() {
			t.Fatalf("run %d: ended %v with status %s\n%s", run, terminal, g.Status(), strings.Join(trace, "\n"))
		}
		for a, set := range assigned {
			for s := range set {
				if !released[a][s] && !lost[a][s.Worker] {
					t.Fatalf("run %d: attempt %d never released %s", run, a, s)
				}
			}
		}
	}
}

func withNow(ev Event, now time.Duration) Event {
	switch e := ev.(type) {
	case SlotsAssigned:
		e.Now = now
		return e
	case SlotRequestFailed:
		e.Now = now
		return e
	case Deployed:
		e.Now = now
		return e
	case TaskState:
		e.Now = now
		return e
	case Tick:
		e.Now = max(e.Now, now)
		return e
	}
	return ev
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed+1)) }
