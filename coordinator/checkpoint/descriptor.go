package checkpoint

import (
	"github.com/weirstream/weir/internal/ckptmeta"
	"github.com/weirstream/weir/internal/deploy"
	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/wasmabi"
)

// TopologyOf returns who takes part in the checkpoints of a job
// deployed as d (every subtask of every vertex).
func TopologyOf(d *deploy.Descriptor) Topology {
	var t Topology
	for _, v := range d.Vertices {
		for i := range v.Parallelism {
			s := Subtask{Vertex: v.ID, Index: i}
			t.Subtasks = append(t.Subtasks, s)
			if len(v.Nodes) > 0 && v.Nodes[0].Kind == deploy.KindSource {
				t.Sources = append(t.Sources, s)
			}
		}
	}
	return t
}

// TemplateOf returns the payload every checkpoint of d starts from: its
// operators with kind, vertex, parallelism, module and key groups.
func TemplateOf(d *deploy.Descriptor) ckptmeta.Payload {
	p := ckptmeta.Payload{Version: ckptmeta.Version, Job: d.Job, MaxParallelism: d.MaxParallelism, Backend: d.State.Backend}
	for _, v := range d.Vertices {
		for k, n := range v.Nodes {
			o := ckptmeta.Operator{UID: n.UID, Kind: n.Kind, Vertex: v.ID, Parallelism: v.Parallelism}
			if k == 0 {
				o.Inputs = ckptmeta.HeadInputs(d, v)
			}
			if n.Module != nil {
				o.Module, o.ABI = "sha256:"+n.Module.Digest, wasmabi.Version
				if n.Module.Digest == deploy.Native {
					o.Module, o.ABI = deploy.Native, 0
				}
			}
			for i := range v.Parallelism {
				r := keygroup.RangeFor(i, v.Parallelism, d.MaxParallelism)
				o.Subtasks = append(o.Subtasks, ckptmeta.Subtask{Index: i, KeyGroups: [2]int{r.Start, r.End + 1}})
			}
			p.Operators = append(p.Operators, o)
		}
	}
	return p
}
