package slots

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/scripttest"
)

// TestScripts runs testdata/*.txt. Every command takes now=D (default: the
// last now). Commands:
//
//	config [provider=P] [heartbeat=D] [max-slots=N] [placement=P]
//	       [slots-per-worker=N] [max-workers=N] [min-workers=N] [idle=D] [start=D]
//	register W [addr=A] slots=N
//	heartbeat W...
//	unregister W [reason=TEXT]
//	tick
//	request job=J [attempt=N]      input: one line per vertex: "V p=N [group=G]"
//	cancel-request job=J
//	release job=J [attempt=N] [slots=(w/i,...)]
//	start-failed n=N
//	pending
//	workers
func TestScripts(t *testing.T) {
	scripttest.Walk(t, "testdata", func(t *testing.T) scripttest.Handler {
		var p *Pool
		now := time.Duration(0)
		return func(t *testing.T, c *scripttest.Cmd) string {
			now = c.Duration("now", now)
			if c.Name == "config" {
				var err error
				p, err = New(Config{
					Provider:         Provider(c.Str("provider", "")),
					HeartbeatTimeout: c.Duration("heartbeat", 0),
					MaxSlots:         c.Int("max-slots", 0),
					Placement:        Placement(c.Str("placement", "")),
					SlotsPerWorker:   c.Int("slots-per-worker", 0),
					MaxWorkers:       c.Int("max-workers", 0),
					MinWorkers:       c.Int("min-workers", 0),
					IdleTimeout:      c.Duration("idle", 0),
					StartTimeout:     c.Duration("start", 0),
				})
				if err != nil {
					return "error: " + err.Error()
				}
				return "ok"
			}
			if p == nil {
				c.Fatalf("config first")
			}
			var evs []Event
			switch c.Name {
			case "register":
				for _, w := range c.Positional() {
					evs = append(evs, Register{Now: now, Worker: w, Address: c.Str("addr", w+":7000"), Slots: c.Int("slots", 1)})
				}
			case "heartbeat":
				for _, w := range c.Positional() {
					evs = append(evs, Heartbeat{Now: now, Worker: w})
				}
			case "unregister":
				evs = append(evs, Unregister{Now: now, Worker: c.Positional()[0], Reason: c.Str("reason", "")})
			case "tick":
				evs = append(evs, Tick{Now: now})
			case "request":
				r := Request{Now: now, Job: c.MustStr("job"), Attempt: c.Int("attempt", 1)}
				for _, l := range c.InputLines() {
					args, err := scripttest.ParseLine(l)
					if err != nil {
						c.Fatalf("%v", err)
					}
					v, err := strconv.Atoi(args[0].Key)
					if err != nil {
						c.Fatalf("vertex %q: %v", args[0].Key, err)
					}
					task := Task{Vertex: v, SlotSharingGroup: "default"}
					for _, a := range args[1:] {
						switch a.Key {
						case "p":
							task.Parallelism, _ = strconv.Atoi(a.Vals[0])
						case "group":
							task.SlotSharingGroup = a.Vals[0]
						}
					}
					r.Tasks = append(r.Tasks, task)
				}
				evs = append(evs, r)
			case "cancel-request":
				evs = append(evs, CancelRequest{Now: now, Job: c.MustStr("job")})
			case "release":
				r := Release{Now: now, Job: c.MustStr("job"), Attempt: c.Int("attempt", 1)}
				for _, s := range c.Strs("slots") {
					w, i, _ := strings.Cut(s, "/")
					n, _ := strconv.Atoi(i)
					r.Slots = append(r.Slots, SlotID{w, n})
				}
				evs = append(evs, r)
			case "start-failed":
				evs = append(evs, StartFailed{Now: now, N: c.Int("n", 1), Reason: c.Str("reason", "test")})
			case "pending":
				var out scripttest.Lines
				for _, w := range p.Pending() {
					out.Printf("%s attempt %d: %s", w.Job, w.Attempt, w)
				}
				if out.String() == "" {
					return "none"
				}
				return out.String()
			case "workers":
				var out scripttest.Lines
				for _, w := range p.Workers() {
					jobs := make([]string, len(w.Jobs))
					for i, j := range w.Jobs {
						jobs[i] = j
						if j == "" {
							jobs[i] = "-"
						}
					}
					stop := ""
					if w.Stopping {
						stop = " stopping"
					}
					out.Printf("%s %s slots [%s] heartbeat %s%s", w.ID, w.Address, strings.Join(jobs, " "), w.LastHeartbeat, stop)
				}
				if out.String() == "" {
					return "none"
				}
				return out.String()
			default:
				c.Fatalf("unknown command")
			}
			var out scripttest.Lines
			for _, ev := range evs {
				acts, err := p.Step(ev)
				if err != nil {
					out.Printf("error: %v", err)
				}
				for _, a := range acts {
					out.Printf("%s", a)
				}
			}
			if out.String() == "" {
				return "ok"
			}
			return out.String()
		}
	})
}

