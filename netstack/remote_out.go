package netstack

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// remoteOut is the producer end of a remote channel. The producer's
// goroutine fills buffers and queues them (Send); SenderCredits decides
// which go out; one writer goroutine encodes everything that may go into
// one write (several buffers per write when they queue up while a write
// is under way) and gives the buffers back to the pool as soon as they
// are encoded; one reader goroutine takes the consumer's credit.
type remoteOut struct {
	t       *Transport
	s       *quic.Stream
	id      ChannelID
	items   map[*Buffer]*outItem // the pool's buffers; read-only
	avail   chan struct{}
	wake    chan struct{} // the writer has something to do
	written chan struct{} // closed when the writer exits
	read    chan struct{} // closed when the reader exits
	scratch *Buffer       // what Request hands out once the channel failed
	buffers atomic.Int64
	bytes   atomic.Int64
	once    sync.Once

	mu struct {
		sync.Mutex
		credits  SenderCredits[*outItem]
		acts     []SenderAction[*outItem] // scratch
		free     []*Buffer
		outq     []outFrame // frames to write, in order
		last     *outItem   // the newest buffer waiting for credit
		err      error
		closing  bool
		finished bool // the close frame and FIN are written
	}
}

// outItem is a buffer of the pool with the ordinary events sent after it
// while it waited for credit: they go out right behind it.
type outItem struct {
	buf    *Buffer
	events []Event
}

type outFrame struct {
	item     *outItem // a buffer to transmit, or
	announce bool     // a backlog announcement, or an event
	backlog  int
	event    Event
}

// Dial opens the producer end of channel id to the transport at addr,
// with pool buffers of size bytes to fill. It returns once the stream is
// open and the hello is written; the consumer may register the channel
// later (within its ChannelWait). Connections to one address are shared
// by every channel and dialled once.
func (t *Transport) Dial(ctx context.Context, addr string, id ChannelID, pool, size int) (Subpartition, error) {
	if err := id.validate(); err != nil {
		return nil, err
	}
	if pool < 1 || size < 1 || size > MaxBufferSize {
		return nil, fmt.Errorf("netstack: dialling channel %q: pool %d must be positive and size %d in 1..%d", id, pool, size, MaxBufferSize)
	}
	p, err := t.peerFor(ctx, addr)
	if err != nil {
		return nil, err
	}
	s, err := p.conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, fmt.Errorf("netstack: opening channel %q to %s: %w", id, addr, err)
	}
	o := &remoteOut{
		t: t, s: s, id: id,
		items:   make(map[*Buffer]*outItem, pool),
		avail:   make(chan struct{}, 1),
		wake:    make(chan struct{}, 1),
		written: make(chan struct{}),
		read:    make(chan struct{}),
		scratch: &Buffer{B: make([]byte, 0, size)},
	}
	for range pool {
		b := &Buffer{B: make([]byte, 0, size)}
		o.items[b] = &outItem{buf: b}
		o.mu.free = append(o.mu.free, b)
	}
	if _, err := s.Write(appendHello(nil, id, size)); err != nil {
		s.CancelRead(codeClosed)
		s.CancelWrite(codeClosed)
		return nil, fmt.Errorf("netstack: opening channel %q to %s: %w", id, addr, err)
	}
	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		s.CancelRead(codeClosed)
		s.CancelWrite(codeClosed)
		return nil, ErrClosed
	}
	t.wg.Add(2)
	t.mu.Unlock()
	go o.writeLoop()
	go o.readLoop()
	return o, nil
}

func (o *remoteOut) Request() *Buffer {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.mu.err != nil {
		// Let the producer on to Send, which reports the failure.
		o.scratch.Reset()
		return o.scratch
	}
	n := len(o.mu.free)
	if n == 0 {
		return nil
	}
	b := o.mu.free[n-1]
	o.mu.free = o.mu.free[:n-1]
	return b
}

func (o *remoteOut) Available() <-chan struct{} { return o.avail }

