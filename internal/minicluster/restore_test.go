package minicluster

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/coordinator/jobspec"
	"github.com/weirstream/weir/internal/ckptmeta"
	weir "github.com/weirstream/weir/sdk/go"
	"github.com/weirstream/weir/worker/connector"
	"github.com/weirstream/weir/worker/task"
)

// kitchen is a keyed operator with every keyed state kind and event-time
// timers: per key a count (value), the values seen (list), the values by
// residue mod 7 (map), and a timer per 10 s bucket of event time that,
// when it fires (at the end of input: the job has no watermarks), emits
// the key's state then. What it emits depends on which records each key
// saw, never on their order, so runs at any parallelism agree.
type kitchen struct {
	count *weir.ValueState[int64]
	seen  *weir.ListState[string]
	mod   *weir.MapState[int64, int64]
}

func (k *kitchen) Open(o *weir.OpenContext) error {
	k.count = weir.NewValueState(o, "count", weir.Int64Codec)
	k.seen = weir.NewListState(o, "seen", weir.StringCodec)
	k.mod = weir.NewMapState(o, "mod", weir.Int64Codec, weir.Int64Codec)
	return nil
}

func (k *kitchen) ProcessElement(ctx *weir.Context, r weir.Record) error {
	n, _, err := k.count.Get(ctx)
	if err != nil {
		return err
	}
	k.count.Set(ctx, n+1)
	k.seen.Add(ctx, strconv.FormatInt(r.Timestamp, 10))
	m, _, err := k.mod.Get(ctx, r.Timestamp%7)
	if err != nil {
		return err
	}
	k.mod.Put(ctx, r.Timestamp%7, m+1)
	ctx.RegisterEventTimer(r.Timestamp/10000*10000 + 9999)
	return nil
}

func (k *kitchen) OnTimer(ctx *weir.Context, t weir.Timer) error {
	n, _, err := k.count.Get(ctx)
	if err != nil {
		return err
	}
	seen, err := k.seen.Get(ctx)
	if err != nil {
		return err
	}
	slices.Sort(seen)
	var mods []string
	if err := k.mod.Range(ctx, func(m, c int64) bool { mods = append(mods, fmt.Sprintf("%d:%d", m, c)); return true }); err != nil {
		return err
	}
	v := fmt.Sprintf("timer=%d count=%d seen=%d first=%s mods=%s", t.Timestamp, n, len(seen), seen[0], strings.Join(mods, ","))
	ctx.Emit(weir.Record{Key: ctx.Key(), Value: []byte(v), Timestamp: t.Timestamp})
	return nil
}

// countAgg counts a window's records.
type countAgg struct{}

func (countAgg) Create() int64                      { return 0 }
func (countAgg) Add(acc int64, r weir.Record) int64 { return acc + 1 }
func (countAgg) Merge(a, b int64) int64             { return a + b }
func (countAgg) Result(key []byte, end int64, acc int64) weir.Record {
	return weir.Record{Value: []byte(fmt.Sprintf("window=%d count=%d", end, acc))}
}

func init() {
	weir.Process("mc_kitchen", &kitchen{})
	weir.Aggregate("mc_count", countAgg{}, weir.Int64Codec)
}

const restoreSpec = `
name: differential
parallelism: PAR
max_parallelism: 64
modules: {m: .}
state: {backend: BACKEND}
checkpoints: {interval: 50ms, mode: MODE, incremental: INCR}
sources:
  - uid: gen
    connector: datagen
    options: {count: COUNT, keys: 37, seed: 9, rate: RATE, interval_ms: 3}
    watermark: {strategy: none}
operators:
  - uid: kitchen
    module: m
    operator: mc_kitchen
    inputs: [{from: gen, partition: key_by}]
  - uid: windows
    module: m
    operator: mc_count
    window: {type: tumbling, size: 5s}
    inputs: [{from: gen, partition: key_by}]
sinks:
  - uid: out
    connector: file
    options: {path: OUT/out.jsonl, format: jsonl}
    inputs: [kitchen]
  - uid: wins
    connector: file
    options: {path: OUT/wins.jsonl, format: jsonl}
    inputs: [windows]
`

