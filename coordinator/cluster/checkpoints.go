package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/weirstream/weir/coordinator/checkpoint"
	"github.com/weirstream/weir/coordinator/dispatcher"
	"github.com/weirstream/weir/coordinator/execgraph"
	"github.com/weirstream/weir/internal/ckptmeta"
	"github.com/weirstream/weir/internal/ckptstore"
	"github.com/weirstream/weir/internal/control"
	"github.com/weirstream/weir/internal/deploy"
)

// The JobManager's checkpoints: one checkpoint.Runner per checkpointed
// job drives its coordinator; barriers are injected and completions told
// through checkpoint commands to the workers; acknowledgements come on
// their own endpoint; a restart restores the latest completed checkpoint
// (or, before the first, the savepoint the job was submitted from).

// jobCheckpoints is a job's checkpointing.
type jobCheckpoints struct {
	runner           *checkpoint.Runner
	store            *ckptstore.Dir
	alignmentTimeout time.Duration
	stop             context.CancelFunc
	// running is the attempt the runner was last told runs.
	running int
	// fromSavepoint is what the job was submitted to start from.
	fromSavepoint    string
	allowNonRestored bool
	// restored is the checkpoint the current attempt restored from.
	restored string
	// notes are recovery events for the job's exceptions (a checkpoint
	// skipped as corrupt, say).
	notes []string
}

// CheckpointDefaults is where checkpoints and savepoints go unless a job
// or request says.
type CheckpointDefaults struct {
	// Dir is the folder the coordinator and every worker share for
	// checkpoints.
	Dir string
	// SavepointDir is the default folder of savepoints.
	SavepointDir string
}

// asyncQueue runs functions one at a time, in order, on its own
// goroutine: the checkpoint runner calls out under its lock, and what it
// asks for needs the cluster's lock, which the caller may hold.
type asyncQueue struct {
	mu   sync.Mutex
	q    []func()
	wake chan struct{}
}

func (a *asyncQueue) push(f func()) {
	a.mu.Lock()
	a.q = append(a.q, f)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *asyncQueue) run(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-a.wake:
		}
		for {
			a.mu.Lock()
			if len(a.q) == 0 {
				a.mu.Unlock()
				break
			}
			f := a.q[0]
			a.q = a.q[1:]
			a.mu.Unlock()
			f()
		}
	}
}

// clusterTasks sends a job's checkpoint commands to its workers.
type clusterTasks struct {
	c *Cluster
	j *job
}

func (t clusterTasks) Trigger(a checkpoint.TriggerCheckpoint) {
	t.c.async.push(func() {
		t.c.mu.Lock()
		defer t.c.mu.Unlock()
		// Every worker of the job: sources inject the barrier, subtasks
		// that ended their input snapshot directly.
		t.sendAll(control.Checkpoint{Job: t.j.id, Attempt: a.Attempt, Do: control.CheckpointTrigger, ID: a.ID, Mode: string(a.Mode), Savepoint: a.Savepoint})
	})
}

// NotifyComplete goes to the tasks of the checkpoint's attempt (a.Attempt
// 0: the current one): a restart may have come since it completed.
func (t clusterTasks) NotifyComplete(a checkpoint.NotifyComplete) {
	t.all(control.Checkpoint{Do: control.CheckpointComplete, ID: a.ID, Attempt: a.Attempt, Final: a.Final})
}
func (t clusterTasks) Abort(id uint64) {
	t.all(control.Checkpoint{Do: control.CheckpointAbort, ID: id})
}

// all sends cmd to the job's workers, for cmd.Attempt (0: the job's
// current attempt).
func (t clusterTasks) all(cmd control.Checkpoint) {
	t.c.async.push(func() {
		t.c.mu.Lock()
		defer t.c.mu.Unlock()
		cmd.Job = t.j.id
		if cmd.Attempt == 0 {
			cmd.Attempt = t.j.graph.Attempt()
		}
		t.sendAll(cmd)
	})
}

// sendAll sends cmd to every worker the job has subtasks on; t.c.mu is
// held.
func (t clusterTasks) sendAll(cmd control.Checkpoint) {
	sent := map[string]bool{}
	for _, s := range t.j.assign {
		if s.Worker == "" || sent[s.Worker] {
			continue
		}
		sent[s.Worker] = true
		c := cmd
		t.c.send(s.Worker, control.Command{Checkpoint: &c})
	}
}

