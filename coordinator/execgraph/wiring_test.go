package execgraph_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/weirstream/weir/coordinator/execgraph"
	"github.com/weirstream/weir/coordinator/jobspec"
	"github.com/weirstream/weir/coordinator/plan"
	"github.com/weirstream/weir/coordinator/restart"
	"github.com/weirstream/weir/coordinator/slots"
	"github.com/weirstream/weir/wasmabi"
)

const spec = `name: wired
parallelism: 2
modules: {m: m.wasm}
sources:
  - {uid: gen, connector: datagen, options: {count: 10}}
operators:
  - {uid: up, module: m, operator: up, input: gen}
sinks:
  - {uid: out, connector: discard, input: up, parallelism: 1, slot_sharing_group: io}
`

func buildPlan(t *testing.T) *plan.Plan {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "m.wasm"), []byte("\x00asm"), 0o644); err != nil {
		t.Fatal(err)
	}
	j, err := jobspec.Parse([]byte(spec), filepath.Join(dir, "job.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.Build(j, plan.Descriptors{"m": {Operators: []wasmabi.OperatorDesc{{Name: "up", Kind: wasmabi.KindMap}}}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPlanFrom checks the graph's plan against the spec above: gen and up
// chain (forward, equal parallelism, same group), out stands alone in io.
func TestPlanFrom(t *testing.T) {
	got := execgraph.PlanFrom("job-1", buildPlan(t))
	want := execgraph.Plan{Job: "job-1", Vertices: []execgraph.Vertex{
		{ID: 0, Name: "gen -> up", Parallelism: 2, SlotSharingGroup: "default", Source: true},
		{ID: 1, Name: "out", Parallelism: 1, SlotSharingGroup: "io"},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("PlanFrom = %+v\nwant %+v", got, want)
	}
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	var back execgraph.Plan
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, want) {
		t.Fatalf("JSON round trip: %s -> %+v, %v", b, back, err)
	}
}

// TestWiredToPool wires a graph to a real slot pool the way the
// JobManager and ResourceManager do, with workers simulated by the test:
// the job runs on w1 and w2, w2 goes silent, the pool declares it lost,
// the job restarts on w1 and a new w3, and finishes.
func TestWiredToPool(t *testing.T) {
	pool, err := slots.New(slots.Config{HeartbeatTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	policy, err := restart.New(jobspec.Restart{Strategy: jobspec.RestartFixedDelay, Attempts: 1, Delay: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := execgraph.New(execgraph.PlanFrom("job-1", buildPlan(t)), policy)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Duration(0)
	running := map[execgraph.SubtaskID]slots.SlotID{} // what the workers run
	var restartAt time.Duration
	var end *execgraph.JobTerminal

	// toGraph and toPool carry actions across, as the network would.
	var toGraph func(ev execgraph.Event)
	toPool := func(ev slots.Event) {
		acts, err := pool.Step(ev)
		if err != nil {
			t.Fatalf("pool %#v: %v", ev, err)
		}
		for _, a := range acts {
			switch a := a.(type) {
			case slots.Allocated:
				toGraph(execgraph.SlotsAssigned{Now: now, Attempt: a.Attempt, Assignments: a.Assignments})
			case slots.WorkerLost:
				for id, s := range running {
					if s.Worker == a.Worker {
						delete(running, id)
					}
				}
				for range a.Jobs {
					toGraph(execgraph.WorkerLost{Now: now, Worker: a.Worker, Reason: a.Reason})
				}
			}
		}
	}
	toGraph = func(ev execgraph.Event) {
		acts, err := g.Step(ev)
		if err != nil {
			t.Fatalf("graph %#v: %v", ev, err)
		}
		for _, a := range acts {
			switch a := a.(type) {
			case execgraph.RequestSlots:
				toPool(slots.Request{Now: now, Job: "job-1", Attempt: a.Attempt, Tasks: a.Tasks})
			case execgraph.WithdrawSlotRequest:
				toPool(slots.CancelRequest{Now: now, Job: "job-1"})
			case execgraph.ReleaseSlots:
				toPool(slots.Release{Now: now, Job: "job-1", Attempt: a.Attempt, Slots: a.Slots})
			case execgraph.Deploy:
				running[a.Subtask] = a.Slot
				toGraph(execgraph.Deployed{Now: now, Subtask: a.Subtask, Attempt: a.Attempt})
				toGraph(execgraph.TaskState{Now: now, Subtask: a.Subtask, Attempt: a.Attempt, State: execgraph.Running})
			case execgraph.CancelTask:
				delete(running, a.Subtask)
				toGraph(execgraph.TaskState{Now: now, Subtask: a.Subtask, Attempt: a.Attempt, State: execgraph.Canceled})
			case execgraph.RestartJob:
				restartAt = a.At
			case execgraph.JobTerminal:
				end = &a
			}
		}
	}

	toPool(slots.Register{Now: now, Worker: "w1", Address: "127.0.0.1:7001", Slots: 2})
	toPool(slots.Register{Now: now, Worker: "w2", Address: "127.0.0.1:7002", Slots: 2})
	toGraph(execgraph.Start{Now: now})
	if len(running) != 3 || g.Status() != execgraph.StatusRunning {
		t.Fatalf("after start: %d subtasks run, status %s", len(running), g.Status())
	}
	// w2 goes silent; w1 keeps beating.
	for now < 4*time.Second {
		now += time.Second
		toPool(slots.Heartbeat{Now: now, Worker: "w1"})
		toPool(slots.Tick{Now: now})
	}
	if g.Status() != execgraph.StatusRestarting || restartAt == 0 {
		t.Fatalf("after w2 went silent: status %s, restart at %s", g.Status(), restartAt)
	}
	toPool(slots.Register{Now: now, Worker: "w3", Address: "127.0.0.1:7003", Slots: 2})
	now = restartAt
	toGraph(execgraph.Tick{Now: now})
	if g.Attempt() != 2 || len(running) != 3 {
		t.Fatalf("after the restart: attempt %d, %d subtasks run", g.Attempt(), len(running))
	}
	for _, s := range running {
		if s.Worker == "w2" {
			t.Fatalf("attempt 2 runs on the lost worker: %v", running)
		}
	}
	for id := range running {
		toGraph(execgraph.TaskState{Now: now, Subtask: id, Attempt: 2, State: execgraph.Finished})
	}
	if end == nil || end.Status != execgraph.StatusFinished {
		t.Fatalf("job ended %v", end)
	}
	for _, w := range pool.Workers() {
		if w.Used != 0 {
			t.Fatalf("worker %s still has %d slots in use after the end", w.ID, w.Used)
		}
	}
}
