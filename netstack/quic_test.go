package netstack

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

var testCA = sync.OnceValue(func() *CA {
	ca, err := NewCA("test cluster")
	if err != nil {
		panic(err)
	}
	return ca
})

func newTransport(t *testing.T, opts Options) *Transport {
	t.Helper()
	if opts.CA == nil {
		opts.CA = testCA()
	}
	tr, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// checkNoLeak fails t if goroutines started after it was called are
// still running once the test's cleanups ran.
func checkNoLeak(t *testing.T) {
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for runtime.NumGoroutine() > base {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Fatalf("%d goroutines left, %d before:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
			}
			<-tick.C
		}
	})
}

// request waits for a buffer of sp.
func request(t *testing.T, sp Subpartition) *Buffer {
	for {
		if b := sp.Request(); b != nil {
			return b
		}
		select {
		case <-sp.Available():
		case <-time.After(20 * time.Second):
			t.Error("timed out waiting for a buffer")
			return nil
		}
	}
}

// produce sends n buffers numbered 0..n-1 (size bytes each, the number in
// the first 8), then an ordinary event with Value n, then closes.
func produce(t *testing.T, sp Subpartition, n, size int) {
	for i := range n {
		b := request(t, sp)
		if b == nil {
			return
		}
		b.B = binary.LittleEndian.AppendUint64(b.B, uint64(i))
		for len(b.B) < size {
			b.B = append(b.B, byte(i))
		}
		b.Count = 1
		if err := sp.Send(b); err != nil {
			t.Errorf("sending buffer %d: %v", i, err)
			return
		}
	}
	if err := sp.SendEvent(Event{Kind: 9, Value: int64(n)}); err != nil {
		t.Errorf("sending end: %v", err)
	}
	if err := sp.Close(); err != nil {
		t.Errorf("closing: %v", err)
	}
}

// next waits for the gate's next message.
func next(t *testing.T, g *InputGate) (int, Message) {
	t.Helper()
	for {
		if ch, m, ok := g.Next(); ok {
			return ch, m
		}
		select {
		case <-g.Notify():
		case <-time.After(20 * time.Second):
			t.Fatal("timed out waiting for a message")
		}
	}
}

func TestQUICManyChannelsInOrderExactlyOnce(t *testing.T) {
	checkNoLeak(t)
	const chans, perChan, size = 4, 3000, 1000
	gopts := GateOptions{Exclusive: 2, Floating: 3, BufferSize: 1024}
	a, b := newTransport(t, Options{}), newTransport(t, Options{})
	gate := NewInputGate()
	var rcs []RemoteChannel
	for i := range chans {
		rcs = append(rcs, RemoteChannel{ID: ChannelID(fmt.Sprintf("job/0/e/%d/0", i)), Ch: gate.AddChannel(nil)})
	}
	rg, err := b.ListenGate(gate, gopts, rcs...)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range chans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sp, err := a.Dial(context.Background(), b.Addr(), rcs[i].ID, 3, 1024)
			if err != nil {
				t.Error(err)
				return
			}
			produce(t, sp, perChan, size)
		}()
	}
	limit := gopts.Exclusive*chans + gopts.Floating // buffers the gate may ever hold
	nextSeq := make([]int, chans)
	ended := 0
	for ended < chans {
		ch, m := next(t, gate)
		if m.Err != nil {
			t.Fatalf("channel %d failed: %v", ch, m.Err)
		}
		if m.Buf == nil {
			if m.Event.Kind != 9 || int(m.Event.Value) != perChan || nextSeq[ch] != perChan {
				t.Fatalf("channel %d: event %+v after %d buffers", ch, m.Event, nextSeq[ch])
			}
			ended++
			continue
		}
		if q := gate.Queued(); q > limit+chans {
			t.Fatalf("%d messages queued at the gate, credits allow %d buffers", q, limit)
		}
		if n := int(binary.LittleEndian.Uint64(m.Buf.B)); n != nextSeq[ch] || len(m.Buf.B) != size || m.Buf.Count != 1 {
			t.Fatalf("channel %d: buffer %d (%d bytes), want %d", ch, n, len(m.Buf.B), nextSeq[ch])
		}
		nextSeq[ch]++
		gate.Release(ch, m.Buf)
	}
	wg.Wait()
	rg.mu.Lock()
	allocated := rg.mu.allocated
	rg.mu.Unlock()
	if allocated > limit {
		t.Fatalf("gate allocated %d buffers, credits allow %d", allocated, limit)
	}
	// One connection serves every channel between the pair.
	a.mu.Lock()
	np := len(a.mu.peers)
	a.mu.Unlock()
	if np != 1 {
		t.Fatalf("%d connections from a to b, want 1", np)
	}
}

