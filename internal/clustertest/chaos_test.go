package clustertest

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/api"
	"github.com/weirstream/weir/internal/ckptmeta"
	"github.com/weirstream/weir/internal/ckptstore"
)

// latestCheckpoint is the newest completed checkpoint of job in the
// cluster's checkpoint folder (0: none), read from the folder itself.
func latestCheckpoint(c *Cluster, job string) int {
	entries, _ := os.ReadDir(filepath.Join(c.dir, "checkpoints", job))
	best := 0
	for _, e := range entries {
		n, err := strconv.Atoi(strings.TrimPrefix(e.Name(), "chk-"))
		if err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(c.dir, "checkpoints", job, e.Name(), "_metadata")); err == nil && n > best {
			best = n
		}
	}
	return best
}

// chaosSpec is a job whose source emits records of keys key-0..key-39;
// a keyed counter counts them and an exactly-once file sink writes
// (key, count): exactly once means every key's counts 1..n appear once.
func chaosSpec(t *testing.T, dir, backend, mode string, records, rate int) string {
	return chaosSpecWith(t, dir, chaosOptions{backend: backend, mode: mode, records: records, rate: rate, parallelism: 2, incremental: backend == "pebble"})
}

type chaosOptions struct {
	backend       string
	mode          string // barrier mode; default aligned
	incremental   bool   // pebble: incremental checkpoints
	records, rate int
	parallelism   int
	sinkRate      int // records per second per sink subtask (0: no limit)
	name          string
}

func chaosSpecWith(t *testing.T, dir string, o chaosOptions) string {
	if o.name == "" {
		o.name = "chaos"
	}
	if o.mode == "" {
		o.mode = "aligned"
	}
	spec := filepath.Join(dir, fmt.Sprintf("%s-%d.yaml", o.name, o.parallelism))
	writeFile(t, spec, fmt.Sprintf(`name: %s
parallelism: %d
restart: {strategy: fixed-delay, attempts: 20, delay: 200ms}
state: {backend: %s}
checkpoints: {interval: 300ms, timeout: 20s, mode: %s, incremental: %t}
modules:
  wc: %s
sources:
  - uid: gen
    connector: datagen
    options: {count: %d, keys: 40, rate: %d, seed: 11}
operators:
  - uid: count
    module: wc
    operator: count
    inputs: [{from: gen, partition: key_by}]
sinks:
  - uid: out
    connector: file
    options: {path: %s, rate: %d}
    input: count
`, o.name, o.parallelism, o.backend, o.mode, o.incremental, repo(t, "examples/wordcount"), o.records, o.rate, filepath.Join(dir, "out.jsonl"), o.sinkRate))
	return spec
}

// The chaos suite's worker kills: a checkpointed job loses a random
// worker (SIGKILL) three times, each after a new checkpoint completed; a
// fresh worker joins after each kill. The job restores the latest
// checkpoint each time and ends with every count exactly once, on both
// state backends, aligned (heap) and unaligned with incremental
// checkpoints (pebble).
func TestChaosWorkerKills(t *testing.T) {
	skipShort(t)
	for _, backend := range []string{"heap", "pebble"} {
		mode := map[string]string{"heap": "aligned", "pebble": "unaligned"}[backend]
		t.Run(backend+"-"+mode, func(t *testing.T) {
			c := Start(t, weirBin, Options{Workers: 3, Slots: 2})
			dir := t.TempDir()
			const records, keys = 24000, 40
			id := c.Submit(chaosSpec(t, dir, backend, mode, records, 2400))
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
			last := 0
			for kill := range 3 {
				var victim string
				c.WaitFor("a new checkpoint and a worker running the job", 2*time.Minute, func() bool {
					n := latestCheckpoint(c, id)
					if n <= last {
						return false
					}
					var ws []string
					for _, s := range c.Job(id).Subtasks {
						if s.State == api.StateRunning && s.Worker != "" {
							ws = append(ws, s.Worker)
						}
					}
					if len(ws) == 0 {
						return false
					}
					last, victim = n, ws[rng.IntN(len(ws))]
					return true
				})
				c.Worker(victim).Kill()
				t.Logf("kill %d: worker %s after checkpoint %d", kill+1, victim, last)
				c.AddWorker(fmt.Sprintf("fresh-%d", kill), 2)
			}
			c.WaitFinished(id, 4*time.Minute, 4) // after 3 kills
			checkCounts(t, readRecords(t, dir), records, keys)
		})
	}
}

