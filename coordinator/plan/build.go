package plan

import (
	"container/heap"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/weirstream/weir/coordinator/jobspec"
	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/wasmabi"
)

// NoOperatorError is what a Resolver returns for an operator its module
// does not export.
type NoOperatorError struct {
	Module   string
	Operator string
	Have     []string // the operators the module exports
}

// Error says which operators the module does have.
func (e *NoOperatorError) Error() string {
	if len(e.Have) == 0 {
		return fmt.Sprintf("module %q exports no operators", e.Module)
	}
	return fmt.Sprintf("module %q has no operator %q (it has: %s)", e.Module, e.Operator, strings.Join(e.Have, ", "))
}

// Descriptors is a Resolver over module descriptors already at hand, by
// module name.
type Descriptors map[string]*wasmabi.Descriptor

// Operator implements Resolver.
func (d Descriptors) Operator(module, operator string) (*wasmabi.OperatorDesc, error) {
	desc, ok := d[module]
	if !ok {
		return nil, fmt.Errorf("plan: no module %q", module)
	}
	if _, op, ok := desc.Operator(operator); ok {
		return op, nil
	}
	e := &NoOperatorError{Module: module, Operator: operator}
	for _, op := range desc.Operators {
		e.Have = append(e.Have, op.Name)
	}
	return nil, e
}

// keyedKind reports whether operators of kind k need key_by inputs: those
// with keyed state and timers, and window aggregates, whose windows are
// per key.
func keyedKind(k wasmabi.Kind) bool { return k.Keyed() || k == wasmabi.KindAggregate }

// builder holds the state of one Build.
type builder struct {
	j     *jobspec.Job
	errs  []error
	nodes map[string]*Node // every plan node by uid
	order []*Node          // spec order
}

func (b *builder) errorf(field, format string, args ...any) {
	b.errs = append(b.errs, b.j.Errorf(field, format, args...))
}

// Build makes the execution plan of a job, resolving its operators with r.
// It reports every problem it finds as an errors.Join of *jobspec.Error.
func Build(j *jobspec.Job, r Resolver) (*Plan, error) {
	b := &builder{j: j, nodes: map[string]*Node{}}
	b.resolve(r)
	if len(b.errs) == 0 {
		b.check()
	}
	if len(b.errs) > 0 {
		return nil, errors.Join(b.errs...)
	}
	return b.plan(), nil
}

// resolve makes a plan node per spec node, with its descriptor and ports.
func (b *builder) resolve(r Resolver) {
	type key struct{ module, op string }
	descs := map[key]*wasmabi.OperatorDesc{}
	for _, sn := range b.j.Nodes() {
		n := &Node{UID: sn.UID, Kind: sn.Kind, Spec: sn, Parent: -1}
		b.nodes[sn.UID] = n
		b.order = append(b.order, n)
		switch sn.Kind {
		case jobspec.KindSource:
			n.Ports = []string{""}
			continue
		case jobspec.KindSink:
			continue
		}
		op := sn.Operator
		k := key{op.Module, op.Operator}
		d, ok := descs[k]
		if !ok {
			var err error
			d, err = r.Operator(op.Module, op.Operator)
			if err != nil {
				b.resolverError(sn, err)
				continue
			}
			descs[k] = d
		}
		n.Desc = d
		n.Ports = append([]string{""}, d.SideOutputs...)
		if op.OnError != jobspec.OnErrorFail && op.OnError != "" && !d.Kind.Stateless() {
			b.errorf(sn.Field+".on_error", "on_error: %s needs a map, filter or flat_map operator, and %s.%s is a %s: its state may already hold part of a failing record, so a %s can only fail; remove on_error or use fail",
				op.OnError, op.Module, op.Operator, d.Kind, d.Kind)
			continue
		}
		if op.OnError == jobspec.OnErrorDivert {
			if n.Port(jobspec.ErrorsOutput) >= 0 {
				b.errorf(sn.Field+".on_error", "operator %s.%s has its own side output %q, which on_error: divert would use too; use fail or skip", op.Module, op.Operator, jobspec.ErrorsOutput)
				continue
			}
			n.Ports = append(n.Ports, jobspec.ErrorsOutput)
		}
		if w := op.Window; w != nil && w.LateOutput != "" {
			if n.Port(w.LateOutput) >= 0 {
				b.errorf(sn.Field+".window.late_output", "side output %q already exists on %s; pick another name", w.LateOutput, sn.UID)
				continue
			}
			n.Ports = append(n.Ports, w.LateOutput)
		}
	}
}

// resolverError reports a Resolver's failure. An error that already has
// its place in the spec (a module that does not build or load, reported at
// its modules entry) is kept as it is, once however many operators use the
// module; any other is reported at the operator.
func (b *builder) resolverError(sn *jobspec.Node, err error) {
	var je *jobspec.Error
	if errors.As(err, &je) {
		for _, e := range b.errs {
			if e.Error() == je.Error() {
				return
			}
		}
		b.errs = append(b.errs, je)
		return
	}
	b.errorf(sn.Field+".operator", "%v", err)
}

