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

	"github.com/weirstream/weir/coordinator/jobspec"
	"github.com/weirstream/weir/coordinator/plan"
	"github.com/weirstream/weir/internal/connspec"
	"github.com/weirstream/weir/worker/connector"
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
}

// Job is a planned job, ready to start.
type Job struct {
	Spec *jobspec.Job
	Plan *plan.Plan
	task *task.Job
	rt   *wasmhost.Runtime
	tmp  string
	o    Options
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

// resolve turns the plan into the worker's Job.
func (j *Job) resolve(mods *Modules) (*task.Job, error) {
	p := j.Plan
	tj := &task.Job{Name: p.Name, MaxParallelism: p.MaxParallelism, BatchSize: j.o.BatchSize, BufferSize: j.o.BufferSize, Credits: j.o.Credits}
	vs := make([]*task.Vertex, len(p.Vertices))
	for i, pv := range p.Vertices {
		vs[i] = &task.Vertex{ID: pv.ID, Name: pv.Name, Parallelism: pv.Parallelism}
	}
	es := make([]*task.Edge, len(p.Edges))
	for i, pe := range p.Edges {
		es[i] = &task.Edge{ID: pe.ID, From: vs[pe.From], FromNode: pe.FromNode, Port: pe.Port, To: vs[pe.To], Input: pe.Input, Partition: task.Partition(pe.Partition)}
	}
	for i, pv := range p.Vertices {
		v := vs[i]
		for _, pe := range pv.Inputs {
			v.Inputs = append(v.Inputs, es[pe.ID])
		}
		for _, pn := range pv.Nodes {
			n, err := j.node(pn, mods)
			if err != nil {
				return nil, err
			}
			n.Outputs = make([][]task.Target, len(pn.Outputs))
			for port, ts := range pn.Outputs {
				for _, t := range ts {
					if t.Edge != nil {
						n.Outputs[port] = append(n.Outputs[port], task.Target{Node: -1, Edge: es[t.Edge.ID]})
					} else {
						n.Outputs[port] = append(n.Outputs[port], task.Target{Node: t.Node, Input: t.Input})
					}
				}
			}
			v.Nodes = append(v.Nodes, n)
		}
	}
	tj.Vertices, tj.Edges = vs, es
	return tj, nil
}

func (j *Job) node(pn *plan.Node, mods *Modules) (*task.Node, error) {
	s := pn.Spec
	n := &task.Node{UID: pn.UID}
	switch pn.Kind {
	case jobspec.KindSource:
		n.Kind = task.NodeSource
		f, o, err := j.connector(s.Field, connector.KindSource, s.Source.Spec, s.Source.Options)
		if err != nil {
			return nil, err
		}
		n.Source, n.SourceOptions = f, o
		w := s.Source.Watermark
		n.Watermark = task.WatermarkSpec{Strategy: task.WatermarkStrategy(w.Strategy), MaxOutOfOrderness: w.MaxOutOfOrderness, Interval: w.Interval, IdleTimeout: w.IdleTimeout}
	case jobspec.KindSink:
		n.Kind = task.NodeSink
		f, o, err := j.connector(s.Field, connector.KindSink, s.Sink.Spec, s.Sink.Options)
		if err != nil {
			return nil, err
		}
		n.Sink, n.SinkOptions = f, o
	case jobspec.KindOperator:
		o := s.Operator
		n.Kind = task.NodeOperator
		n.Desc = pn.Desc
		n.Params = o.Params
		n.StateTTL = o.StateTTL
		n.OnError = task.ErrorPolicy(o.OnError)
		n.SideOutputs = pn.Ports[1:]
		f, err := mods.Factory(o.Module, o.Operator)
		if err != nil {
			return nil, j.Spec.Errorf(s.Field+".operator", "%v", err)
		}
		n.New = f
		if w := o.Window; w != nil {
			n.Window = &task.WindowSpec{Type: task.WindowType(w.Type), Size: w.Size, Slide: w.Slide, Gap: w.Gap, AllowedLateness: w.AllowedLateness, LatePort: max(pn.LatePort(), 0)}
		}
	}
	return n, nil
}

// connector returns the factory and options of a source or sink. The
// options take the way a deployment descriptor gives them to a worker:
// encoded into their serialisable form, then opened (decoded and checked
// again) against the same spec.
func (j *Job) connector(field string, kind connector.Kind, spec *connspec.Spec, o connspec.Options) (*connector.Spec, connector.Options, error) {
	if spec == nil {
		return nil, nil, j.Spec.Errorf(field+".connector", "no %s connector (the job spec did not validate)", kind)
	}
	f, opts, err := connector.Open(kind, spec.Name, spec.Encode(j.resolvePaths(o)))
	if err != nil {
		return nil, nil, j.Spec.Errorf(field+".connector", "%v", err)
	}
	return f, opts, nil
}

// resolvePaths returns o with a relative "path" option resolved against
// the spec's folder, as docs/connectors.md promises.
func (j *Job) resolvePaths(o connspec.Options) connspec.Options {
	p, ok := o["path"].(string)
	if !ok || p == "" || filepath.IsAbs(p) {
		return o
	}
	out := make(connspec.Options, len(o))
	for k, v := range o {
		out[k] = v
	}
	out["path"] = filepath.Join(j.Spec.Dir, p)
	return out
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
	return task.Start(ctx, j.task, task.Options{Logger: j.o.Logger, LatencyInterval: latencyInterval})
}

// Close releases the runtime, the state backend and any temporary state.
func (j *Job) Close() error {
	var errs []error
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
