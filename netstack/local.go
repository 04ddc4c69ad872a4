package netstack

import "sync/atomic"

// NewLocal joins a producer to channel ch of gate inside one process and
// returns the producer's end. The channel owns credits buffers of size
// bytes: the producer fills one, the gate gets it by pointer (no copy, no
// serialisation), and releasing it is the grant that gives the credit
// back. The handover is immediate, so a local channel never has a backlog
// and needs no floating buffers.
func NewLocal(gate *InputGate, ch, credits, size int) Subpartition {
	l := &local{gate: gate, ch: ch, free: make(chan *Buffer, credits), avail: make(chan struct{}, 1)}
	for range credits {
		l.free <- &Buffer{B: make([]byte, 0, size)}
	}
	gate.SetTransport(ch, l)
	return l
}

type local struct {
	gate    *InputGate
	ch      int
	free    chan *Buffer // the credits: empty buffers
	avail   chan struct{}
	buffers atomic.Int64
	bytes   atomic.Int64
}

func (l *local) Request() *Buffer {
	select {
	case b := <-l.free:
		return b
	default:
		return nil
	}
}

func (l *local) Available() <-chan struct{} { return l.avail }

func (l *local) Send(b *Buffer) error {
	l.buffers.Add(1)
	l.bytes.Add(int64(len(b.B)))
	return l.gate.Push(l.ch, Message{Buf: b})
}

func (l *local) SendEvent(e Event) error { return l.gate.Push(l.ch, Message{Event: e}) }

// Release is the consumer's grant: the buffer is the credit.
func (l *local) Release(b *Buffer) {
	l.free <- b
	select {
	case l.avail <- struct{}{}:
	default:
	}
}

func (l *local) Stats() ChannelStats {
	return ChannelStats{Credits: len(l.free), Buffers: l.buffers.Load(), Bytes: l.bytes.Load()}
}

func (l *local) Close() error { return nil }
