package state

import (
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/internal/snapshot"
	"github.com/weirstream/weir/wasmabi"
)

const benchKeys = 10_000

// benchSlots are the record keys of the benchmarks and their key groups.
type benchSlots struct {
	keys [][]byte
	kgs  []uint16
}

func newBenchSlots() benchSlots {
	var s benchSlots
	for i := 0; i < benchKeys; i++ {
		k := []byte(fmt.Sprintf("user-%06d", i))
		s.keys = append(s.keys, k)
		s.kgs = append(s.kgs, uint16(keygroup.Of(k, keygroup.DefaultMaxParallelism)))
	}
	return s
}

// benchBackends runs f against each backend. The pebble one is as a
// worker would open it (default sizes), and again with no pending writes,
// so that every operation reaches pebble.
func benchBackends(b *testing.B, f func(b *testing.B, be Backend)) {
	b.Run("heap", func(b *testing.B) { f(b, NewHeap(nil)) })
	for _, c := range []struct {
		name string
		opts PebbleOptions
	}{{"pebble", PebbleOptions{}}, {"pebble-direct", PebbleOptions{WriteCache: -1}}} {
		b.Run(c.name, func(b *testing.B) {
			p, err := OpenPebble(b.TempDir(), nil, c.opts)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			f(b, p)
		})
	}
}

func benchRegister(b *testing.B, be Backend, kind wasmabi.StateKind) ID {
	id, err := be.Register("bench", "s", kind, Options{})
	if err != nil {
		b.Fatal(err)
	}
	return id
}

// BenchmarkValueGet reads an 8-byte value state of one of 10k keys.
func BenchmarkValueGet(b *testing.B) {
	s := newBenchSlots()
	benchBackends(b, func(b *testing.B, be Backend) {
		id := benchRegister(b, be, wasmabi.StateValue)
		val := []byte("12345678")
		for i := range s.keys {
			if err := be.Put(id, s.kgs[i], s.keys[i], nil, val); err != nil {
				b.Fatal(err)
			}
		}
		dst := make([]byte, 0, 64)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			j := i % benchKeys
			out, ok, err := be.Get(id, s.kgs[j], s.keys[j], nil, dst[:0])
			if err != nil || !ok || len(out) != 8 {
				b.Fatal(out, ok, err)
			}
		}
	})
}

