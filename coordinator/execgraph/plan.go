package execgraph

import (
	"errors"
	"fmt"

	"github.com/weirstream/weir/coordinator/plan"
	"github.com/weirstream/weir/coordinator/slots"
)

// ErrBadPlan is returned by New for a plan that does not validate.
var ErrBadPlan = errors.New("execgraph: bad plan")

// MaxParallelism bounds a vertex's parallelism (= keygroup's largest max
// parallelism: no vertex can have more subtasks than key groups).
const MaxParallelism = 32768

// Plan is what the execution graph needs of a job's execution plan:
// plain, JSON-serialisable data, so the JobManager can keep it with the
// job. PlanFrom makes one from a coordinator/plan.Plan.
type Plan struct {
	Job      string   `json:"job"`
	Vertices []Vertex `json:"vertices"`
}

// Vertex is one task of the plan with its parallel subtasks.
type Vertex struct {
	ID               int    `json:"id"`
	Name             string `json:"name"`
	Parallelism      int    `json:"parallelism"`
	SlotSharingGroup string `json:"slot_sharing_group"`
	// Source is true for a vertex that reads no other vertex: stopping
	// the job ends these, and the rest finish as their inputs end.
	Source bool `json:"source,omitempty"`
}

// PlanFrom takes the execution graph's part of a plan.
func PlanFrom(job string, p *plan.Plan) Plan {
	out := Plan{Job: job}
	for _, v := range p.Vertices {
		out.Vertices = append(out.Vertices, Vertex{
			ID: v.ID, Name: v.Name, Parallelism: v.Parallelism,
			SlotSharingGroup: v.SlotSharingGroup, Source: len(v.Inputs) == 0,
		})
	}
	return out
}

// Validate reports a plan the graph cannot run.
func (p Plan) Validate() error {
	if p.Job == "" {
		return fmt.Errorf("%w: no job id", ErrBadPlan)
	}
	if len(p.Vertices) == 0 {
		return fmt.Errorf("%w: job %s has no vertices", ErrBadPlan, p.Job)
	}
	seen := map[int]bool{}
	for i, v := range p.Vertices {
		switch {
		case seen[v.ID]:
			return fmt.Errorf("%w: vertices[%d]: id %d is used twice", ErrBadPlan, i, v.ID)
		case v.Name == "":
			return fmt.Errorf("%w: vertices[%d]: no name", ErrBadPlan, i)
		case v.Parallelism < 1 || v.Parallelism > MaxParallelism:
			return fmt.Errorf("%w: vertices[%d] (%s): parallelism %d; want 1 to %d", ErrBadPlan, i, v.Name, v.Parallelism, MaxParallelism)
		case v.SlotSharingGroup == "":
			return fmt.Errorf("%w: vertices[%d] (%s): no slot sharing group", ErrBadPlan, i, v.Name)
		}
		seen[v.ID] = true
	}
	return nil
}

// tasks is the slot request of the plan.
func (p Plan) tasks() []slots.Task {
	out := make([]slots.Task, len(p.Vertices))
	for i, v := range p.Vertices {
		out[i] = slots.Task{Vertex: v.ID, Parallelism: v.Parallelism, SlotSharingGroup: v.SlotSharingGroup}
	}
	return out
}
