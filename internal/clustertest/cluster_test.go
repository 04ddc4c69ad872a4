package clustertest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/weirstream/weir/internal/api"
)

var weirBin string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		// Real processes: they run once, in the full suite, not again in
		// the short one under the race detector.
		fmt.Println("clustertest: multi-process tests run without -short")
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "weir-clustertest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		bin := filepath.Join(dir, "weir")
		if err := Build(filepath.Join("..", ".."), bin); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		weirBin = bin
		return m.Run()
	}()
	os.RemoveAll(dir)
	os.Exit(code)
}

func repo(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(filepath.Join("..", "..", p))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Word count over two worker processes: the source and split on one, the
// counts spread over both, two sink subtasks. The final count of every
// word equals an independent count of the sample text.
func TestWordcountAcrossWorkers(t *testing.T) {
	skipShort(t)
	c := Start(t, weirBin, Options{Workers: 2, Slots: 2})
	dir := t.TempDir()
	spec := filepath.Join(dir, "wc.yaml")
	writeWordcount(t, spec, "wordcount-cluster", 2, filepath.Join(dir, "out.jsonl"))
	id := c.Submit(spec)
	st := c.Wait(id, 3*time.Minute)
	if st.State != api.StateFinished {
		t.Fatalf("job %s: %s (%s)", id, st.State, st.Message)
	}
	workers := map[string]bool{}
	for _, s := range st.Subtasks {
		workers[s.Worker] = true
	}
	if len(workers) != 2 {
		t.Fatalf("the job ran on %d workers, want 2: %+v", len(workers), st.Subtasks)
	}
	got := finalCounts(t, dir)
	want := countWords(t, repo(t, "examples/wordcount/sample.txt"))
	if len(got) != len(want) {
		t.Fatalf("%d words counted, want %d", len(got), len(want))
	}
	for w, n := range want {
		if got[w] != n {
			t.Errorf("word %q: count %d, want %d", w, got[w], n)
		}
	}
	// SIGTERM: a worker leaves cleanly, and the coordinator sees it go.
	if err := c.Worker("w2").Stop(30 * time.Second); err != nil {
		t.Fatalf("worker w2 on SIGTERM: %v", err)
	}
}

// A worker SIGKILLed while the job runs: the job restarts on the slots
// left and ends with every key counted exactly as the source made it.
func TestWorkerKilledJobRestarts(t *testing.T) {
	skipShort(t)
	c := Start(t, weirBin, Options{Workers: 3, Slots: 2})
	dir := t.TempDir()
	spec := filepath.Join(dir, "gen.yaml")
	const records, keys = 12000, 40
	writeFile(t, spec, fmt.Sprintf(`name: killed
parallelism: 2
restart: {strategy: fixed-delay, attempts: 3, delay: 500ms}
modules:
  wc: %s
sources:
  - uid: gen
    connector: datagen
    options: {count: %d, keys: %d, rate: 2000, seed: 3}
operators:
  - uid: count
    module: wc
    operator: count
    inputs: [{from: gen, partition: key_by}]
sinks:
  - uid: out
    connector: file
    options: {path: %s}
    parallelism: 1
    input: count
`, repo(t, "examples/wordcount"), records, keys, filepath.Join(dir, "out.jsonl")))
	id := c.Submit(spec)
	// Kill a worker once the job is under way.
	var victim string
	c.WaitFor("the job to be running with records flowing", 2*time.Minute, func() bool {
		st := c.Job(id)
		for _, s := range st.Subtasks {
			if s.State == api.StateRunning && s.Metrics.RecordsOut > 0 && s.Worker != "" {
				victim = s.Worker
				return true
			}
		}
		return false
	})
	c.Worker(victim).Kill()
	t.Logf("killed worker %s", victim)
	st := c.Wait(id, 3*time.Minute)
	if st.State != api.StateFinished {
		t.Fatalf("job %s: %s (%s)", id, st.State, st.Message)
	}
	if st.Attempt < 2 {
		t.Fatalf("the job finished in attempt %d: the kill did not make it restart", st.Attempt)
	}
	for _, s := range st.Subtasks {
		if s.Worker == victim {
			t.Fatalf("subtask %s[%d] ran on the killed worker %s in the last attempt", s.Task, s.Index, victim)
		}
	}
	checkCounts(t, readRecords(t, dir), records, keys)
}

type record struct{ key, value string }

// checkCounts checks the output of a keyed counter exactly once: every
// key's counts are 1..n once each, and the n sum to the records read.
func checkCounts(t *testing.T, recs []record, records, keys int) {
	t.Helper()
	seen := map[string]map[int]bool{}
	for _, r := range recs {
		n, err := strconv.Atoi(r.value)
		if err != nil {
			t.Fatalf("count %q is not a number", r.value)
		}
		if seen[r.key] == nil {
			seen[r.key] = map[int]bool{}
		}
		if seen[r.key][n] {
			t.Fatalf("key %s: count %d twice", r.key, n)
		}
		seen[r.key][n] = true
	}
	total := 0
	for k, ns := range seen {
		for i := 1; i <= len(ns); i++ {
			if !ns[i] {
				t.Fatalf("key %s: counts up to %d but %d is missing", k, len(ns), i)
			}
		}
		total += len(ns)
	}
	if total != records || len(seen) != keys {
		t.Fatalf("%d records over %d keys, want %d over %d", total, len(seen), records, keys)
	}
}

func readRecords(t *testing.T, dir string) []record {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "out*.jsonl*")) // committed part files too, never hidden pending ones
	if len(files) == 0 {
		t.Fatalf("no output in %s", dir)
	}
	var out []record
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			var l struct{ Key, Value string }
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Fatalf("%s: %q: %v", f, sc.Text(), err)
			}
			out = append(out, record{l.Key, l.Value})
		}
		fh.Close()
	}
	return out
}

