package minicluster

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/coordinator/checkpoint"
	"github.com/weirstream/weir/internal/ckptmeta"
	"github.com/weirstream/weir/internal/ckptstore"
)

// endingSpec is two independent chains in one job: "early" ends its
// input long before "late" does. (Their sinks write out.jsonl and
// wins.jsonl, the files committed reads.)
const endingSpec = `
name: ending
parallelism: PAR
max_parallelism: 64
modules: {m: .}
checkpoints: {interval: 40ms, retained: 5}
sources:
  - uid: early
    connector: datagen
    options: {count: 3000, keys: 13, seed: 3, rate: 30000}
    watermark: {strategy: none}
  - uid: late
    connector: datagen
    options: {count: 40000, keys: 17, seed: 4, rate: 20000}
    watermark: {strategy: none}
operators:
  - uid: kitchen-early
    module: m
    operator: mc_kitchen
    inputs: [{from: early, partition: key_by}]
  - uid: kitchen-late
    module: m
    operator: mc_kitchen
    inputs: [{from: late, partition: key_by}]
sinks:
  - uid: out-early
    connector: file
    options: {path: OUT/out.jsonl, format: jsonl}
    inputs: [kitchen-early]
  - uid: out-late
    connector: file
    options: {path: OUT/wins.jsonl, format: jsonl}
    inputs: [kitchen-late]
`

func endingJob(t *testing.T, out string, par int, o CheckpointOptions) *Job {
	t.Helper()
	return prepareSpec(t, strings.NewReplacer("PAR", strconv.Itoa(par), "OUT", out).Replace(endingSpec), out, o)
}

// A job is cut off while it ends: one chain has ended its input (its
// output written, its operators finished) and the other runs. The
// checkpoint restored holds the ended subtasks' final state; their
// output is committed by checkpoints, not at their end, so the resumed
// job, here at another parallelism, writes nothing twice and loses
// nothing: its committed output equals an uninterrupted run's. (Before
// the final checkpoint, an ended sink committed its last part at once,
// and a restore from before its end wrote it again: the run checks that
// no output is visible before a checkpoint holds it.)
func TestCutWhileEndingWritesNothingTwice(t *testing.T) {
	whole := t.TempDir()
	j := endingJob(t, whole, 2, CheckpointOptions{Dir: t.TempDir()})
	if err := runToEnd(t, j); err != nil {
		t.Fatal(err)
	}
	j.Close()
	want := committed(t, whole)
	if !slices.ContainsFunc(want, func(l string) bool { return strings.HasPrefix(l, "out.jsonl ") }) ||
		!slices.ContainsFunc(want, func(l string) bool { return strings.HasPrefix(l, "wins.jsonl ") }) {
		t.Fatalf("the uninterrupted run committed %d lines, not both chains' output", len(want))
	}

	out, ck := t.TempDir(), t.TempDir()
	a := endingJob(t, out, 2, CheckpointOptions{Dir: ck})
	job := a.desc.Job
	store := &ckptstore.Dir{Root: ck}
	run, ended, stop := startWatched(t, a)
	defer stop() // on a failure: nothing left writing the temporary folders
	deadline := time.After(time.Minute)
	tick := time.NewTicker(2 * time.Millisecond)
	for cut := false; !cut; {
		select {
		case err := <-ended:
			t.Fatalf("the run ended (%v) before a checkpoint held the early chain ended", err)
		case <-deadline:
			t.Fatal("no checkpoint with the early chain ended within a minute")
		case <-tick.C:
			// What is committed is in a completed checkpoint: the early
			// chain's output (all written at its end) is visible only
			// once a checkpoint holds the chain ended. Read in that order.
			visible := slices.ContainsFunc(committed(t, out), func(l string) bool { return strings.HasPrefix(l, "out.jsonl ") })
			early := endedIn(t, store, job, "out-early")
			if visible && !early {
				t.Fatal("the early chain's output was committed before a completed checkpoint held its end")
			}
			cut = early && !endedIn(t, store, job, "out-late")
		}
	}
	tick.Stop()
	run.Cancel()
	<-ended
	a.Close()

	b := endingJob(t, out, 3, CheckpointOptions{Dir: ck, Resume: true})
	defer b.Close()
	if err := runToEnd(t, b); err != nil {
		t.Fatal(err)
	}
	if b.Restored == nil {
		t.Fatal("the second run restored nothing")
	}
	p := b.Restored.Payload
	if op := p.Operator("kitchen-early"); op == nil || !op.Ended() {
		t.Fatalf("restored checkpoint %d: kitchen-early not ended: %+v", p.Checkpoint, op)
	}
	if got := committed(t, out); !slices.Equal(got, want) {
		t.Fatalf("committed output after the resume: %d lines, want %d: %s", len(got), len(want), firstDiff(got, want))
	}
}

