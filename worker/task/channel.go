package task

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/netstack"
	"github.com/weirstream/weir/wasmabi"
)

// The data plane. Every channel joins one upstream subtask to one
// downstream subtask for one edge, through netstack: the upstream writes
// into a Subpartition, the downstream reads its InputGate. Whether the
// channel is in-process (netstack.NewLocal) or crosses the network is
// decided where the run is wired, never here.

// Event kinds on a channel (netstack.Event.Kind).
const (
	evWatermark uint8 = iota + 1 // Value: the watermark
	evIdle                       // the channel's source went idle
	evActive                     // and came back
	evEnd                        // end of stream on the channel
	evLatency                    // a latency marker: Value is its source's wall clock (ns)
)

// gateChannel is the receiving side's event-time state of one channel.
type gateChannel struct {
	input int // head input index the channel feeds
	wm    int64
	idle  bool
	ended bool
}

// writer sends the records of one edge from one subtask to the channels of
// the downstream subtasks, partitioning them.
type writer struct {
	t        *subtask
	edge     *Edge
	subs     []netstack.Subpartition // by downstream subtask index (forward: one)
	cur      []*netstack.Buffer      // being filled, per channel; nil when none taken
	size     int                     // buffer size
	part     Partition
	kgToSub  []uint16 // key_by: key group -> channel
	maxPar   int
	rr       int
	blocked  *atomic.Int64 // ns spent waiting for credits (backpressure)
	fromName string
}

// take returns the buffer being filled on channel c, taking a credit when
// needed. While it waits for one (backpressure), the subtask still reacts
// to cancellation and to priority events on its own inputs.
func (w *writer) take(c int) (*netstack.Buffer, error) {
	if b := w.cur[c]; b != nil {
		return b, nil
	}
	sp := w.subs[c]
	b := sp.Request()
	if b == nil {
		start := time.Now()
		for b == nil {
			select {
			case <-sp.Available():
			case <-w.t.gateNotify():
				if err := w.t.priorityEvents(); err != nil {
					return nil, err
				}
			case <-w.t.ctx.Done():
				return nil, context.Cause(w.t.ctx)
			}
			b = sp.Request()
		}
		w.blocked.Add(int64(time.Since(start)))
	}
	w.cur[c] = b
	return b, nil
}

// send hands channel c's current buffer to the receiver.
func (w *writer) send(c int) error {
	b := w.cur[c]
	if b == nil || b.Count == 0 {
		return nil
	}
	w.cur[c] = nil
	return w.subs[c].Send(b)
}

// Entries passed between nodes always have port 0: a receiving two-input
// operator sets the input index on its own copy.

// appendEntry copies one encoded entry to c, sending the
// buffer first when the entry does not fit.
func (w *writer) appendEntry(c int, e []byte) error {
	b, err := w.take(c)
	if err != nil {
		return err
	}
	if len(b.B)+len(e) > w.size && b.Count > 0 {
		if err := w.send(c); err != nil {
			return err
		}
		if b, err = w.take(c); err != nil {
			return err
		}
	}
	b.B = append(b.B, e...)
	b.Count++
	return nil
}

// write partitions a run of record entries over the channels.
func (w *writer) write(entries []byte, count int) error {
	w.t.recOut.Add(int64(count))
	if w.part == Forward || len(w.subs) == 1 && w.part != KeyBy {
		return w.writeAll(0, entries, count)
	}
	for off := 0; off < len(entries); {
		size := entrySize(entries[off:])
		e := entries[off : off+size]
		off += size
		switch w.part {
		case KeyBy:
			if le32(e[4:]) == 0 {
				return fmt.Errorf("%s: a record without a key reached key_by edge to %s; the upstream operator must set a key", w.fromName, w.edge.To.Name)
			}
			if err := w.appendEntry(int(w.kgToSub[keygroup.Of(entryKey(e), w.maxPar)]), e); err != nil {
				return err
			}
		case Rebalance:
			w.rr++
			if w.rr >= len(w.subs) {
				w.rr = 0
			}
			if err := w.appendEntry(w.rr, e); err != nil {
				return err
			}
		case Broadcast:
			for c := range w.subs {
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
func (w *writer) writeAll(c int, entries []byte, count int) error {
	for len(entries) > 0 {
		b, err := w.take(c)
		if err != nil {
			return err
		}
		room := w.size - len(b.B)
		if len(entries) <= room {
			b.B = append(b.B, entries...)
			b.Count += count
			return nil
		}
		// Take as many whole entries as fit (at least one).
		n, k := 0, 0
		for n < len(entries) {
			s := entrySize(entries[n:])
			if n+s > room && (k > 0 || b.Count > 0) {
				break
			}
			n += s
			k++
		}
		if k > 0 {
			b.B = append(b.B, entries[:n]...)
			b.Count += k
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
	if w.rr >= len(w.subs) {
		w.rr = 0
	}
	if err := w.send(w.rr); err != nil {
		return err
	}
	return w.subs[w.rr].SendEvent(netstack.Event{Kind: evLatency, Value: ns})
}

// flush sends every partly filled buffer.
func (w *writer) flush() error {
	for c := range w.subs {
		if err := w.send(c); err != nil {
			return err
		}
	}
	return nil
}

// event flushes, then sends an in-band event to every channel.
func (w *writer) event(kind uint8, v int64) error {
	if err := w.flush(); err != nil {
		return err
	}
	for _, sp := range w.subs {
		if err := sp.SendEvent(netstack.Event{Kind: kind, Value: v}); err != nil {
			return err
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
// entryKey is entry e's key (small enough to inline on the hot path).
func entryKey(e []byte) []byte {
	return e[wasmabi.EntryHeaderSize : wasmabi.EntryHeaderSize+int(le32(e[4:]))]
}

func entrySize(b []byte) int {
	return wasmabi.EntryHeaderSize + int(le32(b[4:])) + int(le32(b[16:])) + int(le32(b[20:]))
}

func setPorts(b []byte, port uint16) {
	for off := 0; off < len(b); off += entrySize(b[off:]) {
		b[off+2], b[off+3] = byte(port), byte(port>>8)
	}
}
