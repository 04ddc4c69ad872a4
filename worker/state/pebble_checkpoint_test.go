package state

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/wasmabi"
)

func TestPebbleCheckpoint(t *testing.T) {
	for _, noWAL := range []bool{false, true} {
		t.Run(fmt.Sprint("no-wal=", noWAL), func(t *testing.T) {
			c := &fakeClock{}
			opts := testPebbleOptions
			opts.DisableWAL = noWAL
			p, err := OpenPebble(t.TempDir(), c.clock, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
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
}
