package state

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/internal/snapshot"
	"github.com/weirstream/weir/wasmabi"
)

// withAndWithoutWAL runs test on a fresh pebble backend with the WAL on,
// then off.
func withAndWithoutWAL(t *testing.T, base PebbleOptions, test func(t *testing.T, p *Pebble, c *fakeClock, opts PebbleOptions)) {
	for _, noWAL := range []bool{false, true} {
		t.Run(fmt.Sprint("no-wal=", noWAL), func(t *testing.T) {
			c := &fakeClock{}
			opts := base
			opts.DisableWAL = noWAL
			p, err := OpenPebble(t.TempDir(), c.clock, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			test(t, p, c, opts)
		})
	}
}

func TestPebbleCheckpoint(t *testing.T) {
	withAndWithoutWAL(t, testPebbleOptions, func(t *testing.T, p *Pebble, c *fakeClock, opts PebbleOptions) {
		noWAL := opts.DisableWAL
		name := Name{Job: "j", Operator: "op", State: "v"}
		v, err := p.RegisterState(name, wasmabi.StateValue, Options{})
		if err != nil {
			t.Fatal(err)
		}
		write := func(round int) {
			for kg := uint16(0); kg < 16; kg++ {
				for i := 0; i < 50; i++ {
					if err := p.Put(v, kg, []byte(fmt.Sprint("k", i)), nil, []byte(fmt.Sprint(round, "/", kg, "/", i))); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		check := func(dir string, round int) {
			t.Helper()
			q, err := OpenPebble(dir, c.clock, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			qv, err := q.RegisterState(name, wasmabi.StateValue, Options{})
			if err != nil {
				t.Fatal(err)
			}
			for kg := uint16(0); kg < 8; kg++ {
				for i := 0; i < 50; i++ {
					got, ok := mustGet(t, q, qv, kg, fmt.Sprint("k", i), "")
					if want := fmt.Sprint(round, "/", kg, "/", i); !ok || got != want {
						t.Fatalf("checkpoint %s: kg %d key %d: %q %v, want %q", dir, kg, i, got, ok, want)
					}
				}
			}
		}
		r := keygroup.Range{Start: 0, End: 7}
		base := t.TempDir()
		write(1)
		ck1, err := p.Checkpoint(filepath.Join(base, "1"), r, nil)
		if err != nil {
			t.Fatal(err)
		}
		write(2)
		ck2, err := p.Checkpoint(filepath.Join(base, "2"), r, ck1)
		if err != nil {
			t.Fatal(err)
		}
		check(ck1.Dir, 1)
		check(ck2.Dir, 2)
		if noWAL { // the memtables were flushed: sstables, some shared
			var shared, fresh int
			for _, f := range ck2.Files {
				if f.SST && f.Shared {
					shared++
				} else if f.SST {
					fresh++
				}
			}
			if shared == 0 || fresh == 0 {
				t.Fatalf("second checkpoint: %d shared and %d new sstables, want some of each: %+v", shared, fresh, ck2.Files)
			}
		}
		if _, err := p.Checkpoint(filepath.Join(base, "1"), r, nil); err == nil {
			t.Fatal("checkpoint into an existing directory accepted")
		}
	})
}

// A checkpoint opened with OpenCheckpoint gives the same canonical
// snapshot of its key groups as the live database did at the checkpoint:
// keyed state and timers.
func TestOpenCheckpointSnapshotsLikeTheLiveDatabase(t *testing.T) {
	c := &fakeClock{}
	p, err := OpenPebble(t.TempDir(), c.clock, testPebbleOptions)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	name := Name{Job: "j", Operator: "op", State: "m"}
	m, err := p.RegisterState(name, wasmabi.StateMap, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tm, err := p.RegisterTimers("j", "op")
	if err != nil {
		t.Fatal(err)
	}
	for kg := uint16(0); kg < 16; kg++ {
		for i := 0; i < 20; i++ {
			if err := p.Put(m, kg, []byte(fmt.Sprint("k", i)), []byte(fmt.Sprint("u", i%3)), []byte(fmt.Sprint(kg, "/", i))); err != nil {
				t.Fatal(err)
			}
			if err := p.AddTimer(tm, kg, wasmabi.EventTime, int64(i*10), []byte(fmt.Sprint("k", i)), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	sub := snapshot.Subtask{Index: 1, Parallelism: 2, MaxParallelism: 16}
	canonical := func(b Backend) []byte { return snapshotBytes(t, b, "j", "op", sub) }
	want := canonical(p)
	ck, err := p.Checkpoint(filepath.Join(t.TempDir(), "ck"), sub.Range(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Changes after the checkpoint are not in it.
	if err := p.AddTimer(tm, 12, wasmabi.EventTime, 999, []byte("late"), nil); err != nil {
		t.Fatal(err)
	}
	q, err := OpenCheckpoint(ck.Dir, PebbleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if jobs := q.JobsOf("op"); len(jobs) != 1 || jobs[0] != "j" {
		t.Fatalf("jobs of op: %v", jobs)
	}
	if got := canonical(q); !bytes.Equal(got, want) {
		t.Fatalf("the checkpoint's canonical snapshot (%d bytes) differs from the live one's (%d bytes)", len(got), len(want))
	}
	if len(want) < 1000 {
		t.Fatalf("snapshot of %d bytes: the test wrote too little", len(want))
	}
}

// The subtasks of one checkpoint flush the shared database once: the
// second operator's checkpoint of the same id names no new sstable, yet
// holds what it wrote after the first one's flush (the WAL it copies
// carries it). Without the WAL, or at the next checkpoint, each flushes.
// The defaults (a 64 MiB memtable) and 8 MiB written and flushed first,
// so the memtable's capacity has grown past the 4 MiB the WAL may carry.
func TestPebbleCheckpointFlushesOncePerCheckpoint(t *testing.T) {
	withAndWithoutWAL(t, PebbleOptions{}, func(t *testing.T, p *Pebble, c *fakeClock, opts PebbleOptions) {
		noWAL := opts.DisableWAL
		ops := map[string]ID{}
		var err error
		for _, op := range []string{"a", "b"} {
			if ops[op], err = p.RegisterState(Name{Job: "j", Operator: op, State: "v"}, wasmabi.StateValue, Options{}); err != nil {
				t.Fatal(err)
			}
		}
		write := func(op string, round int) {
			for kg := uint16(0); kg < 8; kg++ {
				if err := p.Put(ops[op], kg, []byte("k"), nil, []byte(fmt.Sprint(op, round))); err != nil {
					t.Fatal(err)
				}
			}
		}
		r := keygroup.Range{Start: 0, End: 7}
		base := t.TempDir()
		ssts := func(ck *PebbleCheckpoint) map[string]bool {
			m := map[string]bool{}
			for _, f := range ck.Files {
				if f.SST {
					m[f.Name] = true
				}
			}
			return m
		}
		take := func(op string, id uint64) *PebbleCheckpoint {
			t.Helper()
			ck, err := p.CheckpointOf(filepath.Join(base, fmt.Sprint(op, id)), Owner{Job: "j", Operators: []string{op}, Checkpoint: id}, r, nil)
			if err != nil {
				t.Fatal(err)
			}
			return ck
		}
		holds := func(ck *PebbleCheckpoint, op string, round int) {
			t.Helper()
			q, err := OpenCheckpoint(ck.Dir, PebbleOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			id, err := q.RegisterState(Name{Job: "j", Operator: op, State: "v"}, wasmabi.StateValue, Options{})
			if err != nil {
				t.Fatal(err)
			}
			for kg := uint16(0); kg < 8; kg++ {
				if got, ok := mustGet(t, q, id, kg, "k", ""); !ok || got != fmt.Sprint(op, round) {
					t.Fatalf("checkpoint %s, %s key group %d: %q %v, want %q", ck.Dir, op, kg, got, ok, fmt.Sprint(op, round))
				}
			}
		}
		big := bytes.Repeat([]byte("x"), 1024)
		for i := 0; i < 8192; i++ {
			if err := p.Put(ops["a"], uint16(i%8), []byte(fmt.Sprint("big", i)), nil, big); err != nil {
				t.Fatal(err)
			}
		}
		if err := errors.Join(p.Flush(), p.db.Flush()); err != nil {
			t.Fatal(err)
		}
		write("a", 1)
		write("b", 1)
		a1 := take("a", 1)
		write("b", 2) // after a's flush of checkpoint 1
		b1 := take("b", 1)
		holds(a1, "a", 1)
		holds(b1, "b", 2)
		newIn := func(ck, than *PebbleCheckpoint) int {
			n, old := 0, ssts(than)
			for name := range ssts(ck) {
				if !old[name] {
					n++
				}
			}
			return n
		}
		if n := newIn(b1, a1); (n > 0) != noWAL {
			t.Fatalf("b's checkpoint 1 names %d sstables a's does not (flushed: %v), want a flush only without the WAL: %v vs %v", n, n > 0, b1.Files, a1.Files)
		}
		write("a", 3)
		if a2 := take("a", 2); newIn(a2, b1) == 0 {
			t.Fatalf("a's checkpoint 2 did not flush: %v vs %v", a2.Files, b1.Files)
		}
	})
}
