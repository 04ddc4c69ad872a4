package task

import (
	"fmt"
	"time"

	"github.com/weirstream/weir/internal/deploy"
	"github.com/weirstream/weir/wasmabi"
	"github.com/weirstream/weir/worker/connector"
)

// Resolver finds the operators a descriptor names by module digest: the
// worker's module cache, or the operators linked into the binary.
type Resolver interface {
	Resolve(ref deploy.ModuleRef) (*wasmabi.OperatorDesc, OperatorFactory, error)
}

// FromDescriptor resolves a deployment descriptor into a Job: connectors
// opened from their raw options, operators from their modules. The Job
// runs the descriptor's subtasks; its State and, when some peers run
// elsewhere, its Network are the caller's to set.
func FromDescriptor(d *deploy.Descriptor, r Resolver) (*Job, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	j := &Job{
		ID: d.Job, Attempt: d.Attempt, Tenant: d.Tenant, Name: d.Name, MaxParallelism: d.MaxParallelism,
		BufferSize: d.Buffers.Size, Credits: d.Buffers.Credits, BatchSize: d.Buffers.BatchSize,
		FlushInterval: duration(d.Buffers.FlushInterval),
	}
	cp, err := checkpointsFromDescriptor(d)
	if err != nil {
		return nil, err
	}
	j.Checkpoints = cp
	vs := make([]*Vertex, len(d.Vertices))
	for i, dv := range d.Vertices {
		vs[i] = &Vertex{ID: dv.ID, Name: dv.Name, Parallelism: dv.Parallelism}
	}
	es := make([]*Edge, len(d.Edges))
	for i, de := range d.Edges {
		es[i] = &Edge{ID: de.ID, From: vs[de.From], FromNode: de.FromNode, Port: de.Port, To: vs[de.To], Input: de.Input, Partition: Partition(de.Partition)}
	}
	for i, dv := range d.Vertices {
		v := vs[i]
		for _, e := range dv.Inputs {
			v.Inputs = append(v.Inputs, es[e])
		}
		for _, dn := range dv.Nodes {
			n, err := nodeFromDescriptor(dn, r)
			if err != nil {
				return nil, fmt.Errorf("task %s: %w", dv.Name, err)
			}
			n.Outputs = make([][]Target, len(dn.Outputs))
			for port, ts := range dn.Outputs {
				for _, t := range ts {
					if t.Edge >= 0 {
						n.Outputs[port] = append(n.Outputs[port], Target{Node: -1, Edge: es[t.Edge]})
					} else {
						n.Outputs[port] = append(n.Outputs[port], Target{Node: t.Node, Input: t.Input})
					}
				}
			}
			v.Nodes = append(v.Nodes, n)
		}
	}
	j.Vertices, j.Edges = vs, es
	for _, s := range d.Subtasks {
		j.Subtasks = append(j.Subtasks, SubtaskRef{Vertex: s.Vertex, Index: s.Index})
	}
	return j, nil
}

func nodeFromDescriptor(dn deploy.Node, r Resolver) (*Node, error) {
	n := &Node{UID: dn.UID}
	var err error
	switch dn.Kind {
	case deploy.KindSource:
		n.Kind = NodeSource
		if n.Source, n.SourceOptions, err = connector.Open(connector.KindSource, dn.Connector, dn.Options); err != nil {
			return nil, fmt.Errorf("source %s: %w", dn.UID, err)
		}
		if w := dn.Watermark; w != nil {
			n.Watermark = WatermarkSpec{Strategy: WatermarkStrategy(w.Strategy), MaxOutOfOrderness: duration(w.MaxOutOfOrderness), Interval: duration(w.Interval), IdleTimeout: duration(w.IdleTimeout)}
		}
	case deploy.KindSink:
		n.Kind = NodeSink
		if n.Sink, n.SinkOptions, err = connector.Open(connector.KindSink, dn.Connector, dn.Options); err != nil {
			return nil, fmt.Errorf("sink %s: %w", dn.UID, err)
		}
	case deploy.KindOperator:
		n.Kind = NodeOperator
		if n.Desc, n.New, err = r.Resolve(*dn.Module); err != nil {
			return nil, fmt.Errorf("operator %s: %w", dn.UID, err)
		}
		n.Params = dn.Params
		n.StateTTL = duration(dn.StateTTL)
		n.OnError = ErrorPolicy(dn.OnError)
		if n.OnError == "" {
			n.OnError = OnErrorFail
		}
		n.SideOutputs = dn.SideOutputs
		if w := dn.Window; w != nil {
			n.Window = &WindowSpec{Type: WindowType(w.Type), Size: duration(w.Size), Slide: duration(w.Slide), Gap: duration(w.Gap), AllowedLateness: duration(w.AllowedLateness), LatePort: w.LatePort}
		}
	}
	return n, nil
}

func duration(d deploy.Duration) time.Duration { return time.Duration(d) }
