package state

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/internal/snapshot"
	"github.com/weirstream/weir/wasmabi"
)

// TestSubtasksShareIDs runs what a job with parallel subtasks does: several
// goroutines use the same state IDs, each on its own key groups. Under
// -race this fails if a backend shares anything per ID without a lock.
func TestSubtasksShareIDs(t *testing.T) {
	for name, open := range map[string]func(t *testing.T) Backend{
		"heap":   func(t *testing.T) Backend { return NewHeap((&fakeClock{}).clock) },
		"pebble": func(t *testing.T) Backend { return openTestPebble(t, t.TempDir(), &fakeClock{}) },
	} {
		t.Run(name, func(t *testing.T) {
			b := open(t)
			defer b.Close()
			v := mustRegister(t, b, "op", "v", wasmabi.StateValue, 0)
			l := mustRegister(t, b, "op", "l", wasmabi.StateList, 0)
			m := mustRegister(t, b, "op", "m", wasmabi.StateMap, 0)
			const workers, keys = 4, 200
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range keys {
						kg := uint16(w*10 + i%10) // disjoint key groups per worker
						key := []byte(fmt.Sprintf("w%d-k%d", w, i))
						val := []byte(strconv.Itoa(i))
						if err := b.Put(v, kg, key, nil, val); err != nil {
							errs <- err
							return
						}
						if err := b.Put(l, kg, key, nil, val); err != nil {
							errs <- err
							return
						}
						if err := b.Put(m, kg, key, val, val); err != nil {
							errs <- err
							return
						}
						got, ok, err := b.Get(v, kg, key, nil, nil)
						if err != nil || !ok || string(got) != string(val) {
							errs <- fmt.Errorf("worker %d key %s: got %q %v %v", w, key, got, ok, err)
							return
						}
						items, ok, err := b.List(l, kg, key, nil)
						if err != nil || !ok || string(items) != string(wasmabi.AppendItem(nil, val)) {
							errs <- fmt.Errorf("worker %d key %s: list %q %v %v", w, key, items, ok, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

// TestSnapshotWhileWriting is a barrier as a job has it: every subtask's
// goroutine takes the synchronous part of its snapshot and hands it to a
// goroutine of its own to write, then goes on overwriting, appending to,
// deleting and timing the same keys while the snapshot is written. Under
// -race this fails if the asynchronous part reads anything the task
// writes; the restored state must be the state at the barrier.
func TestSnapshotWhileWriting(t *testing.T) {
	const subtasks, maxPar, keys, rounds = 3, 12, 300, 4
	for _, kind := range []string{"heap", "pebble"} {
		t.Run(kind, func(t *testing.T) {
			c := &fakeClock{}
			var b Backend
			if kind == "heap" {
				b = NewHeap(c.clock)
			} else {
				b = openTestPebble(t, t.TempDir(), c)
			}
			defer b.Close()
			n := func(s string) Name { return Name{Job: "j", Operator: "op", State: s} }
			v, err1 := b.RegisterState(n("v"), wasmabi.StateValue, Options{})
			l, err2 := b.RegisterState(n("l"), wasmabi.StateList, Options{})
			m, err3 := b.RegisterState(n("m"), wasmabi.StateMap, Options{})
			tid, err4 := b.RegisterTimers("j", "op")
			if err := errors.Join(err1, err2, err3, err4); err != nil {
				t.Fatal(err)
			}
			files := make([][]byte, subtasks)
			var wg sync.WaitGroup
			errs := make(chan error, 2*subtasks)
			for w := range subtasks {
				wg.Add(1)
				go func() {
					defer wg.Done()
					sub := snapshot.Subtask{Index: w, Parallelism: subtasks, MaxParallelism: maxPar}
					r := sub.Range()
					var writer sync.WaitGroup
					defer writer.Wait()
					for round := range rounds {
						for i := range keys {
							kg := uint16(r.Start + i%r.Len())
							key := []byte(fmt.Sprintf("k%d", i))
							val := []byte(fmt.Sprintf("%d/%d", round, i))
							err := errors.Join(
								b.Put(v, kg, key, nil, val),
								b.Put(l, kg, key, nil, val),
								b.Put(m, kg, key, []byte{byte(round)}, val),
								b.AddTimer(tid, kg, wasmabi.EventTime, int64(round), key, nil),
							)
							if round == rounds-1 && i%2 == 0 {
								err = errors.Join(err, b.Clear(l, kg, key), b.Delete(v, kg, key, nil),
									b.DeleteTimer(tid, kg, wasmabi.EventTime, 0, key, nil))
							}
							if err != nil {
								errs <- err
								return
							}
						}
						if round == 1 { // the barrier
							sn, err := b.Snapshot("j", "op", sub)
							if err != nil {
								errs <- err
								return
							}
							writer.Add(1)
							go func() {
								defer writer.Done()
								defer sn.Release()
								var buf bytes.Buffer
								if _, err := sn.WriteTo(&buf); err != nil {
									errs <- err
								}
								files[w] = buf.Bytes()
							}()
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			// Restore at parallelism 1 and compare with the state after
			// round 1, computed here.
			var readers []*snapshot.Reader
			for _, f := range files {
				r, err := snapshot.Open(bytes.NewReader(f), int64(len(f)), "s")
				if err != nil {
					t.Fatal(err)
				}
				readers = append(readers, r)
			}
			h := NewHeap(c.clock)
			if err := h.Restore("j", snapshot.Subtask{Index: 0, Parallelism: 1, MaxParallelism: maxPar}, readers); err != nil {
				t.Fatal(err)
			}
			hv, _ := h.RegisterState(n("v"), wasmabi.StateValue, Options{})
			hl, _ := h.RegisterState(n("l"), wasmabi.StateList, Options{})
			hm, _ := h.RegisterState(n("m"), wasmabi.StateMap, Options{})
			htid, _ := h.RegisterTimers("j", "op")
			for w := range subtasks {
				r := keygroup.RangeFor(w, subtasks, maxPar)
				for i := range keys {
					kg := uint16(r.Start + i%r.Len())
					key := []byte(fmt.Sprintf("k%d", i))
					want := fmt.Sprintf("1/%d", i)
					got, _, err := h.Get(hv, kg, key, nil, nil)
					if err != nil || string(got) != want {
						t.Fatalf("subtask %d key %s kg %d: value %q %v, want %q", w, key, kg, got, err, want)
					}
					list, _, _ := h.List(hl, kg, key, nil)
					if wantL := wasmabi.AppendItem(wasmabi.AppendItem(nil, []byte(fmt.Sprintf("0/%d", i))), []byte(want)); !bytes.Equal(list, wantL) {
						t.Fatalf("subtask %d key %s: list %q, want %q", w, key, list, wantL)
					}
					ents, _, _ := h.Entries(hm, kg, key, nil)
					var wantM []byte
					for round := range 2 {
						wantM = wasmabi.AppendItem(wasmabi.AppendItem(wantM, []byte{byte(round)}), []byte(fmt.Sprintf("%d/%d", round, i)))
					}
					if !bytes.Equal(ents, wantM) {
						t.Fatalf("subtask %d key %s: map %q, want %q", w, key, ents, wantM)
					}
				}
			}
			due, err := h.PopDueTimers(htid, keygroup.Range{Start: 0, End: maxPar - 1}, wasmabi.EventTime, 100, nil)
			if err != nil || len(due) != 2*subtasks*keys {
				t.Fatalf("%d timers restored (%v), want %d", len(due), err, 2*subtasks*keys)
			}
		})
	}
}
