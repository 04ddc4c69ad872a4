package agent

import (
	"context"
	"time"

	"github.com/weirstream/weir/internal/barrier"
	"github.com/weirstream/weir/internal/ckptmeta"
	"github.com/weirstream/weir/internal/control"
	"github.com/weirstream/weir/worker/task"
)

// Checkpoints on a worker: the coordinator's checkpoint commands reach
// the runs of the job attempt they name; the subtasks' acknowledgements
// go back at once on their own endpoint (not with the next heartbeat, so
// a checkpoint takes no heartbeat interval longer).

// checkpointCommand carries out a checkpoint command.
func (a *Agent) checkpointCommand(c *control.Checkpoint) {
	a.mu.Lock()
	dep := a.mu.deps[depKey{c.Job, c.Attempt}]
	var run *task.Run
	if dep != nil {
		run = dep.run
	}
	a.mu.Unlock()
	if run == nil {
		return // not (or no longer) running here: the coordinator times it out
	}
	switch c.Do {
	case control.CheckpointTrigger:
		mode := barrier.Mode(c.Mode)
		if !mode.Valid() {
			a.log.Warn("a checkpoint command with an unknown mode", "job", c.Job, "mode", c.Mode)
			return
		}
		run.TriggerCheckpoint(c.ID, mode, c.Savepoint)
	case control.CheckpointComplete:
		run.NotifyComplete(c.ID, c.Final)
	case control.CheckpointAbort:
		run.AbortCheckpoint(c.ID)
	}
}

// queueAck queues a subtask's acknowledgement for the ack sender.
func (a *Agent) queueAck(job string) func(ckptmeta.Ack) {
	return func(ack ckptmeta.Ack) {
		a.mu.Lock()
		a.mu.acks = append(a.mu.acks, control.JobAck{Job: job, Ack: ack})
		a.mu.Unlock()
		select {
		case a.ackWake <- struct{}{}:
		default:
		}
	}
}

// sendAcks posts queued acknowledgements as they come, until ctx ends.
// An ack that cannot be delivered within the checkpoint's timeout is of
// no use, so failures retry for a bounded time and then drop.
func (a *Agent) sendAcks(ctx context.Context) error {
	var failing time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.ackWake:
		}
		for {
			a.mu.Lock()
			acks := a.mu.acks
			if len(acks) > control.MaxAcks {
				acks = acks[:control.MaxAcks]
			}
			a.mu.Unlock()
			if len(acks) == 0 {
				break
			}
			if err := a.post(ctx, control.PathAcks, control.Acks{Worker: a.cfg.ID, Acks: acks}, nil); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				if failing.IsZero() {
					failing = time.Now()
				}
				if time.Since(failing) < time.Minute {
					a.log.Warn("sending checkpoint acknowledgements", "err", err)
					select {
					case <-ctx.Done():
						return nil
					case <-time.After(200 * time.Millisecond):
					}
					continue
				}
				a.log.Error("dropping checkpoint acknowledgements the coordinator did not take for a minute", "acks", len(acks), "err", err)
			}
			failing = time.Time{}
			a.mu.Lock()
			a.mu.acks = a.mu.acks[len(acks):]
			a.mu.Unlock()
		}
	}
}
