package netstack

import (
	"slices"
	"sync"
	"testing"
)

func TestGatePriorityOvertakesData(t *testing.T) {
	g := NewInputGate()
	ch := g.AddChannel(nil)
	sp := NewLocal(g, ch, 2, 64)
	b := sp.Request()
	b.B = append(b.B, 1)
	b.Count = 1
	must(t, sp.Send(b))
	must(t, sp.SendEvent(Event{Kind: 1, Value: 10}))
	must(t, sp.SendEvent(Event{Kind: 2, Priority: true, Value: 20}))
	var got []int64
	for {
		_, m, ok := g.Next()
		if !ok {
			break
		}
		if m.Buf != nil {
			got = append(got, -1)
			g.Release(ch, m.Buf)
		} else {
			got = append(got, m.Event.Value)
		}
	}
	if want := []int64{20, -1, 10}; !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v (priority first, then data and events in order)", got, want)
	}
	if s := sp.Stats(); s.Credits != 2 {
		t.Fatalf("credits after release = %d, want 2", s.Credits)
	}
}

func TestGateTakesTurns(t *testing.T) {
	g := NewInputGate()
	a, b := g.AddChannel(nil), g.AddChannel(nil)
	for i := range 3 {
		must(t, g.Push(a, Message{Event: Event{Value: int64(10 + i)}}))
	}
	must(t, g.Push(b, Message{Event: Event{Value: 20}}))
	var got []int64
	for {
		_, m, ok := g.Next()
		if !ok {
			break
		}
		got = append(got, m.Event.Value)
	}
	if want := []int64{10, 20, 11, 12}; !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}

// Producers on their own goroutines, one consumer: every buffer arrives
// once, in order per channel, and credits bound what is in flight.
func TestGateConcurrentLocal(t *testing.T) {
	const chans, perChan, credits = 4, 2000, 3
	g := NewInputGate()
	sps := make([]Subpartition, chans)
	for i := range chans {
		sps[i] = NewLocal(g, g.AddChannel(nil), credits, 16)
	}
	var wg sync.WaitGroup
	for i, sp := range sps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range perChan {
				b := sp.Request()
				for b == nil {
					<-sp.Available()
					b = sp.Request()
				}
				b.B = append(b.B, byte(n), byte(n>>8))
				b.Count = 1
				if err := sp.Send(b); err != nil {
					t.Error(err)
					return
				}
			}
			_ = sp.SendEvent(Event{Kind: 9, Value: int64(i)})
		}()
	}
	next := make([]int, chans)
	ended := 0
	for ended < chans {
		ch, m, ok := g.Next()
		if !ok {
			<-g.Notify()
			continue
		}
		if m.Buf == nil {
			if next[ch] != perChan {
				t.Fatalf("channel %d ended after %d buffers", ch, next[ch])
			}
			ended++
			continue
		}
		if q := g.Stats(ch).Queued; q > credits {
			t.Fatalf("channel %d has %d queued with %d credits", ch, q, credits)
		}
		n := int(m.Buf.B[0]) | int(m.Buf.B[1])<<8
		if n != next[ch]&0xffff {
			t.Fatalf("channel %d: buffer %d, want %d", ch, n, next[ch])
		}
		next[ch]++
		g.Release(ch, m.Buf)
	}
	wg.Wait()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A blocked channel yields nothing but its priority events; Peek sees its
// queued buffers; Unblock releases them in order, and the other channel
// flows throughout.
func TestGateBlockPeekUnblock(t *testing.T) {
	g := NewInputGate()
	a, b := g.AddChannel(nil), g.AddChannel(nil)
	spa, spb := NewLocal(g, a, 4, 64), NewLocal(g, b, 4, 64)
	send := func(sp Subpartition, v byte) {
		buf := sp.Request()
		buf.B = append(buf.B, v)
		buf.Count = 1
		must(t, sp.Send(buf))
	}
	g.Block(a)
	send(spa, 1)
	send(spa, 2)
	send(spb, 10)
	must(t, spa.SendEvent(Event{Kind: 3, Priority: true, Value: 7}))
	send(spa, 3) // after the priority event: not among those it overtook
	var peeked []byte
	g.Peek(a, 2, func(buf *Buffer) { peeked = append(peeked, buf.B[0]) })
	if !slices.Equal(peeked, []byte{1, 2}) {
		t.Fatalf("peek of the blocked channel = %v, want [1 2]", peeked)
	}
	var got []int
	ahead := -1
	take := func() {
		for {
			ch, m, ok := g.Next()
			if !ok {
				return
			}
			if m.Buf != nil {
				got = append(got, ch*100+int(m.Buf.B[0]))
				g.Release(ch, m.Buf)
			} else {
				got = append(got, -int(m.Event.Value))
				ahead = m.Event.Ahead
			}
		}
	}
	take()
	if ahead != 2 {
		t.Fatalf("the priority event overtook %d messages, want 2", ahead)
	}
	if want := []int{-7, 110}; !slices.Equal(got, want) {
		t.Fatalf("while blocked: %v, want %v (the priority event and the other channel only)", got, want)
	}
	g.Unblock(a)
	select {
	case <-g.Notify():
	default:
		t.Fatal("Unblock did not signal Notify")
	}
	got = got[:0]
	take()
	if want := []int{1, 2, 3}; !slices.Equal(got, want) {
		t.Fatalf("after Unblock: %v, want %v", got, want)
	}
}