// endedIn says whether the latest completed checkpoint of job has every
// subtask of operator uid ended.
func endedIn(t *testing.T, s ckptstore.Storage, job, uid string) bool {
	t.Helper()
	ns, err := s.Completed(job)
	if err != nil || len(ns) == 0 {
		return false
	}
	md, err := s.Metadata(job, ns[len(ns)-1])
	if err != nil {
		t.Fatal(err)
	}
	p, err := ckptmeta.Decode(md.Payload)
	if err != nil {
		t.Fatal(err)
	}
	op := p.Operator(uid)
	return op != nil && op.Ended()
}

// Two savepoints requested while the job ends: the source has ended and
// snapshots each at once, while the sink's task still drains; their
// barriers can no longer come, so the sink's task keeps both triggers
// and snapshots both when it ends. Both complete, and the job's final
// checkpoint (its interval is an hour) commits every record.
func TestSavepointsWhileEnding(t *testing.T) {
	// The source ends at once; the paced sink drains for 3 s after.
	out := t.TempDir()
	j := tagJob(t, out, 1, 1, 2500, 800, "{interval: 1h}", CheckpointOptions{Dir: t.TempDir()})
	defer j.Close()
	run, ended, stop := startWatched(t, j)
	defer stop()
	// A subtask's watermark is the maximum once it ended its input.
	endedIn := func(v int) bool {
		for _, s := range run.Subtasks() {
			if s.Vertex == v && s.Watermark != math.MaxInt64 {
				return false
			}
		}
		return true
	}
	deadline := time.After(time.Minute)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !endedIn(0) {
		select {
		case err := <-ended:
			t.Fatalf("the run ended (%v) before its source did", err)
		case <-deadline:
			t.Fatal("the source did not end within a minute")
		case <-tick.C:
		}
	}
	dir := t.TempDir()
	var reqs []string
	for _, r := range []string{"first", "second"} {
		if _, err := j.Savepoint(r, dir, nil); err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, r)
	}
	if endedIn(1) {
		t.Fatal("the sink's task ended before the savepoints were requested: it drains too fast for this test")
	}
	for _, r := range reqs {
		for {
			info, ok := j.ckpt.SavepointStatus(r)
			if !ok {
				t.Fatalf("savepoint %s unknown", r)
			}
			if info.State == checkpoint.SavepointCompleted {
				break
			}
			if info.State == checkpoint.SavepointFailed {
				t.Fatalf("savepoint %s failed: %s", r, info.Reason)
			}
			select {
			case err := <-ended:
				t.Fatalf("the run ended (%v) before savepoint %s completed", err, r)
			case <-deadline:
				t.Fatalf("savepoint %s not completed within a minute (%s)", r, info.State)
			case <-tick.C:
			}
		}
	}
	select {
	case err := <-ended:
		if err != nil {
			t.Fatal(err)
		}
	case <-deadline:
		t.Fatal("the run did not end within a minute")
	}
	if got := len(committed(t, out)); got != 2500 {
		t.Fatalf("%d lines committed, want 2500", got)
	}
}