// A consumer that does not read: the producer fills the credit and its
// own pool, then Request returns nil; the gate holds exactly the buffers
// the credits allow. A priority event then keeps its place behind the
// producer's backlog and overtakes at the gate; an ordinary event stays
// behind the buffers.
func TestQUICSlowConsumerAndPriority(t *testing.T) {
	checkNoLeak(t)
	const exclusive, floating, pool = 2, 2, 3
	a, b := newTransport(t, Options{}), newTransport(t, Options{})
	gate := NewInputGate()
	rg, err := b.ListenGate(gate, GateOptions{Exclusive: exclusive, Floating: floating, BufferSize: 64}, RemoteChannel{ID: "slow", Ch: gate.AddChannel(nil)})
	if err != nil {
		t.Fatal(err)
	}
	sp, err := a.Dial(context.Background(), b.Addr(), "slow", pool, 64)
	if err != nil {
		t.Fatal(err)
	}
	sent := 0
	// Fill until the producer is out of buffers and credit: the backlog
	// announcements bring the floating credit on the way.
	waitFor(t, "the producer to block", func() bool {
		for {
			buf := sp.Request()
			if buf == nil {
				break
			}
			buf.B = append(buf.B, byte(sent))
			buf.Count = 1
			must(t, sp.Send(buf))
			sent++
		}
		s := sp.Stats()
		return s.Credits == 0 && s.Backlog == pool && gate.Queued() == exclusive+floating
	})
	if want := exclusive + floating + pool; sent != want {
		t.Fatalf("producer sent %d buffers before blocking, want %d (credits %d + its pool %d)", sent, want, exclusive+floating, pool)
	}
	// The priority event is sent while buffers wait for credit at the
	// producer: it keeps its place behind them there (the consumer must
	// not see buffers sent before it after it), then overtakes at the
	// gate whatever is queued there when it arrives. The ordinary event
	// stays behind every buffer.
	must(t, sp.SendEvent(Event{Kind: 2, Priority: true, Value: 200}))
	must(t, sp.SendEvent(Event{Kind: 1, Value: 100}))
	var got []int
	prioAt := -1
	for len(got) < sent || prioAt < 0 {
		ch, m := next(t, gate)
		if m.Buf == nil {
			if m.Event.Value != 200 || prioAt >= 0 {
				t.Fatalf("event %+v after %d buffers, want the priority event once", m.Event, len(got))
			}
			prioAt = len(got)
			continue
		}
		got = append(got, int(m.Buf.B[0]))
		gate.Release(ch, m.Buf)
	}
	for i, n := range got {
		if n != i {
			t.Fatalf("buffers in order %v", got)
		}
	}
	if prioAt < exclusive+floating || prioAt > sent {
		t.Fatalf("priority event after %d of %d buffers: want it behind the %d the gate held when it was sent", prioAt, sent, exclusive+floating)
	}
	if _, m := next(t, gate); m.Buf != nil || m.Event.Value != 100 {
		t.Fatalf("after the buffers %+v, want the ordinary event", m)
	}
	must(t, sp.Close())
	must(t, rg.Close())
}