// TestRandomInvariants drives a pool with random events and checks, after
// each, against bookkeeping of its own: no slot is held by two jobs, an
// allocation gives every subtask of its request one slot and never two
// subtasks of a vertex the same slot, each group uses as many slots as
// its largest parallelism, a job's allocation vanishes when its worker is
// lost, and what the pool reports as pending is what was requested and
// not yet allocated.
func TestRandomInvariants(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for run := 0; run < 100; run++ {
		p, err := New(Config{Placement: []Placement{PlacementSpread, PlacementPack}[run%2], HeartbeatTimeout: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		type key struct {
			job     string
			attempt int
		}
		holders := map[SlotID]key{} // our view of who holds each slot
		waiting := map[string]int{} // job -> slots it waits for
		attempts := map[string]int{}
		alive := map[string]time.Duration{}
		slotsOf := map[string]int{}
		now := time.Duration(0)
		for step := 0; step < 300; step++ {
			now += time.Duration(r.IntN(1500)) * time.Millisecond
			var ev Event
			switch k := r.IntN(10); {
			case k < 2:
				w := fmt.Sprintf("w%d", r.IntN(6))
				ev = Register{Now: now, Worker: w, Address: "a", Slots: 1 + r.IntN(4)}
			case k < 4:
				for w := range alive {
					ev = Heartbeat{Now: now, Worker: w}
					break
				}
			case k < 5:
				ev = Tick{Now: now}
			case k < 8:
				job := fmt.Sprintf("j%d", r.IntN(4))
				attempts[job]++
				var tasks []Task
				for v := range 1 + r.IntN(3) {
					tasks = append(tasks, Task{Vertex: v, Parallelism: 1 + r.IntN(4), SlotSharingGroup: []string{"a", "b"}[r.IntN(2)]})
				}
				ev = Request{Now: now, Job: job, Attempt: attempts[job], Tasks: tasks}
			default:
				job := fmt.Sprintf("j%d", r.IntN(4))
				ev = Release{Now: now, Job: job, Attempt: attempts[job]}
			}
			if ev == nil {
				continue
			}
			acts, err := p.Step(ev)
			switch e := ev.(type) {
			case Register:
				if _, dup := alive[e.Worker]; dup != errors.Is(err, ErrDuplicateWorker) {
					t.Fatalf("step %d: register %s alive=%v: %v", step, e.Worker, dup, err)
				}
				if err == nil {
					alive[e.Worker], slotsOf[e.Worker] = now, e.Slots
				}
			case Heartbeat:
				if err != nil {
					t.Fatalf("step %d: heartbeat: %v", step, err)
				}
				alive[e.Worker] = now
			case Request:
				if err != nil {
					t.Fatalf("step %d: request: %v", step, err)
				}
				need := map[string]int{}
				for _, task := range e.Tasks {
					need[task.SlotSharingGroup] = max(need[task.SlotSharingGroup], task.Parallelism)
				}
				waiting[e.Job] = need["a"] + need["b"]
			case Release:
				for s, h := range holders {
					if h == (key{e.Job, e.Attempt}) {
						delete(holders, s)
					}
				}
			}
			for _, a := range acts {
				switch a := a.(type) {
				case WorkerLost:
					if now-alive[a.Worker] <= 3*time.Second {
						t.Fatalf("step %d: %v after a heartbeat %s ago", step, a, now-alive[a.Worker])
					}
					delete(alive, a.Worker)
					for s := range holders {
						if s.Worker == a.Worker {
							delete(holders, s)
						}
					}
				case Allocated:
					if _, ok := waiting[a.Job]; !ok {
						t.Fatalf("step %d: %v without a request", step, a)
					}
					slots := map[SlotID]bool{}
					perVertex := map[[2]int]bool{}
					for _, as := range a.Assignments {
						if h, held := holders[as.Slot]; held && h != (key{a.Job, a.Attempt}) {
							t.Fatalf("step %d: %v: slot %s is held by %v", step, a, as.Slot, h)
						}
						if _, ok := alive[as.Slot.Worker]; !ok || as.Slot.Index >= slotsOf[as.Slot.Worker] {
							t.Fatalf("step %d: %v: no slot %s", step, a, as.Slot)
						}
						k := [2]int{as.Vertex, slotKey(as.Slot)}
						if perVertex[k] {
							t.Fatalf("step %d: %v: two subtasks of vertex %d in %s", step, a, as.Vertex, as.Slot)
						}
						perVertex[k] = true
						slots[as.Slot] = true
						holders[as.Slot] = key{a.Job, a.Attempt}
					}
					if len(slots) != waiting[a.Job] {
						t.Fatalf("step %d: %v uses %d slots; want %d", step, a, len(slots), waiting[a.Job])
					}
					delete(waiting, a.Job)
				}
			}
			var got []string
			for _, w := range p.Pending() {
				got = append(got, fmt.Sprintf("%s:%d", w.Job, w.Need))
			}
			var want []string
			for j, n := range waiting {
				want = append(want, fmt.Sprintf("%s:%d", j, n))
			}
			sort.Strings(got)
			sort.Strings(want)
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("step %d: pending %v; want %v", step, got, want)
			}
			used := 0
			for _, w := range p.Workers() {
				used += w.Used
			}
			if used != len(holders) {
				t.Fatalf("step %d: pool uses %d slots; want %d", step, used, len(holders))
			}
		}
	}
}

func slotKey(s SlotID) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(s.Worker, "w"))
	return n*10000 + s.Index
}
