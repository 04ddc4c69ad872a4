package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/weirstream/weir/coordinator/jobspec"
	"github.com/weirstream/weir/internal/connspec"
	"github.com/weirstream/weir/internal/minicluster"
	"github.com/weirstream/weir/worker/task"
	"github.com/weirstream/weir/worker/wasmhost"

	// The queries, linked natively for --native.
	_ "github.com/weirstream/weir/examples/nexmark/queries"
)

// NexmarkOptions say which Nexmark queries to run and how.
type NexmarkOptions struct {
	SpecDir     string   // folder of the qN.yaml job specs (examples/nexmark)
	Queries     []string // q0, q1, ...
	Events      int64
	Parallelism int    // 0: as in each spec
	Backend     string // heap or pebble
	// Impls are the implementations each query runs with, side by side in
	// one run: "go" (the spec's module, Go SDK operators in WebAssembly),
	// "rust" (the spec's module swapped for the Rust SDK operators of
	// RustDir) and "native" (the Go operators linked into this binary).
	// Empty: go, and native too when Native is set.
	Impls    []string
	Native   bool   // with no Impls: run each query natively too (the old --native)
	RustDir  string // the Rust operator folder; default SpecDir/rust
	Runtime  wasmhost.Config
	CacheDir string
	Progress io.Writer
	// Workers, when positive, also runs each query on a coordinator and
	// that many worker processes (weir bench nexmark --workers N).
	Workers int
}

// NexmarkRow is one run of one query.
type NexmarkRow struct {
	Query            string  `json:"query"`
	Mode             string  `json:"mode"` // the implementation: go, rust or native
	Backend          string  `json:"backend"`
	Parallelism      int     `json:"parallelism"` // largest of the job; 0 = as in the spec
	Events           int64   `json:"events"`
	Outputs          int64   `json:"outputs"`
	Seconds          float64 `json:"seconds"`
	CPUSeconds       float64 `json:"cpu_seconds"`
	EventsPerSec     float64 `json:"events_per_sec"`
	EventsPerCoreSec float64 `json:"events_per_core_sec"`
	PeakRSSMiB       float64 `json:"peak_rss_mib"`
	P99LatencyMs     float64 `json:"p99_latency_ms"`
	LatencySamples   int     `json:"latency_samples"`
}

// NexmarkReport is the whole result.
type NexmarkReport struct {
	Machine Machine      `json:"machine"`
	Rows    []NexmarkRow `json:"rows"`
}

// Nexmark runs the queries on the embedded engine.
func Nexmark(ctx context.Context, o NexmarkOptions) (*NexmarkReport, error) {
	if o.Events <= 0 {
		return nil, errors.New("bench nexmark: --events must be at least 1")
	}
	if o.Backend == "" {
		o.Backend = "pebble"
	}
	if o.Backend != "heap" && o.Backend != "pebble" {
		return nil, fmt.Errorf("bench nexmark: --backend %q: want heap or pebble", o.Backend)
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	modes := o.Impls
	if len(modes) == 0 {
		modes = []string{"go"}
		if o.Native {
			modes = append(modes, "native")
		}
	}
	for _, m := range modes {
		if m != "go" && m != "rust" && m != "native" {
			return nil, fmt.Errorf("bench nexmark: --impl %q: want go, rust or native (comma-separated)", m)
		}
	}
	if o.RustDir == "" {
		o.RustDir = filepath.Join(o.SpecDir, "rust")
	}
	rep := &NexmarkReport{Machine: thisMachine()}
	for _, q := range o.Queries {
		path := filepath.Join(o.SpecDir, q+".yaml")
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("bench nexmark: query %s: no job spec %s (queries: q0 q1 q2 q3 q4 q5 q7 q8; --spec-dir names the folder)", q, path)
		}
		for _, mode := range modes {
			fmt.Fprintf(o.Progress, "%s %s: %d events...\n", q, mode, o.Events)
			row, err := nexmarkRun(ctx, path, q, mode, o)
			if err != nil {
				return nil, fmt.Errorf("bench nexmark: %s (%s): %w", q, mode, err)
			}
			rep.Rows = append(rep.Rows, *row)
		}
		if o.Workers > 0 {
			fmt.Fprintf(o.Progress, "%s on %d workers: %d events...\n", q, o.Workers, o.Events)
			row, err := nexmarkCluster(ctx, path, q, o)
			if err != nil {
				return nil, fmt.Errorf("bench nexmark: %s on %d workers: %w", q, o.Workers, err)
			}
			rep.Rows = append(rep.Rows, *row)
		}
	}
	return rep, nil
}

