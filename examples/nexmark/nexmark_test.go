//go:build !wasip1

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weirstream/weir/examples/nexmark/reference"
	"github.com/weirstream/weir/internal/nexmark"
)

// The end-to-end test: each query's job spec, with fewer events and its
// output in a temporary folder, runs on the real engine (`weir run`, the
// binary built once per test run) with each state backend, and its output
// must equal, as a multiset, what package reference computes from the same
// events.

// Source options of the specs the test keeps: it only changes count.
const (
	specSeed = 1
	specRate = 200
)

var (
	weirOnce sync.Once
	weirBin  string
	weirErr  error
	tmpRoot  string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "weir-nexmark-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tmpRoot = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// repoRoot is the folder of go.mod, two levels up.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod two folders up from the test: %v", err)
	}
	return root
}

// weir builds the weir binary once per test run.
func weir(t *testing.T) string {
	t.Helper()
	weirOnce.Do(func() {
		weirBin = filepath.Join(tmpRoot, "weir")
		cmd := exec.Command("go", "build", "-o", weirBin, "./cmd/weir")
		cmd.Dir = repoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			weirErr = fmt.Errorf("building weir: %v\n%s", err, out)
		}
	})
	if weirErr != nil {
		t.Fatal(weirErr)
	}
	return weirBin
}

// replaceOnce replaces the one match of re in s, failing the test when
// there is not exactly one: the spec changed and the test must follow.
func replaceOnce(t *testing.T, s, re, repl string) string {
	t.Helper()
	r := regexp.MustCompile(re)
	if n := len(r.FindAllStringIndex(s, -1)); n != 1 {
		t.Fatalf("spec: %d matches of %q, want 1", n, re)
	}
	return r.ReplaceAllLiteralString(s, repl)
}

// runJob writes a copy of spec with edit applied into a temporary folder,
// runs it with `weir run` and returns the records of its file sink, which
// the edit must have pointed at out.jsonl in that folder (dir).
func runJob(t *testing.T, spec string, edit func(text, dir string) string) []reference.Record {
	t.Helper()
	text, err := os.ReadFile(spec)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, filepath.Base(spec))
	if err := os.WriteFile(path, []byte(edit(string(text), dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, weir(t), "run", path)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "WEIR_CACHE_DIR="+cacheDir())
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("weir run %s: %v (after %v)\nstderr:\n%s\nstdout:\n%s", filepath.Base(spec), err,
			time.Since(start).Round(time.Millisecond), tail(stderr.String()), tail(stdout.String()))
	}
	t.Logf("weir run %s: %v", filepath.Base(spec), time.Since(start).Round(time.Millisecond))
	return readOutput(t, dir)
}

// cacheDir is where weir caches module builds: $WEIR_CACHE_DIR when set,
// else a folder of this test run, so the module is built once per run.
func cacheDir() string {
	if d := os.Getenv("WEIR_CACHE_DIR"); d != "" {
		return d
	}
	return filepath.Join(tmpRoot, "cache")
}

func tail(s string) string {
	if lines := strings.Split(s, "\n"); len(lines) > 40 {
		return "...\n" + strings.Join(lines[len(lines)-40:], "\n")
	}
	return s
}

// readOutput reads the JSONL files the file sink wrote for out.jsonl (one
// per sink subtask: out.jsonl or out-<i>.jsonl).
func readOutput(t *testing.T, dir string) []reference.Record {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "out*.jsonl"))
	if len(files) == 0 {
		t.Fatalf("the job wrote no out*.jsonl in %s", dir)
	}
	var recs []reference.Record
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 16<<20)
		for line := 1; sc.Scan(); line++ {
			r, err := parseLine(sc.Bytes())
			if err != nil {
				t.Fatalf("%s:%d: %v", filepath.Base(f), line, err)
			}
			recs = append(recs, r)
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		fh.Close()
	}
	return recs
}

// parseLine parses one line of the file sink: {"key":K,"value":V,
// "timestamp":T} with K a string or null and V a JSON object or a string
// holding one.
func parseLine(b []byte) (reference.Record, error) {
	var l struct {
		Key       *string         `json:"key"`
		Value     json.RawMessage `json:"value"`
		Timestamp *int64          `json:"timestamp"`
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&l); err != nil {
		return reference.Record{}, fmt.Errorf("%w in %s", err, b)
	}
	if l.Timestamp == nil || len(l.Value) == 0 {
		return reference.Record{}, fmt.Errorf("no timestamp or value in %s", b)
	}
	r := reference.Record{Value: string(l.Value), Timestamp: *l.Timestamp}
	if l.Key != nil {
		r.Key = *l.Key
	}
	if l.Value[0] == '"' {
		if err := json.Unmarshal(l.Value, &r.Value); err != nil {
			return r, err
		}
	}
	return r, nil
}

// events returns the events of the specs' nexmark source with count n.
func events(t *testing.T, n int64) []nexmark.Event {
	t.Helper()
	g, err := nexmark.NewGenerator(nexmark.Config{Seed: specSeed, EventsPerSecond: specRate, Count: n}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	var out []nexmark.Event
	var e nexmark.Event
	for g.Next(&e) {
		out = append(out, e)
	}
	return out
}

func TestQueries(t *testing.T) { testQueries(t, ".") }

// TestQueriesRust runs the same job specs with the module swapped for the
// Rust operators of rust/ (the same names, records and results), checked
// against the same reference.
func TestQueriesRust(t *testing.T) { testQueries(t, "rust") }

// testQueries runs every query's spec with module (a folder, relative to
// this one) as the spec's nexmark module.
func testQueries(t *testing.T, module string) {
	n := int64(30000) // 150 s of event time
	if testing.Short() {
		n = 6000
	}
	evs := events(t, n)
	for _, q := range []string{"q0", "q1", "q2", "q3", "q4", "q5", "q7", "q8"} {
		want := reference.Queries[q](evs)
		if len(want) == 0 {
			t.Fatalf("%s: the reference expects no output from %d events: the test would prove nothing", q, n)
		}
		for _, backend := range []string{"heap", "pebble"} {
			t.Run(q+"/"+backend, func(t *testing.T) {
				got := runJob(t, q+".yaml", func(s, dir string) string {
					s = replaceOnce(t, s, `count: 200000\b`, fmt.Sprintf("count: %d", n))
					s = replaceOnce(t, s, `\bseed: 1\b`, fmt.Sprintf("seed: %d", specSeed))
					s = replaceOnce(t, s, `\brate: 200\b`, fmt.Sprintf("rate: %d", specRate))
					s = replaceOnce(t, s, `\bbackend: heap\b`, "backend: "+backend)
					s = replaceOnce(t, s, `(?m)^  nexmark: \.`, "  nexmark: "+mustAbs(t, module))
					return replaceOnce(t, s, `path: out/`+q+`\.jsonl`, "path: "+filepath.Join(dir, "out.jsonl"))
				})
				if d := reference.Diff(want, got, 8); d != "" {
					t.Errorf("%s.yaml with %d events, state backend %s:\n%s", q, n, backend, d)
				}
			})
		}
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
