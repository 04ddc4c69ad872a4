// Package wordcountrust_test runs the Rust word count example's job spec
// with `weir run` (the binary built from this checkout, the module built
// with the real rustc) and checks the counts against a count made here.
package wordcountrust_test

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

func TestJob(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	weir := filepath.Join(tmp, "weir")
	build := exec.Command("go", "build", "-o", weir, "./cmd/weir")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building weir: %v\n%s", err, out)
	}
	spec, err := os.ReadFile("job.yaml")
	if err != nil {
		t.Fatal(err)
	}
	here, _ := filepath.Abs(".")
	text := strings.Replace(string(spec), "wc: .", "wc: "+here, 1)
	text = strings.Replace(text, "path: sample.txt", "path: "+filepath.Join(here, "sample.txt"), 1)
	text = strings.Replace(text, "path: out/counts.jsonl", "path: "+filepath.Join(tmp, "counts.jsonl"), 1)
	path := filepath.Join(tmp, "job.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(weir, "run", path)
	cmd.Env = append(os.Environ(), "WEIR_CACHE_DIR="+filepath.Join(os.TempDir(), "weir-wordcount-rust-cache"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("weir run: %v\n%s", err, out)
	}

	sample, err := os.ReadFile("sample.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	all := strings.FieldsFunc(strings.ToLower(string(sample)), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	for _, w := range all {
		want[w]++
	}

	f, err := os.Open(filepath.Join(tmp, "counts.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, updates := map[string]int{}, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec struct{ Key, Value string }
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		n, err := strconv.Atoi(rec.Value)
		if err != nil {
			t.Fatalf("count of %q is %q", rec.Key, rec.Value)
		}
		// Counts of one word come from one subtask, in order: each update
		// is one more than the last.
		if n != got[rec.Key]+1 {
			t.Fatalf("count of %q went from %d to %d", rec.Key, got[rec.Key], n)
		}
		got[rec.Key] = n
		updates++
	}
	if updates != len(all) {
		t.Errorf("%d count updates, want one per word: %d", updates, len(all))
	}
	if len(got) != len(want) {
		t.Errorf("%d distinct words, want %d", len(got), len(want))
	}
	for w, n := range want {
		if got[w] != n {
			t.Errorf("count[%q] = %d, want %d", w, got[w], n)
		}
	}
}
