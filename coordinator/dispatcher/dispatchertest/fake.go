// Package dispatchertest has in-memory fakes of the Dispatcher's Jobs and
// Workers interfaces, for tests of the REST layer and of the client: jobs
// that move through their states as they are polled, with no goroutines
// and no clocks, so a test decides every step.
package dispatchertest

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/weirstream/weir/coordinator/dispatcher"
	"github.com/weirstream/weir/internal/api"
)

// Jobs is a fake dispatcher.Jobs. A submitted job is created; each Get
// advances it one step (scheduled, running, then running with more
// records and one more completed checkpoint per poll) until it has been
// polled FinishAfter times, when it finishes. Cancel and Stop end it at
// once. A savepoint is pending until its status has been asked for
// SavepointAfter times (savepoints.go).
type Jobs struct {
	// FinishAfter is the number of Gets after which a job finishes; 0
	// means never (it runs until canceled or stopped). Set it before use,
	// or with SetSteps.
	FinishAfter int
	// FailAfter is the number of Gets after which a job fails (when it
	// comes before FinishAfter); 0 means never.
	FailAfter int
	// FailSubmit, when set, is returned by Submit.
	FailSubmit error
	// Now is the clock of timestamps (default a fixed time).
	Now func() time.Time
	// SavepointDir is the cluster's default savepoint folder; "" means
	// none, so a request without a folder is refused.
	SavepointDir string
	// SavepointAfter is the number of status requests after which a
	// savepoint completes (default 2: the first still answers pending).
	SavepointAfter int
	// FailSavepoint, when set, is the error savepoints fail with.
	FailSavepoint string

	mu struct {
		sync.Mutex
		jobs        map[string]*job
		next        int
		submissions []dispatcher.Submission
		savepoints  []*savepoint // in the order they were started
	}
}

type job struct {
	st    api.JobStatus
	polls int
	// chk is the job's last checkpoint id, periodic or savepoint.
	chk uint64
}

var _ dispatcher.Jobs = (*Jobs)(nil)

func (f *Jobs) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
}

// SetSteps changes FinishAfter and FailAfter while the fake is in use.
func (f *Jobs) SetSteps(finishAfter, failAfter int) {
	f.mu.Lock()
	f.FinishAfter, f.FailAfter = finishAfter, failAfter
	f.mu.Unlock()
}

// SetFailSubmit changes FailSubmit while the fake is in use.
func (f *Jobs) SetFailSubmit(err error) {
	f.mu.Lock()
	f.FailSubmit = err
	f.mu.Unlock()
}

// Submissions returns what Submit was given, in order.
func (f *Jobs) Submissions() []dispatcher.Submission {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]dispatcher.Submission(nil), f.mu.submissions...)
}

// Submit implements dispatcher.Jobs: one subtask per plan subtask.
func (f *Jobs) Submit(_ context.Context, s dispatcher.Submission) (api.JobStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.FailSubmit != nil {
		return api.JobStatus{}, f.FailSubmit
	}
	if f.mu.jobs == nil {
		f.mu.jobs = map[string]*job{}
	}
	f.mu.next++
	plan, err := json.Marshal(s.Plan)
	if err != nil {
		return api.JobStatus{}, err
	}
	st := api.JobStatus{
		ID: fmt.Sprintf("job-%04d", f.mu.next), Name: s.Job.Name, Tenant: s.Tenant, State: api.StateCreated,
		Attempt: 1, Submitted: f.now(), Slots: s.Plan.Slots, Modules: map[string]api.ModuleRef{}, Plan: plan,
	}
	for name, m := range s.Modules {
		st.Modules[name] = m.Ref()
	}
	if s.FromSavepoint != "" {
		st.Checkpoints = &api.CheckpointStats{Restored: s.FromSavepoint}
	}
	for _, v := range s.Plan.Vertices {
		for _, sub := range v.Subtasks {
			st.Subtasks = append(st.Subtasks, api.SubtaskStatus{Task: v.Name, Index: sub.Index, Parallelism: v.Parallelism, State: api.StateCreated, Attempt: 1})
		}
	}
	f.mu.jobs[st.ID] = &job{st: st}
	f.mu.submissions = append(f.mu.submissions, s)
	return clone(st), nil
}

// clone deep-copies the parts of a status a caller might change.
func clone(st api.JobStatus) api.JobStatus {
	st.Subtasks = append([]api.SubtaskStatus(nil), st.Subtasks...)
	if st.Checkpoints != nil {
		c := *st.Checkpoints
		if c.Latest != nil {
			l := *c.Latest
			c.Latest = &l
		}
		st.Checkpoints = &c
	}
	return st
}