// The consumer may register a channel after its producer dialled; a
// channel nobody registers is refused after ChannelWait.
func TestQUICLateRegistrationAndRefusal(t *testing.T) {
	checkNoLeak(t)
	a, b := newTransport(t, Options{}), newTransport(t, Options{ChannelWait: 300 * time.Millisecond})
	late, err := a.Dial(context.Background(), b.Addr(), "late", 2, 64)
	if err != nil {
		t.Fatal(err)
	}
	orphan, err := a.Dial(context.Background(), b.Addr(), "orphan", 2, 64)
	if err != nil {
		t.Fatal(err)
	}
	gate := NewInputGate()
	if _, err := b.ListenGate(gate, GateOptions{BufferSize: 64}, RemoteChannel{ID: "late", Ch: gate.AddChannel(nil)}); err != nil {
		t.Fatal(err)
	}
	produced := make(chan struct{})
	go func() { defer close(produced); produce(t, late, 10, 20) }()
	defer func() { <-produced }()
	for i := 0; i < 10; {
		ch, m := next(t, gate)
		if m.Err != nil {
			t.Fatal(m.Err)
		}
		if m.Buf != nil {
			i++
			gate.Release(ch, m.Buf)
		}
	}
	// A second producer for a channel, and a producer with buffers over
	// the consumer's size, are refused with the reason.
	second, err := a.Dial(context.Background(), b.Addr(), "late", 2, 64)
	if err != nil {
		t.Fatal(err)
	}
	gate2 := NewInputGate()
	if _, err := b.ListenGate(gate2, GateOptions{BufferSize: 64}, RemoteChannel{ID: "small", Ch: gate2.AddChannel(nil)}); err != nil {
		t.Fatal(err)
	}
	big, err := a.Dial(context.Background(), b.Addr(), "small", 2, 128)
	if err != nil {
		t.Fatal(err)
	}
	for sp, want := range map[Subpartition]string{second: `channel "late" already had a producer`, big: "buffer size 128 exceeds the consumer's 64"} {
		waitFor(t, "a refusal", func() bool { return sp.SendEvent(Event{}) != nil })
		if err := sp.Close(); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), want) {
			t.Fatalf("refusal %v, want %q", err, want)
		}
	}
	waitFor(t, "the orphan channel to be refused", func() bool {
		return errors.Is(orphan.SendEvent(Event{}), ErrRefused)
	})
	if err := orphan.Close(); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), `no channel "orphan" registered`) {
		t.Fatalf("orphan close: %v", err)
	}
}

// rawClient opens a QUIC connection to tr with a leaf of ca, trusting
// roots, as a hostile or foreign peer would.
func rawClient(t *testing.T, tr *Transport, ca, roots *CA) (*quic.Conn, error) {
	t.Helper()
	cert, err := ca.Issue("raw")
	if err != nil {
		t.Fatal(err)
	}
	conf := tlsConfig(roots, cert)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return quic.DialAddr(ctx, tr.Addr(), conf, &quic.Config{})
}

// A peer that breaks the protocol fails its own channel, with the reason
// sent back to it; the other channels of the same gate go on.
func TestQUICProtocolViolationFailsOnlyItsChannel(t *testing.T) {
	checkNoLeak(t)
	a, b := newTransport(t, Options{}), newTransport(t, Options{})
	bad := map[string][]byte{
		"no credit": appendData(appendData(appendData(nil, 1, 0, []byte("a")), 1, 0, []byte("b")), 1, 0, []byte("c")),
		"oversize":  appendData(nil, 1, 0, make([]byte, 65)),
		"garbage":   {7, 7, 7},
		"credit":    appendCount(nil, frameCredit, 1),
	}
	gate := NewInputGate()
	good := gate.AddChannel(nil)
	rcs := []RemoteChannel{{ID: "good", Ch: good}}
	chOf := map[string]int{}
	for name := range bad {
		ch := gate.AddChannel(nil)
		chOf[name] = ch
		rcs = append(rcs, RemoteChannel{ID: ChannelID(name), Ch: ch})
	}
	if _, err := b.ListenGate(gate, GateOptions{Exclusive: 2, Floating: 1, BufferSize: 64}, rcs...); err != nil {
		t.Fatal(err)
	}
	conn, err := rawClient(t, b, testCA(), testCA())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	replies := make(chan string, len(bad))
	for name, data := range bad {
		s, err := conn.OpenStreamSync(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write(append(appendHello(nil, ChannelID(name), 64), data...)); err != nil {
			t.Fatal(err)
		}
		go func() {
			br := bufio.NewReader(s)
			var f frame
			for {
				if err := readFrame(br, 0, &f); err != nil {
					replies <- name + ": " + err.Error()
					return
				}
				if f.typ == frameClose {
					replies <- name + ": " + f.msg
					return
				}
			}
		}()
	}
	sp, err := a.Dial(context.Background(), b.Addr(), "good", 2, 64)
	if err != nil {
		t.Fatal(err)
	}
	produced := make(chan struct{})
	go func() { defer close(produced); produce(t, sp, 50, 30) }()
	defer func() { <-produced }()
	failed := map[int]bool{}
	goodN := 0
	for goodN < 50 || len(failed) < len(bad) {
		ch, m := next(t, gate)
		switch {
		case m.Err != nil:
			if ch == good || !errors.Is(m.Err, ErrProtocol) || failed[ch] {
				t.Fatalf("channel %d: failure %v", ch, m.Err)
			}
			failed[ch] = true
		case ch == good && m.Buf != nil:
			if n := int(binary.LittleEndian.Uint64(m.Buf.B)); n != goodN {
				t.Fatalf("good channel: buffer %d, want %d", n, goodN)
			}
			goodN++
			gate.Release(ch, m.Buf)
		case m.Buf != nil:
			gate.Release(ch, m.Buf) // what a bad peer sent within its credit
		}
	}
	for range bad {
		r := <-replies
		if !strings.Contains(r, "protocol violation") {
			t.Errorf("reply to a bad peer: %s", r)
		}
	}
	for name, ch := range chOf {
		if !failed[ch] {
			t.Errorf("%s: channel not failed", name)
		}
	}
}

// A worker with another cluster's certificate is refused, whichever side
// it is on.
func TestQUICForeignCertificateRefused(t *testing.T) {
	checkNoLeak(t)
	other, err := NewCA("other cluster")
	if err != nil {
		t.Fatal(err)
	}
	a, foreign := newTransport(t, Options{}), newTransport(t, Options{CA: other})
	gate := NewInputGate()
	if _, err := a.ListenGate(gate, GateOptions{}, RemoteChannel{ID: "x", Ch: gate.AddChannel(nil)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := foreign.Dial(ctx, a.Addr(), "x", 1, 64); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a foreign worker dialled in: %v", err)
	}
	if _, err := a.Dial(ctx, foreign.Addr(), "y", 1, 64); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("dialled a foreign worker: %v", err)
	}
	// A client trusting our CA but holding another's leaf: the server
	// refuses it (the client may only learn at its first stream).
	conn, err := rawClient(t, a, other, testCA())
	if err == nil {
		s, serr := conn.OpenStreamSync(ctx)
		if serr == nil {
			_, serr = s.Write(appendHello(nil, "x", 64))
		}
		<-conn.Context().Done()
		err = context.Cause(conn.Context())
	}
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a foreign client was not refused: %v", err)
	}
	if gate.Queued() != 0 {
		t.Fatal("a foreign client reached the gate")
	}
}