// Rescaling through savepoints: the job runs at parallelism 2, is
// stopped with a savepoint, resumes from it at 3, is stopped again and
// finishes at 1. Every count is written exactly once over the three runs.
func TestChaosRescaleThroughSavepoints(t *testing.T) {
	skipShort(t)
	c := Start(t, weirBin, Options{Workers: 3, Slots: 2})
	dir, spdir := t.TempDir(), t.TempDir()
	const records, keys = 24000, 40
	o := chaosOptions{backend: "heap", records: records, rate: 3000}
	from := ""
	for i, p := range []int{2, 3, 1} {
		o.parallelism = p
		var args []string
		if from != "" {
			args = []string{"--from-savepoint", from}
		}
		id := c.Submit(chaosSpecWith(t, dir, o), args...)
		if i == 2 {
			st := c.Wait(id, 3*time.Minute)
			if st.State != api.StateFinished {
				t.Fatalf("run at parallelism %d: %s (%s)", p, st.State, st.Message)
			}
			if st.Checkpoints == nil || st.Checkpoints.Restored != from {
				t.Fatalf("run at parallelism %d restored %+v, want %s", p, st.Checkpoints, from)
			}
			break
		}
		c.WaitFor("a checkpoint of the run at parallelism "+strconv.Itoa(p), 2*time.Minute, func() bool { return latestCheckpoint(c, id) > 0 })
		from = strings.TrimSpace(c.CLI("job", "stop", id, "--savepoint", spdir))
		t.Logf("parallelism %d: stopped with savepoint %s", p, from)
		if st := c.Wait(id, time.Minute); st.State == api.StateFailed {
			t.Fatalf("the run at parallelism %d failed on its stop: %s", p, st.Message)
		}
		inspect := c.CLI("savepoint", "inspect", from)
		if !strings.Contains(inspect, "count") || !strings.Contains(inspect, "gen") {
			t.Fatalf("savepoint inspect %s does not show the operators:\n%s", from, inspect)
		}
	}
	checkCounts(t, readRecords(t, dir), records, keys)
}

// SIGKILLs during a checkpoint and during a savepoint: a slow sink makes
// aligned checkpoints take long, a worker is killed while one is in
// progress, and again right after a savepoint was asked for. The
// savepoint ends (completed or failed, never pending for ever), the job
// recovers and every count is written exactly once.
func TestChaosKillDuringCheckpointAndSavepoint(t *testing.T) {
	skipShort(t)
	c := Start(t, weirBin, Options{Workers: 3, Slots: 2})
	dir := t.TempDir()
	const records, keys = 9000, 40
	id := c.Submit(chaosSpecWith(t, dir, chaosOptions{backend: "pebble", records: records, rate: 3000, parallelism: 2, sinkRate: 600}))
	killOne := func(what string) {
		var victim string
		c.WaitFor(what, 2*time.Minute, func() bool {
			st := c.Job(id)
			if what == "a checkpoint in progress" && (st.Checkpoints == nil || st.Checkpoints.InProgress == 0) {
				return false
			}
			for _, s := range st.Subtasks {
				if s.State == api.StateRunning && s.Worker != "" && c.Worker(s.Worker) != nil {
					victim = s.Worker
					return true
				}
			}
			return false
		})
		c.Worker(victim).Kill()
		t.Logf("killed %s during %s", victim, what)
	}
	killOne("a checkpoint in progress")
	c.AddWorker("fresh-1", 2)
	c.WaitFor("the job to run again", 2*time.Minute, func() bool {
		st := c.Job(id)
		if st.Attempt < 2 {
			return false
		}
		for _, s := range st.Subtasks {
			if s.State != api.StateRunning {
				return false
			}
		}
		return true
	})
	sp, err := c.Client.Savepoint(context.Background(), id, api.SavepointRequest{RequestID: "kill-during", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	killOne("a savepoint")
	c.AddWorker("fresh-2", 2)
	c.WaitFor("the savepoint to end", 2*time.Minute, func() bool {
		s, err := c.Client.SavepointStatus(context.Background(), id, sp.RequestID)
		if err != nil {
			t.Fatal(err)
		}
		sp = s
		return s.State != api.SavepointPending
	})
	t.Logf("savepoint: %s %s %s", sp.State, sp.Path, sp.Error)
	c.WaitFinished(id, 4*time.Minute, 1)
	checkCounts(t, readRecords(t, dir), records, keys)
}

// Killing `weir run` and resuming it: a checkpointed embedded run is
// SIGKILLed after its second checkpoint, `weir run --resume` finishes it,
// and the committed output holds every count exactly once, with the same
// final count per key as an uninterrupted run.
func TestChaosKillWeirRunAndResume(t *testing.T) {
	skipShort(t)
	const records, keys = 20000, 40
	run := func(dir, ckpts string, args ...string) *exec.Cmd {
		spec := chaosSpecWith(t, dir, chaosOptions{backend: "pebble", records: records, rate: 4000, parallelism: 2, incremental: true})
		cmd := exec.Command(weirBin, append([]string{"run", spec, "--progress=false", "--checkpoint-dir", ckpts}, args...)...)
		cmd.Env = append(os.Environ(), "WEIR_CACHE_DIR="+filepath.Join(ckpts, "cache"))
		return cmd
	}
	whole, ckA := t.TempDir(), t.TempDir()
	if out, err := run(whole, ckA).CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, out)
	}
	dir, ck := t.TempDir(), t.TempDir()
	cmd := run(dir, ck)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	metadata := func(n int) bool {
		_, err := os.Stat(filepath.Join(ck, "chaos", "chk-"+strconv.Itoa(n), "_metadata"))
		return err == nil
	}
	deadline := time.After(2 * time.Minute)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !metadata(2) {
		select {
		case err := <-done:
			t.Fatalf("weir run ended (%v) before its second checkpoint", err)
		case <-deadline:
			cmd.Process.Kill()
			t.Fatal("no second checkpoint within 2 minutes")
		case <-tick.C:
		}
	}
	cmd.Process.Kill()
	<-done
	if out, err := run(dir, ck, "--resume").CombinedOutput(); err != nil {
		t.Fatalf("weir run --resume: %v\n%s", err, out)
	}
	got := readRecords(t, dir)
	checkCounts(t, got, records, keys)
	final := func(rs []record) map[string]int {
		m := map[string]int{}
		for _, r := range rs {
			n, _ := strconv.Atoi(r.value)
			m[r.key] = max(m[r.key], n)
		}
		return m
	}
	if a, b := final(got), final(readRecords(t, whole)); !maps.Equal(a, b) {
		t.Fatalf("final counts after kill and resume differ from the uninterrupted run's:\n%v\n%v", a, b)
	}
}

