package dispatchertest

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/weirstream/weir/coordinator/dispatcher"
	"github.com/weirstream/weir/internal/api"
)

// savepoint is one savepoint request the fake took.
type savepoint struct {
	req   api.SavepointRequest
	st    api.SavepointStatus
	polls int
}

// checkpoints returns the job's checkpoint stats, made when first needed.
func (j *job) checkpoints() *api.CheckpointStats {
	if j.st.Checkpoints == nil {
		j.st.Checkpoints = &api.CheckpointStats{}
	}
	return j.st.Checkpoints
}

// Savepoints returns the requests that started a savepoint, in order: a
// request id sent again starts none.
func (f *Jobs) Savepoints() []api.SavepointRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]api.SavepointRequest, len(f.mu.savepoints))
	for i, sp := range f.mu.savepoints {
		out[i] = sp.req
	}
	return out
}

func (f *Jobs) findSavepoint(job, rid string) *savepoint {
	for _, sp := range f.mu.savepoints {
		if sp.st.Job == job && sp.st.RequestID == rid {
			return sp
		}
	}
	return nil
}

// Savepoint implements dispatcher.Jobs with request-id idempotence.
func (f *Jobs) Savepoint(_ context.Context, tenant, id string, req api.SavepointRequest) (api.SavepointStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, err := f.find(tenant, id)
	if err != nil {
		return api.SavepointStatus{}, err
	}
	if req.RequestID == "" {
		return api.SavepointStatus{}, fmt.Errorf("dispatchertest: the dispatcher passed an empty request id")
	}
	if sp := f.findSavepoint(id, req.RequestID); sp != nil {
		if sp.req != req {
			return api.SavepointStatus{}, fmt.Errorf("%w: request id %s was used for another savepoint of job %s (%+v); use a new request id", dispatcher.ErrConflict, req.RequestID, id, sp.req)
		}
		return sp.st, nil
	}
	if j.st.State.Terminal() {
		return api.SavepointStatus{}, fmt.Errorf("%w: job %s has already ended (%s): there is nothing to take a savepoint of", dispatcher.ErrConflict, id, j.st.State)
	}
	if req.Dir == "" && f.SavepointDir == "" {
		return api.SavepointStatus{}, fmt.Errorf("%w: the cluster has no default savepoint folder: give one", dispatcher.ErrInvalid)
	}
	j.chk++
	j.checkpoints().InProgress++
	sp := &savepoint{req: req, st: api.SavepointStatus{RequestID: req.RequestID, Job: id, State: api.SavepointPending, Checkpoint: j.chk}}
	f.mu.savepoints = append(f.mu.savepoints, sp)
	return sp.st, nil
}

// SavepointStatus implements dispatcher.Jobs: each call moves a pending
// savepoint one step towards its end.
func (f *Jobs) SavepointStatus(_ context.Context, tenant, id, requestID string) (api.SavepointStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, err := f.find(tenant, id)
	if err != nil {
		return api.SavepointStatus{}, err
	}
	sp := f.findSavepoint(id, requestID)
	if sp == nil {
		return api.SavepointStatus{}, fmt.Errorf("%w: job %s has no savepoint request %s", dispatcher.ErrNotFound, id, requestID)
	}
	if sp.st.State != api.SavepointPending {
		return sp.st, nil
	}
	sp.polls++
	after := f.SavepointAfter
	if after == 0 {
		after = 2
	}
	if sp.polls < after {
		return sp.st, nil
	}
	cs := j.checkpoints()
	cs.InProgress--
	if f.FailSavepoint != "" {
		sp.st.State, sp.st.Error = api.SavepointFailed, f.FailSavepoint
		cs.Failed++
		cs.LastFailure = fmt.Sprintf("savepoint %d: %s", sp.st.Checkpoint, f.FailSavepoint)
		return sp.st, nil
	}
	dir := sp.req.Dir
	if dir == "" {
		dir = f.SavepointDir
	}
	sp.st.State = api.SavepointCompleted
	sp.st.Path = filepath.Join(dir, id, fmt.Sprintf("chk-%d", sp.st.Checkpoint))
	cs.Completed++
	cs.Latest = &api.CheckpointInfo{ID: sp.st.Checkpoint, Path: sp.st.Path, DurationMs: 20, Size: 8192, Savepoint: true}
	if sp.req.Stop && !j.st.State.Terminal() {
		f.end(j, api.StateFinished, "stopped with savepoint "+sp.st.Path)
	}
	return sp.st, nil
}

// SetSavepoints changes SavepointDir, SavepointAfter and FailSavepoint
// while the fake is in use.
func (f *Jobs) SetSavepoints(dir string, after int, fail string) {
	f.mu.Lock()
	f.SavepointDir, f.SavepointAfter, f.FailSavepoint = dir, after, fail
	f.mu.Unlock()
}
