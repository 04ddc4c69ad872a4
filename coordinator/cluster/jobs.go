package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/weirstream/weir/coordinator/checkpoint"
	"github.com/weirstream/weir/coordinator/dispatcher"
	"github.com/weirstream/weir/coordinator/execgraph"
	"github.com/weirstream/weir/coordinator/plan"
	"github.com/weirstream/weir/coordinator/restart"
	"github.com/weirstream/weir/coordinator/slots"
	"github.com/weirstream/weir/internal/api"
	"github.com/weirstream/weir/internal/control"
)

// job is one job's JobManager: its execution graph and what the
// coordinator knows of its subtasks.
type job struct {
	id, tenant, name string
	plan             *plan.Plan
	planJSON         json.RawMessage
	modules          map[string]api.ModuleInfo
	graph            *execgraph.Graph
	submitted        time.Time
	started, ended   *time.Time
	// assign is the current attempt's slots.
	assign map[execgraph.SubtaskID]slots.SlotID
	// reported is the last state and metrics each subtask's worker told.
	reported map[execgraph.SubtaskID]control.TaskReport
	done     chan struct{}
	// logs are the job's latest module log lines, logSeq the last line's
	// number.
	logs   []api.LogLine
	logSeq int64
	// ckpt is the job's checkpointing; nil when it takes none.
	ckpt *jobCheckpoints
}

// jobLogLines is how many log lines the coordinator keeps per job, at
// most (it drops the older half when full).
const jobLogLines = 4000

// runsOn reports whether some subtask of the job's attempt is on worker.
func (j *job) runsOn(worker string) bool {
	for _, s := range j.assign {
		if s.Worker == worker {
			return true
		}
	}
	return false
}

// Logs returns the job's module log lines after seq after
// (dispatcher.Jobs).
func (c *Cluster) Logs(ctx context.Context, tenant, id, operator string, after int64) (api.JobLogs, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	j, err := c.lookup(tenant, id)
	if err != nil {
		return api.JobLogs{}, err
	}
	out := api.JobLogs{Next: max(after, j.logSeq), Lines: []api.LogLine{}}
	if len(j.logs) > 0 && after < j.logs[0].Seq-1 {
		out.Lost = j.logs[0].Seq - 1 - after
	}
	for _, l := range j.logs {
		if l.Seq > after && (operator == "" || l.Operator == operator) {
			out.Lines = append(out.Lines, l)
		}
	}
	return out, nil
}

// Submit starts a job (dispatcher.Jobs).
func (c *Cluster) Submit(ctx context.Context, s dispatcher.Submission) (api.JobStatus, error) {
	policy, err := restart.New(s.Job.Restart, newRand())
	if err != nil {
		return api.JobStatus{}, fmt.Errorf("%w: %v", dispatcher.ErrInvalid, err)
	}
	id := newID()
	g, err := execgraph.New(execgraph.PlanFrom(id, s.Plan), policy)
	if err != nil {
		return api.JobStatus{}, fmt.Errorf("%w: %v", dispatcher.ErrInvalid, err)
	}
	pj, _ := json.Marshal(s.Plan)
	j := &job{id: id, tenant: s.Tenant, name: s.Plan.Name, plan: s.Plan, planJSON: pj, modules: s.Modules, graph: g, submitted: time.Now(),
		reported: map[execgraph.SubtaskID]control.TaskReport{}, done: make(chan struct{})}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.setupCheckpoints(j, s.Job.Checkpoints.Enabled(), checkpoint.FromSpec(s.Job.Checkpoints), s.FromSavepoint, s.AllowNonRestoredState); err != nil {
		return api.JobStatus{}, fmt.Errorf("%w: %v", dispatcher.ErrInvalid, err)
	}
	c.mu.jobs[id] = j
	c.log.Info("job submitted", "job", id, "name", j.name, "tenant", j.tenant, "slots", s.Plan.Slots)
	c.jobStep(j, execgraph.Start{Now: c.now()})
	return c.status(j, true), nil
}

// jobStep steps a job's graph and carries out its actions; c.mu is held.
// A refused event changes nothing.
func (c *Cluster) jobStep(j *job, ev execgraph.Event) error {
	acts, err := j.graph.Step(ev)
	if err != nil {
		c.log.Debug("job event refused", "job", j.id, "event", fmt.Sprintf("%T", ev), "err", err)
		return err
	}
	c.carry(j, acts)
	return nil
}