// restoreRun says how the differential job runs.
type restoreRun struct {
	mode        string // barrier mode
	count, rate int
	sinkRate    int // records per second per subtask of the kitchen's sink (0: unpaced)
	// resumeAt is the parallelism cutAndResume resumes at (0: 2, that of
	// the cut run).
	resumeAt int
}

var alignedRun = restoreRun{mode: "aligned", count: 30000, rate: 15000}

func restoreJob(t *testing.T, out, backend string, par int, o CheckpointOptions) *Job {
	return restoreJobWith(t, out, backend, par, alignedRun, o)
}

func restoreJobWith(t *testing.T, out, backend string, par int, r restoreRun, o CheckpointOptions) *Job {
	t.Helper()
	// "pebble-full": the pebble backend with full (canonical) checkpoints.
	incr := "true"
	if b, ok := strings.CutSuffix(backend, "-full"); ok {
		backend, incr = b, "false"
	}
	text := strings.NewReplacer("PAR", strconv.Itoa(par), "OUT", out, "BACKEND", backend, "MODE", r.mode, "INCR", incr,
		"COUNT", strconv.Itoa(r.count), "RATE", strconv.Itoa(r.rate)).Replace(restoreSpec)
	if r.sinkRate > 0 {
		paced := strings.Replace(text, out+"/out.jsonl, format: jsonl}", out+"/out.jsonl, format: jsonl, rate: "+strconv.Itoa(r.sinkRate)+"}", 1)
		if paced == text {
			t.Fatal("the spec template changed: no kitchen sink options to pace")
		}
		text = paced
	}
	return prepareSpec(t, text, out, o)
}

// startWatched starts j; ended receives the run's end, once. stop
// cancels the run and waits for it (for a defer, before j.Close: on a
// failure nothing is left running).
func startWatched(t *testing.T, j *Job) (run *task.Run, ended <-chan error, stop func()) {
	t.Helper()
	run, err := j.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := make(chan error, 1)
	go func() { c <- run.Wait() }()
	return run, c, func() { run.Cancel(); run.Wait() }
}