// A kill while the job ends: of two chains, the early one ends its input
// long before the late one. Ended, its subtasks stay deployed, holding
// their last output uncommitted until the job's final checkpoint. A
// worker holding one of them is SIGKILLed once a completed checkpoint
// holds the early chain ended; the job restores that checkpoint (the
// early chain stays ended, its pending output is committed) and each
// chain's counts are in its output exactly once.
func TestChaosKillWhileEnding(t *testing.T) {
	skipShort(t)
	c := Start(t, weirBin, Options{Workers: 3, Slots: 2})
	dir := t.TempDir()
	early, late := filepath.Join(dir, "early"), filepath.Join(dir, "late")
	const earlyRecords, lateRecords, keys = 4000, 16000, 40
	spec := filepath.Join(dir, "ending.yaml")
	writeFile(t, spec, fmt.Sprintf(`name: ending
parallelism: 2
restart: {strategy: fixed-delay, attempts: 20, delay: 200ms}
checkpoints: {interval: 300ms, timeout: 20s}
modules:
  wc: %[1]s
sources:
  - uid: early
    connector: datagen
    options: {count: %[2]d, keys: %[4]d, rate: 8000, seed: 11}
  - uid: late
    connector: datagen
    options: {count: %[3]d, keys: %[4]d, rate: 1600, seed: 12}
operators:
  - uid: count-early
    module: wc
    operator: count
    inputs: [{from: early, partition: key_by}]
  - uid: count-late
    module: wc
    operator: count
    inputs: [{from: late, partition: key_by}]
sinks:
  - uid: out-early
    connector: file
    options: {path: %[5]s}
    input: count-early
  - uid: out-late
    connector: file
    options: {path: %[6]s}
    input: count-late
`, repo(t, "examples/wordcount"), earlyRecords, lateRecords, keys, filepath.Join(early, "out.jsonl"), filepath.Join(late, "out.jsonl")))
	id := c.Submit(spec)
	store := &ckptstore.Dir{Root: filepath.Join(c.dir, "checkpoints")}
	endedIn := func(p *ckptmeta.Payload, uid string) bool {
		op := p.Operator(uid)
		return op != nil && op.Ended()
	}
	var victim string
	c.WaitFor("a checkpoint holding the early chain ended", 2*time.Minute, func() bool {
		n := latestCheckpoint(c, id)
		if n == 0 {
			return false
		}
		md, err := store.Metadata(id, uint64(n))
		if err != nil {
			return false
		}
		p, err := ckptmeta.Decode(md.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if !endedIn(p, "out-early") || endedIn(p, "out-late") {
			return false
		}
		st := c.Job(id)
		if st.Checkpoints == nil || st.Checkpoints.EndedSubtasks == 0 {
			return false // the job's status says some subtasks ended
		}
		for _, s := range st.Subtasks {
			if strings.Contains(s.Task, "early") && s.State == api.StateRunning && s.Worker != "" {
				victim = s.Worker
				return true
			}
		}
		return false
	})
	if info := c.CLI("job", "info", id); !strings.Contains(info, "subtasks ended their input; the job ends once its final checkpoint completes") {
		t.Errorf("weir job info of a job that is ending:\n%s", info)
	}
	c.Worker(victim).Kill()
	t.Logf("killed %s, which ran an ended subtask of the early chain", victim)
	c.AddWorker("fresh", 2)
	c.WaitFinished(id, 4*time.Minute, 2) // after the kill
	checkCounts(t, readRecords(t, early), earlyRecords, keys)
	checkCounts(t, readRecords(t, late), lateRecords, keys)
}
