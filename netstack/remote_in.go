package netstack

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// GateOptions configure the remote channels of one input gate.
type GateOptions struct {
	// Exclusive is the number of buffers reserved for each channel (its
	// standing credit); default 2.
	Exclusive int
	// Floating is the number of buffers the gate's remote channels share,
	// lent to the ones with the largest backlog; default 8. Negative: none.
	Floating int
	// BufferSize bounds a buffer's bytes; a producer with larger buffers
	// is refused. Default DefaultBufferSize.
	BufferSize int
}

func (o *GateOptions) ensureDefaults() {
	if o.Exclusive == 0 {
		o.Exclusive = 2
	}
	if o.Floating == 0 {
		o.Floating = 8
	} else if o.Floating < 0 {
		o.Floating = 0
	}
	if o.BufferSize == 0 {
		o.BufferSize = DefaultBufferSize
	}
}

// RemoteChannel joins a channel id to a channel of an InputGate.
type RemoteChannel struct {
	ID ChannelID
	Ch int
}

// RemoteGate is the remote channels of one InputGate: they share the
// gate's floating buffers, so one ReceiverCredits keeps their accounts.
// At most (Exclusive*len(channels) + Floating) buffers of BufferSize
// bytes ever exist for it: that bounds what a gate's remote producers can
// make this worker hold, whatever they send.
type RemoteGate struct {
	t     *Transport
	gate  *InputGate
	opts  GateOptions
	chans []*remoteIn // by index in credits
	limit int         // buffers that may exist

	mu struct {
		sync.Mutex
		credits   *ReceiverCredits
		grants    []Grant // scratch
		free      []*Buffer
		allocated int
	}
}

// remoteIn is the consumer end of one remote channel: the gate's
// InputChannel for it.
type remoteIn struct {
	g    *RemoteGate
	idx  int // in g.chans and the credits
	ch   int // in the gate
	id   ChannelID
	wake chan struct{} // credit to write

	wmu sync.Mutex // serialises writes to the stream

	// guarded by g.mu
	grant   int // granted and not yet written
	backlog int // as the producer last said
	state   inState
	stream  *quic.Stream
}

type inState uint8

const (
	inWaiting  inState = iota // no producer yet
	inAttached                // a producer's stream is being served
	inEnded                   // the producer closed the channel
	inFailed                  // the stream failed
	inClosed                  // the consumer closed the channel
)

// ListenGate registers remote channels of gate: a producer that dials
// this transport with one of their ids (before or after this call, within
// ChannelWait) feeds that gate channel. Release of the gate's buffers
// turns into credit for the channel's producer.
func (t *Transport) ListenGate(gate *InputGate, opts GateOptions, chans ...RemoteChannel) (*RemoteGate, error) {
	opts.ensureDefaults()
	switch {
	case len(chans) == 0:
		return nil, errors.New("netstack: listening: no channels")
	case opts.Exclusive < 1:
		return nil, fmt.Errorf("netstack: listening: GateOptions.Exclusive %d must be positive", opts.Exclusive)
	case opts.BufferSize < 1 || opts.BufferSize > MaxBufferSize:
		return nil, fmt.Errorf("netstack: listening: GateOptions.BufferSize %d must be in 1..%d", opts.BufferSize, MaxBufferSize)
	case uint64(opts.Exclusive+opts.Floating)*uint64(opts.BufferSize+frameOverhead) > t.opts.StreamWindow:
		return nil, fmt.Errorf("netstack: listening: a channel may hold (%d exclusive + %d floating) buffers of %d bytes, more than Options.StreamWindow %d: QUIC would limit below the credits",
			opts.Exclusive, opts.Floating, opts.BufferSize, t.opts.StreamWindow)
	}
	n := gate.NumChannels()
	g := &RemoteGate{t: t, gate: gate, opts: opts, limit: opts.Exclusive*len(chans) + opts.Floating}
	for i, rc := range chans {
		if err := rc.ID.validate(); err != nil {
			return nil, err
		}
		if rc.Ch < 0 || rc.Ch >= n {
			return nil, fmt.Errorf("netstack: listening on %q: gate has no channel %d (it has %d)", rc.ID, rc.Ch, n)
		}
		g.chans = append(g.chans, &remoteIn{g: g, idx: i, ch: rc.Ch, id: rc.ID, wake: make(chan struct{}, 1)})
	}
	g.mu.credits, g.mu.grants = NewReceiverCredits(len(chans), opts.Exclusive, opts.Floating, nil)
	g.dispatchLocked()
	// The gate must know where releases go before a producer can push.
	for _, in := range g.chans {
		gate.SetTransport(in.ch, in)
	}
	if err := t.register(g.chans); err != nil {
		for _, in := range g.chans {
			gate.SetTransport(in.ch, nil)
		}
		return nil, err
	}
	return g, nil
}

