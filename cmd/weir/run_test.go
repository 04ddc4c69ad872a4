package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// writeSpec writes a job spec into a temp folder and returns its path.
func writeSpec(t *testing.T, dir, text string) string {
	t.Helper()
	p := filepath.Join(dir, "job.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// jsonlRecords reads a file sink's output (one or several subtask files).
func jsonlRecords(t *testing.T, glob string) []outRec {
	t.Helper()
	files, _ := filepath.Glob(glob)
	if len(files) == 0 {
		t.Fatalf("no output files %s", glob)
	}
	var out []outRec
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			var r struct {
				Key       *string         `json:"key"`
				Value     json.RawMessage `json:"value"`
				Timestamp int64           `json:"timestamp"`
			}
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("%s: %v: %s", f, err, sc.Text())
			}
			rec := outRec{Timestamp: r.Timestamp}
			if r.Key != nil {
				rec.Key = *r.Key
			}
			var s string
			if json.Unmarshal(r.Value, &s) == nil {
				rec.Value = s
			} else {
				rec.Value = string(r.Value)
			}
			out = append(out, rec)
		}
		fh.Close()
	}
	return out
}

// TestRunWordcount runs the wordcount job on the engine with both state
// backends and several parallelisms, and checks every count update against
// counts made here; the two backends must give the same records.
func TestRunWordcount(t *testing.T) {
	e2e(t)
	text, err := os.ReadFile(filepath.Join(repoRoot, "examples/wordcount/sample.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	all := words(string(text))
	for _, w := range all {
		want[w]++
	}
	var previous []string
	for _, c := range []struct {
		backend       string
		split, counts int
	}{{"heap", 1, 1}, {"pebble", 1, 1}, {"heap", 2, 3}, {"pebble", 2, 3}} {
		t.Run(fmt.Sprintf("%s/%d-%d", c.backend, c.split, c.counts), func(t *testing.T) {
			dir := t.TempDir()
			spec := writeSpec(t, dir, fmt.Sprintf(`
name: wc-test
state: {backend: %s}
modules: {wc: %s}
sources:
  - {uid: lines, connector: file, options: {path: %s, format: lines}, parallelism: %d}
operators:
  - {uid: split, module: wc, operator: split, parallelism: %d, input: lines}
  - {uid: count, module: wc, operator: count, parallelism: %d, inputs: [{from: split, partition: key_by}]}
sinks:
  - {uid: out, connector: file, options: {path: out.jsonl}, parallelism: 1, input: count}
`, c.backend, filepath.Join(repoRoot, "examples/wordcount"), filepath.Join(repoRoot, "examples/wordcount/sample.txt"), c.split, c.split, c.counts))
			r := mustWeir(t, "run", spec, "--output", "json")
			var res RunResult
			if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
				t.Fatalf("--output json: %v\n%s", err, r.stdout)
			}
			if res.Status != "finished" || len(res.Nodes) != 4 {
				t.Fatalf("summary: %+v", res)
			}
			recs := jsonlRecords(t, filepath.Join(dir, "out.jsonl"))
			if len(recs) != len(all) {
				t.Fatalf("%d count updates, want one per word: %d", len(recs), len(all))
			}
			counts := map[string][]int{}
			var lines []string
			for _, rec := range recs {
				n, err := strconv.Atoi(rec.Value)
				if err != nil {
					t.Fatalf("count %q of %q", rec.Value, rec.Key)
				}
				counts[rec.Key] = append(counts[rec.Key], n)
				lines = append(lines, rec.Key+"="+rec.Value)
			}
			for w, n := range want {
				got := counts[w]
				slices.Sort(got)
				for i, v := range got {
					if v != i+1 {
						t.Fatalf("word %q: counts %v, want 1..%d", w, got, n)
					}
				}
				if len(got) != n {
					t.Fatalf("word %q: %d updates, want %d", w, len(got), n)
				}
			}
			slices.Sort(lines)
			if previous != nil && !slices.Equal(previous, lines) {
				t.Fatal("different records than the previous backend/parallelism")
			}
			previous = lines
		})
	}
}

// TestRunRejectsBadSpecs checks that `weir run` refuses broken specs before
// anything starts, naming file, line and field.
func TestRunRejectsBadSpecs(t *testing.T) {
	e2e(t)
	wc := filepath.Join(repoRoot, "examples/wordcount")
	sample := filepath.Join(wc, "sample.txt")
	cases := []struct {
		name, spec, want string
	}{
		{"cycle", `name: c
modules: {wc: ` + wc + `}
sources: [{uid: s, connector: datagen, options: {count: 10, keys: 3}}]
operators:
  - {uid: a, module: wc, operator: split, inputs: [s, b]}
  - {uid: b, module: wc, operator: split, input: a}
sinks: [{uid: o, connector: discard, input: b}]
`, "cycle"},
		{"unknown connector", `name: u
sources: [{uid: s, connector: kafka}]
sinks: [{uid: o, connector: discard, input: s}]
`, `job.yaml:2:`},
		{"parallelism above max", `name: p
max_parallelism: 4
sources: [{uid: s, connector: datagen, options: {count: 10}, parallelism: 8}]
sinks: [{uid: o, connector: discard, input: s, parallelism: 8}]
`, "job.yaml:3:"},
		{"key_by on unkeyed source", `name: k
modules: {wc: ` + wc + `}
sources: [{uid: s, connector: file, options: {path: ` + sample + `}}]
operators: [{uid: c, module: wc, operator: count, inputs: [{from: s, partition: key_by}]}]
sinks: [{uid: o, connector: discard, input: c}]
`, "job.yaml:4:"},
		{"missing module", `name: m
modules: {wc: /nonexistent/op.wasm}
sources: [{uid: s, connector: datagen, options: {count: 10}}]
operators: [{uid: a, module: wc, operator: split, input: s}]
sinks: [{uid: o, connector: discard, input: a}]
`, "job.yaml:2:"},
		{"missing operator", `name: o
modules: {wc: ` + wc + `}
sources: [{uid: s, connector: datagen, options: {count: 10}}]
operators: [{uid: a, module: wc, operator: splt, input: s}]
sinks: [{uid: o, connector: discard, input: a}]
`, "job.yaml:4:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			r := weir(t, "run", writeSpec(t, dir, c.spec))
			if r.code != 1 || !strings.Contains(r.stderr, c.want) {
				t.Fatalf("exit %d, stderr %q; want exit 1 and %q", r.code, r.stderr, c.want)
			}
			if strings.Contains(r.stderr, "goroutine ") {
				t.Fatalf("stack trace without --debug: %s", r.stderr)
			}
		})
	}
}

