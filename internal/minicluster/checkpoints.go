package minicluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/weirstream/weir/coordinator/checkpoint"
	"github.com/weirstream/weir/internal/barrier"
	"github.com/weirstream/weir/internal/ckptmeta"
	"github.com/weirstream/weir/internal/ckptstore"
	"github.com/weirstream/weir/worker/task"
)

// CheckpointOptions override the spec's checkpoints block for a run and
// say where it starts from.
type CheckpointOptions struct {
	// Dir is the checkpoint folder; "" takes the spec's (resolved against
	// its directory), else DefaultCheckpointDir.
	Dir string
	// Interval, when positive, turns periodic checkpoints on (or changes
	// the spec's interval).
	Interval time.Duration
	// Mode, when set, replaces the spec's barrier mode.
	Mode barrier.Mode
	// Resume starts from the latest completed checkpoint in the folder.
	Resume bool
	// FromSavepoint starts from the savepoint (or checkpoint) folder.
	FromSavepoint string
	// AllowNonRestored drops the state of operators the job no longer
	// has instead of refusing the restore.
	AllowNonRestored bool
}

// DefaultCheckpointDir is where `weir run` keeps checkpoints when neither
// the spec nor a flag says: $XDG_STATE_HOME/weir/checkpoints, or
// ~/.local/state/weir/checkpoints.
func DefaultCheckpointDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "weir", "checkpoints")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "weir-checkpoints")
	}
	return filepath.Join(home, ".local", "state", "weir", "checkpoints")
}

// checkpointed says whether the run takes checkpoints.
func (j *Job) checkpointed() bool {
	o := j.o.Checkpoints
	return j.Spec.Checkpoints.Enabled() || o.Interval > 0 || o.Resume || o.FromSavepoint != ""
}

// CheckpointDir is the folder the run keeps its checkpoints in, made
// absolute (the paths it reports are then usable from anywhere).
func (j *Job) CheckpointDir() string {
	d := DefaultCheckpointDir()
	switch {
	case j.o.Checkpoints.Dir != "":
		d = j.o.Checkpoints.Dir
	case j.Spec.Checkpoints.Dir != "":
		d = j.Spec.Checkpoints.Dir
		if !filepath.IsAbs(d) {
			d = filepath.Join(j.Spec.Dir, d)
		}
	}
	if abs, err := filepath.Abs(d); err == nil {
		d = abs
	}
	return d
}

// localTasks drives the run's tasks for the checkpoint runner.
type localTasks struct {
	run     *task.Run
	attempt int // of run
}

func (l *localTasks) Trigger(a checkpoint.TriggerCheckpoint) {
	l.run.TriggerCheckpoint(a.ID, a.Mode, a.Savepoint)
}
func (l *localTasks) NotifyComplete(a checkpoint.NotifyComplete) {
	// A final checkpoint of another attempt ends none of this one's tasks.
	l.run.NotifyComplete(a.ID, a.Final && a.Attempt == l.attempt)
}
func (l *localTasks) Abort(id uint64) { l.run.AbortCheckpoint(id) }

// setupCheckpoints prepares the runner and the task side of checkpoints,
// including the restore; the runner starts with the run.
func (j *Job) setupCheckpoints() error {
	if !j.checkpointed() {
		return nil
	}
	o := j.o.Checkpoints
	cfg := checkpoint.FromSpec(j.Spec.Checkpoints)
	if o.Interval > 0 {
		cfg.Interval = o.Interval
	}
	if o.Mode != "" {
		cfg.Mode = o.Mode
	}
	store := &ckptstore.Dir{Root: j.CheckpointDir()}
	id := j.desc.Job
	topo := checkpoint.TopologyOf(j.desc)
	var restore *task.Restore
	switch {
	case o.FromSavepoint != "":
		s, job, n, err := ckptstore.OpenPath(o.FromSavepoint)
		if err != nil {
			return err
		}
		if restore, err = j.loadRestore(s, job, n); err != nil {
			return err
		}
		if ids, _ := store.Completed(id); len(ids) > 0 {
			topo.FirstID = ids[len(ids)-1] + 1
		}
	case o.Resume:
		md, skipped, err := ckptmeta.LatestRestorable(store, id)
		for _, s := range skipped {
			j.log().Warn("skipping a checkpoint that cannot be used", "checkpoint", s.Checkpoint, "reason", s.Reason)
		}
		if errors.Is(err, ckptstore.ErrNotFound) {
			return fmt.Errorf("--resume: job %s has no completed checkpoint in %s: run it without --resume to start over, or give --checkpoint-dir", id, store.Root)
		}
		if err != nil {
			return err
		}
		if restore, err = j.loadRestore(store, id, md.Checkpoint); err != nil {
			return err
		}
		ids, _ := store.Completed(id)
		topo.FirstID = ids[len(ids)-1] + 1
	default:
		if ids, _ := store.Completed(id); len(ids) > 0 {
			topo.FirstID = ids[len(ids)-1] + 1
		}
	}
	tasks := &localTasks{}
	r, err := checkpoint.NewRunner(checkpoint.RunnerConfig{
		Config: cfg, Topology: topo, Storage: store, Job: id, Template: checkpoint.TemplateOf(j.desc), Tasks: tasks,
		Logger: j.log(),
		OnFail: func(reason string) { j.failRun(errors.New(reason)) },
	})
	if err != nil {
		return err
	}
	j.ckpt, j.ckptTasks, j.Restored = r, tasks, restore
	j.task.Checkpoints = &task.Checkpointing{
		Storage: store, StorageJob: id, AlignmentTimeout: cfg.AlignmentTimeout, Restore: restore,
		Incremental: j.Spec.Checkpoints.Incremental,
		OnAck:       func(a ckptmeta.Ack) { _ = r.Ack(a) },
	}
	return nil
}

// loadRestore reads and checks checkpoint n of job in s for this run.
func (j *Job) loadRestore(s ckptstore.Storage, job string, n uint64) (*task.Restore, error) {
	return task.OpenRestore(s, job, n, ckptmeta.ShapeOf(j.desc), j.o.Checkpoints.AllowNonRestored)
}

// startCheckpoints starts the runner for run.
func (j *Job) startCheckpoints(run *task.Run) {
	if j.ckpt == nil {
		return
	}
	j.ckptTasks.run, j.ckptTasks.attempt = run, j.task.Attempt
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		j.ckpt.Run(ctx)
	}()
	j.stopCkpt = func() { cancel(); <-done }
	j.ckpt.Running(j.task.Attempt)
}

// Checkpoints returns the run's checkpoint figures (zero without
// checkpoints).
func (j *Job) Checkpoints() checkpoint.Stats {
	if j.ckpt == nil {
		return checkpoint.Stats{}
	}
	return j.ckpt.Stats()
}

// Savepoint takes a savepoint of the running job into dir and calls then
// when it ended.
func (j *Job) Savepoint(request, dir string, then func(checkpoint.SavepointInfo)) (checkpoint.SavepointInfo, error) {
	if j.ckpt == nil {
		return checkpoint.SavepointInfo{}, errors.New("the job takes no checkpoints: give it a checkpoints block or --checkpoint-interval")
	}
	return j.ckpt.Savepoint(request, dir, then)
}