// prepareSpec parses the job spec text, as if in folder out, and
// prepares it with native operators and checkpoint options o.
func prepareSpec(t *testing.T, text, out string, o CheckpointOptions) *Job {
	t.Helper()
	spec, err := jobspec.Parse([]byte(text), filepath.Join(out, "job.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	j, err := Prepare(context.Background(), spec, Options{Native: true, Checkpoints: o})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// committed returns the committed output lines of the file sinks under
// dir, sorted, timestamps kept (they are event times).
func committed(t *testing.T, dir string) []string {
	t.Helper()
	var lines []string
	for _, name := range []string{"out.jsonl", "wins.jsonl"} {
		parts, err := connector.CommittedParts(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range parts {
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				lines = append(lines, name+" "+sc.Text())
			}
			f.Close()
		}
	}
	sort.Strings(lines)
	return lines
}

// The differential test of restores: a job with keyed value, list and
// map state, event-time timers and windows is cut off (canceled, as a
// crash would leave it: nothing flushed) after a few checkpoints at
// parallelism p, and finished from its latest checkpoint at p'. Its
// committed output equals that of the same job run uninterrupted at p,
// for p -> p' of 2 -> 3, 3 -> 1 and 1 -> 2, on both backends, the second
// restoring heap checkpoints into pebble and back; pebble checkpoints are
// incremental (restored into heap, and into pebble at another
// parallelism) or full.
func TestRestoreAtOtherParallelismMatchesUninterrupted(t *testing.T) {
	whole := t.TempDir()
	j := restoreJob(t, whole, "heap", 2, CheckpointOptions{Dir: t.TempDir()})
	run, err := j.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Wait(); err != nil {
		t.Fatal(err)
	}
	j.Close()
	want := committed(t, whole)
	if len(want) < 37 {
		t.Fatalf("the uninterrupted run committed %d lines", len(want))
	}
	for _, c := range []struct {
		from, to           int
		backendA, backendB string
	}{{2, 3, "heap", "heap"}, {3, 1, "heap", "pebble"}, {1, 2, "pebble", "heap"}, {2, 3, "pebble", "pebble"}, {3, 2, "pebble-full", "pebble"}} {
		t.Run(fmt.Sprintf("%d-%s-to-%d-%s", c.from, c.backendA, c.to, c.backendB), func(t *testing.T) {
			var out, ck string
			for try := 1; ; try++ {
				out, ck = t.TempDir(), t.TempDir()
				if cutOff(t, restoreJob(t, out, c.backendA, c.from, CheckpointOptions{Dir: ck}), 3) {
					break
				}
				if try == 3 {
					t.Fatal("three runs ended before they could be cut off after their third checkpoint")
				}
			}
			b := restoreJob(t, out, c.backendB, c.to, CheckpointOptions{Dir: ck, Resume: true})
			defer b.Close()
			run, err = b.Start(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if err := run.Wait(); err != nil {
				t.Fatal(err)
			}
			if b.Restored == nil {
				t.Fatal("the second run restored nothing")
			}
			incremental := false
			for _, op := range b.Restored.Payload.Operators {
				for _, st := range op.Subtasks {
					incremental = incremental || ckptmeta.Incremental(st.Files)
				}
			}
			if incremental != (c.backendA == "pebble") {
				t.Fatalf("the checkpoint restored from is incremental: %v, want %v", incremental, c.backendA == "pebble")
			}
			got := committed(t, out)
			if !slices.Equal(got, want) {
				t.Fatalf("restored run committed %d lines, uninterrupted %d; first difference: %s", len(got), len(want), firstDiff(got, want))
			}
		})
	}
}

// cutOff runs j until it has completed n checkpoints, then cancels it,
// as a crash would leave it (nothing flushed, nothing committed at its end),
// and closes it. It reports false when the run ended first (a slow
// machine): its output is then complete and useless to a restore test.
func cutOff(t *testing.T, j *Job, n int) bool {
	t.Helper()
	defer j.Close()
	run, ended, stop := startWatched(t, j)
	defer stop()
	deadline := time.After(time.Minute)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for j.Checkpoints().Completed < n {
		select {
		case err := <-ended:
			if err != nil {
				t.Fatal(err)
			}
			return false
		case <-deadline:
			t.Fatalf("no checkpoint %d within a minute", n)
		case <-tick.C:
		}
	}
	run.Cancel()
	return <-ended != nil
}

func firstDiff(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("line %d:\n%s\nvs\n%s", i, a[i], b[i])
		}
	}
	return fmt.Sprintf("one is a prefix of the other (%d vs %d lines)", len(a), len(b))
}

// Unaligned checkpoints under backpressure: the source runs flat out and
// the kitchen's sink is paced, so the keyed operators' inputs are full
// when the barriers overtake them (without the pacing, a fast machine
// aligned within the 1 ms timeout and held nothing in flight);
// the checkpoint restored holds in-flight records, and the run finished
// from it commits what an uninterrupted run does: at the same
// parallelism, and at another, where the in-flight records of the keyed
// inputs go to the subtasks that now own their key groups (a rebalanced
// input: TestUnalignedRescaleRebalanced).
func TestUnalignedRestoreWithInFlightData(t *testing.T) {
	// Unaligned from the start, and aligned checkpoints that switch to
	// unaligned once they have held inputs for 1 ms; unaligned rescaled
	// up and down.
	const unaligned, switching = "unaligned", "aligned, alignment_timeout: 1ms"
	for name, r := range map[string]restoreRun{
		"unaligned":         {mode: unaligned},
		"aligned-switching": {mode: switching},
		"unaligned-2-to-3":  {mode: unaligned, resumeAt: 3},
		"unaligned-2-to-1":  {mode: unaligned, resumeAt: 1},
	} {
		t.Run(name, func(t *testing.T) {
			r.count, r.rate, r.sinkRate = 150000, 0, 50000
			want := uninterrupted(t, r)
			for attempt := 1; ; attempt++ {
				out, b := cutAndResume(t, r)
				inflight, byOp := int64(0), map[string]int64{}
				for _, op := range b.Restored.Payload.Operators {
					for _, f := range op.Files(ckptmeta.RoleInFlight) {
						if f != nil {
							inflight += f.Size
							byOp[op.UID] += f.Size
						}
					}
				}
				if got := committed(t, out); !slices.Equal(got, want) {
					t.Fatalf("restored run committed %d lines, uninterrupted %d; first difference: %s", len(got), len(want), firstDiff(got, want))
				}
				if inflight > 0 {
					t.Logf("attempt %d: the checkpoint held %d bytes in flight %v", attempt, inflight, byOp)
					return
				}
				if attempt == 5 {
					t.Fatal("five checkpoints taken under backpressure held no in-flight data")
				}
			}
		})
	}
}

// uninterrupted runs the differential job of r at parallelism 2 on heap
// to its end and returns its committed lines.
func uninterrupted(t *testing.T, r restoreRun) []string {
	t.Helper()
	whole := t.TempDir()
	j := restoreJobWith(t, whole, "heap", 2, r, CheckpointOptions{Dir: t.TempDir()})
	if err := runToEnd(t, j); err != nil {
		t.Fatal(err)
	}
	j.Close()
	return committed(t, whole)
}

// cutAndResume runs the differential job of r at parallelism 2 on heap,
// cuts it off after its second checkpoint (trying up to five times, as a
// fast run may end first) and resumes it to its end, at r.resumeAt; it returns the
// output folder and the closed resumed job.
func cutAndResume(t *testing.T, r restoreRun) (string, *Job) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		out, ck := t.TempDir(), t.TempDir()
		if !cutOff(t, restoreJobWith(t, out, "heap", 2, r, CheckpointOptions{Dir: ck}), 2) {
			if attempt == 5 {
				t.Fatal("five runs ended before they could be cut off after their second checkpoint")
			}
			continue
		}
		to := r.resumeAt
		if to == 0 {
			to = 2
		}
		b := restoreJobWith(t, out, "heap", to, r, CheckpointOptions{Dir: ck, Resume: true})
		if err := runToEnd(t, b); err != nil {
			t.Fatal(err)
		}
		b.Close()
		if b.Restored == nil {
			t.Fatal("the second run restored nothing (the first ended before two checkpoints)")
		}
		return out, b
	}
}

