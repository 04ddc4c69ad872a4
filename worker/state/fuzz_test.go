package state

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
	"testing"

	"github.com/weirstream/weir/internal/snapshot"
)

// FuzzRestore restores fuzzed snapshots (checksum made valid, so the
// decoder and the restore see them) into a heap backend: it must never
// panic, and what it accepted must snapshot again into a valid file.
func FuzzRestore(f *testing.F) {
	c := &fakeClock{}
	w := &rsWorkload{t: &testing.T{}, rng: rand.New(rand.NewPCG(5, 5)), c: c, keys: []string{"a", "bb", "c"}, p: 1, m: newRSModel(1)}
	s := &rsSubtask{b: NewHeap(c.clock), r: snapshot.Subtask{Parallelism: 1, MaxParallelism: rsMaxPar}.Range()}
	s.register(w.t, "j")
	w.sets = [][]*rsSubtask{{s}}
	for i := 0; i < 60; i++ {
		w.step()
	}
	f.Add(snapshotBytes(f, s.b, "j", "op", snapshot.Subtask{Parallelism: 1, MaxParallelism: rsMaxPar}))
	table := crc32.MakeTable(crc32.Castagnoli)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 4 {
			return
		}
		b = append([]byte(nil), b...)
		binary.BigEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], table))
		r, err := snapshot.Open(bytes.NewReader(b), int64(len(b)), "fuzz")
		if err != nil {
			return
		}
		h := r.Header()
		target := snapshot.Subtask{Parallelism: 1, MaxParallelism: h.Subtask.MaxParallelism}
		// Restore needs every key group covered: give it the subtasks it
		// lacks as empty snapshots would, by restoring only this one's.
		if h.Subtask.Parallelism != 1 {
			target = h.Subtask
		}
		be := NewHeap(c.clock)
		if err := be.Restore("j", target, []*snapshot.Reader{r}); err != nil {
			return
		}
		again, err := be.Snapshot("j", h.Operator, target)
		if err != nil {
			t.Fatal(err)
		}
		defer again.Release()
		var out bytes.Buffer
		if _, err := again.WriteTo(&out); err != nil {
			t.Fatalf("restored a snapshot that does not snapshot again: %v", err)
		}
		if _, err := snapshot.Open(bytes.NewReader(out.Bytes()), int64(out.Len()), "again"); err != nil {
			t.Fatal(err)
		}
	})
}