// Close closes the gate's remote channels: producers still sending see
// their streams reset. The InputGate's Close does the same.
func (g *RemoteGate) Close() error {
	for _, in := range g.chans {
		in.Close()
	}
	return nil
}

// dispatchLocked hands the grants the credits produced to their
// channels' writers.
func (g *RemoteGate) dispatchLocked() {
	for _, gr := range g.mu.grants {
		in := g.chans[gr.Ch]
		in.grant += gr.N
		select {
		case in.wake <- struct{}{}:
		default:
		}
	}
	g.mu.grants = g.mu.grants[:0]
}

func (in *remoteIn) attach(s *quic.Stream, size int) error {
	g := in.g
	if size > g.opts.BufferSize {
		return fmt.Errorf("channel %q: buffer size %d exceeds the consumer's %d", in.id, size, g.opts.BufferSize)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if in.state != inWaiting {
		return fmt.Errorf("channel %q already had a producer", in.id)
	}
	in.state, in.stream = inAttached, s
	return nil
}

// serve runs the channel until its stream ends: credit goes out from a
// goroutine of its own, frames come in here.
func (in *remoteIn) serve(s *quic.Stream, br *bufio.Reader) {
	t := in.g.t
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		defer wg.Done()
		in.writeCredit(s, stop)
	}()
	err := in.read(s, br)
	close(stop)
	wg.Wait()
	in.finish(s, err)
}

func (in *remoteIn) writeCredit(s *quic.Stream, stop <-chan struct{}) {
	g := in.g
	var buf []byte
	for {
		g.mu.Lock()
		n := in.grant
		in.grant = 0
		g.mu.Unlock()
		if n > 0 {
			buf = buf[:0]
			for ; n > 0; n -= min(n, maxCredit) {
				buf = appendCount(buf, frameCredit, min(n, maxCredit))
			}
			in.wmu.Lock()
			_, err := s.Write(buf)
			in.wmu.Unlock()
			if err != nil {
				return // the reader sees the stream fail too
			}
		}
		select {
		case <-in.wake:
		case <-stop:
			return
		case <-g.t.ctx.Done():
			return
		}
	}
}

// read takes the producer's frames until its close frame (nil) or a
// failure.
func (in *remoteIn) read(s *quic.Stream, br *bufio.Reader) error {
	g := in.g
	var f frame
	for {
		if err := readFrame(br, g.opts.BufferSize, &f); err != nil {
			if err == io.EOF {
				return fmt.Errorf("%w: stream ended without a close frame", ErrProtocol)
			}
			return err
		}
		switch f.typ {
		case frameData:
			b, err := in.reserve(f.n)
			if err != nil {
				return err
			}
			b.B = b.B[:f.payloadLen]
			if _, err := io.ReadFull(br, b.B); err != nil {
				return truncated(err)
			}
			b.Count = f.count
			if err := g.gate.Push(in.ch, Message{Buf: b}); err != nil {
				return err
			}
		case frameEvent:
			if err := g.gate.Push(in.ch, Message{Event: f.event}); err != nil {
				return err
			}
		case frameBacklog:
			g.mu.Lock()
			in.backlog = f.n
			var err error
			g.mu.grants, err = g.mu.credits.Backlog(in.idx, f.n, g.mu.grants)
			g.dispatchLocked()
			g.mu.Unlock()
			if err != nil {
				return err
			}
		case frameClose:
			if f.code == closeDone {
				return nil
			}
			return fmt.Errorf("%w: the producer failed the channel: %s", ErrProtocol, f.msg)
		default:
			return fmt.Errorf("%w: unexpected %s frame from a producer", ErrProtocol, f.typ)
		}
	}
}

