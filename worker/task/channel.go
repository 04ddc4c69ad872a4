package task

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/wasmabi"
)

// The data plane inside a process. A channel joins one upstream subtask to
// one downstream subtask for one edge. Credits are buffers: a channel owns
// Credits buffers, the sender takes an empty one (waiting when none is
// free: backpressure), fills it with encoded entries and hands it to the
// receiver's mailbox; the receiver gives it back once processed, which is
// the credit returning. The network transport keeps exactly this contract
// and replaces only the hand-over.

type msgKind uint8

const (
	msgData      msgKind = iota // buf holds entries
	msgWatermark                // wm
	msgIdle                     // the channel's source went idle
	msgActive                   // and came back
	msgEnd                      // end of stream on the channel
	msgLatency                  // a latency marker: wm is its source's wall clock (ns)
)

// message is what a mailbox carries.
type message struct {
	kind msgKind
	ch   int32 // channel index in the receiver's gate
	buf  *buffer
	wm   int64
}

type buffer struct {
	b     []byte
	count int
}

// channel is the sending side's view of one channel.
type channel struct {
	idx     int32          // index in the receiver's gate
	free    chan *buffer   // credits: empty buffers
	mailbox chan<- message // the receiver's
	cur     *buffer        // being filled, nil when none taken
}

func newChannel(idx int32, mailbox chan<- message, credits, size int) *channel {
	c := &channel{idx: idx, free: make(chan *buffer, credits), mailbox: mailbox}
	for range credits {
		c.free <- &buffer{b: make([]byte, 0, size)}
	}
	return c
}

// gateChannel is the receiving side's state of one channel.
type gateChannel struct {
	input int // head input index the channel feeds
	free  chan *buffer
	wm    int64
	idle  bool
	ended bool
}

// writer sends the records of one edge from one subtask to the channels of
// the downstream subtasks, partitioning them.
type writer struct {
	edge     *Edge
	chans    []*channel // by downstream subtask index (forward: one)
	size     int        // buffer size
	part     Partition
	kgToSub  []uint16 // key_by: key group -> channel
	maxPar   int
	rr       int
	ctx      context.Context
	blocked  *atomic.Int64 // ns spent waiting for credits (backpressure)
	fromName string
}

// take returns the buffer being filled on c, taking a credit when needed.
func (w *writer) take(c *channel) (*buffer, error) {
	if c.cur != nil {
		return c.cur, nil
	}
	select {
	case b := <-c.free:
		c.cur = b
		return b, nil
	default:
	}
	start := time.Now()
	select {
	case b := <-c.free:
		w.blocked.Add(int64(time.Since(start)))
		c.cur = b
		return b, nil
	case <-w.ctx.Done():
		return nil, w.ctx.Err()
	}
}

// send hands c's current buffer to the receiver.
func (w *writer) send(c *channel) error {
	b := c.cur
	if b == nil || b.count == 0 {
		return nil
	}
	c.cur = nil
	select {
	case c.mailbox <- message{kind: msgData, ch: c.idx, buf: b}:
		return nil
	case <-w.ctx.Done():
		return w.ctx.Err()
	}
}

// Entries passed between nodes always have port 0: a receiving two-input
// operator sets the input index on its own copy.

// appendEntry copies one encoded entry to c, sending the
// buffer first when the entry does not fit.
func (w *writer) appendEntry(c *channel, e []byte) error {
	b, err := w.take(c)
	if err != nil {
		return err
	}
	if len(b.b)+len(e) > w.size && b.count > 0 {
		if err := w.send(c); err != nil {
			return err
		}
		if b, err = w.take(c); err != nil {
			return err
		}
	}
	b.b = append(b.b, e...)
	b.count++
	return nil
}

// write partitions a run of record entries over the channels.
func (w *writer) write(entries []byte, count int) error {
	if w.part == Forward || len(w.chans) == 1 && w.part != KeyBy {
		return w.writeAll(w.chans[0], entries, count)
	}
	for off := 0; off < len(entries); {
		size := entrySize(entries[off:])
		e := entries[off : off+size]
		off += size
		switch w.part {
		case KeyBy:
			kl := int(le32(e[4:]))
			if kl == 0 {
				return fmt.Errorf("%s: a record without a key reached key_by edge to %s; the upstream operator must set a key", w.fromName, w.edge.To.Name)
			}
			kg := keygroup.Of(e[wasmabi.EntryHeaderSize:wasmabi.EntryHeaderSize+kl], w.maxPar)
			if err := w.appendEntry(w.chans[w.kgToSub[kg]], e); err != nil {
				return err
			}
		case Rebalance:
			w.rr++
			if w.rr >= len(w.chans) {
				w.rr = 0
			}
			if err := w.appendEntry(w.chans[w.rr], e); err != nil {
				return err
			}
		case Broadcast:
			for _, c := range w.chans {
				if err := w.appendEntry(c, e); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// writeAll copies a run of entries to one channel in as few copies as the
// buffer size allows.
func (w *writer) writeAll(c *channel, entries []byte, count int) error {
	for len(entries) > 0 {
		b, err := w.take(c)
		if err != nil {
			return err
		}
		room := w.size - len(b.b)
		if len(entries) <= room {
			b.b = append(b.b, entries...)
			b.count += count
			return nil
		}
		// Take as many whole entries as fit (at least one).
		n, k := 0, 0
		for n < len(entries) {
			s := entrySize(entries[n:])
			if n+s > room && (k > 0 || b.count > 0) {
				break
			}
			n += s
			k++
		}
		if k > 0 {
			b.b = append(b.b, entries[:n]...)
			b.count += k
			entries, count = entries[n:], count-k
		}
		if err := w.send(c); err != nil {
			return err
		}
	}
	return nil
}

// marker sends a latency marker down one channel, taking turns, behind
// the records already written to it.
func (w *writer) marker(ns int64) error {
	w.rr++
	if w.rr >= len(w.chans) {
		w.rr = 0
	}
	c := w.chans[w.rr]
	if err := w.send(c); err != nil {
		return err
	}
	select {
	case c.mailbox <- message{kind: msgLatency, ch: c.idx, wm: ns}:
		return nil
	case <-w.ctx.Done():
		return w.ctx.Err()
	}
}

// flush sends every partly filled buffer.
func (w *writer) flush() error {
	for _, c := range w.chans {
		if err := w.send(c); err != nil {
			return err
		}
	}
	return nil
}

// event flushes, then sends an in-band event to every channel.
func (w *writer) event(kind msgKind, wm int64) error {
	if err := w.flush(); err != nil {
		return err
	}
	for _, c := range w.chans {
		select {
		case c.mailbox <- message{kind: kind, ch: c.idx, wm: wm}:
		case <-w.ctx.Done():
			return w.ctx.Err()
		}
	}
	return nil
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func le64(b []byte) int64 {
	return int64(uint64(le32(b)) | uint64(le32(b[4:]))<<32)
}

// entrySize is the encoded size of the (already validated) entry at b[0].
func entrySize(b []byte) int {
	return wasmabi.EntryHeaderSize + int(le32(b[4:])) + int(le32(b[16:])) + int(le32(b[20:]))
}

func setPorts(b []byte, port uint16) {
	for off := 0; off < len(b); off += entrySize(b[off:]) {
		b[off+2], b[off+3] = byte(port), byte(port>>8)
	}
}