func (o *remoteOut) Send(b *Buffer) error {
	o.mu.Lock()
	if err := o.sendableLocked(); err != nil {
		o.mu.Unlock()
		return err
	}
	item := o.items[b]
	if item == nil {
		o.mu.Unlock()
		return fmt.Errorf("netstack: sending on channel %q: a buffer its Request did not give", o.id)
	}
	o.mu.acts = o.mu.credits.Enqueue(item, o.mu.acts[:0])
	o.applyLocked()
	if o.mu.credits.Backlog() > 0 {
		o.mu.last = item // FIFO: still queued, so it is the tail
	}
	o.mu.Unlock()
	o.signal(o.wake)
	return nil
}

func (o *remoteOut) SendEvent(e Event) error {
	o.mu.Lock()
	if err := o.sendableLocked(); err != nil {
		o.mu.Unlock()
		return err
	}
	// Every event keeps its place behind what was sent before it, even a
	// priority one: it overtakes only at the consumer's gate, so what the
	// consumer receives after a priority barrier was sent after it (an
	// unaligned checkpoint counts on that), and the producer holds at
	// most its pool of buffers back.
	switch {
	case o.mu.last != nil:
		o.mu.last.events = append(o.mu.last.events, e)
	default:
		o.mu.outq = append(o.mu.outq, outFrame{event: e})
	}
	o.mu.Unlock()
	o.signal(o.wake)
	return nil
}

func (o *remoteOut) sendableLocked() error {
	if o.mu.err != nil {
		return o.mu.err
	}
	if o.mu.closing {
		return ErrClosed
	}
	return nil
}

// applyLocked turns the credit core's actions into frames to write.
func (o *remoteOut) applyLocked() {
	for _, a := range o.mu.acts {
		if a.Transmit {
			o.mu.outq = append(o.mu.outq, outFrame{item: a.Buf, backlog: a.Backlog})
		} else {
			o.mu.outq = append(o.mu.outq, outFrame{announce: true, backlog: a.Backlog})
		}
	}
	clear(o.mu.acts)
	if o.mu.credits.Backlog() == 0 {
		o.mu.last = nil
	}
}

func (o *remoteOut) signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (o *remoteOut) writeLoop() {
	defer o.t.wg.Done()
	defer close(o.written)
	var (
		batch []outFrame
		wbuf  []byte
	)
	for {
		o.mu.Lock()
		batch, o.mu.outq = o.mu.outq, batch[:0]
		failed := o.mu.err
		done := o.mu.closing && len(batch) == 0 && o.mu.credits.Backlog() == 0
		o.mu.Unlock()
		if failed != nil {
			return
		}
		if done {
			_, err := o.s.Write(appendClose(wbuf[:0], closeDone, ""))
			if err == nil {
				err = o.s.Close()
			}
			if err != nil {
				o.fail(fmt.Errorf("netstack: closing channel %q: %w", o.id, err))
				return
			}
			o.mu.Lock()
			o.mu.finished = true
			o.mu.Unlock()
			return
		}
		if len(batch) == 0 {
			select {
			case <-o.wake:
			case <-o.t.ctx.Done():
				o.fail(ErrClosed)
				return
			}
			continue
		}
		wbuf = wbuf[:0]
		var nbuf, nbytes int64
		for _, f := range batch {
			switch {
			case f.item != nil:
				b := f.item.buf
				wbuf = appendData(wbuf, b.Count, f.backlog, b.B)
				nbuf++
				nbytes += int64(len(b.B))
				for _, e := range f.item.events {
					wbuf = appendEvent(wbuf, e)
				}
			case f.announce:
				wbuf = appendCount(wbuf, frameBacklog, f.backlog)
			default:
				wbuf = appendEvent(wbuf, f.event)
			}
		}
		// Encoded: the buffers may be filled again while the write runs.
		o.mu.Lock()
		for _, f := range batch {
			if f.item != nil {
				f.item.events = f.item.events[:0]
				f.item.buf.Reset()
				o.mu.free = append(o.mu.free, f.item.buf)
			}
		}
		o.mu.Unlock()
		clear(batch)
		o.buffers.Add(nbuf)
		o.bytes.Add(nbytes)
		if nbuf > 0 {
			o.signal(o.avail)
		}
		if _, err := o.s.Write(wbuf); err != nil {
			o.fail(fmt.Errorf("netstack: writing channel %q: %w", o.id, err))
			return
		}
	}
}

