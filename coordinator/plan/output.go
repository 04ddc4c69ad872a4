package plan

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/weirstream/weir/coordinator/jobspec"
)

// what describes a node for people: "source file", "operator wc.split
// (flat_map)", "sink stdout".
func (n *Node) what() string {
	sn := n.Spec
	switch n.Kind {
	case jobspec.KindSource:
		return "source " + sn.Source.Connector
	case jobspec.KindSink:
		return "sink " + sn.Sink.Connector
	}
	s := fmt.Sprintf("%s %s.%s", n.Desc.Kind, sn.Operator.Module, sn.Operator.Operator)
	if w := sn.Operator.Window; w != nil {
		s += " window " + string(w.Type)
		switch w.Type {
		case jobspec.WindowTumbling:
			s += " " + w.Size.String()
		case jobspec.WindowSliding:
			s += " " + w.Size.String() + "/" + w.Slide.String()
		case jobspec.WindowSession:
			s += " gap " + w.Gap.String()
		}
	}
	return s
}

func portName(n *Node, port int) string {
	if port == 0 {
		return "main"
	}
	return n.Ports[port]
}

// MarshalJSON adds what the node runs (connector or module and operator)
// to its fields.
func (n *Node) MarshalJSON() ([]byte, error) {
	type plain Node
	out := struct {
		*plain
		Connector string `json:"connector,omitempty"`
		Module    string `json:"module,omitempty"`
		Operator  string `json:"operator,omitempty"`
	}{plain: (*plain)(n)}
	switch {
	case n.Spec == nil:
	case n.Spec.Source != nil:
		out.Connector = n.Spec.Source.Connector
	case n.Spec.Sink != nil:
		out.Connector = n.Spec.Sink.Connector
	case n.Spec.Operator != nil:
		out.Module, out.Operator = n.Spec.Operator.Module, n.Spec.Operator.Operator
	}
	return json.Marshal(out)
}

// Text writes the plan for people: the tasks with their chains, subtasks
// and key groups, and the edges.
func (p *Plan) Text(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "job %s: %d tasks, %d edges, %d slots, max parallelism %d\n",
		p.Name, len(p.Vertices), len(p.Edges), p.Slots, p.MaxParallelism)
	for _, g := range p.SlotSharingGroups {
		fmt.Fprintf(bw, "slot sharing group %s: %d slots, tasks %s\n", g.Name, g.Slots, joinInts(g.Vertices))
	}
	for _, v := range p.Vertices {
		keyed := ""
		if v.Keyed {
			keyed = ", keyed"
		}
		fmt.Fprintf(bw, "\ntask %d: %s\n  parallelism %d%s, slot sharing group %s\n", v.ID, v.Name, v.Parallelism, keyed, v.SlotSharingGroup)
		for i, e := range v.Inputs {
			from := p.Vertices[e.From]
			fmt.Fprintf(bw, "  input %d: edge %d from task %d %s.%s (%s)\n", i, e.ID, e.From, from.Nodes[e.FromNode].UID, portName(from.Nodes[e.FromNode], e.Port), e.Partition)
		}
		fmt.Fprintf(bw, "  chain:\n")
		depth := make([]int, len(v.Nodes))
		for _, n := range v.Nodes {
			if n.Parent >= 0 {
				depth[n.Index] = depth[n.Parent] + 1
			}
			arrow := ""
			if n.Parent >= 0 {
				arrow = "-> "
				if port := portOf(v.Nodes[n.Parent], n.Index); port != 0 {
					arrow = "-" + portName(v.Nodes[n.Parent], port) + "-> "
				}
			}
			fmt.Fprintf(bw, "    %s%s%s [%s]\n", strings.Repeat("  ", depth[n.Index]), arrow, n.UID, n.what())
			for port, targets := range n.Outputs {
				for _, t := range targets {
					if t.Edge != nil {
						to := p.Vertices[t.Edge.To]
						fmt.Fprintf(bw, "    %s   %s => edge %d to task %d %s input %d (%s)\n", strings.Repeat("  ", depth[n.Index]),
							portName(n, port), t.Edge.ID, to.ID, to.Nodes[0].UID, t.Edge.Input, t.Edge.Partition)
					}
				}
			}
		}
		fmt.Fprintf(bw, "  subtasks:")
		for _, s := range v.Subtasks {
			if s.KeyGroups != nil {
				fmt.Fprintf(bw, " %d[%s]", s.Index, s.KeyGroups)
			} else {
				fmt.Fprintf(bw, " %d", s.Index)
			}
		}
		fmt.Fprintln(bw)
	}
	if len(p.Edges) > 0 {
		fmt.Fprintf(bw, "\nedges:\n")
	}
	for _, e := range p.Edges {
		from, to := p.Vertices[e.From], p.Vertices[e.To]
		fmt.Fprintf(bw, "  %d: task %d %s.%s -> task %d %s input %d, %s\n", e.ID,
			e.From, from.Nodes[e.FromNode].UID, portName(from.Nodes[e.FromNode], e.Port),
			e.To, to.Nodes[e.ToNode].UID, e.Input, e.Partition)
	}
	return bw.Flush()
}

// portOf is the port of n that feeds the chained node at index child.
func portOf(n *Node, child int) int {
	for port, targets := range n.Outputs {
		for _, t := range targets {
			if t.Edge == nil && t.Node == child {
				return port
			}
		}
	}
	return -1
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ", ")
}

// dotID quotes s as a Graphviz ID.
func dotID(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

// Dot writes the plan as a Graphviz digraph: one cluster per task, one
// node per source, operator and sink, edges labelled with their partition
// (chained ones dashed, labelled "chained").
func (p *Plan) Dot(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "digraph %s {\n", dotID(p.Name))
	fmt.Fprintf(bw, "  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\"];\n")
	for _, v := range p.Vertices {
		fmt.Fprintf(bw, "  subgraph %s {\n", dotID(fmt.Sprintf("cluster_%d", v.ID)))
		label := fmt.Sprintf("task %d, parallelism %d", v.ID, v.Parallelism)
		if v.Keyed {
			label += ", keyed"
		}
		fmt.Fprintf(bw, "    label=%s;\n", dotID(label))
		for _, n := range v.Nodes {
			fmt.Fprintf(bw, "    %s [label=%s];\n", dotID(n.UID), dotID(n.UID+"\n"+n.what()))
		}
		for _, n := range v.Nodes {
			for port, targets := range n.Outputs {
				for _, t := range targets {
					if t.Edge == nil {
						fmt.Fprintf(bw, "    %s -> %s [label=%s, style=dashed];\n", dotID(n.UID), dotID(v.Nodes[t.Node].UID), dotID(edgeLabel(n, port, "chained")))
					}
				}
			}
		}
		fmt.Fprintf(bw, "  }\n")
	}
	for _, e := range p.Edges {
		from := p.Vertices[e.From].Nodes[e.FromNode]
		to := p.Vertices[e.To].Nodes[e.ToNode]
		fmt.Fprintf(bw, "  %s -> %s [label=%s];\n", dotID(from.UID), dotID(to.UID), dotID(edgeLabel(from, e.Port, string(e.Partition))))
	}
	fmt.Fprintf(bw, "}\n")
	return bw.Flush()
}

func edgeLabel(n *Node, port int, what string) string {
	if port == 0 {
		return what
	}
	return n.Ports[port] + ": " + what
}
