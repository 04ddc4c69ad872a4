package netstack

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// The QUIC transport: channels between workers.
//
// A worker process has one Transport, listening on one UDP socket, which
// also dials: so the remote address of a connection a peer opened is that
// peer's listening address, and one connection serves a pair of workers
// in both directions, whoever dialled it. Each channel is one
// bidirectional QUIC stream that the producer opens; it carries the
// producer's hello (channel id, buffer size), data, event, backlog and
// close frames one way and the consumer's credit and close frames the
// other way. A stream failure fails that channel only; a connection
// failure fails the channels on it; neither touches the process.

// ChannelID names a remote channel across the cluster: opaque to netstack
// (1 to 255 bytes), composed by the task runtime so that the producer and
// the consumer, deployed separately, name the same channel.
type ChannelID string

func (id ChannelID) validate() error {
	if len(id) == 0 || len(id) > maxChannelID {
		return fmt.Errorf("netstack: channel id %q must have 1 to %d bytes", id, maxChannelID)
	}
	return nil
}

// DefaultBufferSize is the buffer size of GateOptions and Dial by default.
const DefaultBufferSize = 32 << 10

// Options configure a Transport.
type Options struct {
	// Addr is the UDP address to listen on; default 127.0.0.1:0 (a free
	// port: Addr() tells which).
	Addr string
	// CA is the cluster's certificate authority (LoadOrCreateCA, ParseCA).
	// Required: peers must present a leaf it signed.
	CA *CA
	// Certificate is this worker's leaf; default: one CA issues now, which
	// needs CA.Key.
	Certificate *tls.Certificate
	// Name is the common name of an issued leaf; default "weir worker".
	Name string
	// HandshakeTimeout bounds a QUIC handshake and the wait for a new
	// stream's hello; default 5s.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection without traffic (keep-alives go
	// every IdleTimeout/3); default 30s.
	IdleTimeout time.Duration
	// ChannelWait is how long a stream for a channel id not registered
	// (ListenGate) waits before it is refused; default 10s, covering
	// producers deployed before their consumers.
	ChannelWait time.Duration
	// DrainTimeout is how long a producer's Close waits for its queued
	// buffers to get credit and go out; default 10s.
	DrainTimeout time.Duration
	// StreamWindow and ConnWindow are QUIC's receive windows per stream
	// and per connection. weir's credits bound what is in flight, so the
	// windows are set large enough never to limit below them: a stream
	// window below a gate's (exclusive+floating)*size is refused by
	// ListenGate. Defaults 8 MiB and 64 MiB.
	StreamWindow uint64
	ConnWindow   uint64
	// MaxStreams is how many channels a peer may have open on one
	// connection at once; default 4096.
	MaxStreams int64
}

// EnsureDefaults fills the zero fields with defaults.
func (o *Options) EnsureDefaults() {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.Name == "" {
		o.Name = "weir worker"
	}
	if o.HandshakeTimeout == 0 {
		o.HandshakeTimeout = 5 * time.Second
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = 30 * time.Second
	}
	if o.ChannelWait == 0 {
		o.ChannelWait = 10 * time.Second
	}
	if o.DrainTimeout == 0 {
		o.DrainTimeout = 10 * time.Second
	}
	if o.StreamWindow == 0 {
		o.StreamWindow = 8 << 20
	}
	if o.ConnWindow == 0 {
		o.ConnWindow = 64 << 20
	}
	if o.MaxStreams == 0 {
		o.MaxStreams = 4096
	}
}

// Validate reports the first option that cannot work.
func (o *Options) Validate() error {
	switch {
	case o.CA == nil || o.CA.Cert == nil:
		return errors.New("netstack: Options.CA is required (LoadOrCreateCA(dir) shares one CA between the coordinator and its workers)")
	case o.Certificate == nil && o.CA.Key == nil:
		return errors.New("netstack: Options.Certificate is required when the CA has no key")
	case o.HandshakeTimeout < 0, o.IdleTimeout < 0, o.ChannelWait < 0, o.DrainTimeout < 0:
		return errors.New("netstack: timeouts must not be negative")
	case o.StreamWindow < 64<<10:
		return fmt.Errorf("netstack: Options.StreamWindow %d is below 64 KiB", o.StreamWindow)
	case o.ConnWindow < o.StreamWindow:
		return fmt.Errorf("netstack: Options.ConnWindow %d is below StreamWindow %d", o.ConnWindow, o.StreamWindow)
	case o.MaxStreams < 1:
		return fmt.Errorf("netstack: Options.MaxStreams %d must be positive", o.MaxStreams)
	}
	if _, err := net.ResolveUDPAddr("udp", o.Addr); err != nil {
		return fmt.Errorf("netstack: Options.Addr: %w", err)
	}
	return nil
}

