package agent

import (
	"context"
	"fmt"
	"io"

	"github.com/weirstream/weir/internal/deploy"
	"github.com/weirstream/weir/netstack"
	"github.com/weirstream/weir/worker/task"
)

// network joins a deployment's channels to the subtasks that run on
// other workers, over the worker's QUIC transport (task.Network).
type network struct {
	t       *netstack.Transport
	d       *deploy.Descriptor
	peers   map[[2]int]string
	size    int
	credits int
}

func newNetwork(t *netstack.Transport, d *deploy.Descriptor) *network {
	n := &network{t: t, d: d, peers: map[[2]int]string{}, size: d.Buffers.Size, credits: d.Buffers.Credits}
	if n.size <= 0 {
		n.size = task.DefaultBufferSize
	}
	if n.credits <= 0 {
		n.credits = task.DefaultCredits
	}
	for _, p := range d.Peers {
		n.peers[[2]int{p.Vertex, p.Index}] = p.Addr
	}
	return n
}

// id names a channel the same way on both of its workers.
func (n *network) id(c task.Channel) netstack.ChannelID {
	return netstack.ChannelID(fmt.Sprintf("%s/%d/%d/%d/%d", n.d.Job, n.d.Attempt, c.Edge, c.From, c.To))
}

func (n *network) Output(ctx context.Context, c task.Channel) (netstack.Subpartition, error) {
	addr, ok := n.peers[[2]int{n.d.Edges[c.Edge].To, c.To}]
	if !ok {
		return nil, fmt.Errorf("the descriptor says nowhere where subtask %d of vertex %d runs", c.To, n.d.Edges[c.Edge].To)
	}
	return n.t.Dial(ctx, addr, n.id(c), n.credits, n.size)
}

func (n *network) Inputs(gate *netstack.InputGate, chans []task.RemoteInput) (io.Closer, error) {
	rcs := make([]netstack.RemoteChannel, len(chans))
	for i, c := range chans {
		rcs[i] = netstack.RemoteChannel{ID: n.id(c.Channel), Ch: c.Index}
	}
	return n.t.ListenGate(gate, netstack.GateOptions{Exclusive: n.credits, BufferSize: n.size}, rcs...)
}
