package execgraph

import (
	"fmt"
	"testing"

	"github.com/weirstream/weir/coordinator/slots"
)

// BenchmarkLifecycle runs a job of two vertices of p subtasks each from
// start to finished, every subtask reported running then finished one by
// one: the cost per subtask should not grow with the job.
func BenchmarkLifecycle(b *testing.B) {
	for _, p := range []int{100, 10000} {
		b.Run(fmt.Sprintf("subtasks=%d", 2*p), func(b *testing.B) {
			plan := Plan{Job: "j", Vertices: []Vertex{
				{ID: 0, Name: "src", Parallelism: p, SlotSharingGroup: "default", Source: true},
				{ID: 1, Name: "sink", Parallelism: p, SlotSharingGroup: "default"},
			}}
			var as []slots.Assignment
			for v := range 2 {
				for i := range p {
					as = append(as, slots.Assignment{Vertex: v, Index: i, Slot: slots.SlotID{Worker: fmt.Sprintf("w%d", i/8), Index: i % 8}})
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				g, _ := New(plan, nil)
				mustStep(b, g, Start{})
				mustStep(b, g, SlotsAssigned{Attempt: 1, Assignments: as})
				for _, st := range []State{Running, Finished} {
					for _, a := range as {
						mustStep(b, g, TaskState{Subtask: SubtaskID{a.Vertex, a.Index}, Attempt: 1, State: st})
					}
				}
				if g.Status() != StatusFinished {
					b.Fatal(g.Status())
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(2*p), "ns/subtask")
		})
	}
}

func mustStep(b *testing.B, g *Graph, ev Event) {
	if _, err := g.Step(ev); err != nil {
		b.Fatal(err)
	}
}
