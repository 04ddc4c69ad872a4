package state_test

import (
	"bytes"
	"fmt"
	"math"

	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/internal/snapshot"
	"github.com/weirstream/weir/wasmabi"
	"github.com/weirstream/weir/worker/state"
)

// A barrier and a rescale as the task runtime does them: each subtask
// takes the synchronous part on its own goroutine and writes the snapshot
// asynchronously; a new run at another parallelism restores from all the
// files before its tasks start.
func ExampleBackend_Snapshot() {
	const maxPar = 8
	count := state.Name{Job: "wordcount", Operator: "counter", State: "count"}
	words := []string{"a", "b", "c", "d", "e", "f"}

	// Run 1: parallelism 2, one backend per subtask (two workers).
	var files [][]byte
	for i := 0; i < 2; i++ {
		sub := snapshot.Subtask{Index: i, Parallelism: 2, MaxParallelism: maxPar}
		b := state.NewHeap(nil)
		id, _ := b.RegisterState(count, wasmabi.StateValue, state.Options{})
		timers, _ := b.RegisterTimers("wordcount", "counter")
		for n, w := range words {
			kg := keygroup.Of([]byte(w), maxPar)
			if !sub.Range().Contains(kg) {
				continue // another subtask's key
			}
			_ = b.Put(id, uint16(kg), []byte(w), nil, []byte(fmt.Sprint(n+1)))
			_ = b.AddTimer(timers, uint16(kg), wasmabi.EventTime, int64(100+n), []byte(w), nil)
		}
		sn, _ := b.Snapshot("wordcount", "counter", sub) // at the barrier, on the task's goroutine
		var buf bytes.Buffer
		_, _ = sn.WriteTo(&buf) // the asynchronous part (any goroutine)
		sn.Release()
		files = append(files, buf.Bytes())
	}

	// Run 2: parallelism 3 on pebble or heap alike; each subtask reads
	// every file and takes its own key groups.
	for j := 0; j < 3; j++ {
		var readers []*snapshot.Reader
		for _, f := range files {
			r, err := snapshot.Open(bytes.NewReader(f), int64(len(f)), "chk-1")
			if err != nil {
				panic(err)
			}
			readers = append(readers, r)
		}
		sub := snapshot.Subtask{Index: j, Parallelism: 3, MaxParallelism: maxPar}
		b := state.NewHeap(nil)
		if err := b.Restore("wordcount", sub, readers); err != nil {
			panic(err)
		}
		id, _ := b.RegisterState(count, wasmabi.StateValue, state.Options{})
		timers, _ := b.RegisterTimers("wordcount", "counter")
		due, _ := b.PopDueTimers(timers, sub.Range(), wasmabi.EventTime, math.MaxInt64, nil)
		for _, t := range due {
			v, _, _ := b.Get(id, t.KeyGroup, t.Key, nil, nil)
			fmt.Printf("subtask %d: %s=%s (timer %d)\n", j, t.Key, v, t.Time)
		}
	}
	// Key groups of a-f among 8 (internal/keygroup's reference): 4 3 3 5 1
	// 6; at parallelism 3, subtask 0 owns 0-2, 1 owns 3-5, 2 owns 6-7.

	// Unordered output:
	// subtask 0: e=5 (timer 104)
	// subtask 1: a=1 (timer 100)
	// subtask 1: b=2 (timer 101)
	// subtask 1: c=3 (timer 102)
	// subtask 1: d=4 (timer 103)
	// subtask 2: f=6 (timer 105)
}
