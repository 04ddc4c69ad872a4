package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// These tests run the real weir binary as a user would: a separate process,
// real builds with the Go toolchain and clang, real modules.

var (
	weirBin  string
	cacheDir string
	repoRoot string
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		tmp, err := os.MkdirTemp("", "weir-cli-test-")
		if err != nil {
			panic(err)
		}
		defer os.RemoveAll(tmp)
		weirBin = filepath.Join(tmp, "weir")
		cacheDir = filepath.Join(tmp, "cache")
		wd, _ := os.Getwd()
		repoRoot = filepath.Join(wd, "..", "..")
		if out, err := exec.Command("go", "build", "-o", weirBin, ".").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building weir: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}())
}

type result struct {
	stdout, stderr string
	code           int
}

func weir(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(weirBin, args...)
	cmd.Env = append(os.Environ(), "WEIR_CACHE_DIR="+cacheDir)
	cmd.Dir = repoRoot
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running weir %v: %v", args, err)
	}
	return result{so.String(), se.String(), code}
}

func mustWeir(t *testing.T, args ...string) result {
	t.Helper()
	r := weir(t, args...)
	if r.code != 0 {
		t.Fatalf("weir %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

func e2e(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: runs in the full suite (go tool task test runs both)")
	}
}

type outRec struct {
	Operator  string `json:"operator"`
	Output    string `json:"output"`
	Key       string `json:"key"`
	Value     string `json:"value"`
	Timestamp int64  `json:"timestamp"`
}

type testResult struct {
	Records  []outRec         `json:"records"`
	Counters map[string]int64 `json:"counters"`
	Inputs   int              `json:"inputs"`
}

func parseResult(t *testing.T, s string) testResult {
	t.Helper()
	var r testResult
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		t.Fatalf("--output json is not JSON: %v\n%s", err, s)
	}
	return r
}

// words splits text the way the wordcount example promises: lowercase runs
// of letters and digits.
func words(text string) []string {
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

// TestWordcount runs the wordcount example's two operators as a chain and
// checks the counts against a count made here from the same text.
func TestWordcount(t *testing.T) {
	e2e(t)
	mustWeir(t, "module", "build", "examples/wordcount")
	r := mustWeir(t, "module", "test", "examples/wordcount/wordcount.wasm", "--operator", "split,count",
		"--input", "examples/wordcount/sample.txt", "--output", "json")
	res := parseResult(t, r.stdout)
	text, err := os.ReadFile(filepath.Join(repoRoot, "examples/wordcount/sample.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{}
	all := words(string(text))
	for _, w := range all {
		want[w]++
	}
	got := map[string]int64{}
	for _, rec := range res.Records {
		n, err := strconv.ParseInt(rec.Value, 10, 64)
		if err != nil {
			t.Fatalf("count for %q is %q", rec.Key, rec.Value)
		}
		if n != got[rec.Key]+1 {
			t.Fatalf("count for %q went from %d to %d", rec.Key, got[rec.Key], n)
		}
		got[rec.Key] = n
	}
	if len(res.Records) != len(all) {
		t.Errorf("%d count updates, want one per word: %d", len(res.Records), len(all))
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

// readValues reads the "value" of each line of a JSON Lines file.
func readValues(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var rec struct {
			Value string `json:"value"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, rec.Value)
	}
	return out
}

// TestNewOperator follows the README's quick start for each SDK: init,
// build, test, inspect, and a second build from the cache.
func TestNewOperator(t *testing.T) {
	e2e(t)
	for _, lang := range []string{"go", "c", "rust", "assemblyscript"} {
		t.Run(lang, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "op")
			mustWeir(t, "module", "init", "--lang", lang, dir)
			if r := weir(t, "module", "init", "--lang", lang, dir); r.code == 0 || !strings.Contains(r.stderr, "exists") {
				t.Errorf("init over an existing template: exit %d, %s", r.code, r.stderr)
			}
			b := mustWeir(t, "module", "build", dir)
			if !strings.Contains(b.stdout, "built") {
				t.Errorf("first build says %q", b.stdout)
			}
			wasm := filepath.Join(dir, "op.wasm")
			sample := filepath.Join(dir, "sample.jsonl")
			res := parseResult(t, mustWeir(t, "module", "test", wasm, "--operator", "upper", "--input", sample, "--output", "json").stdout)
			in := readValues(t, sample)
			if len(res.Records) != len(in) || res.Inputs != len(in) {
				t.Fatalf("%d records out of %d in", len(res.Records), len(in))
			}
			for i, rec := range res.Records {
				if rec.Value != strings.ToUpper(in[i]) {
					t.Errorf("record %d = %q, want %q", i, rec.Value, strings.ToUpper(in[i]))
				}
			}
			// count: a keyed running count; the last count per key is the
			// number of records with that key.
			res = parseResult(t, mustWeir(t, "module", "test", wasm, "--operator", "count", "--input", sample, "--output", "json").stdout)
			if len(res.Records) != len(in) {
				t.Fatalf("count emitted %d records for %d in", len(res.Records), len(in))
			}
			keys := readKeys(t, sample)
			want, got := map[string]int{}, map[string]string{}
			for _, k := range keys {
				want[k]++
			}
			for _, rec := range res.Records {
				got[rec.Key] = rec.Value
			}
			for k, n := range want {
				if got[k] != strconv.Itoa(n) {
					t.Errorf("count[%q] = %q, want %d", k, got[k], n)
				}
			}
			if b := mustWeir(t, "module", "build", dir); !strings.Contains(b.stdout, "cached") {
				t.Errorf("second build says %q, want cached", b.stdout)
			}
			var info struct {
				ABI       int `json:"abi"`
				Operators []struct {
					Name, Kind string
				} `json:"operators"`
			}
			if err := json.Unmarshal([]byte(mustWeir(t, "module", "inspect", wasm, "--output", "json").stdout), &info); err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, op := range info.Operators {
				names = append(names, op.Name+":"+op.Kind)
			}
			sort.Strings(names)
			if info.ABI != 1 || strings.Join(names, " ") != "count:process upper:map" {
				t.Errorf("inspect: abi %d operators %v", info.ABI, names)
			}
			text := mustWeir(t, "module", "inspect", wasm).stdout
			for _, s := range []string{"abi      v1", "upper", "process", "imports"} {
				if !strings.Contains(text, s) {
					t.Errorf("inspect output lacks %q:\n%s", s, text)
				}
			}
		})
	}
}

func readKeys(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var rec struct {
			Key string `json:"key"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		out = append(out, rec.Key)
	}
	return out
}

func wat(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "m.wat"), filepath.Join(dir, "m.wasm")
	if err := os.WriteFile(in, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("wat2wasm", in, "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm (Debian package wabt; `go tool task deps` installs it): %v\n%s", err, b)
	}
	return out
}

const watV2 = `(module (memory (export "memory") 1)
  (func (export "weir_abi_version") (result i32) (i32.const 2))
  (func (export "weir_describe"))
  (func (export "weir_buffer") (param i32) (result i32) (i32.const 0))
  (func (export "weir_call") (param i32 i32 i32) (result i32) (i32.const 0)))`

const watTrap = `(module
  (import "weir" "output" (func $output (param i32 i32)))
  (memory (export "memory") 2)
  (data (i32.const 0) "{\"operators\":[{\"name\":\"boom\",\"kind\":\"map\"}]}")
  (func (export "weir_abi_version") (result i32) (i32.const 1))
  (func (export "weir_describe") (call $output (i32.const 0) (i32.const 44)))
  (func (export "weir_buffer") (param i32) (result i32) (i32.const 1024))
  (func (export "weir_call") (param i32 i32 i32) (result i32)
    (if (i32.eq (local.get 1) (i32.const 1)) (then unreachable))
    (i32.const 0)))`

// TestBadInput: each mistake gives one line on stderr that says what and
// where, a non-zero exit status, and no stack trace.
func TestBadInput(t *testing.T) {
	e2e(t)
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.wasm")
	os.WriteFile(garbage, []byte("this is not wasm"), 0o644)
	good := filepath.Join(dir, "in.jsonl")
	os.WriteFile(good, []byte(`{"key":"a","value":"id=000001;amt=5;note=x","timestamp":1}`+"\n"), 0o644)
	broken := filepath.Join(dir, "broken.jsonl")
	os.WriteFile(broken, []byte(`{"key":"a","value":"x"}`+"\n"+`{"key":"b","value":`+"\n"), 0o644)
	badRecord := filepath.Join(dir, "bad-record.jsonl")
	os.WriteFile(badRecord, []byte(`{"value":"id=000001;amt=5;note=x"}`+"\n"+`{"value":"id=000002;amt=7;note=y"}`+"\n"+`{"value":"no amount here"}`+"\n"), 0o644)

	brokenRust := filepath.Join(dir, "rustop")
	os.MkdirAll(brokenRust, 0o755)
	os.WriteFile(filepath.Join(brokenRust, "lib.rs"), []byte("fn f() -> u8 {\n    \"not a number\"\n}\n"), 0o644)

	mustWeir(t, "module", "build", "examples/bench/go", "--out", filepath.Join(dir, "bench.wasm"))
	bench := filepath.Join(dir, "bench.wasm")

	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"malformed wasm", []string{"module", "test", garbage, "--operator", "x", "--input", good}, []string{"garbage.wasm", "not a valid WebAssembly module"}},
		{"other ABI", []string{"module", "inspect", wat(t, watV2)}, []string{"speaks ABI v2, this host speaks v1"}},
		{"missing operator", []string{"module", "test", bench, "--operator", "nope", "--input", good}, []string{`no such operator "nope"`, "identity, rewrite"}},
		{"missing module", []string{"module", "test", filepath.Join(dir, "none.wasm"), "--operator", "x", "--input", good}, []string{"does not exist", "weir module build"}},
		{"broken JSONL line", []string{"module", "test", bench, "--operator", "identity", "--input", broken}, []string{"broken.jsonl:2:"}},
		{"operator fails on a record", []string{"module", "test", bench, "--operator", "rewrite", "--input", badRecord}, []string{"bad-record.jsonl:3:", "operator rewrite", "operator failed"}},
		{"module traps", []string{"module", "test", wat(t, watTrap), "--operator", "boom", "--input", good}, []string{"in.jsonl:1-1", "operator boom", "module trapped", "unreachable"}},
		{"no operator flag", []string{"module", "test", bench, "--input", good}, []string{"--operator is required"}},
		{"bad output flag", []string{"module", "inspect", bench, "--output", "yaml"}, []string{`--output "yaml"`}},
		{"not an operator folder", []string{"module", "build", dir}, []string{"no operator sources", "weir module init"}},
		{"Rust that does not compile", []string{"module", "build", brokenRust}, []string{"lib.rs:2:5: error[E0308]: mismatched types"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := weir(t, c.args...)
			if r.code == 0 {
				t.Fatalf("exit 0; stdout %s", r.stdout)
			}
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "weir: ") {
				t.Fatalf("last stderr line %q does not start with 'weir: '", last)
			}
			for _, w := range c.want {
				if !strings.Contains(last, w) {
					t.Errorf("error %q lacks %q", last, w)
				}
			}
			if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, ".go:") {
				t.Errorf("stderr has a stack trace:\n%s", r.stderr)
			}
		})
	}
}

// TestConfigPrecedence: flags > WEIR_* environment > config file > defaults.
func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "weir.yaml")
	os.WriteFile(cfg, []byte("output: json\n"), 0o644)
	run := func(env []string, args ...string) string {
		cmd := exec.Command(weirBin, args...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("weir %v: %v", args, err)
		}
		return string(out)
	}
	isJSON := func(s string) bool { return json.Valid([]byte(s)) }
	if isJSON(run(nil, "version")) {
		t.Error("default output is JSON")
	}
	if !isJSON(run(nil, "version", "--config", cfg)) {
		t.Error("config file output: json ignored")
	}
	if isJSON(run([]string{"WEIR_OUTPUT=text"}, "version", "--config", cfg)) {
		t.Error("WEIR_OUTPUT=text did not override the config file")
	}
	if !isJSON(run([]string{"WEIR_OUTPUT=text"}, "version", "--config", cfg, "--output", "json")) {
		t.Error("--output json did not override WEIR_OUTPUT")
	}
}

