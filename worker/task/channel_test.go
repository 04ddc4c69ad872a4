package task

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weirstream/weir/netstack"
	"github.com/weirstream/weir/wasmabi"
)

// A subtask blocked on output credits still takes priority events from
// its inputs, and leaves ordinary data queued for its main loop.
func TestBlockedWriterTakesPriorityEvents(t *testing.T) {
	st := &subtask{ctx: context.Background(), v: &Vertex{Name: "v"}, gate: netstack.NewInputGate(), wm: wasmabi.NoWatermark}
	in := st.gate.AddChannel(nil)
	st.inputs = []gateChannel{{wm: wasmabi.NoWatermark}}
	up := netstack.NewLocal(st.gate, in, 2, 64)

	down := netstack.NewInputGate()
	sp := netstack.NewLocal(down, down.AddChannel(nil), 1, 64)
	w := &writer{t: st, subs: []netstack.Subpartition{sp}, cur: make([]*netstack.Buffer, 1), size: 64, part: Forward, blocked: new(atomic.Int64)}

	b, err := w.take(0)
	if err != nil {
		t.Fatal(err)
	}
	b.B, b.Count = append(b.B, 1), 1
	if err := w.send(0); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := w.take(0); done <- err }() // no credit left: blocks

	data := up.Request()
	data.B, data.Count = append(data.B, 2), 1
	if err := up.Send(data); err != nil {
		t.Fatal(err)
	}
	if err := up.SendEvent(netstack.Event{Kind: evIdle, Priority: true}); err != nil {
		t.Fatal(err)
	}
	// The blocked writer handles the idle event; the data stays queued.
	deadline := time.Now().Add(10 * time.Second)
	poll := time.NewTicker(time.Millisecond)
	defer poll.Stop()
	for st.gate.Queued() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("priority event not taken while blocked: %d queued", st.gate.Queued())
		}
		<-poll.C
	}
	select {
	case err := <-done:
		t.Fatalf("take returned without credit: %v", err)
	default:
	}
	_, m, ok := down.Next()
	if !ok {
		t.Fatal("downstream got nothing")
	}
	down.Release(0, m.Buf) // the credit returns
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !st.inputs[0].idle {
		t.Fatal("the idle event was not applied")
	}
	if _, m, ok := st.gate.Next(); !ok || m.Buf == nil || m.Buf.B[0] != 2 {
		t.Fatalf("the queued data is gone: %v %+v", ok, m)
	}
}
