package minicluster

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	weir "github.com/weirstream/weir/sdk/go"
)

// badSpec is a small checkpointed job: a keyed counter into a file sink.
const badSpec = `
name: bad
parallelism: 2
max_parallelism: MAXPAR
modules: {m: .}
checkpoints: {interval: 30ms, retained: 3, tolerable_failures: TOLERATE}
sources:
  - uid: gen
    connector: datagen
    options: {count: COUNT, keys: 20, seed: 2, rate: 10000}
    watermark: {strategy: none}
operators:
  - uid: UID
    module: m
    operator: OPERATOR
    inputs: [{from: gen, partition: key_by}]
sinks:
  - uid: out
    connector: file
    options: {path: OUT/out.jsonl}
    inputs: [UID]
`

type badOptions struct {
	uid       string
	operator  string // default mc_kitchen
	maxPar    int
	tolerate  int
	count     int
	out, ckpt string
}

func badJob(t *testing.T, o badOptions, co CheckpointOptions) (*Job, error) {
	t.Helper()
	if o.uid == "" {
		o.uid = "kitchen"
	}
	if o.maxPar == 0 {
		o.maxPar = 64
	}
	if o.count == 0 {
		o.count = 4000
	}
	if o.operator == "" {
		o.operator = "mc_kitchen"
	}
	text := strings.NewReplacer("MAXPAR", strconv.Itoa(o.maxPar), "TOLERATE", strconv.Itoa(o.tolerate), "COUNT", strconv.Itoa(o.count), "UID", o.uid, "OUT", o.out, "OPERATOR", o.operator).Replace(badSpec)
	co.Dir = o.ckpt
	return prepareSpec(t, text, o.out, co), nil
}

// runToEnd runs a job to its end and returns its error (from Start or
// from the run).
func runToEnd(t *testing.T, j *Job) error {
	t.Helper()
	run, err := j.Start(context.Background())
	if err != nil {
		return err
	}
	return run.Wait()
}

// checkpointed runs the job until it has completed three checkpoints,
// then cancels it (a crash: nothing finished, nothing flushed), leaving
// them in o.ckpt, and returns their folder names, oldest first.
func checkpointed(t *testing.T, o badOptions) []string {
	t.Helper()
	o.count = 8000 // about 0.8 s: canceled long before it ends, and restores of it end soon
	j, _ := badJob(t, o, CheckpointOptions{})
	defer j.Close()
	run, err := j.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(5 * time.Millisecond)
	deadline := time.Now().Add(time.Minute)
	for j.Checkpoints().Completed < 3 && time.Now().Before(deadline) {
		<-tick.C
	}
	tick.Stop()
	run.Cancel()
	run.Wait()
	entries, _ := os.ReadDir(filepath.Join(o.ckpt, "bad"))
	var ids []int
	for _, e := range entries {
		n, err := strconv.Atoi(strings.TrimPrefix(e.Name(), "chk-"))
		if _, serr := os.Stat(filepath.Join(o.ckpt, "bad", e.Name(), "_metadata")); err == nil && serr == nil {
			ids = append(ids, n)
		}
	}
	slices.Sort(ids)
	if len(ids) < 2 {
		t.Fatalf("%d completed checkpoints retained, want 2 or more", len(ids))
	}
	var names []string
	for _, n := range ids {
		names = append(names, "chk-"+strconv.Itoa(n))
	}
	return names
}

