package cluster

import (
	"context"

	"github.com/weirstream/weir/coordinator/checkpoint"
	"github.com/weirstream/weir/internal/api"
)

// Savepoint starts a savepoint of a job (dispatcher.Jobs); it answers at
// once, pending.
func (c *Cluster) Savepoint(ctx context.Context, tenant, id string, req api.SavepointRequest) (api.SavepointStatus, error) {
	info, err := c.savepoint(tenant, id, req.RequestID, req.Dir, req.Stop, req.Drain)
	if err != nil {
		return api.SavepointStatus{}, err
	}
	return savepointStatus(id, req.RequestID, info), nil
}

// SavepointStatus returns a savepoint request's status (dispatcher.Jobs).
func (c *Cluster) SavepointStatus(ctx context.Context, tenant, id, requestID string) (api.SavepointStatus, error) {
	info, err := c.savepointStatus(tenant, id, requestID)
	if err != nil {
		return api.SavepointStatus{}, err
	}
	return savepointStatus(id, requestID, info), nil
}

func savepointStatus(job, request string, info checkpoint.SavepointInfo) api.SavepointStatus {
	st := api.SavepointStatus{RequestID: request, Job: job, State: string(info.State), Checkpoint: info.ID, Error: info.Reason}
	if info.State == checkpoint.SavepointCompleted {
		st.Path = info.Dir
	}
	if st.State == "" {
		st.State = api.SavepointPending
	}
	return st
}

// checkpointStats is a job's checkpoint figures for its status; c.mu is
// held.
func (j *job) checkpointStats() *api.CheckpointStats {
	if j.ckpt == nil {
		return nil
	}
	s := j.ckpt.runner.Stats()
	out := &api.CheckpointStats{Completed: s.Completed, Failed: s.Failed, InProgress: s.InProgress, LastFailure: s.LastFailure, Restored: j.ckpt.restored, EndedSubtasks: s.Ended}
	if l := s.Latest; l != nil {
		out.Latest = &api.CheckpointInfo{ID: l.ID, Path: l.Path, DurationMs: l.Duration.Milliseconds(), Size: l.Size, Savepoint: l.Savepoint}
	}
	if n := len(j.ckpt.notes); n > 0 {
		if out.LastFailure != "" {
			out.LastFailure += "; "
		}
		out.LastFailure += j.ckpt.notes[n-1]
	}
	return out
}