// finalCounts is the largest count the job emitted per word.
func finalCounts(t *testing.T, dir string) map[string]int {
	out := map[string]int{}
	for _, r := range readRecords(t, dir) {
		n, err := strconv.Atoi(r.value)
		if err != nil {
			t.Fatalf("count %q is not a number", r.value)
		}
		out[r.key] = max(out[r.key], n)
	}
	return out
}

// countWords counts words as examples/wordcount documents them: runs of
// letters and digits of the lowercased line.
func countWords(t *testing.T, path string) map[string]int {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, line := range strings.Split(string(b), "\n") {
		for _, w := range strings.FieldsFunc(strings.ToLower(line), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
			out[w]++
		}
	}
	return out
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A sink far slower than its source (a rate-limited file sink; the file
// source reads as fast as it can): credits hold the source back, so no
// worker buffers what the sink has not taken — each worker's peak RSS
// stays under slowSinkRSS although the input is larger than that — and
// every line arrives exactly once.
func TestSlowSinkBackpressure(t *testing.T) {
	skipShort(t)
	// The input is 160 MiB; a worker holding it would exceed the bound.
	// The bound is a worker's own footprint (Go runtime, wazero, QUIC,
	// about 40-60 MiB here) plus the buffers credits allow in flight.
	const lines, lineBytes, slowSinkRSS = 160_000, 1024, 100 << 20
	c := Start(t, weirBin, Options{Workers: 2, Slots: 1})
	dir := t.TempDir()
	in := filepath.Join(dir, "in.txt")
	var b strings.Builder
	pad := strings.Repeat("x", lineBytes-20)
	for i := range lines {
		fmt.Fprintf(&b, "%08d-%s\n", i, pad)
	}
	writeFile(t, in, b.String())
	spec := filepath.Join(dir, "slow.yaml")
	writeFile(t, spec, fmt.Sprintf(`name: slow-sink
sources:
  - uid: lines
    connector: file
    options: {path: %s, format: lines}
    parallelism: 2
sinks:
  - uid: out
    connector: file
    options: {path: %s, format: lines, rate: 20000}
    parallelism: 1
    input: lines
`, in, filepath.Join(dir, "out.txt")))
	id := c.Submit(spec)
	var backpressured float64
	peak := map[string]int64{}
	sample := time.NewTicker(200 * time.Millisecond)
	defer sample.Stop()
	for ; ; <-sample.C {
		st := c.Job(id)
		for _, s := range st.Subtasks {
			if s.Task == "lines" {
				backpressured = max(backpressured, s.Metrics.BackpressuredMsPerSec)
			}
		}
		for _, w := range []string{"w1", "w2"} {
			if rss, err := c.Worker(w).PeakRSS(); err == nil {
				peak[w] = max(peak[w], rss)
			}
		}
		if st.State.Terminal() {
			if st.State != api.StateFinished {
				t.Fatalf("job %s: %s (%s)", id, st.State, st.Message)
			}
			break
		}
	}
	t.Logf("peak RSS: w1 %d MiB, w2 %d MiB; source backpressured up to %.0f ms/s", peak["w1"]>>20, peak["w2"]>>20, backpressured)
	for w, rss := range peak {
		if rss > slowSinkRSS {
			t.Errorf("worker %s peaked at %d MiB, over the %d MiB bound", w, rss>>20, slowSinkRSS>>20)
		}
	}
	if backpressured < 500 {
		t.Errorf("the source was backpressured at most %.0f ms/s; want most of its time", backpressured)
	}
	out, err := os.ReadFile(filepath.Join(dir, "out.txt"))
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]bool, lines)
	for _, l := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		if seen[l] {
			t.Fatalf("line %.8s arrived twice", l)
		}
		seen[l] = true
	}
	if len(seen) != lines {
		t.Fatalf("%d lines arrived, want %d", len(seen), lines)
	}
	for i := range lines {
		if !seen[fmt.Sprintf("%08d-%s", i, pad)] {
			t.Fatalf("line %08d is missing", i)
		}
	}
}

func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process: runs in the full suite (without -short)")
	}
}

