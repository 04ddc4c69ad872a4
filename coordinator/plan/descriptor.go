package plan

import (
	"fmt"
	"path/filepath"

	"github.com/weirstream/weir/coordinator/jobspec"
	"github.com/weirstream/weir/internal/deploy"
	"github.com/weirstream/weir/internal/keygroup"
)

// DescriptorOptions are what a deployment descriptor carries beyond the
// plan.
type DescriptorOptions struct {
	Job     string // the job's id
	Attempt int
	Tenant  string // "default" when empty
	// Module returns the content digest (hex sha256, or deploy.Native) of
	// a module by its name in the spec, and a name for people.
	Module  func(name string) (digest, display string, err error)
	Buffers deploy.Buffers
	// StateDir is the pebble folder, resolved; "" lets the worker choose.
	StateDir string
}

// Descriptor returns the deployment descriptor of the whole job attempt:
// every subtask, no peers (all in one place). deploy.Place splits it by
// worker. Relative "path" options are resolved against the spec's folder,
// when it has one.
func (p *Plan) Descriptor(o DescriptorOptions) (*deploy.Descriptor, error) {
	d := &deploy.Descriptor{
		Version: deploy.Version, Job: o.Job, Name: p.Name, Attempt: o.Attempt, Tenant: o.Tenant,
		MaxParallelism: p.MaxParallelism, Buffers: o.Buffers,
		State: deploy.State{Backend: string(p.Job.State.Backend), Dir: o.StateDir},
	}
	if d.Tenant == "" {
		d.Tenant = "default"
	}
	if d.State.Backend == "" {
		d.State.Backend = string(jobspec.BackendHeap)
	}
	for _, e := range p.Edges {
		d.Edges = append(d.Edges, deploy.Edge{ID: e.ID, From: e.From, FromNode: e.FromNode, Port: e.Port, To: e.To, Input: e.Input, Partition: string(e.Partition)})
	}
	for _, v := range p.Vertices {
		dv := deploy.Vertex{ID: v.ID, Name: v.Name, Parallelism: v.Parallelism}
		for _, e := range v.Inputs {
			dv.Inputs = append(dv.Inputs, e.ID)
		}
		for _, n := range v.Nodes {
			dn, err := p.descriptorNode(n, o)
			if err != nil {
				return nil, err
			}
			dv.Nodes = append(dv.Nodes, dn)
		}
		d.Vertices = append(d.Vertices, dv)
		for i := range v.Parallelism {
			d.Subtasks = append(d.Subtasks, deploy.Subtask{Vertex: v.ID, Index: i, KeyGroups: keygroup.RangeFor(i, v.Parallelism, p.MaxParallelism)})
		}
	}
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("plan: building the deployment descriptor: %w", err)
	}
	return d, nil
}

func (p *Plan) descriptorNode(n *Node, o DescriptorOptions) (deploy.Node, error) {
	s := n.Spec
	dn := deploy.Node{UID: n.UID, Kind: string(n.Kind)}
	switch n.Kind {
	case jobspec.KindSource:
		dn.Connector, dn.Options = s.Source.Spec.Name, p.resolvePaths(s.Source.Spec.Encode(s.Source.Options))
		w := s.Source.Watermark
		dn.Watermark = &deploy.Watermark{Strategy: string(w.Strategy), MaxOutOfOrderness: deploy.Duration(w.MaxOutOfOrderness), Interval: deploy.Duration(w.Interval), IdleTimeout: deploy.Duration(w.IdleTimeout)}
	case jobspec.KindSink:
		dn.Connector, dn.Options = s.Sink.Spec.Name, p.resolvePaths(s.Sink.Spec.Encode(s.Sink.Options))
	case jobspec.KindOperator:
		op := s.Operator
		if o.Module == nil {
			return dn, fmt.Errorf("plan: no module resolver for the deployment descriptor")
		}
		digest, display, err := o.Module(op.Module)
		if err != nil {
			return dn, p.Job.Errorf(s.Field+".operator", "%v", err)
		}
		dn.Module = &deploy.ModuleRef{Digest: digest, Operator: op.Operator, Name: display}
		dn.Params = op.Params
		dn.StateTTL = deploy.Duration(op.StateTTL)
		dn.OnError = string(op.OnError)
		dn.SideOutputs = n.Ports[1:]
		if w := op.Window; w != nil {
			dn.Window = &deploy.Window{Type: string(w.Type), Size: deploy.Duration(w.Size), Slide: deploy.Duration(w.Slide), Gap: deploy.Duration(w.Gap), AllowedLateness: deploy.Duration(w.AllowedLateness), LatePort: max(n.LatePort(), 0)}
		}
	}
	for _, ts := range n.Outputs {
		var out []deploy.Target
		for _, t := range ts {
			if t.Edge != nil {
				out = append(out, deploy.Target{Node: -1, Edge: t.Edge.ID})
			} else {
				out = append(out, deploy.Target{Node: t.Node, Input: t.Input, Edge: -1})
			}
		}
		dn.Outputs = append(dn.Outputs, out)
	}
	return dn, nil
}

// resolvePaths resolves a relative "path" option against the spec's
// folder, as docs/connectors.md promises.
func (p *Plan) resolvePaths(raw map[string]any) map[string]any {
	path, ok := raw["path"].(string)
	if !ok || path == "" || filepath.IsAbs(path) || p.Job.Dir == "" {
		return raw
	}
	raw["path"] = filepath.Join(p.Job.Dir, path)
	return raw
}
