// Package netstack moves buffers of encoded records from the subtasks that
// produce them to the subtasks that consume them, with credit-based flow
// control per channel.
//
// A channel joins one producer subpartition to one consumer input channel.
// The producer side is a Subpartition: it hands out empty buffers only as
// far as the channel's credits and local pool allow (no buffer, no send:
// that is backpressure), and queues filled buffers and events for the
// consumer. The consumer side is an InputGate: one queue per input channel,
// so events are handled per channel, with a priority lane that lets
// priority events (unaligned checkpoint barriers) overtake queued data.
// Releasing a processed buffer returns its credit to the producer as an
// explicit grant.
//
// Two transports implement the same seam: the in-process one (NewLocal),
// which hands buffers over by pointer, and the QUIC one between workers
// (New, one Transport per worker process: ListenGate registers a gate's
// remote channels by ChannelID on the consumer's worker, Dial opens the
// producer's end to the consumer's Transport.Addr). The task runtime
// never knows which one a channel uses; a remote channel that fails
// yields a Message with Err set. The credit
// bookkeeping both sides keep is a deterministic core (SenderCredits,
// ReceiverCredits): events in, actions out, no goroutines or clocks.
//
// netstack knows buffers, channels and credits, not jobs or operators:
// event kinds are opaque bytes the task runtime defines.
package netstack

import "errors"

// Errors.
var (
	// ErrClosed is returned by operations on a closed channel or gate.
	ErrClosed = errors.New("netstack: closed")
	// ErrProtocol marks a peer that broke the credit protocol (a buffer
	// without credit, an unknown channel, a malformed frame).
	ErrProtocol = errors.New("netstack: protocol violation")
	// ErrRefused is returned to a producer whose channel the consumer
	// refused (no such channel registered in time, a second producer, a
	// buffer size over the consumer's).
	ErrRefused = errors.New("netstack: channel refused")
)

// Buffer is a unit of transfer: encoded entries and how many there are.
type Buffer struct {
	B     []byte
	Count int
}

// Reset empties b for reuse, keeping its memory.
func (b *Buffer) Reset() { b.B, b.Count = b.B[:0], 0 }

// Event is an in-band control message on a channel. netstack does not
// interpret Kind or Value; the task runtime defines them.
type Event struct {
	Kind uint8
	// Priority events may overtake the data queued ahead of them.
	Priority bool
	Value    int64
	// Ahead, on a priority event an InputGate yields, is how many
	// messages of its channel were queued when it arrived: those it
	// overtook (Peek them). The gate sets it; it does not travel.
	Ahead int
}

// Message is what an input channel yields: a buffer, or (Buf nil) an event,
// or (Err non-nil) the failure of a remote channel, after which the
// channel yields nothing more.
type Message struct {
	Buf   *Buffer
	Event Event
	Err   error
}

// ChannelStats are the live figures of one end of a channel.
type ChannelStats struct {
	// Credits is what the producer may still send without waiting: the
	// buffers the consumer has reserved for the channel and not yet been
	// sent.
	Credits int
	// Backlog is the number of filled buffers queued at the producer
	// behind the credits.
	Backlog int
	// Queued is the number of messages waiting at the consumer.
	Queued  int
	Buffers int64 // buffers sent (producer) or received (consumer)
	Bytes   int64
}

// Aborter is a Subpartition that can be dropped without waiting for its
// queued buffers to be delivered (Close waits, within a bound): a task
// that failed or was canceled aborts its outputs.
type Aborter interface {
	Abort()
}

// Subpartition is the producer end of one channel.
type Subpartition interface {
	// Request returns an empty buffer to fill, or nil when the channel has
	// none free; Available is then signalled when one may be.
	Request() *Buffer
	// Available is signalled (it never closes) when a buffer may be free
	// after Request returned nil.
	Available() <-chan struct{}
	// Send queues a filled buffer, one Request gave, for the consumer.
	Send(b *Buffer) error
	// SendEvent queues an event behind the buffers sent so far; one with
	// Priority overtakes, at the consumer's gate, what is queued there
	// when it arrives. Events need no credit.
	SendEvent(e Event) error
	Stats() ChannelStats
	// Close releases the channel's resources; it is not end of stream,
	// which the task runtime sends as an event.
	Close() error
}

// ResultPartition is what one producer subtask writes for one outgoing
// edge: a subpartition per consumer subtask.
type ResultPartition struct {
	Subpartitions []Subpartition
}

// InputChannel is the transport's part of one consumer channel: where
// processed buffers go back, turning into credit for the producer.
type InputChannel interface {
	// Release gives back a buffer the gate delivered, once processed.
	Release(b *Buffer)
	Stats() ChannelStats
	Close() error
}
