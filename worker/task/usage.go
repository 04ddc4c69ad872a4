package task

import (
	"sync"

	"github.com/weirstream/weir/worker/wasmhost"
)

// usageMeters are the meters of an operator's instances over all its
// subtasks, including instances replaced after a trap (their CPU counts).
type usageMeters struct {
	mu     sync.Mutex
	meters []*wasmhost.Meter
}

// meter registers the node's current instance's meter, if it has one.
func (n *node) meter() {
	if m, ok := n.op.(metered); ok {
		u := &n.metrics.usage
		u.mu.Lock()
		u.meters = append(u.meters, m.Meter())
		u.mu.Unlock()
	}
}

// Usage is what the operator's instances used: CPU and calls summed over
// every instance it had, memory over the live ones. Zero for sources,
// sinks and native operators.
func (m *NodeMetrics) Usage() wasmhost.Usage {
	m.usage.mu.Lock()
	defer m.usage.mu.Unlock()
	var u wasmhost.Usage
	for _, mt := range m.usage.meters {
		u = u.Add(mt.Usage())
	}
	return u
}

// Usage is what the job's WebAssembly instances on this worker used, over
// all operators: the per-job account.
func (r *Run) Usage() wasmhost.Usage {
	var u wasmhost.Usage
	for _, m := range r.Metrics() {
		u = u.Add(m.Usage())
	}
	return u
}
