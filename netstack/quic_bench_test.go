package netstack

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkQUICChannel moves full buffers over one channel between two
// transports: the transport's throughput without record encoding.
func BenchmarkQUICChannel(b *testing.B) {
	for _, c := range []struct{ size, exclusive, floating int }{
		{32 << 10, 2, 8},
		{32 << 10, 2, 30},
		{64 << 10, 2, 14},
	} {
		b.Run(fmt.Sprintf("size=%dK/credits=%d", c.size>>10, c.exclusive+c.floating), func(b *testing.B) {
			ca := testCA()
			tx, err := New(Options{CA: ca})
			if err != nil {
				b.Fatal(err)
			}
			defer tx.Close()
			rx, err := New(Options{CA: ca})
			if err != nil {
				b.Fatal(err)
			}
			defer rx.Close()
			gate := NewInputGate()
			if _, err := rx.ListenGate(gate, GateOptions{Exclusive: c.exclusive, Floating: c.floating, BufferSize: c.size},
				RemoteChannel{ID: "bench", Ch: gate.AddChannel(nil)}); err != nil {
				b.Fatal(err)
			}
			sp, err := tx.Dial(context.Background(), rx.Addr(), "bench", c.exclusive+c.floating, c.size)
			if err != nil {
				b.Fatal(err)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				for n := 0; n < b.N; {
					ch, m, ok := gate.Next()
					if !ok {
						<-gate.Notify()
						continue
					}
					if m.Buf != nil {
						n++
						gate.Release(ch, m.Buf)
					}
				}
			}()
			b.SetBytes(int64(c.size))
			b.ResetTimer()
			for range b.N {
				buf := sp.Request()
				for buf == nil {
					<-sp.Available()
					buf = sp.Request()
				}
				buf.B = buf.B[:c.size]
				buf.Count = 1
				if err := sp.Send(buf); err != nil {
					b.Fatal(err)
				}
			}
			<-done
			b.StopTimer()
			sp.Close()
		})
	}
}