// setupCheckpoints gives a submitted job its checkpoint runner when its
// spec takes checkpoints or it starts from a savepoint; c.mu is held.
func (c *Cluster) setupCheckpoints(j *job, enabled bool, cfg checkpoint.Config, fromSavepoint string, allowNonRestored bool) error {
	if !enabled && fromSavepoint == "" {
		return nil
	}
	if c.cfg.Checkpoints.Dir == "" {
		return errors.New("this coordinator has no checkpoint folder (weir coordinator --checkpoint-dir)")
	}
	d, err := j.plan.Descriptor(c.descriptorOptions(j))
	if err != nil {
		return err
	}
	if fromSavepoint != "" {
		s, job, n, err := ckptstore.OpenPath(fromSavepoint)
		if err != nil {
			return err
		}
		md, err := ckptstore.Verify(s, job, n)
		if err != nil {
			return fmt.Errorf("the savepoint %s: %w", fromSavepoint, err)
		}
		p, err := ckptmeta.Decode(md.Payload)
		if err != nil {
			return fmt.Errorf("the savepoint %s: %w", fromSavepoint, err)
		}
		if err := p.CheckRestore(ckptmeta.ShapeOf(d), allowNonRestored); err != nil {
			return err
		}
	}
	store := &ckptstore.Dir{Root: c.cfg.Checkpoints.Dir}
	jc := &jobCheckpoints{store: store, alignmentTimeout: cfg.AlignmentTimeout, fromSavepoint: fromSavepoint, allowNonRestored: allowNonRestored}
	r, err := checkpoint.NewRunner(checkpoint.RunnerConfig{
		Config: cfg, Topology: checkpoint.TopologyOf(d), Storage: store, Job: j.id, Template: checkpoint.TemplateOf(d),
		Tasks: clusterTasks{c, j}, Logger: c.log.With("job", j.id),
		OnFail: func(reason string) {
			c.async.push(func() {
				c.mu.Lock()
				defer c.mu.Unlock()
				subs := j.graph.Subtasks()
				if len(subs) == 0 {
					return
				}
				c.jobStep(j, execgraph.TaskState{Now: c.now(), Subtask: subs[0].ID, Attempt: j.graph.Attempt(), State: execgraph.Failed, Cause: reason})
			})
		},
	})
	if err != nil {
		return err
	}
	jc.runner = r
	ctx, cancel := context.WithCancel(context.Background())
	jc.stop = cancel
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		r.Run(ctx)
	}()
	j.ckpt = jc
	return nil
}

// checkpointOptions fills a descriptor's checkpoint folder and what it
// restores from; c.mu is held.
func (c *Cluster) checkpointOptions(j *job, d *deploy.Descriptor) {
	jc := j.ckpt
	if jc == nil {
		return
	}
	d.Checkpoints = &deploy.Checkpoints{Dir: jc.store.Root, AlignmentTimeout: deploy.Duration(jc.alignmentTimeout)}
	// A plan recovered from ZooKeeper has no spec: its checkpoints are full.
	d.Checkpoints.Incremental = j.plan.Job != nil && j.plan.Job.Checkpoints.Incremental
	jc.restored = ""
	md, skipped, err := ckptmeta.LatestRestorable(jc.store, j.id)
	for _, s := range skipped {
		note := fmt.Sprintf("checkpoint %d skipped on recovery: %s", s.Checkpoint, s.Reason)
		jc.notes = append(jc.notes, note)
		c.log.Warn("checkpoint skipped on recovery", "job", j.id, "checkpoint", s.Checkpoint, "reason", s.Reason)
	}
	switch {
	case err == nil:
		jc.restored = ckptstore.PathOf(jc.store, j.id, md.Checkpoint)
		d.Restore = &deploy.Restore{Checkpoint: jc.restored, AllowNonRestored: jc.allowNonRestored}
	case jc.fromSavepoint != "":
		jc.restored = jc.fromSavepoint
		d.Restore = &deploy.Restore{Checkpoint: jc.fromSavepoint, AllowNonRestored: jc.allowNonRestored}
	}
}

// checkpointReport tells a job's runner what a subtask's report means
// for checkpoints; c.mu is held.
func (c *Cluster) checkpointReport(j *job, id execgraph.SubtaskID, t control.TaskReport) {
	jc := j.ckpt
	if jc == nil || t.Attempt != j.graph.Attempt() {
		return
	}
	s := checkpoint.Subtask{Vertex: id.Vertex, Index: id.Index}
	switch t.State {
	case "failed", "canceled":
		jc.runner.Failed(s, t.Cause)
	}
	if jc.running == t.Attempt {
		return
	}
	for _, st := range j.graph.Subtasks() {
		if st.State != execgraph.Running && st.State != execgraph.Finished {
			return
		}
	}
	jc.running = t.Attempt
	jc.runner.Running(t.Attempt)
}