// Stream error codes (QUIC application codes on resets).
const (
	codeClosed   quic.StreamErrorCode = 0x100 // the channel closed or was aborted
	codeProtocol quic.StreamErrorCode = 0x101 // the peer broke the protocol
)

// Transport is one worker's end of the QUIC data plane: the consumer ends
// of the channels its gates registered (ListenGate) and the producer ends
// it dialled (Dial).
type Transport struct {
	opts   Options
	tls    *tls.Config
	qconf  *quic.Config
	udp    *net.UDPConn
	qt     *quic.Transport
	ln     *quic.Listener
	ctx    context.Context // done on Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the transport started

	mu struct {
		sync.Mutex
		closed bool
		peers  map[string]*peer     // by the peer's listening address
		dials  map[string]*dialCall // dials under way, by address
		// chans are the registered consumer channels; changed closes
		// (and is replaced) when one is added.
		chans   map[ChannelID]*remoteIn
		changed chan struct{}
	}
}

type peer struct {
	conn *quic.Conn
	key  string
}

type dialCall struct {
	done chan struct{}
	p    *peer
	err  error
}

// New starts a Transport listening on opts.Addr.
func New(opts Options) (*Transport, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	cert := opts.Certificate
	if cert == nil {
		c, err := opts.CA.Issue(opts.Name)
		if err != nil {
			return nil, err
		}
		cert = &c
	}
	addr, _ := net.ResolveUDPAddr("udp", opts.Addr)
	udp, err := net.ListenUDP("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("netstack: listening on %s: %w", opts.Addr, err)
	}
	t := &Transport{
		opts: opts,
		tls:  tlsConfig(opts.CA, *cert),
		qconf: &quic.Config{
			HandshakeIdleTimeout:           opts.HandshakeTimeout,
			MaxIdleTimeout:                 opts.IdleTimeout,
			KeepAlivePeriod:                opts.IdleTimeout / 3,
			InitialStreamReceiveWindow:     opts.StreamWindow,
			MaxStreamReceiveWindow:         opts.StreamWindow,
			InitialConnectionReceiveWindow: opts.ConnWindow,
			MaxConnectionReceiveWindow:     opts.ConnWindow,
			MaxIncomingStreams:             opts.MaxStreams,
			MaxIncomingUniStreams:          -1,
		},
		udp: udp,
	}
	t.qt = &quic.Transport{Conn: udp}
	t.ln, err = t.qt.Listen(t.tls, t.qconf)
	if err != nil {
		t.qt.Close()
		udp.Close()
		return nil, fmt.Errorf("netstack: listening on %s: %w", opts.Addr, err)
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.mu.peers = map[string]*peer{}
	t.mu.dials = map[string]*dialCall{}
	t.mu.chans = map[ChannelID]*remoteIn{}
	t.mu.changed = make(chan struct{})
	t.wg.Add(1)
	go t.acceptConns()
	return t, nil
}

// Addr is the address peers dial to reach this transport's channels: what
// the deployment descriptors carry as a consumer's address.
func (t *Transport) Addr() string { return t.udp.LocalAddr().String() }

// Close closes every connection, which fails the channels still open, and
// waits for every goroutine the transport started. It is idempotent.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		t.wg.Wait()
		return nil
	}
	t.mu.closed = true
	peers := make([]*peer, 0, len(t.mu.peers))
	for _, p := range t.mu.peers {
		peers = append(peers, p)
	}
	t.mu.Unlock()
	t.cancel()
	t.ln.Close()
	for _, p := range peers {
		p.conn.CloseWithError(0, "closing")
	}
	err := t.qt.Close()
	t.wg.Wait()
	return err
}

func (t *Transport) acceptConns() {
	defer t.wg.Done()
	for {
		conn, err := t.ln.Accept(t.ctx)
		if err != nil {
			return
		}
		t.addPeer(conn)
	}
}

// addPeer records conn as the connection to its peer, unless one is
// already there (both dialled at once: either serves), and serves the
// streams the peer opens on it.
func (t *Transport) addPeer(conn *quic.Conn) *peer {
	p := &peer{conn: conn, key: conn.RemoteAddr().String()}
	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		conn.CloseWithError(0, "closing")
		return p
	}
	if old := t.mu.peers[p.key]; old == nil || old.conn.Context().Err() != nil {
		t.mu.peers[p.key] = p
	}
	t.wg.Add(1)
	t.mu.Unlock()
	go t.serveConn(p)
	return p
}

func (t *Transport) serveConn(p *peer) {
	defer t.wg.Done()
	defer func() {
		t.mu.Lock()
		if t.mu.peers[p.key] == p {
			delete(t.mu.peers, p.key)
		}
		t.mu.Unlock()
		p.conn.CloseWithError(0, "closing")
	}()
	for {
		s, err := p.conn.AcceptStream(t.ctx)
		if err != nil {
			return
		}
		t.wg.Add(1)
		go t.serveStream(s)
	}
}

