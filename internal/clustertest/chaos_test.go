package clustertest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/api"
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
func chaosSpec(t *testing.T, dir, backend string, records, rate int) string {
	spec := filepath.Join(dir, "chaos.yaml")
	writeFile(t, spec, fmt.Sprintf(`name: chaos
parallelism: 2
restart: {strategy: fixed-delay, attempts: 20, delay: 200ms}
state: {backend: %s}
checkpoints: {interval: 300ms, timeout: 20s}
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
    options: {path: %s}
    parallelism: 2
    input: count
`, backend, repo(t, "examples/wordcount"), records, rate, filepath.Join(dir, "out.jsonl")))
	return spec
}

// The chaos suite's worker kills: a checkpointed job loses a random
// worker (SIGKILL) three times, each after a new checkpoint completed; a
// fresh worker joins after each kill. The job restores the latest
// checkpoint each time and ends with every count exactly once, on both
// state backends.
func TestChaosWorkerKills(t *testing.T) {
	skipShort(t)
	for _, backend := range []string{"heap", "pebble"} {
		t.Run(backend, func(t *testing.T) {
			c := Start(t, weirBin, Options{Workers: 3, Slots: 2})
			dir := t.TempDir()
			const records, keys = 24000, 40
			id := c.Submit(chaosSpec(t, dir, backend, records, 2400))
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
			st := c.Wait(id, 4*time.Minute)
			if st.State != api.StateFinished {
				t.Fatalf("job %s: %s (%s)", id, st.State, st.Message)
			}
			if st.Attempt < 4 {
				t.Fatalf("the job finished in attempt %d after 3 kills", st.Attempt)
			}
			checkCounts(t, readRecords(t, dir), records, keys)
		})
	}
}