// reserve takes the buffer a data frame's credit reserved.
func (in *remoteIn) reserve(backlog int) (*Buffer, error) {
	g := in.g
	g.mu.Lock()
	defer g.mu.Unlock()
	var err error
	if g.mu.grants, err = g.mu.credits.Received(in.idx, backlog, g.mu.grants); err != nil {
		g.mu.grants = g.mu.grants[:0]
		return nil, err
	}
	in.backlog = backlog
	g.dispatchLocked()
	if n := len(g.mu.free); n > 0 {
		b := g.mu.free[n-1]
		g.mu.free = g.mu.free[:n-1]
		return b, nil
	}
	if g.mu.allocated >= g.limit {
		// The credits never grant more than the buffers: a bug, not a peer.
		panic(fmt.Sprintf("netstack: gate out of buffers with credit given (%d allocated)", g.mu.allocated))
	}
	g.mu.allocated++
	return &Buffer{B: make([]byte, 0, g.opts.BufferSize)}, nil
}

// finish ends a served stream: on a clean close the consumer closes its
// side; on a failure it tells the producer (if it can) and the gate.
func (in *remoteIn) finish(s *quic.Stream, err error) {
	g := in.g
	g.mu.Lock()
	closed := in.state == inClosed
	if !closed {
		in.state = inEnded
		if err != nil {
			in.state = inFailed
		}
	}
	g.mu.grants = g.mu.credits.Ended(in.idx, g.mu.grants)
	g.dispatchLocked()
	g.mu.Unlock()
	if err == nil {
		// The producer's FIN follows its close frame: wait for it (a
		// second at most) rather than stop its sending half-way.
		in.wmu.Lock()
		_ = s.Close()
		in.wmu.Unlock()
		_ = s.SetReadDeadline(time.Now().Add(time.Second))
		_, _ = io.Copy(io.Discard, s)
		s.CancelRead(codeClosed)
		return
	}
	if closed || errors.Is(err, ErrClosed) {
		in.wmu.Lock()
		_ = s.Close()
		in.wmu.Unlock()
		s.CancelRead(codeClosed)
		return
	}
	err = fmt.Errorf("netstack: receiving channel %q: %w", in.id, err)
	_ = g.gate.Push(in.ch, Message{Err: err})
	if errors.Is(err, ErrProtocol) {
		in.wmu.Lock()
		refuse(s, closeFailed, err.Error())
		in.wmu.Unlock()
	} else {
		s.CancelWrite(codeClosed)
		s.CancelRead(codeClosed)
	}
}

// Release takes a processed buffer back: credit for the channel, or a
// floating buffer back to the pool.
func (in *remoteIn) Release(b *Buffer) {
	g := in.g
	g.mu.Lock()
	g.mu.free = append(g.mu.free, b)
	g.mu.grants = g.mu.credits.Released(in.idx, g.mu.grants)
	g.dispatchLocked()
	g.mu.Unlock()
}

func (in *remoteIn) Stats() ChannelStats {
	g := in.g
	g.mu.Lock()
	defer g.mu.Unlock()
	return ChannelStats{Credits: g.mu.credits.Outstanding(in.idx), Backlog: in.backlog}
}

// Close unregisters the channel and resets its stream, if any.
func (in *remoteIn) Close() error {
	g := in.g
	g.t.unregister(in)
	g.mu.Lock()
	prev, s := in.state, in.stream
	in.state = inClosed
	g.mu.Unlock()
	if prev == inAttached {
		s.CancelRead(codeClosed)
		s.CancelWrite(codeClosed)
	}
	return nil
}