// endCheckpoints stops a job's runner once the job ended; c.mu is held.
func (j *job) endCheckpoints() {
	if j.ckpt != nil && j.ckpt.stop != nil {
		j.ckpt.stop()
		j.ckpt.stop = nil
	}
}

func (c *Cluster) handleAcks(w http.ResponseWriter, r *http.Request) {
	var req control.Acks
	if !decode(w, r, &req) {
		return
	}
	if len(req.Acks) > control.MaxAcks {
		refuse(w, http.StatusBadRequest, fmt.Sprintf("%d acknowledgements, over the limit of %d", len(req.Acks), control.MaxAcks))
		return
	}
	type delivery struct {
		r   *checkpoint.Runner
		ack ckptmeta.Ack
	}
	var ds []delivery
	c.mu.Lock()
	if c.mu.workers[req.Worker] == nil {
		c.mu.Unlock()
		refuse(w, http.StatusNotFound, "unknown worker: register first")
		return
	}
	for _, a := range req.Acks {
		j := c.mu.jobs[a.Job]
		if j == nil || j.ckpt == nil {
			continue
		}
		id := execgraph.SubtaskID{Vertex: a.Ack.Vertex, Index: a.Ack.Index}
		if s, ok := j.assign[id]; !ok || s.Worker != req.Worker {
			continue // not this worker's subtask
		}
		ds = append(ds, delivery{j.ckpt.runner, a.Ack})
	}
	c.mu.Unlock()
	for _, d := range ds {
		if err := d.r.Ack(d.ack); err != nil {
			c.log.Debug("checkpoint acknowledgement refused", "worker", req.Worker, "err", err)
		}
	}
	reply(w, struct{}{})
}

// savepoint starts a savepoint of a running job into dir (the default
// savepoint folder when empty) under request; with stop, the job ends
// once it completed: drained (its sources end and everything in flight,
// timers and windows included, is processed) or, without drain,
// canceled, so that a job resumed from the savepoint emits nothing twice.
func (c *Cluster) savepoint(tenant, id, request, dir string, stop, drain bool) (checkpoint.SavepointInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	j, err := c.lookup(tenant, id)
	if err != nil {
		return checkpoint.SavepointInfo{}, err
	}
	if j.ckpt == nil {
		return checkpoint.SavepointInfo{}, fmt.Errorf("%w: job %s takes no checkpoints: give its spec a checkpoints block to take savepoints", dispatcher.ErrConflict, id)
	}
	if j.graph.Status().Terminal() {
		return checkpoint.SavepointInfo{}, fmt.Errorf("%w: job %s has ended (%s)", dispatcher.ErrConflict, id, j.graph.Status())
	}
	if dir == "" {
		dir = c.cfg.Checkpoints.SavepointDir
	}
	var then func(checkpoint.SavepointInfo)
	if stop {
		then = func(info checkpoint.SavepointInfo) {
			if info.State != checkpoint.SavepointCompleted {
				return
			}
			// What the sinks pre-committed at the savepoint's barrier is
			// committed now: the job ends at the savepoint.
			clusterTasks{c, j}.NotifyComplete(checkpoint.NotifyComplete{ID: info.ID, Attempt: info.Attempt})
			c.async.push(func() {
				c.mu.Lock()
				defer c.mu.Unlock()
				if drain {
					c.jobStep(j, execgraph.Stop{Now: c.now()})
				} else {
					c.jobStep(j, execgraph.Cancel{Now: c.now()})
				}
			})
		}
	}
	info, err := j.ckpt.runner.Savepoint(request, dir, then)
	if errors.Is(err, checkpoint.ErrSavepointRefused) {
		return info, fmt.Errorf("%w: %v", dispatcher.ErrConflict, err)
	}
	return info, err
}

// savepointStatus reports how a savepoint request of a job went.
func (c *Cluster) savepointStatus(tenant, id, request string) (checkpoint.SavepointInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	j, err := c.lookup(tenant, id)
	if err != nil {
		return checkpoint.SavepointInfo{}, err
	}
	if j.ckpt == nil {
		return checkpoint.SavepointInfo{}, fmt.Errorf("%w: job %s takes no checkpoints", dispatcher.ErrNotFound, id)
	}
	info, ok := j.ckpt.runner.SavepointStatus(request)
	if !ok {
		return info, fmt.Errorf("%w: no savepoint request %q of job %s", dispatcher.ErrNotFound, request, id)
	}
	return info, nil
}