// inputField is where to report a problem with one input's reference.
func inputField(in *jobspec.Input) string {
	if strings.HasSuffix(in.Field, ".input") {
		return in.Field
	}
	return in.Field + ".from"
}

// partitionField is where to report a problem with one input's partition.
func partitionField(in *jobspec.Input) string {
	if in.PartitionSet {
		return in.Field + ".partition"
	}
	return inputField(in)
}

// check makes the checks that need descriptors.
func (b *builder) check() {
	for _, n := range b.order {
		sn := n.Spec
		if n.Kind == jobspec.KindOperator {
			kind := n.Desc.Kind
			if sn.Operator.Window != nil && kind != wasmabi.KindAggregate {
				b.errorf(sn.Field+".window", "only aggregate operators have windows, and %s.%s is a %s; remove window", sn.Operator.Module, sn.Operator.Operator, kind)
			}
			want := 1
			if kind == wasmabi.KindCoProcess {
				want = 2
			}
			if len(sn.Inputs) != want {
				b.errorf(sn.Field+".inputs", "a %s operator has exactly %d input(s), got %d", kind, want, len(sn.Inputs))
			}
		}
		for _, in := range sn.Inputs {
			up := b.nodes[in.Node]
			if in.Output != "" && up.Port(in.Output) < 0 {
				b.errorf(inputField(in), "%s has no side output %q (%s)", up.UID, in.Output, describePorts(up))
			}
			// A co_process may read one broadcast input next to a keyed one
			// (rules broadcast to every subtask, kept in broadcast state).
			broadcastSide := n.Kind == jobspec.KindOperator && n.Desc.Kind == wasmabi.KindCoProcess && in.Partition == jobspec.Broadcast && keyedInputs(sn) > 0
			if n.Kind == jobspec.KindOperator && keyedKind(n.Desc.Kind) && in.Partition != jobspec.KeyBy && !broadcastSide {
				b.errorf(partitionField(in), "%s is a %s operator, which keeps state per key: its inputs need partition: key_by (got %s; a co_process may also take one broadcast input next to a key_by one)", n.UID, n.Desc.Kind, in.Partition)
			}
			if in.Partition == jobspec.KeyBy && up.Kind == jobspec.KindOperator {
				if src, ok := b.keyless(up); !ok {
					b.errorf(partitionField(in), "key_by on %s, a filter whose input comes from source %s, which emits no keys: set the source's key option or add an operator that sets keys", up.UID, src)
				}
			}
		}
	}
}

// keyedInputs counts a node's key_by inputs.
func keyedInputs(n *jobspec.Node) int {
	k := 0
	for _, in := range n.Inputs {
		if in.Partition == jobspec.KeyBy {
			k++
		}
	}
	return k
}

// keyless follows filters upstream from n and reports whether records
// reaching n's output carry keys: a filter passes on its input's keys, a
// source has keys when its connector says so, any other operator may set
// keys. When they carry none it returns the keyless source.
func (b *builder) keyless(n *Node) (string, bool) {
	for n.Kind == jobspec.KindOperator && n.Desc.Kind == wasmabi.KindFilter {
		n = b.nodes[n.Spec.Inputs[0].Node]
	}
	if n.Kind != jobspec.KindSource {
		return "", true
	}
	s := n.Spec.Source
	if s.Spec == nil || s.Spec.Keyed == nil || !s.Spec.Keyed(s.Options) {
		return n.UID, false
	}
	return "", true
}

func describePorts(n *Node) string {
	if len(n.Ports) <= 1 {
		return "it has none"
	}
	return "it has: " + strings.Join(n.Ports[1:], ", ")
}

// consumer is one input of a downstream node reading a port.
type consumer struct {
	node  *Node
	input int
	port  int
}

// chains reports whether n is chained to its single input's node: the
// input is forward (so parallelisms are equal), both are in the same slot
// sharing group, and chaining is on for the job and for both nodes.
func (b *builder) chains(n *Node) bool {
	sn := n.Spec
	if !b.j.Chaining || !sn.Chain || len(sn.Inputs) != 1 {
		return false
	}
	in := sn.Inputs[0]
	up := b.nodes[in.Node].Spec
	return in.Partition == jobspec.Forward && up.Chain &&
		up.Parallelism == sn.Parallelism && up.SlotSharingGroup == sn.SlotSharingGroup
}

