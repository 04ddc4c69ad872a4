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
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestJob runs job.yaml with `weir run` (fewer records with -short, the
// output in a temporary folder) with each state backend and compares the
// alerts with the ones found here in the datagen records, recomputed from
// the formula the datagen connector documents.

// Options of job.yaml's source (the test checks they are still these).
const (
	jobSeed     = 7
	jobKeys     = 1000
	jobMaxValue = 100000
	jobInterval = 10
	jobStart    = 1700000000000 // the datagen default start_time
)

// transaction is one datagen record.
type transaction struct {
	seq, cents, ts int64
	account        string
}

// datagen recomputes records 0..count-1 of the datagen source: with
// G = 0x9E3779B97F4A7C15, out(i) = mix(seed + (i+1)*G), record n has
// account "key-"+out(2n) mod keys, amount out(2n+1) mod max_value and
// timestamp start_time + n*interval_ms.
func datagen(count int64) []transaction {
	const gamma = 0x9E3779B97F4A7C15
	mix := func(z uint64) uint64 {
		z ^= z >> 30
		z *= 0xBF58476D1CE4E5B9
		z ^= z >> 27
		z *= 0x94D049BB133111EB
		return z ^ z>>31
	}
	out := func(i int64) uint64 { return mix(uint64(jobSeed) + uint64(i+1)*gamma) }
	txs := make([]transaction, count)
	for n := range count {
		txs[n] = transaction{seq: n, account: "key-" + strconv.FormatUint(out(2*n)%jobKeys, 10),
			cents: int64(out(2*n+1) % jobMaxValue), ts: jobStart + n*jobInterval}
	}
	return txs
}

// alert is one expected or produced alert.
type alert struct {
	Key       string
	Account   string `json:"account"`
	SmallSeq  int64  `json:"small_seq"`
	LargeSeq  int64  `json:"large_seq"`
	Timestamp int64
}

// expectedAlerts pairs each transaction with the previous one of its
// account: a small one (< 100) then a large one (>= 50000) less than a
// minute later is an alert.
func expectedAlerts(txs []transaction) []alert {
	byAccount := map[string][]transaction{}
	for _, t := range txs {
		byAccount[t.account] = append(byAccount[t.account], t)
	}
	var alerts []alert
	for account, ts := range byAccount {
		slices.SortFunc(ts, func(a, b transaction) int { return int(a.seq - b.seq) })
		for i := 1; i < len(ts); i++ {
			prev, cur := ts[i-1], ts[i]
			if prev.cents < 100 && cur.cents >= 50000 && cur.ts-prev.ts < 60000 {
				alerts = append(alerts, alert{Key: account, Account: account, SmallSeq: prev.seq, LargeSeq: cur.seq, Timestamp: cur.ts})
			}
		}
	}
	return alerts
}

func TestJob(t *testing.T) {
	count := int64(100000)
	if testing.Short() {
		count = 30000
	}
	want := expectedAlerts(datagen(count))
	if len(want) < 5 {
		t.Fatalf("only %d alerts expected from %d records: the test would prove little", len(want), count)
	}
	sortAlerts(want)
	t.Logf("%d alerts expected from %d records", len(want), count)
	bin := buildWeir(t)
	for _, backend := range []string{"heap", "pebble"} {
		t.Run(backend, func(t *testing.T) {
			got := runJob(t, bin, backend, count)
			sortAlerts(got)
			if !slices.Equal(got, want) {
				t.Errorf("state backend %s, %d records: %d alerts, want %d\n%s", backend, count, len(got), len(want), diff(want, got))
			}
		})
	}
}

func sortAlerts(a []alert) {
	slices.SortFunc(a, func(x, y alert) int { return int(x.LargeSeq - y.LargeSeq) })
}

// diff lists up to 10 alerts missing from got and 10 unexpected in it.
func diff(want, got []alert) string {
	var b strings.Builder
	list := func(title string, a, other []alert) {
		n := 0
		for _, x := range a {
			if !slices.Contains(other, x) {
				if n++; n <= 10 {
					fmt.Fprintf(&b, "%s: %+v\n", title, x)
				}
			}
		}
		if n > 10 {
			fmt.Fprintf(&b, "%s: ... %d in all\n", title, n)
		}
	}
	list("missing", want, got)
	list("unexpected", got, want)
	return b.String()
}

// buildWeir builds the weir binary from the repository root (two folders
// up) into a temporary folder.
func buildWeir(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "weir")
	build := exec.Command("go", "build", "-o", bin, "./cmd/weir")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building weir: %v\n%s", err, out)
	}
	return bin
}

// runJob runs a copy of job.yaml with count records, the given backend,
// the module folder made absolute and the sink in a temporary folder, and
// returns the alerts it wrote.
func runJob(t *testing.T, bin, backend string, count int64) []alert {
	t.Helper()
	text, err := os.ReadFile("job.yaml")
	if err != nil {
		t.Fatal(err)
	}
	here, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := string(text)
	for _, r := range []struct{ re, repl string }{
		{`count: 100000\b`, fmt.Sprintf("count: %d", count)},
		{`\bkeys: 1000\b`, fmt.Sprintf("keys: %d", jobKeys)},
		{`\binterval_ms: 10\b`, fmt.Sprintf("interval_ms: %d", jobInterval)},
		{`\bseed: 7\b`, fmt.Sprintf("seed: %d", jobSeed)},
		{`\bmax_value: 100000\b`, fmt.Sprintf("max_value: %d", jobMaxValue)},
		{`\bbackend: heap\b`, "backend: " + backend},
		{`(?m)^  fraud: \.`, "  fraud: " + here},
		{`path: out/alerts\.jsonl`, "path: " + filepath.Join(dir, "alerts.jsonl")},
	} {
		re := regexp.MustCompile(r.re)
		if n := len(re.FindAllStringIndex(s, -1)); n != 1 {
			t.Fatalf("job.yaml: %d matches of %q, want 1", n, r.re)
		}
		s = re.ReplaceAllLiteralString(s, r.repl)
	}
	spec := filepath.Join(dir, "job.yaml")
	if err := os.WriteFile(spec, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "run", spec)
	cmd.Dir = filepath.Join(here, "..", "..")
	cache := os.Getenv("WEIR_CACHE_DIR")
	if cache == "" {
		cache = filepath.Join(t.TempDir(), "cache")
	}
	cmd.Env = append(os.Environ(), "WEIR_CACHE_DIR="+cache)
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("weir run job.yaml: %v\n%s", err, stderr.String())
	}
	t.Logf("weir run job.yaml: %v", time.Since(start).Round(time.Millisecond))

	files, _ := filepath.Glob(filepath.Join(dir, "alerts*.jsonl"))
	if len(files) == 0 {
		t.Fatalf("the job wrote no alerts*.jsonl in %s", dir)
	}
	var alerts []alert
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for line := 1; sc.Scan(); line++ {
			var l struct {
				Key       string          `json:"key"`
				Value     json.RawMessage `json:"value"`
				Timestamp int64           `json:"timestamp"`
			}
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Fatalf("%s:%d: %v", f, line, err)
			}
			a := alert{Key: l.Key, Timestamp: l.Timestamp}
			d := json.NewDecoder(bytes.NewReader(l.Value))
			d.DisallowUnknownFields()
			if err := d.Decode(&a); err != nil {
				t.Fatalf("%s:%d: value %s: %v", f, line, l.Value, err)
			}
			alerts = append(alerts, a)
		}
		fh.Close()
	}
	return alerts
}