// nexmarkRun runs one query once: the spec with its source's count set to
// the events asked for, its sinks replaced by discard, and the backend and
// parallelism asked for.
func nexmarkRun(ctx context.Context, path, q, mode string, o NexmarkOptions) (*NexmarkRow, error) {
	spec, err := jobspec.Load(path)
	if err != nil {
		return nil, err
	}
	discard, ok := connspec.LookupKind(connspec.KindSink, "discard")
	if !ok {
		return nil, errors.New("the discard sink is not registered")
	}
	for _, s := range spec.Sources {
		if s.Source.Connector != "nexmark" {
			return nil, fmt.Errorf("%s: source %s is not a nexmark source", path, s.UID)
		}
		s.Source.Options["count"] = o.Events
	}
	for _, s := range spec.Sinks {
		opts, err := discard.ParseOptions(nil)
		if err != nil {
			return nil, err
		}
		s.Sink.Connector, s.Sink.Spec, s.Sink.Options = "discard", discard, opts
	}
	if o.Parallelism > 0 {
		for _, n := range spec.Nodes() {
			n.Parallelism = o.Parallelism
		}
	}
	spec.State.Backend = jobspec.StateBackend(o.Backend)
	spec.State.Dir = ""
	if mode == "rust" {
		// The same job with the module swapped: the Rust operators have the
		// Go ones' names, records and results.
		dir, err := filepath.Abs(o.RustDir)
		if err != nil {
			return nil, err
		}
		for _, m := range spec.Modules {
			m.Path, m.Resolved, m.IsDir = dir, dir, true
		}
	}
	job, err := minicluster.Prepare(ctx, spec, minicluster.Options{Native: mode == "native", Runtime: o.Runtime, BuildCacheDir: o.CacheDir, BuildLog: io.Discard})
	if err != nil {
		return nil, err
	}
	defer job.Close()
	resetPeakRSS()
	run, wall, cpu, err := timedRun(ctx, job, 10*time.Millisecond)
	if err != nil {
		return nil, err
	}
	row := &NexmarkRow{Query: q, Mode: mode, Backend: o.Backend, Parallelism: o.Parallelism, Events: o.Events, Seconds: wall, CPUSeconds: cpu,
		EventsPerSec: float64(o.Events) / wall, PeakRSSMiB: peakRSSMiB()}
	if cpu > 0 {
		row.EventsPerCoreSec = float64(o.Events) / cpu
	}
	for _, m := range run.Metrics() {
		if m.Kind.String() == "sink" {
			row.Outputs += m.In.Load()
		}
	}
	lat := run.Latencies()
	row.LatencySamples = len(lat)
	if len(lat) > 0 {
		slices.Sort(lat)
		row.P99LatencyMs = float64(lat[(len(lat)*99)/100]) / 1e6
	}
	return row, nil
}

// cpuTime is the user and system CPU time of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// resetPeakRSS resets the kernel's high-water mark of this process's
// resident set (Linux: "5" to /proc/self/clear_refs), so each run reports
// its own peak.
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSSMiB reads the high-water mark of the resident set (VmHWM), or
// the process's lifetime peak from getrusage where /proc is missing.
func peakRSSMiB() float64 {
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
				if err == nil {
					return kb / 1024
				}
			}
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		return float64(ru.Maxrss) / 1024
	}
	return 0
}

// WriteTable prints the report.
func (r *NexmarkReport) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "weir bench nexmark on %s/%s, %d CPUs, %s\n", r.Machine.GOOS, r.Machine.GOARCH, r.Machine.CPUs, r.Machine.Go)
	if r.Machine.CPU != "" {
		fmt.Fprintf(w, "cpu: %s\n", r.Machine.CPU)
	}
	fmt.Fprintln(w, "events/s per core = events / (user+sys CPU seconds of the process, generator included)")
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "query\timpl\tbackend\tevents\toutputs\tseconds\tevents/s\tevents/s/core\tpeak RSS MiB\tp99 latency ms\t/native\t/embedded go\t")
	native, embedded := map[string]float64{}, map[string]float64{}
	for _, row := range r.Rows {
		switch row.Mode {
		case "native":
			native[row.Query] = row.EventsPerCoreSec
		case "go":
			embedded[row.Query] = row.EventsPerCoreSec
		}
	}
	ratio := func(of float64, to map[string]float64, q string) string {
		if n, ok := to[q]; ok && n > 0 {
			return fmt.Sprintf("%.2f", of/n)
		}
		return "-"
	}
	for _, row := range r.Rows {
		toNative, toEmbedded := "-", "-"
		if row.Mode != "native" {
			toNative = ratio(row.EventsPerCoreSec, native, row.Query)
		}
		if strings.Contains(row.Mode, "workers") {
			toEmbedded = ratio(row.EventsPerCoreSec, embedded, row.Query)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%.2f\t%s\t%s\t%.0f\t%.1f\t%s\t%s\t\n", row.Query, row.Mode, row.Backend, row.Events, row.Outputs, row.Seconds,
			humanRate(row.EventsPerSec), humanRate(row.EventsPerCoreSec), row.PeakRSSMiB, row.P99LatencyMs, toNative, toEmbedded)
	}
	tw.Flush()
}

// timedRun runs job to its end (latency markers every latencyInterval; 0:
// none) and returns the ended run with the wall-clock and process CPU
// seconds from the start of its tasks to their end.
func timedRun(ctx context.Context, job *minicluster.Job, latencyInterval time.Duration) (run *task.Run, wall, cpu float64, err error) {
	cpu0 := cpuTime()
	start := time.Now()
	if run, err = job.StartWith(ctx, latencyInterval); err != nil {
		return nil, 0, 0, err
	}
	if err := run.Wait(); err != nil {
		return nil, 0, 0, err
	}
	return run, time.Since(start).Seconds(), (cpuTime() - cpu0).Seconds(), nil
}