// BenchmarkValuePut overwrites an 8-byte value state of one of 10k keys.
func BenchmarkValuePut(b *testing.B) {
	s := newBenchSlots()
	benchBackends(b, func(b *testing.B, be Backend) {
		id := benchRegister(b, be, wasmabi.StateValue)
		val := []byte("12345678")
		for i := range s.keys {
			if err := be.Put(id, s.kgs[i], s.keys[i], nil, val); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			j := i % benchKeys
			val[0] = byte(i)
			if err := be.Put(id, s.kgs[j], s.keys[j], nil, val); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkListAppend appends an 8-byte item to the list state of one of
// 10k keys; the lists are cleared (untimed) every 64 rounds so they stay
// short.
func BenchmarkListAppend(b *testing.B) {
	s := newBenchSlots()
	benchBackends(b, func(b *testing.B, be Backend) {
		id := benchRegister(b, be, wasmabi.StateList)
		val := []byte("12345678")
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			j := i % benchKeys
			if j == 0 && i > 0 && (i/benchKeys)%64 == 0 {
				b.StopTimer()
				for k := range s.keys {
					if err := be.Clear(id, s.kgs[k], s.keys[k]); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
			}
			if err := be.Put(id, s.kgs[j], s.keys[j], nil, val); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkMapPut sets one of 16 user keys of the map state of one of 10k
// keys to an 8-byte value.
func BenchmarkMapPut(b *testing.B) {
	s := newBenchSlots()
	var ukeys [][]byte
	for i := 0; i < 16; i++ {
		ukeys = append(ukeys, []byte(fmt.Sprintf("field-%02d", i)))
	}
	benchBackends(b, func(b *testing.B, be Backend) {
		id := benchRegister(b, be, wasmabi.StateMap)
		val := []byte("12345678")
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			j := i % benchKeys
			if err := be.Put(id, s.kgs[j], s.keys[j], ukeys[(i/benchKeys)%16], val); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkListGet reads a 16-item list of one of 10k keys.
func BenchmarkListGet(b *testing.B) {
	s := newBenchSlots()
	benchBackends(b, func(b *testing.B, be Backend) {
		id := benchRegister(b, be, wasmabi.StateList)
		for r := 0; r < 16; r++ {
			for i := range s.keys {
				if err := be.Put(id, s.kgs[i], s.keys[i], nil, []byte("12345678")); err != nil {
					b.Fatal(err)
				}
			}
		}
		dst := make([]byte, 0, 1024)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			j := i % benchKeys
			out, ok, err := be.List(id, s.kgs[j], s.keys[j], dst[:0])
			if err != nil || !ok || len(out) != 16*12 {
				b.Fatal(len(out), ok, err)
			}
		}
	})
}

// BenchmarkSnapshotSync is the synchronous part of a snapshot (what the
// task's goroutine pays at a barrier) of an operator with a value and a
// map state over 10k keys in 128 key groups, with 1000 overwrites between
// barriers. sync-ns/op is the synchronous part alone; ns/op includes the
// writes and the asynchronous part.
func BenchmarkSnapshotSync(b *testing.B) {
	s := newBenchSlots()
	benchBackends(b, func(b *testing.B, be Backend) {
		v, err := be.RegisterState(Name{Job: "j", Operator: "op", State: "v"}, wasmabi.StateValue, Options{})
		if err != nil {
			b.Fatal(err)
		}
		m, err := be.RegisterState(Name{Job: "j", Operator: "op", State: "m"}, wasmabi.StateMap, Options{})
		if err != nil {
			b.Fatal(err)
		}
		val := []byte("12345678")
		for i := range s.keys {
			if err := errors.Join(be.Put(v, s.kgs[i], s.keys[i], nil, val), be.Put(m, s.kgs[i], s.keys[i], val, val)); err != nil {
				b.Fatal(err)
			}
		}
		sub := snapshot.Subtask{Index: 0, Parallelism: 1, MaxParallelism: keygroup.DefaultMaxParallelism}
		// Only the Snapshot call is timed, by hand: StopTimer and
		// StartTimer read the memory statistics, which stops the world
		// and would cost more than what is measured.
		var sync time.Duration
		for i := 0; i < b.N; i++ {
			for j := 0; j < 1000; j++ {
				k := (i*1000 + j) % benchKeys
				if err := be.Put(v, s.kgs[k], s.keys[k], nil, val); err != nil {
					b.Fatal(err)
				}
			}
			start := time.Now()
			sn, err := be.Snapshot("j", "op", sub)
			sync += time.Since(start)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := sn.WriteTo(io.Discard); err != nil {
				b.Fatal(err)
			}
			sn.Release()
		}
		b.ReportMetric(float64(sync.Nanoseconds())/float64(b.N), "sync-ns/op")
	})
}

// BenchmarkAddTimerExisting registers again a timer that exists, as a
// window operator does for every record of a window (one of 10k keys).
func BenchmarkAddTimerExisting(b *testing.B) {
	s := newBenchSlots()
	be := NewHeap(nil)
	id, _ := be.RegisterTimers("j", "op")
	for i := range s.keys {
		if err := be.AddTimer(id, s.kgs[i], wasmabi.EventTime, 1000, s.keys[i], []byte("window")); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := i % benchKeys
		if err := be.AddTimer(id, s.kgs[j], wasmabi.EventTime, 1000, s.keys[j], []byte("window")); err != nil {
			b.Fatal(err)
		}
	}
}