// A module's log lines reach `weir job logs` from the workers, each once.
func TestJobLogs(t *testing.T) {
	skipShort(t)
	c := Start(t, weirBin, Options{Workers: 2, Slots: 1})
	dir := t.TempDir()
	spec := filepath.Join(dir, "logs.yaml")
	writeFile(t, spec, fmt.Sprintf(`name: logs
parallelism: 2
modules:
  logs: %s
sources:
  - uid: gen
    connector: datagen
    options: {count: 2000, keys: 4, seed: 1}
operators:
  - uid: tally
    module: logs
    operator: tally
    inputs: [{from: gen, partition: key_by}]
sinks:
  - uid: out
    connector: discard
    input: tally
`, repo(t, "examples/logs")))
	id := c.Submit(spec)
	if st := c.Wait(id, 3*time.Minute); st.State != api.StateFinished {
		t.Fatalf("job %s: %s (%s)", id, st.State, st.Message)
	}
	// The last heartbeats carry the last lines: wait until they stop coming.
	var lines []api.LogLine
	c.WaitFor("the log lines", time.Minute, func() bool {
		out, err := exec.Command(c.bin, "job", "logs", id, "--operator", "tally", "--output", "json", "--coordinator", c.URL).Output()
		if err != nil {
			t.Fatalf("weir job logs: %v", err)
		}
		var got []api.LogLine
		dec := json.NewDecoder(bytes.NewReader(out))
		for dec.More() {
			var l api.LogLine
			if err := dec.Decode(&l); err != nil {
				t.Fatalf("weir job logs printed %q: %v", out, err)
			}
			got = append(got, l)
		}
		done := len(got) > 0 && len(got) == len(lines)
		lines = got
		return done
	})
	// 2000 records over 4 keys: at least 16 lines "key K reached N", N
	// counting up by 100 per key, each once.
	reached := map[string][]int{}
	for _, l := range lines {
		var k string
		var n int
		if _, err := fmt.Sscanf(l.Message, "key %s reached %d", &k, &n); err != nil || l.Operator != "tally" {
			t.Fatalf("line %+v is not one of tally's", l)
		}
		reached[k] = append(reached[k], n)
	}
	if len(lines) < 16 || len(reached) != 4 {
		t.Fatalf("%d lines over %d keys, want at least 16 over 4", len(lines), len(reached))
	}
	for k, ns := range reached {
		sort.Ints(ns)
		for i, n := range ns {
			if n != (i+1)*100 {
				t.Fatalf("key %s reached %v: not 100, 200, ... once each", k, ns)
			}
		}
	}
}

// Application mode with the process provider: `weir coordinator --job`
// starts its own workers, runs the one job with a correct result, and
// exits 0 with the job's final status on stdout.
func TestApplicationModeProcessProvider(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	spec := filepath.Join(dir, "wc.yaml")
	writeWordcount(t, spec, "wordcount-app", 1, filepath.Join(dir, "out.jsonl"))
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, weirBin, "coordinator", "--job", spec, "--provider", "process", "--worker-slots", "2",
		"--listen", "127.0.0.1:"+strconv.Itoa(freePort(t)), "--data-dir", filepath.Join(dir, "data"), "--output", "json")
	cmd.Env = append(os.Environ(), "WEIR_CACHE_DIR="+filepath.Join(dir, "cache"))
	cmd.WaitDelay = 10 * time.Second
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("weir coordinator --job: %v\n%s", err, tail(errOut.String(), 60))
	}
	var st api.JobStatus
	if err := json.Unmarshal(out.Bytes(), &st); err != nil || st.State != api.StateFinished {
		t.Fatalf("the job's result: %q (%v)", out.String(), err)
	}
	if !strings.Contains(errOut.String(), "started a worker") {
		t.Fatalf("the coordinator started no worker:\n%s", tail(errOut.String(), 40))
	}
	got, want := finalCounts(t, dir), countWords(t, repo(t, "examples/wordcount/sample.txt"))
	if len(got) != len(want) {
		t.Fatalf("%d words counted, want %d", len(got), len(want))
	}
	for w, n := range want {
		if got[w] != n {
			t.Errorf("word %q: count %d, want %d", w, got[w], n)
		}
	}
}

// writeWordcount writes a word count spec over the sample text: the source
// and split at parallelism 1, the counts at 3, and sinks sink subtasks
// writing out.
func writeWordcount(t *testing.T, spec, name string, sinks int, out string) {
	t.Helper()
	writeFile(t, spec, fmt.Sprintf(`name: %s
parallelism: 2
modules:
  wc: %s
sources:
  - uid: lines
    connector: file
    options: {path: %s, format: lines}
    parallelism: 1
operators:
  - uid: split
    module: wc
    operator: split
    parallelism: 1
    input: lines
  - uid: count
    module: wc
    operator: count
    parallelism: 3
    inputs: [{from: split, partition: key_by}]
sinks:
  - uid: out
    connector: file
    options: {path: %s}
    parallelism: %d
    input: count
`, name, repo(t, "examples/wordcount"), repo(t, "examples/wordcount/sample.txt"), out, sinks))
}