// carry carries out a job graph's actions; c.mu is held.
func (c *Cluster) carry(j *job, acts []execgraph.Action) {
	var deploys []execgraph.Deploy
	canceled := map[string]bool{}
	for _, a := range acts {
		switch a := a.(type) {
		case execgraph.RequestSlots:
			pacts, err := c.mu.pool.Step(slots.Request{Now: c.now(), Job: j.id, Attempt: a.Attempt, Tasks: a.Tasks})
			if err != nil {
				c.jobStep(j, execgraph.SlotRequestFailed{Now: c.now(), Attempt: a.Attempt, Reason: err.Error()})
				continue
			}
			c.carryPool(pacts)
		case execgraph.WithdrawSlotRequest:
			pacts, _ := c.mu.pool.Step(slots.CancelRequest{Now: c.now(), Job: j.id})
			c.carryPool(pacts)
		case execgraph.Deploy:
			deploys = append(deploys, a)
		case execgraph.CancelTask:
			if !canceled[a.Slot.Worker] {
				canceled[a.Slot.Worker] = true
				c.send(a.Slot.Worker, control.Command{Cancel: &control.Cancel{Job: j.id, Attempt: a.Attempt}})
			}
		case execgraph.StopTask:
			c.send(a.Slot.Worker, control.Command{Stop: &control.Cancel{Job: j.id, Attempt: a.Attempt}})
		case execgraph.ReleaseSlots:
			pacts, _ := c.mu.pool.Step(slots.Release{Now: c.now(), Job: j.id, Attempt: a.Attempt, Slots: a.Slots})
			c.carryPool(pacts)
		case execgraph.RestartJob:
			c.log.Warn("job restarting", "job", j.id, "attempt", a.Attempt, "in", a.Delay, "reason", j.graph.Reason())
		case execgraph.JobTerminal:
			now := time.Now()
			j.ended = &now
			c.log.Info("job ended", "job", j.id, "status", a.Status, "reason", a.Reason)
			j.endCheckpoints()
			close(j.done)
		}
	}
	if len(deploys) > 0 {
		c.deploy(j, deploys)
	}
}

// deploy sends each worker the descriptor of its subtasks; c.mu is held.
func (c *Cluster) deploy(j *job, deploys []execgraph.Deploy) {
	attempt := deploys[0].Attempt
	fail := func(err error) {
		for _, d := range deploys {
			c.jobStep(j, execgraph.Deployed{Now: c.now(), Subtask: d.Subtask, Attempt: attempt, Err: err.Error()})
		}
	}
	whole, err := j.plan.Descriptor(c.descriptorOptions(j))
	if err != nil {
		fail(err)
		return
	}
	c.checkpointOptions(j, whole)
	workerAt := map[string]string{} // data address -> worker
	for _, s := range j.assign {
		if a, ok := c.mu.pool.Address(s.Worker); ok {
			workerAt[a] = s.Worker
		}
	}
	parts := whole.Place(func(v, i int) string {
		a, _ := c.mu.pool.Address(j.assign[execgraph.SubtaskID{Vertex: v, Index: i}].Worker)
		return a
	})
	if now := time.Now(); j.started == nil {
		j.started = &now
	}
	for addr, d := range parts {
		b, err := d.Encode()
		if err != nil {
			fail(err)
			return
		}
		c.send(workerAt[addr], control.Command{Deploy: b})
	}
	for _, d := range deploys {
		c.jobStep(j, execgraph.Deployed{Now: c.now(), Subtask: d.Subtask, Attempt: attempt})
	}
}

func (c *Cluster) lookup(tenant, id string) (*job, error) {
	j := c.mu.jobs[id]
	if j == nil || j.tenant != tenant {
		return nil, fmt.Errorf("%w: no job %s", dispatcher.ErrNotFound, id)
	}
	return j, nil
}

// ListJobs returns the tenant's jobs, newest first.
func (c *Cluster) ListJobs(ctx context.Context, tenant string) ([]api.JobStatus, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var js []*job
	for _, j := range c.mu.jobs {
		if j.tenant == tenant {
			js = append(js, j)
		}
	}
	sort.Slice(js, func(a, b int) bool { return js[a].submitted.After(js[b].submitted) })
	out := make([]api.JobStatus, 0, len(js))
	for _, j := range js {
		out = append(out, c.status(j, false))
	}
	return out, nil
}

// Get returns one job with its subtasks (dispatcher.Jobs).
func (c *Cluster) Get(ctx context.Context, tenant, id string) (api.JobStatus, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	j, err := c.lookup(tenant, id)
	if err != nil {
		return api.JobStatus{}, err
	}
	return c.status(j, true), nil
}

// Cancel cancels a job (dispatcher.Jobs).
func (c *Cluster) Cancel(ctx context.Context, tenant, id string) (api.JobStatus, error) {
	return c.end(tenant, id, execgraph.Cancel{Now: c.now()})
}

