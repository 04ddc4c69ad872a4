// Package aswordcount tests the AssemblyScript word count example: job.yaml
// run by `weir run`, its output checked against a count made here.
package aswordcount

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestJob builds weir, runs a copy of job.yaml (the module folder made
// absolute, the sink in a temporary folder) and compares the final count of
// every word with strings.FieldsFunc over sample.txt.
func TestJob(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "weir")
	build := exec.Command("go", "build", "-o", bin, "./cmd/weir")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building weir: %v\n%s", err, out)
	}
	here, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := os.ReadFile("job.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := string(spec)
	for _, r := range [][2]string{
		{"  wc: .", "  wc: " + here},
		{"path: sample.txt", "path: " + filepath.Join(here, "sample.txt")},
		{"path: out/counts.jsonl", "path: " + filepath.Join(dir, "counts.jsonl")},
	} {
		if strings.Count(s, r[0]) != 1 {
			t.Fatalf("job.yaml: want one %q", r[0])
		}
		s = strings.Replace(s, r[0], r[1], 1)
	}
	path := filepath.Join(dir, "job.yaml")
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "run", path)
	cache := os.Getenv("WEIR_CACHE_DIR")
	if cache == "" {
		cache = filepath.Join(os.TempDir(), "weir-as-wordcount-cache")
	}
	cmd.Env = append(os.Environ(), "WEIR_CACHE_DIR="+cache)
	cmd.Dir = filepath.Join(here, "..", "..")
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("weir run job.yaml: %v\n%s", err, stderr.String())
	}

	text, err := os.ReadFile("sample.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	words := strings.FieldsFunc(strings.ToLower(string(text)), func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
	})
	for _, w := range words {
		want[w]++
	}
	f, err := os.Open(filepath.Join(dir, "counts.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := map[string]int{}
	lines := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r struct {
			Key   string          `json:"key"`
			Value json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%v: %s", err, sc.Text())
		}
		n, err := strconv.Atoi(strings.Trim(string(r.Value), `"`))
		if err != nil {
			t.Fatalf("count %s of %q", r.Value, r.Key)
		}
		// Counts of one word arrive in order (one key, one subtask).
		if n != got[r.Key]+1 {
			t.Fatalf("word %q: count %d after %d", r.Key, n, got[r.Key])
		}
		got[r.Key] = n
		lines++
	}
	if lines != len(words) {
		t.Fatalf("%d counts for %d words", lines, len(words))
	}
	for w, n := range want {
		if got[w] != n {
			t.Errorf("count[%q] = %d, want %d", w, got[w], n)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d words counted, want %d", len(got), len(want))
	}
}