// At-least-once checkpoints lose nothing: cut off after two checkpoints
// and resumed, the job emits every (key, timer) and (key, window) line of
// an uninterrupted run, each count at least the uninterrupted one's (a
// record after the barrier on an early channel is in the snapshot and
// replayed too, so counts may be higher, never lower). The inputs run
// flat out behind a paced sink, so channels deliver their barriers at
// different times and the snapshot does see such records.
func TestAtLeastOnceRestoreLosesNothing(t *testing.T) {
	r := restoreRun{mode: "at-least-once", count: 150000, rate: 0, sinkRate: 50000}
	want := countsByLine(t, uninterrupted(t, r))
	out, _ := cutAndResume(t, r)
	got := countsByLine(t, committed(t, out))
	more := 0
	for line, w := range want {
		g, ok := got[line]
		if !ok {
			t.Fatalf("the restored run lost %q (counts %v)", line, w)
		}
		for i := range w {
			if g[i] < w[i] {
				t.Fatalf("%q: restored counts %v, below the uninterrupted %v", line, g, w)
			}
			if g[i] > w[i] {
				more++
			}
		}
	}
	if len(got) != len(want) {
		t.Fatalf("restored run: %d distinct lines, uninterrupted %d", len(got), len(want))
	}
	t.Logf("%d lines, %d counts above the uninterrupted run's (records replayed)", len(want), more)
}

