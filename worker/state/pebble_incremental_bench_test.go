package state

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/weirstream/weir/internal/snapshot"
	"github.com/weirstream/weir/wasmabi"
)

// BenchmarkCheckpointIncrementalVsFull compares, on a database of
// 200,000 keys (100-byte values) of which 1% changes between checkpoints,
// a full canonical snapshot (Snapshot and WriteTo, what a full checkpoint
// uploads) with an incremental one (Pebble.CheckpointOf relative to the
// previous checkpoint, and the bytes of the files the previous did not
// have, what an incremental checkpoint uploads). It reports the bytes to
// upload per checkpoint and the synchronous part's time.
//
//	go test -run '^$' -bench CheckpointIncrementalVsFull -benchtime 20x ./worker/state/
func BenchmarkCheckpointIncrementalVsFull(b *testing.B) {
	const keys, value = 200_000, 100
	sub := snapshot.Subtask{Index: 0, Parallelism: 1, MaxParallelism: 128}
	setup := func(b *testing.B) (*Pebble, ID) {
		p, err := OpenPebble(b.TempDir(), nil, PebbleOptions{})
		if err != nil {
			b.Fatal(err)
		}
		id, err := p.RegisterState(Name{Job: "j", Operator: "op", State: "v"}, wasmabi.StateValue, Options{})
		if err != nil {
			b.Fatal(err)
		}
		v := make([]byte, value)
		for i := 0; i < keys; i++ {
			k := []byte(fmt.Sprint("key-", i))
			if err := p.Put(id, uint16(i%128), k, nil, v); err != nil {
				b.Fatal(err)
			}
		}
		return p, id
	}
	round := 0
	update := func(b *testing.B, p *Pebble, id ID) {
		round++
		v := make([]byte, value)
		v[0] = byte(round)
		for i := 0; i < keys/100; i++ {
			n := (round*7919 + i*101) % keys
			if err := p.Put(id, uint16(n%128), []byte(fmt.Sprint("key-", n)), nil, v); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("full", func(b *testing.B) {
		p, id := setup(b)
		defer p.Close()
		var bytes int64
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			update(b, p, id)
			b.StartTimer()
			s, err := p.Snapshot("j", "op", sub)
			if err != nil {
				b.Fatal(err)
			}
			n, err := s.WriteTo(io.Discard)
			s.Release()
			if err != nil {
				b.Fatal(err)
			}
			bytes += n
		}
		b.ReportMetric(float64(bytes)/float64(b.N), "upload-B/op")
	})
	b.Run("incremental", func(b *testing.B) {
		p, id := setup(b)
		defer p.Close()
		base := b.TempDir()
		own := Owner{Job: "j", Operators: []string{"op"}}
		// The first checkpoint uploads everything; the benchmark measures
		// the ones after it.
		prev, err := p.CheckpointOf(filepath.Join(base, "0"), own, sub.Range(), nil)
		if err != nil {
			b.Fatal(err)
		}
		var bytes int64
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			update(b, p, id)
			b.StartTimer()
			c, err := p.CheckpointOf(filepath.Join(base, fmt.Sprint(i+1)), own, sub.Range(), prev)
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			for _, f := range c.Files {
				if !f.Shared {
					bytes += f.Size
				}
			}
			os.RemoveAll(prev.Dir)
			prev = c
			b.StartTimer()
		}
		b.ReportMetric(float64(bytes)/float64(b.N), "upload-B/op")
	})
}