func (o *remoteOut) readLoop() {
	defer o.t.wg.Done()
	defer close(o.read)
	br := bufio.NewReaderSize(o.s, 4<<10)
	var f frame
	for {
		err := readFrame(br, 0, &f)
		if err == nil {
			switch f.typ {
			case frameCredit:
				o.mu.Lock()
				o.mu.acts = o.mu.credits.Grant(f.n, o.mu.acts[:0])
				o.applyLocked()
				o.mu.Unlock()
				o.signal(o.wake)
				continue
			case frameClose:
				switch f.code {
				case closeRefused:
					err = fmt.Errorf("%w: %s", ErrRefused, f.msg)
				case closeFailed:
					err = fmt.Errorf("%w: the consumer reports: %s", ErrProtocol, f.msg)
				default:
					err = fmt.Errorf("%w: the consumer closed the channel", ErrClosed)
				}
			default:
				err = fmt.Errorf("%w: unexpected %s frame from a consumer", ErrProtocol, f.typ)
			}
		}
		o.mu.Lock()
		finished := o.mu.finished
		o.mu.Unlock()
		if err == io.EOF || finished {
			return // the consumer closed its side after our close, or we stopped reading
		}
		o.fail(fmt.Errorf("netstack: channel %q: %w", o.id, err))
		return
	}
}

// fail records the channel's first failure, resets its stream, and wakes
// whoever waits on it.
func (o *remoteOut) fail(err error) {
	o.mu.Lock()
	first := o.mu.err == nil
	if first {
		o.mu.err = err
	}
	o.mu.Unlock()
	if first {
		code := codeClosed
		if errors.Is(err, ErrProtocol) {
			code = codeProtocol
		}
		o.s.CancelWrite(code)
		o.s.CancelRead(code)
	}
	o.signal(o.avail)
	o.signal(o.wake)
}

func (o *remoteOut) Stats() ChannelStats {
	o.mu.Lock()
	s := ChannelStats{Credits: o.mu.credits.Credits(), Backlog: o.mu.credits.Backlog()}
	o.mu.Unlock()
	s.Buffers, s.Bytes = o.buffers.Load(), o.bytes.Load()
	return s
}

// Close waits up to DrainTimeout for the queued buffers to get credit and
// go out, ends the stream with a close frame, and returns the channel's
// failure if it had one. Idempotent.
// Abort drops the channel at once: what is queued is not sent, the
// stream is reset. A task that failed or was canceled aborts its outputs:
// a consumer that died would never grant the credit a Close waits for.
func (o *remoteOut) Abort() {
	o.once.Do(func() {
		o.fail(ErrClosed)
		<-o.written
		<-o.read
	})
}

func (o *remoteOut) Close() error {
	o.once.Do(func() {
		o.mu.Lock()
		o.mu.closing = true
		o.mu.Unlock()
		o.signal(o.wake)
		tm := time.NewTimer(o.t.opts.DrainTimeout)
		defer tm.Stop()
		select {
		case <-o.written:
		case <-tm.C:
			o.fail(fmt.Errorf("netstack: closing channel %q: %d buffers still without credit after %v", o.id, o.Stats().Backlog, o.t.opts.DrainTimeout))
			<-o.written
		}
		// The close frame and FIN are queued: QUIC delivers them without
		// us reading; stop the reader.
		o.s.CancelRead(codeClosed)
		<-o.read
	})
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.mu.err
}
