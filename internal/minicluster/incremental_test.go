package minicluster

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/ckptmeta"
	"github.com/weirstream/weir/internal/ckptstore"
)

// Incremental checkpoints on storage, checked by listing the shared folder
// (not by asking the code that wrote it): a checkpoint uploads exactly
// the sstables its predecessor of the same subtask did not name, discarding
// checkpoints beyond retained deletes exactly the shared files no retained
// checkpoint names, and a damaged shared sstable makes Latest fall back to
// the checkpoint before.
func TestIncrementalCheckpointsOnStorage(t *testing.T) {
	out, ck := t.TempDir(), t.TempDir()
	text := strings.NewReplacer("PAR", "2", "OUT", out, "BACKEND", "pebble", "MODE", "aligned",
		"COUNT", "5000000", "RATE", "15000", "incremental: INCR}", "incremental: true, retained: 3}").Replace(restoreSpec)
	if !strings.Contains(text, "retained: 3") {
		t.Fatal("the spec template changed: no retained field set")
	}
	j := prepareSpec(t, text, out, CheckpointOptions{Dir: ck})
	run, err := j.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The input lasts minutes, far longer than seven checkpoints take on
	// a slow machine; the run is canceled once they completed.
	done := make(chan error, 1)
	go func() { done <- run.Wait() }()
	deadline := time.After(2 * time.Minute)
	tick := time.NewTicker(5 * time.Millisecond)
	var ended error
wait:
	for j.Checkpoints().Completed < 7 {
		select {
		case <-tick.C:
		case <-deadline:
			break wait
		case ended = <-done:
			done <- ended
			break wait
		}
	}
	tick.Stop()
	run.Cancel()
	<-done
	j.Close()
	if n := j.Checkpoints().Completed; n < 7 {
		t.Fatalf("%d checkpoints completed (run ended: %v), want 7 within two minutes", n, ended)
	}

	store := &ckptstore.Dir{Root: ck}
	job := j.desc.Job
	ids, err := store.Completed(job)
	if err != nil || len(ids) != 3 {
		t.Fatalf("retained checkpoints %v (%v), want 3", ids, err)
	}
	// What the storage holds, listed from the file system.
	ents, err := os.ReadDir(filepath.Join(ck, job, "shared"))
	if err != nil {
		t.Fatal(err)
	}
	onDisk := map[string]bool{}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".") {
			onDisk[e.Name()] = true
		}
	}
	// What the retained checkpoints name, per checkpoint and subtask: the
	// sstables' names in their databases, and their shared names.
	type key struct {
		ckpt uint64
		uid  string
		sub  int
	}
	paths := map[key]map[string]string{} // pebble name -> shared name
	named := map[string]bool{}
	for _, n := range ids {
		md, err := store.Metadata(job, n)
		if err != nil {
			t.Fatal(err)
		}
		p, err := ckptmeta.Decode(md.Payload)
		if err != nil {
			t.Fatal(err)
		}
		for _, op := range p.Operators {
			for _, st := range op.Subtasks {
				for _, f := range st.Files {
					if f.Role != ckptmeta.RolePebbleSST {
						continue
					}
					k := key{n, op.UID, st.Index}
					if paths[k] == nil {
						paths[k] = map[string]string{}
					}
					paths[k][f.Path] = f.Name
					named[f.Name] = true
				}
			}
		}
	}
	if len(paths) == 0 {
		t.Fatal("the retained checkpoints name no sstables")
	}
	// Never a named file missing; every file not named was in flight
	// when the run was canceled (first uploaded after the last completed
	// checkpoint), so the discards deleted exactly the others.
	latest := ids[len(ids)-1]
	for name := range named {
		if !onDisk[name] {
			t.Errorf("shared file %s is named by a retained checkpoint and not on disk", name)
		}
	}
	for name := range onDisk {
		if origin, ok := ckptmeta.SharedOrigin(name); !named[name] && (!ok || origin <= latest) {
			t.Errorf("shared file %s (first uploaded by checkpoint %d) is named by no retained checkpoint %v and still on disk", name, origin, ids)
		}
	}
	// Uploaded by checkpoint n (its name on disk says so): exactly the
	// sstables of a subtask that its checkpoint n-1 did not name.
	shared, uploaded := 0, 0
	for k, ps := range paths {
		prev := paths[key{k.ckpt - 1, k.uid, k.sub}]
		if prev == nil {
			continue
		}
		var want, got []string
		for p := range ps {
			if _, ok := prev[p]; !ok {
				want = append(want, p)
			} else {
				shared++
				if ps[p] != prev[p] {
					t.Errorf("%s subtask %d: checkpoint %d names %s as %s, checkpoint %d as %s", k.uid, k.sub, k.ckpt, p, ps[p], k.ckpt-1, prev[p])
				}
			}
		}
		prefix := subtaskPrefix(t, slices.Collect(maps.Values(ps))[0])
		for name := range onDisk {
			if origin, _ := ckptmeta.SharedOrigin(name); origin == k.ckpt && strings.HasPrefix(name, prefix) {
				got = append(got, name[strings.LastIndex(name, ".c"+strconv.FormatUint(k.ckpt, 10)+".")+len(".c"+strconv.FormatUint(k.ckpt, 10)+"."):])
			}
		}
		slices.Sort(want)
		slices.Sort(got)
		uploaded += len(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s subtask %d: checkpoint %d uploaded %v, want the sstables checkpoint %d did not name: %v", k.uid, k.sub, k.ckpt, got, k.ckpt-1, want)
		}
	}
	if shared == 0 || uploaded == 0 {
		t.Fatalf("%d sstables shared by consecutive checkpoints, %d uploaded anew: want some of each", shared, uploaded)
	}
	t.Logf("retained checkpoints %v: %d sstables named, %d shared files on disk; %d references to the previous checkpoint's sstables, %d uploaded anew", ids, len(named), len(onDisk), shared, uploaded)

	// Damage a shared sstable only the latest checkpoint names: Latest
	// falls back to the one before and says why.
	var victim string
	for k, ps := range paths {
		if k.ckpt != latest {
			continue
		}
		for p, name := range ps {
			if _, ok := paths[key{latest - 1, k.uid, k.sub}][p]; !ok {
				victim = name
			}
		}
	}
	if victim == "" {
		t.Fatal("the latest checkpoint uploaded no sstable of its own")
	}
	path := filepath.Join(ck, job, "shared", victim)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	md, skipped, err := ckptstore.Latest(store, job)
	if err != nil || md.Checkpoint != latest-1 || len(skipped) != 1 || !strings.Contains(skipped[0].Reason, victim) {
		t.Fatalf("latest after damaging %s: checkpoint %d, skipped %+v, %v; want %d", victim, md.Checkpoint, skipped, err, latest-1)
	}
}

// subtaskPrefix is the part of a shared name that names its writer:
// attempt, vertex, subtask and database.
func subtaskPrefix(t *testing.T, name string) string {
	t.Helper()
	parts := strings.SplitN(name, ".", 5)
	if len(parts) != 5 {
		t.Fatalf("shared name %s", name)
	}
	return strings.Join(parts[:4], ".") + "."
}