// Restores that cannot be right are refused before anything runs, with
// the reason and what to do.
func TestRestoreRefusals(t *testing.T) {
	o := badOptions{out: t.TempDir(), ckpt: t.TempDir()}
	ids := checkpointed(t, o)
	sp := filepath.Join(o.ckpt, "bad", ids[len(ids)-1])

	// A job without the operator whose state the savepoint holds.
	o2 := o
	o2.uid, o2.out = "renamed", t.TempDir()
	j, _ := badJob(t, o2, CheckpointOptions{FromSavepoint: sp})
	err := runToEnd(t, j)
	j.Close()
	if err == nil || !strings.Contains(err.Error(), "kitchen") || !strings.Contains(err.Error(), "--allow-non-restored-state") {
		t.Fatalf("restoring into a job without uid kitchen: %v, want a refusal naming kitchen and the flag", err)
	}
	// ... which --allow-non-restored-state lets through.
	j, _ = badJob(t, o2, CheckpointOptions{FromSavepoint: sp, AllowNonRestored: true})
	if err := runToEnd(t, j); err != nil {
		t.Fatalf("with --allow-non-restored-state: %v", err)
	}
	j.Close()

	// Another max parallelism.
	o3 := o
	o3.maxPar, o3.out = 32, t.TempDir()
	j, _ = badJob(t, o3, CheckpointOptions{FromSavepoint: sp})
	err = runToEnd(t, j)
	j.Close()
	if err == nil || !strings.Contains(err.Error(), "max parallelism 64") || !strings.Contains(err.Error(), "32") {
		t.Fatalf("restoring at another max parallelism: %v, want a refusal with both numbers", err)
	}

	// A savepoint path that does not exist.
	j, _ = badJob(t, badOptions{out: t.TempDir(), ckpt: t.TempDir()}, CheckpointOptions{FromSavepoint: filepath.Join(o.ckpt, "nope", "chk-1")})
	err = runToEnd(t, j)
	j.Close()
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("restoring from a missing path: %v", err)
	}
}