// peerFor returns the connection to addr, dialling it when there is none;
// concurrent calls for one address share one dial.
func (t *Transport) peerFor(ctx context.Context, addr string) (*peer, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("netstack: resolving %s: %w", addr, err)
	}
	key := ua.String()
	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		return nil, ErrClosed
	}
	if p := t.mu.peers[key]; p != nil && p.conn.Context().Err() == nil {
		t.mu.Unlock()
		return p, nil
	}
	call := t.mu.dials[key]
	if call == nil {
		call = &dialCall{done: make(chan struct{})}
		t.mu.dials[key] = call
		t.wg.Add(1)
		go t.dial(ua, call)
	}
	t.mu.Unlock()
	select {
	case <-call.done:
		return call.p, call.err
	case <-ctx.Done():
		return nil, fmt.Errorf("netstack: dialling %s: %w", key, ctx.Err())
	}
}

// dial runs one dial on the transport's own context, so that the callers
// waiting for it may give up one by one without failing the others.
func (t *Transport) dial(ua *net.UDPAddr, call *dialCall) {
	defer t.wg.Done()
	ctx, cancel := context.WithTimeout(t.ctx, 2*t.opts.HandshakeTimeout)
	defer cancel()
	conn, err := t.qt.Dial(ctx, ua, t.tls, t.qconf)
	if err != nil {
		call.err = fmt.Errorf("netstack: dialling %s: %w", ua, err)
	} else {
		call.p = t.addPeer(conn)
	}
	t.mu.Lock()
	delete(t.mu.dials, ua.String())
	t.mu.Unlock()
	close(call.done)
}

// serveStream handles a stream a peer opened: the producer end of a
// channel asking for its consumer.
func (t *Transport) serveStream(s *quic.Stream) {
	defer t.wg.Done()
	br := bufio.NewReaderSize(s, 64<<10)
	_ = s.SetReadDeadline(time.Now().Add(t.opts.HandshakeTimeout))
	var f frame
	err := readFrame(br, 0, &f)
	if err == nil && f.typ != frameHello {
		err = fmt.Errorf("%w: first frame is %s, not hello", ErrProtocol, f.typ)
	}
	if err != nil {
		refuse(s, closeFailed, fmt.Sprintf("reading hello: %v", err))
		return
	}
	_ = s.SetReadDeadline(time.Time{})
	in, err := t.awaitChannel(f.id)
	if err == nil {
		err = in.attach(s, f.size)
	}
	if err != nil {
		refuse(s, closeRefused, err.Error())
		return
	}
	in.serve(s, br)
}

// awaitChannel returns the consumer channel registered as id, waiting up
// to ChannelWait for it to be.
func (t *Transport) awaitChannel(id ChannelID) (*remoteIn, error) {
	var timeout <-chan time.Time
	for {
		t.mu.Lock()
		in, changed := t.mu.chans[id], t.mu.changed
		t.mu.Unlock()
		if in != nil {
			return in, nil
		}
		if timeout == nil {
			tm := time.NewTimer(t.opts.ChannelWait)
			defer tm.Stop()
			timeout = tm.C
		}
		select {
		case <-changed:
		case <-timeout:
			return nil, fmt.Errorf("no channel %q registered within %v", id, t.opts.ChannelWait)
		case <-t.ctx.Done():
			return nil, ErrClosed
		}
	}
}

func (t *Transport) register(chans []*remoteIn) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.closed {
		return ErrClosed
	}
	for i, in := range chans {
		if t.mu.chans[in.id] != nil {
			return fmt.Errorf("netstack: registering channel %q: already registered", in.id)
		}
		for _, o := range chans[:i] {
			if o.id == in.id {
				return fmt.Errorf("netstack: registering channel %q: named twice", in.id)
			}
		}
	}
	for _, in := range chans {
		t.mu.chans[in.id] = in
	}
	close(t.mu.changed)
	t.mu.changed = make(chan struct{})
	return nil
}

func (t *Transport) unregister(in *remoteIn) {
	t.mu.Lock()
	if t.mu.chans[in.id] == in {
		delete(t.mu.chans, in.id)
	}
	t.mu.Unlock()
}

// refuse tells the producer why, then ends the stream both ways. It
// reads on (discarding, for at most a second) until the producer ends its
// side, so that the producer reads the reason before its writes fail.
func refuse(s *quic.Stream, code uint8, msg string) {
	_ = s.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = s.Write(appendClose(nil, code, msg))
	_ = s.Close()
	_ = s.SetReadDeadline(time.Now().Add(time.Second))
	_, _ = io.Copy(io.Discard, s)
	s.CancelRead(codeProtocol)
}