// plan assembles the Plan; the job is known to be valid.
func (b *builder) plan() *Plan {
	p := &Plan{Job: b.j, Name: b.j.Name, MaxParallelism: b.j.MaxParallelism}

	// Consumers of each node, by port, then in spec order.
	consumers := map[*Node][]consumer{}
	for _, n := range b.order {
		for i, in := range n.Spec.Inputs {
			up := b.nodes[in.Node]
			consumers[up] = append(consumers[up], consumer{n, i, up.Port(in.Output)})
		}
	}
	for _, cs := range consumers {
		sort.SliceStable(cs, func(a, c int) bool { return cs[a].port < cs[c].port })
	}
	chained := map[*Node]bool{}
	for _, n := range b.order {
		chained[n] = b.chains(n)
	}

	// Vertices: a head is a node not chained to its input; its vertex is
	// the tree of nodes chained below it, in pre-order. Heads in
	// topological order give vertices in topological order, since only
	// heads have inputs from other vertices.
	for _, head := range b.topological() {
		if chained[head] {
			continue
		}
		v := &Vertex{
			ID: len(p.Vertices), Parallelism: head.Spec.Parallelism,
			SlotSharingGroup: head.Spec.SlotSharingGroup,
			Inputs:           make([]*Edge, len(head.Spec.Inputs)),
		}
		var add func(n *Node, parent int)
		add = func(n *Node, parent int) {
			n.Vertex, n.Index, n.Parent = v.ID, len(v.Nodes), parent
			v.Nodes = append(v.Nodes, n)
			for _, c := range consumers[n] {
				if chained[c.node] {
					add(c.node, n.Index)
				}
			}
		}
		add(head, -1)
		v.Name = chainName(v, 0)
		p.Vertices = append(p.Vertices, v)
	}

	// Outputs and edges, in vertex, node, port order.
	for _, v := range p.Vertices {
		for _, n := range v.Nodes {
			n.Outputs = make([][]Target, len(n.Ports))
			for _, c := range consumers[n] {
				if chained[c.node] {
					n.Outputs[c.port] = append(n.Outputs[c.port], Target{Node: c.node.Index, Input: 0})
					continue
				}
				to := p.Vertices[c.node.Vertex]
				e := &Edge{
					ID: len(p.Edges), From: v.ID, FromNode: n.Index, Port: c.port,
					To: to.ID, ToNode: 0, Input: c.input, Partition: c.node.Spec.Inputs[c.input].Partition,
				}
				p.Edges = append(p.Edges, e)
				to.Inputs[c.input] = e
				n.Outputs[c.port] = append(n.Outputs[c.port], Target{Node: -1, Edge: e})
			}
		}
	}

	// Subtasks and key groups; slot sharing groups.
	groups := map[string]*SlotSharingGroup{}
	for _, v := range p.Vertices {
		for _, e := range v.Inputs {
			v.Keyed = v.Keyed || e.Partition == jobspec.KeyBy
		}
		v.Subtasks = make([]Subtask, v.Parallelism)
		for i := range v.Subtasks {
			v.Subtasks[i].Index = i
			if v.Keyed {
				r := keygroup.RangeFor(i, v.Parallelism, p.MaxParallelism)
				v.Subtasks[i].KeyGroups = &r
			}
		}
		g := groups[v.SlotSharingGroup]
		if g == nil {
			g = &SlotSharingGroup{Name: v.SlotSharingGroup}
			groups[g.Name] = g
			p.SlotSharingGroups = append(p.SlotSharingGroups, g)
		}
		g.Vertices = append(g.Vertices, v.ID)
		g.Slots = max(g.Slots, v.Parallelism)
	}
	for _, g := range p.SlotSharingGroups {
		p.Slots += g.Slots
	}
	return p
}

// topological orders the nodes so each comes after its inputs, taking the
// earliest node in spec order among those free to go (Kahn's algorithm
// with a min-heap of spec positions).
func (b *builder) topological() []*Node {
	index := make(map[*Node]int, len(b.order))
	for i, n := range b.order {
		index[n] = i
	}
	indeg := make([]int, len(b.order))
	down := make([][]int, len(b.order))
	for i, n := range b.order {
		for _, in := range n.Spec.Inputs {
			up := index[b.nodes[in.Node]]
			indeg[i]++
			down[up] = append(down[up], i)
		}
	}
	free := &intHeap{}
	for i, d := range indeg {
		if d == 0 {
			heap.Push(free, i)
		}
	}
	out := make([]*Node, 0, len(b.order))
	for free.Len() > 0 {
		i := heap.Pop(free).(int)
		out = append(out, b.order[i])
		for _, d := range down[i] {
			if indeg[d]--; indeg[d] == 0 {
				heap.Push(free, d)
			}
		}
	}
	if len(out) != len(b.order) {
		panic("plan: cycle in a validated job") // jobspec rejects cycles
	}
	return out
}

// intHeap is a min-heap of ints for container/heap.
type intHeap []int

func (h intHeap) Len() int           { return len(h) }
func (h intHeap) Less(a, b int) bool { return h[a] < h[b] }
func (h intHeap) Swap(a, b int)      { h[a], h[b] = h[b], h[a] }
func (h *intHeap) Push(x any)        { *h = append(*h, x.(int)) }
func (h *intHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// chainName names the subtree at v.Nodes[i]: "a -> b" for a line,
// "a -> (b, c -> d)" where the chain branches.
func chainName(v *Vertex, i int) string {
	var kids []int
	for k := i + 1; k < len(v.Nodes); k++ {
		if v.Nodes[k].Parent == i {
			kids = append(kids, k)
		}
	}
	name := v.Nodes[i].UID
	switch len(kids) {
	case 0:
		return name
	case 1:
		return name + " -> " + chainName(v, kids[0])
	}
	parts := make([]string, len(kids))
	for k, c := range kids {
		parts[k] = chainName(v, c)
	}
	return name + " -> (" + strings.Join(parts, ", ") + ")"
}