// A corrupted checkpoint file is caught by its checksum, and a resume
// falls back to the previous retained checkpoint, saying so.
func TestResumeFallsBackPastCorruptCheckpoint(t *testing.T) {
	o := badOptions{out: t.TempDir(), ckpt: t.TempDir()}
	ids := checkpointed(t, o)
	newest, previous := ids[len(ids)-1], ids[len(ids)-2]
	files, _ := filepath.Glob(filepath.Join(o.ckpt, "bad", newest, "kitchen.0.state"))
	if len(files) != 1 {
		t.Fatalf("no state file of kitchen subtask 0 in %s", newest)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(files[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	j, _ := badJob(t, badOptions{out: t.TempDir(), ckpt: o.ckpt}, CheckpointOptions{Resume: true})
	j.o.Logger = newTestLogger(&log)
	defer j.Close()
	if err := runToEnd(t, j); err != nil {
		t.Fatal(err)
	}
	if got := "chk-" + strconv.FormatUint(j.Restored.Meta.Checkpoint, 10); got != previous {
		t.Fatalf("resumed from %s, want %s (the newest, %s, is corrupt)", got, previous, newest)
	}
	if !strings.Contains(log.String(), "skipping a checkpoint") || !strings.Contains(log.String(), "kitchen.0.state") {
		t.Fatalf("the run did not say it skipped the corrupt checkpoint; log:\n%s", log.String())
	}
}

// A checkpoint folder that cannot be written: checkpoints fail, the job
// goes on and finishes while they are tolerated, and fails once more
// fail in a row than tolerated.
func TestUnwritableCheckpointFolder(t *testing.T) {
	for _, tolerate := range []int{1000, 0} {
		t.Run("tolerate-"+strconv.Itoa(tolerate), func(t *testing.T) {
			o := badOptions{out: t.TempDir(), ckpt: t.TempDir(), tolerate: tolerate, count: 3000}
			// The job's folder is a file: nothing can be created in it.
			bad := filepath.Join(o.ckpt, "bad")
			if err := os.WriteFile(bad, []byte("not a folder"), 0o644); err != nil {
				t.Fatal(err)
			}
			j, _ := badJob(t, o, CheckpointOptions{})
			defer j.Close()
			start := time.Now()
			if tolerate == 0 {
				err := runToEnd(t, j)
				if st := j.Checkpoints(); st.Completed != 0 || st.Failed == 0 {
					t.Fatalf("checkpoints: %+v, want failures and none completed", st)
				}
				if err == nil || !strings.Contains(err.Error(), "checkpoint") {
					t.Fatalf("with no failure tolerated the job ended with %v after %s, want a failure naming the checkpoints", err, time.Since(start))
				}
				return
			}
			// Tolerated, the failures leave the job running: its input
			// ends, and it waits for a final checkpoint to commit the
			// output. Once the folder can be written again, that one
			// completes and the job ends with all of its output.
			_, ended, stop := startWatched(t, j)
			defer stop()
			deadline := time.After(time.Minute)
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for wait := true; wait; {
				select {
				case err := <-ended:
					t.Fatalf("the job ended (%v) with its checkpoints failing: %+v", err, j.Checkpoints())
				case <-deadline:
					t.Fatalf("checkpoints within a minute: %+v, want failures", j.Checkpoints())
				case <-tick.C:
					// Every subtask ended its input and waits.
					st := j.Checkpoints()
					wait = st.Failed < 3 || st.Subtasks == 0 || st.Ended < st.Subtasks
				}
			}
			if st := j.Checkpoints(); st.Completed != 0 {
				t.Fatalf("checkpoints: %+v, want none completed", st)
			}
			if got := committed(t, o.out); len(got) != 0 {
				t.Fatalf("%d lines committed without a completed checkpoint", len(got))
			}
			if err := os.Remove(bad); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-ended:
				if err != nil {
					t.Fatalf("the job failed once its folder could be written: %v", err)
				}
			case <-time.After(time.Minute):
				t.Fatalf("the job did not end within a minute of its folder becoming writable: %+v", j.Checkpoints())
			}
			got, want := committed(t, o.out), uninterruptedBad(t, o)
			if !slices.Equal(got, want) || len(want) == 0 {
				t.Fatalf("committed output: %d lines, want the %d of a run whose checkpoints succeed: %s", len(got), len(want), firstDiff(got, want))
			}
		})
	}
}

// uninterruptedBad is the committed output of o's job run to its end
// with a checkpoint folder that works.
func uninterruptedBad(t *testing.T, o badOptions) []string {
	t.Helper()
	o.out, o.ckpt = t.TempDir(), t.TempDir()
	j, _ := badJob(t, o, CheckpointOptions{})
	defer j.Close()
	if err := runToEnd(t, j); err != nil {
		t.Fatal(err)
	}
	return committed(t, o.out)
}

// newTestLogger logs text lines into b.
func newTestLogger(b *strings.Builder) *slog.Logger {
	return slog.New(slog.NewTextHandler(&syncWriter{b: b}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type syncWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// kitchenV2 is a new version of kitchen with the same states: a restore
// may move to it.
type kitchenV2 struct{ kitchen }

// kitchenRenamed declares other states than kitchen: count as a map, no
// seen list, and a new one.
type kitchenRenamed struct {
	weir.BaseProcess
	count *weir.MapState[int64, int64]
	extra *weir.ValueState[int64]
	mod   *weir.MapState[int64, int64]
}

func (k *kitchenRenamed) Open(o *weir.OpenContext) error {
	k.count = weir.NewMapState(o, "count", weir.Int64Codec, weir.Int64Codec)
	k.extra = weir.NewValueState(o, "extra", weir.Int64Codec)
	k.mod = weir.NewMapState(o, "mod", weir.Int64Codec, weir.Int64Codec)
	return nil
}

func (k *kitchenRenamed) ProcessElement(ctx *weir.Context, r weir.Record) error { return nil }

func init() {
	weir.Process("mc_kitchen_v2", &kitchenV2{})
	weir.Process("mc_kitchen_renamed", &kitchenRenamed{})
}

// Upgrading a module: a new version that declares the same states
// restores; one whose states differ is refused, listing the differences.
func TestRestoreIntoUpgradedModule(t *testing.T) {
	o := badOptions{out: t.TempDir(), ckpt: t.TempDir()}
	ids := checkpointed(t, o)
	sp := filepath.Join(o.ckpt, "bad", ids[len(ids)-1])

	v2 := badOptions{out: t.TempDir(), ckpt: t.TempDir(), operator: "mc_kitchen_v2"}
	j, _ := badJob(t, v2, CheckpointOptions{FromSavepoint: sp})
	if err := runToEnd(t, j); err != nil {
		t.Fatalf("restoring into a new version with the same states: %v", err)
	}
	j.Close()

	bad := badOptions{out: t.TempDir(), ckpt: t.TempDir(), operator: "mc_kitchen_renamed"}
	j, _ = badJob(t, bad, CheckpointOptions{FromSavepoint: sp})
	err := runToEnd(t, j)
	j.Close()
	if err == nil {
		t.Fatal("restoring into a module with other states succeeded")
	}
	for _, want := range []string{`state "count" was value, is now map`, `state "seen" (list) is not declared`, `state "extra" (value) is new`} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("the refusal does not say %q:\n%v", want, err)
		}
	}
}
