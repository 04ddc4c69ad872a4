package netstack

import "sync"

// InputGate is the consumer side of one subtask: its input channels, each
// with its own queue, and a signal that wakes the subtask when any has
// something. Transports push into it from their own goroutines; the
// subtask's goroutine takes from it.
//
// Channels with priority events are served first; among the others, the
// gate takes turns in the order channels became non-empty, so one busy
// channel cannot starve the rest.
type InputGate struct {
	notify chan struct{}

	mu struct {
		sync.Mutex
		chans     []*gateChannel
		ready     fifo[int] // channels with data or events, each at most once
		prioReady fifo[int] // channels with priority events, each at most once
		queued    int
		closed    bool
	}
}

type gateChannel struct {
	transport InputChannel
	queue     fifo[Message]
	prio      fifo[Event]
	inReady   bool
	inPrio    bool
	blocked   bool // Block: its queue is held back from Next
	buffers   int64
	bytes     int64
}

// NewInputGate returns a gate with no channels.
func NewInputGate() *InputGate {
	return &InputGate{notify: make(chan struct{}, 1)}
}

// AddChannel adds an input channel and returns its index. The transport
// may be set later (SetTransport), before anything is pushed.
func (g *InputGate) AddChannel(t InputChannel) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.mu.chans = append(g.mu.chans, &gateChannel{transport: t})
	return len(g.mu.chans) - 1
}

// SetTransport sets the transport of channel ch.
func (g *InputGate) SetTransport(ch int, t InputChannel) {
	g.mu.Lock()
	g.mu.chans[ch].transport = t
	g.mu.Unlock()
}

// NumChannels is the number of input channels.
func (g *InputGate) NumChannels() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.mu.chans)
}

// Push queues a message on channel ch: a buffer or an ordinary event
// behind what is queued, a priority event ahead of it.
func (g *InputGate) Push(ch int, m Message) error {
	g.mu.Lock()
	if g.mu.closed {
		g.mu.Unlock()
		return ErrClosed
	}
	c := g.mu.chans[ch]
	if m.Buf == nil && m.Event.Priority {
		m.Event.Ahead = c.queue.len()
		c.prio.push(m.Event)
		if !c.inPrio {
			c.inPrio = true
			g.mu.prioReady.push(ch)
		}
	} else {
		if m.Buf != nil {
			c.buffers++
			c.bytes += int64(len(m.Buf.B))
		}
		c.queue.push(m)
		if !c.inReady && !c.blocked {
			c.inReady = true
			g.mu.ready.push(ch)
		}
	}
	g.mu.queued++
	g.mu.Unlock()
	select {
	case g.notify <- struct{}{}:
	default:
	}
	return nil
}

// Next takes the next message: a priority event if any channel has one,
// else the head of the next ready channel. ok is false when nothing is
// queued; Notify is then signalled when something is.
func (g *InputGate) Next() (ch int, m Message, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mu.queued == 0 {
		return 0, Message{}, false
	}
	if ch, e, ok := g.popPriority(); ok {
		return ch, Message{Event: e}, true
	}
	var c *gateChannel
	for {
		if ch, ok = g.mu.ready.pop(); !ok {
			return 0, Message{}, false
		}
		if c = g.mu.chans[ch]; !c.blocked {
			break
		}
		c.inReady = false // Unblock puts it back
	}
	m, _ = c.queue.pop()
	if c.queue.len() > 0 {
		g.mu.ready.push(ch)
	} else {
		c.inReady = false
	}
	g.mu.queued--
	return ch, m, true
}

// Block holds channel ch back: Next takes none of its queued messages
// (priority events excepted) until Unblock. Barrier alignment blocks a
// channel that delivered a checkpoint's barrier.
func (g *InputGate) Block(ch int) {
	g.mu.Lock()
	g.mu.chans[ch].blocked = true
	g.mu.Unlock()
}