// TestRunRecordFailure runs an operator that fails on one record: the job
// fails naming the operator, the subtask and the record's offset; with
// on_error: skip it finishes without that record.
func TestRunRecordFailure(t *testing.T) {
	e2e(t)
	dir := t.TempDir()
	op := filepath.Join(dir, "op")
	mustWeir(t, "module", "init", "--lang", "go", op)
	src := `package main

import (
	"errors"

	weir "github.com/weirstream/weir/sdk/go"
)

func init() {
	weir.Map("picky", func(r weir.Record) (weir.Record, error) {
		if string(r.Value) == "boom" {
			return r, errors.New("cannot take boom")
		}
		return r, nil
	})
}

func main() {}
`
	if err := os.WriteFile(filepath.Join(op, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	input := filepath.Join(dir, "in.txt")
	if err := os.WriteFile(input, []byte("a\nb\nc\nboom\nd\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := func(policy string) string {
		return writeSpec(t, dir, fmt.Sprintf(`name: picky
modules: {m: %s}
sources: [{uid: s, connector: file, options: {path: %s}}]
operators: [{uid: p, module: m, operator: picky, input: s, on_error: %s}]
sinks: [{uid: o, connector: file, options: {path: out-%s.jsonl}, input: p}]
`, op, input, policy, policy))
	}
	r := weir(t, "run", spec("fail"))
	if r.code != 1 || !strings.Contains(r.stderr, "operator p subtask 0") || !strings.Contains(r.stderr, "record 3") || !strings.Contains(r.stderr, "cannot take boom") {
		t.Fatalf("exit %d, stderr %q; want the operator, subtask, record offset 3 and the reason", r.code, r.stderr)
	}
	mustWeir(t, "run", spec("skip"))
	var got []string
	for _, rec := range jsonlRecords(t, filepath.Join(dir, "out-skip.jsonl")) {
		got = append(got, rec.Value)
	}
	if !slices.Equal(got, []string{"a", "b", "c", "d"}) {
		t.Fatalf("skip: got %q", got)
	}
}