func (f *Jobs) find(tenant, id string) (*job, error) {
	j, ok := f.mu.jobs[id]
	if !ok || j.st.Tenant != tenant {
		return nil, fmt.Errorf("%w: no job %s", dispatcher.ErrNotFound, id)
	}
	return j, nil
}

// List implements dispatcher.Jobs, newest first.
func (f *Jobs) List(_ context.Context, tenant string) ([]api.JobStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []api.JobStatus{}
	for _, j := range f.mu.jobs {
		if j.st.Tenant == tenant {
			out = append(out, clone(j.st))
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].ID > out[b].ID })
	return out, nil
}

// Get implements dispatcher.Jobs and advances the job one step.
func (f *Jobs) Get(_ context.Context, tenant, id string) (api.JobStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, err := f.find(tenant, id)
	if err != nil {
		return api.JobStatus{}, err
	}
	if !j.st.State.Terminal() {
		j.polls++
		f.step(j)
	}
	return clone(j.st), nil
}

func (f *Jobs) step(j *job) {
	switch {
	case f.FailAfter > 0 && j.polls >= f.FailAfter:
		f.end(j, api.StateFailed, "subtask 0 failed: the module trapped")
		j.st.Subtasks[0].Failure = "the module trapped"
	case f.FinishAfter > 0 && j.polls >= f.FinishAfter:
		f.end(j, api.StateFinished, "")
	case j.polls == 1:
		j.st.State = api.StateRunning
		t := f.now()
		j.st.Started = &t
		for i := range j.st.Subtasks {
			s := &j.st.Subtasks[i]
			s.State, s.Worker, s.Slot = api.StateRunning, fmt.Sprintf("worker-%d", i%2+1), i/2
		}
	default:
		j.chk++
		cs := j.checkpoints()
		cs.Completed++
		cs.Latest = &api.CheckpointInfo{ID: j.chk, Path: fmt.Sprintf("/checkpoints/%s/chk-%d", j.st.ID, j.chk), DurationMs: 12, Size: 4096}
		for i := range j.st.Subtasks {
			m := &j.st.Subtasks[i].Metrics
			m.RecordsIn += 100
			m.RecordsOut += 100
			m.BytesIn += 1000
			m.BytesOut += 1000
			m.BusyMsPerSec = 250
		}
	}
}

func (f *Jobs) end(j *job, state api.State, msg string) {
	j.st.State, j.st.Message = state, msg
	t := f.now()
	j.st.Ended = &t
	for i := range j.st.Subtasks {
		j.st.Subtasks[i].State = state
	}
}

// Cancel implements dispatcher.Jobs.
func (f *Jobs) Cancel(_ context.Context, tenant, id string) (api.JobStatus, error) {
	return f.finish(tenant, id, api.StateCanceled, "canceled by request")
}

// Logs implements dispatcher.Jobs: one line per Get so far.
func (f *Jobs) Logs(_ context.Context, tenant, id, operator string, after int64) (api.JobLogs, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, err := f.find(tenant, id)
	if err != nil {
		return api.JobLogs{}, err
	}
	out := api.JobLogs{Next: after}
	for seq := after + 1; seq <= int64(j.polls); seq++ {
		l := api.LogLine{Seq: seq, Time: f.now(), Operator: "op", Level: "INFO", Message: fmt.Sprintf("poll %d", seq)}
		if operator == "" || operator == l.Operator {
			out.Lines = append(out.Lines, l)
		}
		out.Next = seq
	}
	return out, nil
}

// Stop implements dispatcher.Jobs.
func (f *Jobs) Stop(_ context.Context, tenant, id string) (api.JobStatus, error) {
	return f.finish(tenant, id, api.StateFinished, "stopped by request")
}

func (f *Jobs) finish(tenant, id string, state api.State, msg string) (api.JobStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, err := f.find(tenant, id)
	if err != nil {
		return api.JobStatus{}, err
	}
	if j.st.State.Terminal() {
		return api.JobStatus{}, fmt.Errorf("%w: job %s has already ended (%s)", dispatcher.ErrConflict, id, j.st.State)
	}
	f.end(j, state, msg)
	return clone(j.st), nil
}

// Workers is a fake dispatcher.Workers: a fixed list.
type Workers struct {
	mu      sync.Mutex
	workers []api.WorkerStatus
}

var _ dispatcher.Workers = (*Workers)(nil)

// NewWorkers returns Workers listing ws.
func NewWorkers(ws ...api.WorkerStatus) *Workers { return &Workers{workers: ws} }

// List implements dispatcher.Workers.
func (f *Workers) List(context.Context) ([]api.WorkerStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]api.WorkerStatus{}, f.workers...), nil
}