// Unblock lets Next take channel ch's messages again.
func (g *InputGate) Unblock(ch int) {
	g.mu.Lock()
	c := g.mu.chans[ch]
	c.blocked = false
	if c.queue.len() > 0 && !c.inReady {
		c.inReady = true
		g.mu.ready.push(ch)
	}
	g.mu.Unlock()
	g.Rearm()
}

// Peek calls fn with each buffer among the first n messages queued on
// channel ch, oldest first, under the gate's lock: fn must only copy what
// it needs. An unaligned checkpoint persists the buffers its barrier
// overtook this way (n is the barrier's Ahead: what came after it is not
// the checkpoint's).
func (g *InputGate) Peek(ch, n int, fn func(b *Buffer)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	q := &g.mu.chans[ch].queue
	for _, m := range q.s[q.head:min(q.head+n, len(q.s))] {
		if m.Buf != nil {
			fn(m.Buf)
		}
	}
}

// Queued is the number of messages waiting over all channels.
func (g *InputGate) Queued() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.mu.queued
}

// Notify is signalled when a message is pushed. It never closes.
func (g *InputGate) Notify() <-chan struct{} { return g.notify }

// Release gives a processed buffer of channel ch back to its transport.
func (g *InputGate) Release(ch int, b *Buffer) {
	g.mu.Lock()
	t := g.mu.chans[ch].transport
	g.mu.Unlock()
	b.Reset()
	t.Release(b)
}

// Stats returns the figures of channel ch: the transport's, with the
// gate's queue length and counts.
func (g *InputGate) Stats(ch int) ChannelStats {
	g.mu.Lock()
	c := g.mu.chans[ch]
	t := c.transport
	q, bufs, bytes := c.queue.len()+c.prio.len(), c.buffers, c.bytes
	g.mu.Unlock()
	var s ChannelStats
	if t != nil {
		s = t.Stats()
	}
	s.Queued, s.Buffers, s.Bytes = q, bufs, bytes
	return s
}

// Close closes every channel's transport; pushes fail from then on.
func (g *InputGate) Close() error {
	g.mu.Lock()
	if g.mu.closed {
		g.mu.Unlock()
		return nil
	}
	g.mu.closed = true
	chans := g.mu.chans
	g.mu.Unlock()
	var first error
	for _, c := range chans {
		if c.transport == nil {
			continue
		}
		if err := c.transport.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// fifo is a slice queue that reuses its memory.
type fifo[T any] struct {
	s    []T
	head int
}

func (q *fifo[T]) push(v T) {
	if q.head > 0 && q.head == len(q.s) {
		q.s, q.head = q.s[:0], 0
	} else if q.head > 32 && q.head*2 > len(q.s) {
		n := copy(q.s, q.s[q.head:])
		clear(q.s[n:])
		q.s, q.head = q.s[:n], 0
	}
	q.s = append(q.s, v)
}

func (q *fifo[T]) pop() (T, bool) {
	var zero T
	if q.head == len(q.s) {
		return zero, false
	}
	v := q.s[q.head]
	q.s[q.head] = zero
	q.head++
	return v, true
}

func (q *fifo[T]) len() int { return len(q.s) - q.head }

// NextPriority takes the next priority event, if any channel has one. A
// subtask blocked on output credits uses it to react to priority events
// without taking ordinary data.
func (g *InputGate) NextPriority() (ch int, e Event, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.popPriority()
}

// popPriority takes the next priority event; g.mu is held.
func (g *InputGate) popPriority() (ch int, e Event, ok bool) {
	if ch, ok = g.mu.prioReady.pop(); !ok {
		return 0, Event{}, false
	}
	c := g.mu.chans[ch]
	e, _ = c.prio.pop()
	if c.prio.len() > 0 {
		g.mu.prioReady.push(ch)
	} else {
		c.inPrio = false
	}
	g.mu.queued--
	return ch, e, true
}

// Rearm signals Notify again, for a consumer that took the signal but
// left messages queued.
func (g *InputGate) Rearm() {
	select {
	case g.notify <- struct{}{}:
	default:
	}
}