// TestBenchABI runs `weir bench abi` small: every row is there, and the
// JSON is what scripts read.
func TestBenchABI(t *testing.T) {
	e2e(t)
	r := mustWeir(t, "bench", "abi", "--records", "2048", "--batch", "1,64", "--output", "json")
	var rep struct {
		Rows []struct {
			Impl, Op, Deadline string
			Batch              int
			NsPerRecord        float64 `json:"ns_per_record"`
		} `json:"rows"`
		GoInstantiateMs float64 `json:"go_instantiate_ms"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	seen := map[string]bool{}
	for _, row := range rep.Rows {
		if row.NsPerRecord <= 0 {
			t.Errorf("row %+v has no time", row)
		}
		seen[fmt.Sprintf("%s/%s/%s/%d", row.Impl, row.Op, row.Deadline, row.Batch)] = true
	}
	// native: 2 ops x 2 batches; memcpy: 2 batches; go, c, rust and
	// assemblyscript: 2 ops x 2 batches x 3 enforcement modes.
	if want := 4 + 2 + 4*2*2*3; len(rep.Rows) != want || len(seen) != len(rep.Rows) {
		t.Errorf("%d rows (%d distinct), want %d", len(rep.Rows), len(seen), want)
	}
	if rep.GoInstantiateMs <= 0 {
		t.Error("no instantiation time")
	}
	table := mustWeir(t, "bench", "abi", "--records", "1024", "--batch", "1024").stdout
	for _, s := range []string{"ns/record", "c-wasm", "go-wasm", "rust-wasm", "native", "second instance"} {
		if !strings.Contains(table, s) {
			t.Errorf("table lacks %q:\n%s", s, table)
		}
	}
	if r := weir(t, "bench", "abi", "--records", "10", "--batch", "64"); r.code == 0 || !strings.Contains(r.stderr, "batch size 64") {
		t.Errorf("a batch larger than --records: exit %d, %s", r.code, r.stderr)
	}
}