// Stop stops a job gracefully (dispatcher.Jobs).
func (c *Cluster) Stop(ctx context.Context, tenant, id string) (api.JobStatus, error) {
	return c.end(tenant, id, execgraph.Stop{Now: c.now()})
}

func (c *Cluster) end(tenant, id string, ev execgraph.Event) (api.JobStatus, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	j, err := c.lookup(tenant, id)
	if err != nil {
		return api.JobStatus{}, err
	}
	if j.graph.Status().Terminal() {
		return api.JobStatus{}, fmt.Errorf("%w: job %s has already ended (%s)", dispatcher.ErrConflict, id, j.graph.Status())
	}
	if err := c.jobStep(j, ev); err != nil {
		if errors.Is(err, execgraph.ErrTerminal) || errors.Is(err, execgraph.ErrNotRunning) {
			return api.JobStatus{}, fmt.Errorf("%w: %v", dispatcher.ErrConflict, err)
		}
		return api.JobStatus{}, err
	}
	return c.status(j, true), nil
}

// Wait returns when the job has ended, with its status.
func (c *Cluster) Wait(ctx context.Context, tenant, id string) (api.JobStatus, error) {
	c.mu.Lock()
	j, err := c.lookup(tenant, id)
	c.mu.Unlock()
	if err != nil {
		return api.JobStatus{}, err
	}
	select {
	case <-j.done:
	case <-ctx.Done():
		return api.JobStatus{}, ctx.Err()
	}
	return c.Get(ctx, tenant, id)
}

// status is a job as the REST API shows it; c.mu is held.
func (c *Cluster) status(j *job, detail bool) api.JobStatus {
	st := api.JobStatus{ID: j.id, Name: j.name, Tenant: j.tenant, State: apiState(j.graph.Status()), Message: j.graph.Reason(),
		Attempt: j.graph.Attempt(), Submitted: j.submitted, Started: j.started, Ended: j.ended, Slots: j.plan.Slots}
	if st.State == api.StateCreated || st.State == api.StateRunning {
		if w, ok := c.mu.pool.WaitingFor(j.id); ok {
			st.Message = w.String()
		}
	}
	if len(j.modules) > 0 {
		st.Modules = map[string]api.ModuleRef{}
		for name, m := range j.modules {
			st.Modules[name] = m.Ref()
		}
	}
	st.Checkpoints = j.checkpointStats()
	if !detail {
		return st
	}
	st.Plan = j.planJSON
	for _, s := range j.graph.Subtasks() {
		v := j.plan.Vertices[s.ID.Vertex]
		ss := api.SubtaskStatus{Task: v.Name, Index: s.ID.Index, Parallelism: v.Parallelism, State: api.State(s.State.String()), Attempt: j.graph.Attempt(), Failure: s.Cause}
		if s.Slot != nil {
			ss.Worker, ss.Slot = s.Slot.Worker, s.Slot.Index
		}
		if r, ok := j.reported[s.ID]; ok && r.Attempt == j.graph.Attempt() && len(r.Metrics) > 0 {
			json.Unmarshal(r.Metrics, &ss.Metrics)
		}
		st.Subtasks = append(st.Subtasks, ss)
	}
	return st
}

func apiState(s execgraph.Status) api.State {
	switch s {
	case execgraph.StatusCreated:
		return api.StateCreated
	case execgraph.StatusRunning, execgraph.StatusFinishing, execgraph.StatusFailing:
		return api.StateRunning
	case execgraph.StatusRestarting:
		return api.StateRestarting
	case execgraph.StatusFinished:
		return api.StateFinished
	case execgraph.StatusCanceling:
		return api.StateCanceling
	case execgraph.StatusCanceled:
		return api.StateCanceled
	case execgraph.StatusFailed:
		return api.StateFailed
	}
	return api.State(s)
}

// Jobs is the cluster as the Dispatcher's job logic.
func (c *Cluster) Jobs() dispatcher.Jobs { return jobsAPI{c} }

// Workers is the cluster as the Dispatcher's worker list.
func (c *Cluster) Workers() dispatcher.Workers { return workersAPI{c} }

type jobsAPI struct{ *Cluster }

func (a jobsAPI) List(ctx context.Context, tenant string) ([]api.JobStatus, error) {
	return a.ListJobs(ctx, tenant)
}

type workersAPI struct{ c *Cluster }

func (a workersAPI) List(ctx context.Context) ([]api.WorkerStatus, error) {
	return a.c.ListWorkers(ctx)
}