// countsByLine parses committed lines of the differential job: each
// line's counts (count=, seen=, and the per-residue counts of mods=) by
// the line with them blanked out.
func countsByLine(t *testing.T, lines []string) map[string][]int64 {
	t.Helper()
	out := map[string][]int64{}
	for _, l := range lines {
		var counts []int64
		var id strings.Builder
		for i := 0; i < len(l); {
			field := ""
			for _, f := range []string{"count=", "seen=", ":"} {
				if strings.HasPrefix(l[i:], f) {
					field = f
				}
			}
			if field == "" {
				id.WriteByte(l[i])
				i++
				continue
			}
			id.WriteString(field)
			i += len(field)
			j := i
			for j < len(l) && l[j] >= '0' && l[j] <= '9' {
				j++
			}
			if j == i { // a ':' of the JSON, not of mods
				continue
			}
			n, err := strconv.ParseInt(l[i:j], 10, 64)
			if err != nil {
				t.Fatalf("line %q: %v", l, err)
			}
			counts = append(counts, n)
			id.WriteByte('#')
			i = j
		}
		if len(counts) == 0 {
			t.Fatalf("line %q has no counts", l)
		}
		if _, dup := out[id.String()]; dup {
			t.Fatalf("two lines %q", id.String())
		}
		out[id.String()] = counts
	}
	return out
}

// tagSpec maps every record (no state) behind a rebalance edge, into a
// paced sink chained to the map: the map's input fills up behind it.
const tagSpec = `
name: tagged
parallelism: PAR
modules: {m: .}
checkpoints: CHECKPOINTS
sources:
  - uid: gen
    connector: datagen
    options: {count: COUNT, keys: 37, seed: 8}
    parallelism: SOURCES
operators:
  - uid: tag
    module: m
    operator: mc_tag
    inputs: [{from: gen, partition: rebalance}]
sinks:
  - uid: out
    connector: file
    options: {path: OUT/out.jsonl, format: jsonl, rate: RATE}
    input: tag
`

// tagJob is tagSpec at parallelism par (sources too when sources is 0),
// writing under out.
func tagJob(t *testing.T, out string, par, sources, count, rate int, checkpoints string, o CheckpointOptions) *Job {
	t.Helper()
	if sources == 0 {
		sources = par
	}
	itoa := strconv.Itoa
	text := strings.NewReplacer("PAR", itoa(par), "SOURCES", itoa(sources), "COUNT", itoa(count), "RATE", itoa(rate),
		"CHECKPOINTS", checkpoints, "OUT", out).Replace(tagSpec)
	return prepareSpec(t, text, out, o)
}

// In-flight records of a rebalanced input restore at another parallelism
// too: old subtask j's go to new subtask j mod p, whole. Cut off after
// two unaligned checkpoints at parallelism 3 and resumed at 2, the job
// commits every record exactly once.
func TestUnalignedRescaleRebalanced(t *testing.T) {
	job := func(out string, par int, o CheckpointOptions) *Job {
		return tagJob(t, out, par, 2, 60000, 10000, "{interval: 50ms, mode: unaligned}", o)
	}
	whole := t.TempDir()
	j := job(whole, 3, CheckpointOptions{Dir: t.TempDir()})
	if err := runToEnd(t, j); err != nil {
		t.Fatal(err)
	}
	j.Close()
	want := committed(t, whole)
	if len(want) != 60000 {
		t.Fatalf("the uninterrupted run committed %d lines, want 60000", len(want))
	}
	for attempt := 1; ; attempt++ {
		out, ck := t.TempDir(), t.TempDir()
		if !cutOff(t, job(out, 3, CheckpointOptions{Dir: ck}), 2) {
			if attempt == 5 {
				t.Fatal("five runs ended before their second checkpoint")
			}
			continue // a slow machine: the run ended first
		}
		b := job(out, 2, CheckpointOptions{Dir: ck, Resume: true})
		if err := runToEnd(t, b); err != nil {
			t.Fatal(err)
		}
		b.Close()
		if got := committed(t, out); !slices.Equal(got, want) {
			t.Fatalf("restored at parallelism 2: %d lines committed, want %d: %s", len(got), len(want), firstDiff(got, want))
		}
		var inflight int64
		for _, f := range b.Restored.Payload.Operator("tag").Files(ckptmeta.RoleInFlight) {
			if f != nil {
				inflight += f.Size
			}
		}
		if inflight > 0 {
			t.Logf("attempt %d: %d bytes in flight at the map's input", attempt, inflight)
			return
		}
		if attempt == 5 {
			t.Fatal("five checkpoints held nothing in flight at the map's input")
		}
	}
}
