// Package minicluster runs a job in one process: the coordinator's side
// (job spec, plan) and the worker's side (tasks, state, connectors) joined
// without a network. It is what `weir run` uses, and the engine the cluster
// runs is the same: the cluster only puts a network between Plan and Start.
package minicluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/weirstream/weir/coordinator/checkpoint"
	"github.com/weirstream/weir/coordinator/jobspec"
	"github.com/weirstream/weir/coordinator/plan"
	"github.com/weirstream/weir/internal/deploy"
	"github.com/weirstream/weir/worker/state"
	"github.com/weirstream/weir/worker/task"
	"github.com/weirstream/weir/worker/wasmhost"
)

// Options configure a job run.
type Options struct {
	// Native runs operators linked into this binary instead of the spec's
	// WebAssembly modules (weir bench nexmark --native).
	Native bool
	// Runtime configures the WebAssembly host (limits, compilation cache).
	Runtime wasmhost.Config
	// BuildCacheDir is where module folders are built (modbuild); "" for
	// the default.
	BuildCacheDir string
	// BuildLog receives build progress; nil discards it.
	BuildLog io.Writer
	Logger   *slog.Logger
	// BatchSize, BufferSize and Credits override the engine's defaults.
	BatchSize, BufferSize, Credits int
	// Checkpoints override the spec's checkpoints and say where the run
	// starts from.
	Checkpoints CheckpointOptions
}

// Job is a planned job, ready to start.
type Job struct {
	Spec *jobspec.Job
	Plan *plan.Plan
	task *task.Job
	desc *deploy.Descriptor
	rt   *wasmhost.Runtime
	tmp  string
	o    Options

	// Checkpoints (checkpoints.go).
	ckpt      *checkpoint.Runner
	ckptTasks *localTasks
	stopCkpt  func()
	run       *task.Run
	// Restored is the checkpoint the run started from, if any.
	Restored *task.Restore
}

func (j *Job) log() *slog.Logger {
	if j.o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return j.o.Logger
}

func (j *Job) failRun(err error) {
	if j.run != nil {
		j.run.Fail(err)
	}
}

// Prepare plans a parsed spec: it loads (or builds) the modules, checks
// every operator against its module, and resolves the plan into the
// worker's Job. Nothing runs yet.
func Prepare(ctx context.Context, spec *jobspec.Job, o Options) (*Job, error) {
	j := &Job{Spec: spec, o: o}
	if !o.Native {
		rt, err := wasmhost.NewRuntime(ctx, o.Runtime)
		if err != nil {
			return nil, err
		}
		j.rt = rt
	}
	mods := NewModules(spec, j.rt, o.Native, o.BuildCacheDir, o.BuildLog)
	p, err := plan.Build(spec, mods)
	if err != nil {
		j.Close()
		return nil, err
	}
	j.Plan = p
	if j.task, err = j.resolve(mods); err != nil {
		j.Close()
		return nil, err
	}
	return j, nil
}

// resolve turns the plan into the worker's Job the way the cluster does:
// a deployment descriptor, encoded and decoded again, resolved by the
// worker's side (task.FromDescriptor) against the loaded modules.
func (j *Job) resolve(mods *Modules) (*task.Job, error) {
	id := j.Plan.Name // the state of a local run belongs to the job by name
	if id == "" {
		id = "local"
	}
	d, err := j.Plan.Descriptor(plan.DescriptorOptions{
		Job:     id,
		Attempt: 1,
		Module:  mods.Digest,
		Buffers: deploy.Buffers{Size: j.o.BufferSize, Credits: j.o.Credits, BatchSize: j.o.BatchSize},
	})
	if err != nil {
		return nil, err
	}
	b, err := d.Encode()
	if err != nil {
		return nil, fmt.Errorf("encoding the deployment descriptor: %w", err)
	}
	if d, err = deploy.Decode(b); err != nil {
		return nil, err
	}
	j.desc = d
	return task.FromDescriptor(d, mods)
}

// Start opens the state backend and starts every task.
func (j *Job) Start(ctx context.Context) (*task.Run, error) { return j.StartWith(ctx, 0) }

// StartWith is Start with latency markers sent every latencyInterval (0:
// none), for benchmarks.
func (j *Job) StartWith(ctx context.Context, latencyInterval time.Duration) (*task.Run, error) {
	clock := func() int64 { return time.Now().UnixMilli() }
	switch j.Spec.State.Backend {
	case jobspec.BackendPebble:
		dir := j.Spec.State.Dir
		if dir == "" {
			tmp, err := os.MkdirTemp("", "weir-state-")
			if err != nil {
				return nil, err
			}
			j.tmp, dir = tmp, tmp
		} else if !filepath.IsAbs(dir) {
			dir = filepath.Join(j.Spec.Dir, dir)
		}
		db, err := state.OpenPebble(dir, clock, state.PebbleOptions{})
		if err != nil {
			return nil, fmt.Errorf("state: %w", err)
		}
		j.task.State = db
	default:
		j.task.State = state.NewHeap(clock)
	}
	if err := j.setupCheckpoints(); err != nil {
		return nil, err
	}
	run, err := task.Start(ctx, j.task, task.Options{Logger: j.o.Logger, LatencyInterval: latencyInterval})
	if err != nil {
		return nil, err
	}
	j.run = run
	j.startCheckpoints(run)
	return run, nil
}

// Close releases the runtime, the state backend and any temporary state.
func (j *Job) Close() error {
	var errs []error
	if j.stopCkpt != nil {
		j.stopCkpt()
		j.stopCkpt = nil
	}
	if j.task != nil && j.task.State != nil {
		errs = append(errs, j.task.State.Close())
	}
	if j.rt != nil {
		errs = append(errs, j.rt.Close())
	}
	if j.tmp != "" {
		errs = append(errs, os.RemoveAll(j.tmp))
	}
	return errors.Join(errs...)
}
