// Package plan turns a validated job spec into an execution plan: the
// JobGraph -> ExecutionGraph step of Flink. Nodes are chained into tasks
// (vertices), each task runs as Parallelism subtasks, keyed tasks' subtasks
// own key-group ranges, and tasks in one slot sharing group share slots.
//
// Build checks what needs the operator modules' descriptors (operator names,
// kinds, side outputs, keying) and reports each problem at its place in the
// spec. The plan is plain data, made to be walked by the task runtime:
//
//	for _, v := range p.Vertices {            // topological order
//		for _, sub := range v.Subtasks { ... } // v.Parallelism subtasks; sub.KeyGroups when v.Keyed
//		// v.Inputs[i] is the edge into input i of the head, v.Nodes[0].
//		for _, n := range v.Nodes {            // parents before children
//			for port, targets := range n.Outputs {
//				for _, t := range targets {
//					// t.Edge != nil: send over the edge; else call v.Nodes[t.Node].
//				}
//			}
//		}
//	}
package plan

import (
	"encoding/json"

	"github.com/weirstream/weir/coordinator/jobspec"
	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/wasmabi"
)

// Resolver finds the descriptor of an operator in a module named by the
// spec (a Job.Modules name). The CLI implements it by loading the modules;
// tests use Descriptors. When the module has no such operator it should
// return a *NoOperatorError, so the error can list the ones it has.
type Resolver interface {
	Operator(module, operator string) (*wasmabi.OperatorDesc, error)
}

// Plan is the execution plan of a job.
type Plan struct {
	// Job is the spec the plan was built from.
	Job            *jobspec.Job `json:"-"`
	Name           string       `json:"name"`
	MaxParallelism int          `json:"max_parallelism"`
	// Vertices are the tasks in topological order: every edge goes from a
	// vertex to a later one. Vertices[i].ID == i.
	Vertices []*Vertex `json:"vertices"`
	// Edges are every edge between vertices, Edges[i].ID == i, ordered by
	// source vertex, node and port.
	Edges []*Edge `json:"edges"`
	// SlotSharingGroups are the groups in order of first use.
	SlotSharingGroups []*SlotSharingGroup `json:"slot_sharing_groups"`
	// Slots is how many slots the job needs: the sum over slot sharing
	// groups of the largest parallelism in the group (one subtask of each
	// vertex of a group can share a slot).
	Slots int `json:"slots"`
}

// SlotSharingGroup is a set of vertices whose subtasks may share slots.
type SlotSharingGroup struct {
	Name     string `json:"name"`
	Vertices []int  `json:"vertices"` // vertex IDs
	Slots    int    `json:"slots"`    // the largest parallelism among them
}

// Vertex is a task: a chain of nodes run together, in one goroutine per
// subtask, passing records by function call.
type Vertex struct {
	ID int `json:"id"`
	// Name is the chain's uids joined with " -> " (pre-order), for people.
	Name             string `json:"name"`
	Parallelism      int    `json:"parallelism"`
	SlotSharingGroup string `json:"slot_sharing_group"`
	// Nodes form a tree rooted at Nodes[0], the chain head; a node comes
	// after its parent (pre-order), so each Node.Index is its position
	// here and a walk in order meets parents first.
	Nodes []*Node `json:"nodes"`
	// Inputs are the edges into the head, Inputs[i] for the head's input
	// i (a co_process head has two; a source head none).
	Inputs []*Edge `json:"-"`
	// Keyed is true when the head reads a key_by edge: then each subtask
	// owns a key-group range.
	Keyed    bool      `json:"keyed"`
	Subtasks []Subtask `json:"subtasks"`
}

// Subtask is one parallel instance of a vertex.
type Subtask struct {
	Index int `json:"index"`
	// KeyGroups is the key-group range the subtask owns
	// (keygroup.RangeFor), nil when the vertex is not keyed.
	KeyGroups *keygroup.Range `json:"key_groups,omitempty"`
}

// Node is a source, operator or sink inside a vertex.
type Node struct {
	UID  string           `json:"uid"`
	Kind jobspec.NodeKind `json:"kind"`
	// Spec is the node in the job spec: connector, options, params,
	// window, error policy and so on.
	Spec *jobspec.Node `json:"-"`
	// Desc is the operator's descriptor (operators only).
	Desc *wasmabi.OperatorDesc `json:"desc,omitempty"`
	// Vertex is the ID of the node's vertex; Index its position in
	// Vertex.Nodes; Parent the index of the node chained before it, -1 for
	// the head.
	Vertex int `json:"vertex"`
	Index  int `json:"index"`
	Parent int `json:"parent"`
	// Ports names the output ports, Ports[i] for port i (see Outputs).
	Ports []string `json:"ports"`
	// Outputs lists, per output port, where its records go. Port numbers
	// are fixed by this rule, which module and host share:
	//
	//	0                        the main output ("" in Ports)
	//	1 .. len(SideOutputs)    the operator's side outputs, in the order
	//	                         of its descriptor's SideOutputs
	//	then                     host side outputs: "errors" when on_error
	//	                         is divert, then the window's late_output
	//
	// Sources have port 0 only, sinks no ports. A port nobody reads has
	// an empty list: its records are dropped.
	Outputs [][]Target `json:"outputs"`
}

// Port returns the number of the named output port ("" is main), or -1.
func (n *Node) Port(name string) int {
	for i, p := range n.Ports {
		if p == name {
			return i
		}
	}
	return -1
}

// ErrorsPort is the port of the "errors" side output, -1 when the node has
// none (on_error is not divert).
func (n *Node) ErrorsPort() int {
	if n.Kind != jobspec.KindOperator || n.Spec.Operator.OnError != jobspec.OnErrorDivert {
		return -1
	}
	return n.Port(jobspec.ErrorsOutput)
}

// LatePort is the port of the window's late output, -1 when late records
// are dropped.
func (n *Node) LatePort() int {
	if n.Kind != jobspec.KindOperator || n.Spec.Operator.Window == nil || n.Spec.Operator.Window.LateOutput == "" {
		return -1
	}
	return n.Port(n.Spec.Operator.Window.LateOutput)
}

// Target is one destination of an output port: either a chained node of
// the same vertex (Edge == nil; Node is its index in Vertex.Nodes, Input
// the input of it that is fed, always 0 since only one-input nodes chain)
// or an edge to another vertex (Edge != nil; Node is -1).
type Target struct {
	Node  int   `json:"node"`
	Input int   `json:"input"`
	Edge  *Edge `json:"-"`
}

// MarshalJSON writes an edge target by edge ID.
func (t Target) MarshalJSON() ([]byte, error) {
	if t.Edge != nil {
		return json.Marshal(struct {
			Edge int `json:"edge"`
		}{t.Edge.ID})
	}
	return json.Marshal(struct {
		Node  int `json:"node"`
		Input int `json:"input"`
	}{t.Node, t.Input})
}

// Edge connects an output port of a node to an input of another vertex's
// head, over the network or a local channel.
type Edge struct {
	ID int `json:"id"`
	// From is the source vertex ID, FromNode the node's index in its
	// Nodes, Port the output port.
	From     int `json:"from"`
	FromNode int `json:"from_node"`
	Port     int `json:"port"`
	// To is the target vertex ID, ToNode the node's index (always 0, the
	// head), Input the head's input index (0, or 1 for a co_process's
	// second input).
	To        int               `json:"to"`
	ToNode    int               `json:"to_node"`
	Input     int               `json:"input"`
	Partition jobspec.Partition `json:"partition"`
}
