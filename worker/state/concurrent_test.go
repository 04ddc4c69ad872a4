package state

import (
	"fmt"
	"strconv"
	"sync"
	"testing"

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