// Close with channels open and producers blocked on credit returns
// promptly and leaves no goroutine behind.
func TestQUICCloseWithOpenStreams(t *testing.T) {
	checkNoLeak(t)
	a, err := New(Options{CA: testCA()})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Options{CA: testCA()})
	if err != nil {
		t.Fatal(err)
	}
	gate := NewInputGate()
	var rcs []RemoteChannel
	for i := range 3 {
		rcs = append(rcs, RemoteChannel{ID: ChannelID(fmt.Sprint("c", i)), Ch: gate.AddChannel(nil)})
	}
	if _, err := b.ListenGate(gate, GateOptions{BufferSize: 64}, rcs...); err != nil {
		t.Fatal(err)
	}
	var sps []Subpartition
	for _, rc := range rcs {
		sp, err := a.Dial(context.Background(), b.Addr(), rc.ID, 2, 64)
		if err != nil {
			t.Fatal(err)
		}
		sps = append(sps, sp)
		for buf := sp.Request(); buf != nil; buf = sp.Request() {
			buf.B = append(buf.B, 1)
			must(t, sp.Send(buf))
		}
	}
	waitFor(t, "buffers at the gate", func() bool { return gate.Queued() > 0 })
	done := make(chan struct{})
	go func() {
		a.Close()
		b.Close()
		for _, sp := range sps {
			_ = sp.Close()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Close hangs with open streams")
	}
	if _, err := a.Dial(context.Background(), b.Addr(), "late", 1, 64); !errors.Is(err, ErrClosed) {
		t.Fatalf("dial after close: %v", err)
	}
	must(t, a.Close()) // idempotent
}

// Concurrent dials of one peer share one connection.
func TestQUICConcurrentDialsCollapse(t *testing.T) {
	checkNoLeak(t)
	a, b := newTransport(t, Options{}), newTransport(t, Options{})
	const n = 8
	gate := NewInputGate()
	var rcs []RemoteChannel
	for i := range n {
		rcs = append(rcs, RemoteChannel{ID: ChannelID(fmt.Sprint("d", i)), Ch: gate.AddChannel(nil)})
	}
	if _, err := b.ListenGate(gate, GateOptions{BufferSize: 64}, rcs...); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, rc := range rcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sp, err := a.Dial(context.Background(), b.Addr(), rc.ID, 1, 64)
			if err != nil {
				t.Error(err)
				return
			}
			produce(t, sp, 1, 8)
		}()
	}
	for ended := 0; ended < n; {
		ch, m := next(t, gate)
		if m.Buf != nil {
			gate.Release(ch, m.Buf)
		} else if m.Err != nil {
			t.Fatal(m.Err)
		} else {
			ended++
		}
	}
	wg.Wait()
	b.mu.Lock()
	np := len(b.mu.peers)
	b.mu.Unlock()
	if np != 1 {
		t.Fatalf("b has %d connections from a, want 1", np)
	}
}

func TestOptionsValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		opts Options
		want string
	}{
		"no CA":     {Options{}, "Options.CA is required"},
		"no key":    {Options{CA: &CA{Cert: testCA().Cert}}, "Options.Certificate is required"},
		"window":    {Options{CA: testCA(), StreamWindow: 1000}, "StreamWindow"},
		"conn":      {Options{CA: testCA(), StreamWindow: 1 << 20, ConnWindow: 1 << 19}, "ConnWindow"},
		"addr":      {Options{CA: testCA(), Addr: "nonsense:port:x"}, "Options.Addr"},
		"negative":  {Options{CA: testCA(), DrainTimeout: -1}, "negative"},
		"streams":   {Options{CA: testCA(), MaxStreams: -1}, "MaxStreams"},
		"defaulted": {Options{CA: testCA()}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			tc.opts.EnsureDefaults()
			err := tc.opts.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate: %v, want %q", err, tc.want)
			}
		})
	}
	tr := newTransport(t, Options{})
	g := NewInputGate()
	g.AddChannel(nil)
	if _, err := tr.ListenGate(g, GateOptions{BufferSize: 4 << 20}, RemoteChannel{ID: "w", Ch: 0}); err == nil || !strings.Contains(err.Error(), "StreamWindow") {
		t.Fatalf("a gate over the stream window: %v", err)
	}
	if _, err := tr.ListenGate(g, GateOptions{}, RemoteChannel{ID: "w", Ch: 1}); err == nil || !strings.Contains(err.Error(), "no channel 1") {
		t.Fatalf("a gate channel that does not exist: %v", err)
	}
	if _, err := tr.ListenGate(g, GateOptions{}, RemoteChannel{ID: "w", Ch: 0}, RemoteChannel{ID: "w", Ch: 0}); err == nil || !strings.Contains(err.Error(), "named twice") {
		t.Fatalf("an id twice: %v", err)
	}
}

// A producer's worker that goes away fails the consumer's channels (the
// task runtime fails the task), and a consumer's that goes away fails the
// producer's sends.
func TestQUICPeerGoneFailsChannels(t *testing.T) {
	checkNoLeak(t)
	a, b := newTransport(t, Options{}), newTransport(t, Options{})
	c := newTransport(t, Options{})
	gate := NewInputGate()
	if _, err := b.ListenGate(gate, GateOptions{BufferSize: 64}, RemoteChannel{ID: "p0", Ch: gate.AddChannel(nil)}, RemoteChannel{ID: "p1", Ch: gate.AddChannel(nil)}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []ChannelID{"p0", "p1"} {
		sp, err := a.Dial(context.Background(), b.Addr(), id, 2, 64)
		if err != nil {
			t.Fatal(err)
		}
		must(t, sp.SendEvent(Event{Kind: 1}))
	}
	for range 2 {
		if _, m := next(t, gate); m.Err != nil || m.Event.Kind != 1 {
			t.Fatalf("before the loss: %+v", m)
		}
	}
	must(t, a.Close())
	failed := map[int]bool{}
	for len(failed) < 2 {
		ch, m := next(t, gate)
		if m.Err == nil {
			t.Fatalf("channel %d: %+v, want its failure", ch, m)
		}
		failed[ch] = true
	}

	// The other way round: c produces to b, b goes away.
	gate2 := NewInputGate()
	if _, err := b.ListenGate(gate2, GateOptions{BufferSize: 64}, RemoteChannel{ID: "q", Ch: gate2.AddChannel(nil)}); err != nil {
		t.Fatal(err)
	}
	sp, err := c.Dial(context.Background(), b.Addr(), "q", 2, 64)
	if err != nil {
		t.Fatal(err)
	}
	must(t, sp.SendEvent(Event{Kind: 1}))
	next(t, gate2)
	must(t, b.Close())
	waitFor(t, "sends to fail", func() bool { return sp.SendEvent(Event{}) != nil })
	if err := sp.Close(); err == nil {
		t.Fatal("Close of a channel whose consumer went away reports no failure")
	}
}
