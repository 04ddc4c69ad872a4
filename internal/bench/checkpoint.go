package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/weirstream/weir/coordinator/checkpoint"
	"github.com/weirstream/weir/coordinator/jobspec"
	"github.com/weirstream/weir/internal/barrier"
	"github.com/weirstream/weir/internal/connspec"
	"github.com/weirstream/weir/internal/minicluster"
	"github.com/weirstream/weir/worker/task"
	"github.com/weirstream/weir/worker/wasmhost"
)

// CheckpointOptions say how `weir bench checkpoint` runs.
type CheckpointOptions struct {
	SpecDir string   // folder of the qN.yaml job specs (examples/nexmark)
	Queries []string // default q5, q8
	// Events per run of each query; 0 sizes each query for runs of a few
	// seconds (DefaultCheckpointEvents).
	Events int64
	// Rounds of the side-by-side comparison: each round runs the query
	// once without checkpoints and once with, the order alternating.
	Rounds int
	// Interval between checkpoints (default 1s).
	Interval time.Duration
	// Mode is the barrier mode of the side-by-side runs (default aligned,
	// the exactly-once default of a job).
	Mode barrier.Mode
	// Native runs the operators linked into this binary instead of the
	// spec's WebAssembly module.
	Native bool
	// SinkRate is the slow sink's records per second per subtask in the
	// backpressure runs; BackpressureFor how long each mode runs (0
	// leaves the backpressure runs out).
	SinkRate        int64
	BackpressureFor time.Duration
	// Workers, when positive, adds the recovery run: a coordinator and
	// that many worker processes of Binary (default: this process's
	// executable), one killed mid-job. HeartbeatTimeout and RestartDelay
	// replace the coordinator's and the restart strategy's defaults.
	Workers          int
	Binary           string
	HeartbeatTimeout time.Duration
	RestartDelay     time.Duration
	Runtime          wasmhost.Config
	CacheDir         string
	Progress         io.Writer
}

// DefaultCheckpointEvents are the events per run of each query when
// CheckpointOptions.Events is 0: about five seconds each as WebAssembly
// on one 2.8 GHz core, so a run with checkpoints every second takes
// three or four of them.
var DefaultCheckpointEvents = map[string]int64{"q5": 400_000, "q8": 2_000_000}

// Defaults of CheckpointOptions.
const (
	DefaultCheckpointRounds   = 3
	DefaultCheckpointInterval = time.Second
	DefaultSlowSinkRate       = 2000
	DefaultBackpressureFor    = 8 * time.Second
	DefaultRecoveryWorkers    = 3
)

// CheckpointReport is the whole result.
type CheckpointReport struct {
	Machine  Machine `json:"machine"`
	Backend  string  `json:"backend"`
	Impl     string  `json:"impl"`
	Interval string  `json:"interval"`
	Mode     string  `json:"mode"` // of the side-by-side runs
	// Rounds are the side-by-side runs; Overhead sums them up per query.
	Rounds   []CheckpointRound    `json:"rounds"`
	Overhead []CheckpointOverhead `json:"overhead"`
	// Durations are the checkpoints the runs with checkpoints took, per
	// query and kind.
	Durations []CheckpointDurations `json:"durations"`
	// Backpressure are the aligned and unaligned runs behind a slow sink.
	Backpressure []BackpressureRun `json:"backpressure,omitempty"`
	// Recovery is the worker kill on a cluster, when it ran.
	Recovery *RecoveryRun `json:"recovery,omitempty"`
	Notes    []string     `json:"notes,omitempty"`
}

// CheckpointRound is one query run without and with checkpoints.
type CheckpointRound struct {
	Query  string `json:"query"`
	Round  int    `json:"round"`
	Events int64  `json:"events"`
	// First is which run went first: "off" or "on".
	First string `json:"first"`
	// Events per wall-clock second and per CPU second of the process,
	// without (Off) and with (On) checkpoints.
	OffPerSec     float64 `json:"off_events_per_sec"`
	OnPerSec      float64 `json:"on_events_per_sec"`
	OffPerCoreSec float64 `json:"off_events_per_core_sec"`
	OnPerCoreSec  float64 `json:"on_events_per_core_sec"`
	Ratio         float64 `json:"ratio"`       // OnPerSec / OffPerSec
	CPURatio      float64 `json:"cpu_ratio"`   // OnPerCoreSec / OffPerCoreSec
	Checkpoints   int     `json:"checkpoints"` // completed in the run with
	Failed        int     `json:"failed"`
}

// CheckpointOverhead sums up a query's rounds.
type CheckpointOverhead struct {
	Query       string  `json:"query"`
	Rounds      int     `json:"rounds"`
	MinRatio    float64 `json:"min_ratio"`
	MedianRatio float64 `json:"median_ratio"`
	MaxRatio    float64 `json:"max_ratio"`
	// MedianCPURatio is the median of the rounds' CPU ratios: less
	// sensitive than wall-clock time to other load on the machine.
	MedianCPURatio float64 `json:"median_cpu_ratio"`
}

// CheckpointDurations are the figures of a set of completed checkpoints.
type CheckpointDurations struct {
	Query string `json:"query"`
	// Kind is "full" (every checkpoint writes the whole state) or
	// "incremental"; Implemented is false for a kind weir does not have
	// yet, whose figures are then all zero.
	Kind        string  `json:"kind"`
	Implemented bool    `json:"implemented"`
	Count       int     `json:"count"`
	P50Ms       float64 `json:"p50_ms"`
	P99Ms       float64 `json:"p99_ms"`
	MaxMs       float64 `json:"max_ms"`
	// AckP50Ms and AckP99Ms are the times to the last subtask's
	// acknowledgement (barriers, snapshots, uploads); the rest is
	// writing the checkpoint's metadata.
	AckP50Ms float64 `json:"ack_p50_ms"`
	AckP99Ms float64 `json:"ack_p99_ms"`
	P50Bytes int64   `json:"p50_bytes"`
	MaxBytes int64   `json:"max_bytes"`
}

// BackpressureRun is one barrier mode behind a slow sink.
type BackpressureRun struct {
	Mode     string  `json:"mode"`
	Seconds  float64 `json:"seconds"`
	SinkRate int64   `json:"sink_rate"` // records/s per sink subtask
	// SinkRecords is what the sinks wrote; SourceBackpressured the share
	// of the run the source waited for credits.
	SinkRecords         int64   `json:"sink_records"`
	SourceBackpressured float64 `json:"source_backpressured"`
	Count               int     `json:"count"`
	Failed              int     `json:"failed"`
	P50Ms               float64 `json:"p50_ms"`
	P99Ms               float64 `json:"p99_ms"`
	MaxMs               float64 `json:"max_ms"`
	AckP50Ms            float64 `json:"ack_p50_ms"`
	AckP99Ms            float64 `json:"ack_p99_ms"`
	P50Bytes            int64   `json:"p50_bytes"`
}

// RecoveryRun is a worker killed with SIGKILL mid-job on a cluster.
type RecoveryRun struct {
	Workers int `json:"workers"`
	// Seconds from the kill to the first record processed by the next
	// attempt; Detected the part until the coordinator saw the failure,
	// Canceled until the other subtasks of the attempt had ended,
	// Restarted until the next attempt's tasks ran.
	Seconds   float64 `json:"seconds"`
	Detected  float64 `json:"detected_seconds"`
	Canceled  float64 `json:"canceled_seconds"`
	Restarted float64 `json:"restarted_seconds"`
	// Timeouts are the settings that bound the recovery, by name, and
	// Dominant says which of them took most of it.
	Timeouts map[string]string `json:"timeouts"`
	Dominant string            `json:"dominant"`
	// Timeline is what the coordinator said after the kill, a line per
	// change, from the kill on.
	Timeline []string `json:"timeline"`
}

// Checkpoint runs the benchmark.
func Checkpoint(ctx context.Context, o CheckpointOptions) (*CheckpointReport, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	impl := "go"
	if o.Native {
		impl = "native"
	}
	rep := &CheckpointReport{Machine: thisMachine(), Backend: "pebble", Impl: impl, Interval: o.Interval.String(), Mode: string(o.Mode)}
	for _, q := range o.Queries {
		path := filepath.Join(o.SpecDir, q+".yaml")
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("bench checkpoint: query %s: no job spec %s (--spec-dir names the folder)", q, path)
		}
		events := o.Events
		if events == 0 {
			events = DefaultCheckpointEvents[q]
		}
		if events == 0 {
			events = 1_000_000
		}
		var ratios, cpuRatios []float64
		var done, doneIncr []checkpoint.CompletedInfo
		for i := range o.Rounds {
			r := CheckpointRound{Query: q, Round: i + 1, Events: events, First: "off"}
			order := []bool{false, true}
			if i%2 == 1 {
				r.First, order = "on", []bool{true, false}
			}
			for _, on := range order {
				fmt.Fprintf(o.Progress, "%s round %d/%d, checkpoints %s: %d events...\n", q, i+1, o.Rounds, onOff(on), events)
				m, err := checkpointRun(ctx, path, events, on, false, o)
				if err != nil {
					return nil, fmt.Errorf("bench checkpoint: %s round %d, checkpoints %s: %w", q, i+1, onOff(on), err)
				}
				if on {
					r.OnPerSec, r.OnPerCoreSec = m.perSec, m.perCoreSec
					r.Checkpoints, r.Failed = m.stats.Completed, m.stats.Failed
					done = append(done, m.stats.History...)
				} else {
					r.OffPerSec, r.OffPerCoreSec = m.perSec, m.perCoreSec
				}
			}
			// The same run with incremental checkpoints, for the
			// incremental vs full rows.
			fmt.Fprintf(o.Progress, "%s round %d/%d, incremental checkpoints: %d events...\n", q, i+1, o.Rounds, events)
			m, err := checkpointRun(ctx, path, events, true, true, o)
			if err != nil {
				return nil, fmt.Errorf("bench checkpoint: %s round %d, incremental checkpoints: %w", q, i+1, err)
			}
			doneIncr = append(doneIncr, m.stats.History...)
			r.Ratio = r.OnPerSec / r.OffPerSec
			r.CPURatio = r.OnPerCoreSec / r.OffPerCoreSec
			ratios, cpuRatios = append(ratios, r.Ratio), append(cpuRatios, r.CPURatio)
			rep.Rounds = append(rep.Rounds, r)
		}
		rep.Overhead = append(rep.Overhead, CheckpointOverhead{Query: q, Rounds: o.Rounds,
			MinRatio: slices.Min(ratios), MedianRatio: median(ratios), MaxRatio: slices.Max(ratios), MedianCPURatio: median(cpuRatios)})
		durations := func(kind string, done []checkpoint.CompletedInfo) CheckpointDurations {
			f := summarize(done)
			return CheckpointDurations{Query: q, Kind: kind, Implemented: true, Count: f.n, P50Ms: f.p50, P99Ms: f.p99, MaxMs: f.max,
				AckP50Ms: f.ackP50, AckP99Ms: f.ackP99, P50Bytes: f.p50Bytes, MaxBytes: f.maxBytes}
		}
		rep.Durations = append(rep.Durations, durations("full", done), durations("incremental", doneIncr))
	}
	rep.Notes = append(rep.Notes, "full: canonical snapshots, the default, which the throughput rounds use; incremental (checkpoints.incremental: true): native pebble checkpoints, one extra run per round; its sizes count every file a checkpoint names, the shared sstables earlier checkpoints uploaded included, so they are what a restore reads, not what each checkpoint uploads")
	if o.BackpressureFor > 0 {
		for _, mode := range []barrier.Mode{barrier.Aligned, barrier.Unaligned} {
			fmt.Fprintf(o.Progress, "backpressure, %s checkpoints: %s behind a sink of %d records/s per subtask...\n", mode, o.BackpressureFor, o.SinkRate)
			b, err := backpressureRun(ctx, mode, o)
			if err != nil {
				return nil, fmt.Errorf("bench checkpoint: backpressure, %s: %w", mode, err)
			}
			rep.Backpressure = append(rep.Backpressure, *b)
		}
	}
	if o.Workers > 0 {
		fmt.Fprintf(o.Progress, "recovery: a coordinator and %d workers, one killed...\n", o.Workers)
		r, err := recoveryRun(ctx, o)
		if err != nil {
			return nil, fmt.Errorf("bench checkpoint: recovery: %w", err)
		}
		rep.Recovery = r
	}
	return rep, nil
}

// defaults fills the zero fields of o with their defaults and validates
// the result.
func (o *CheckpointOptions) defaults() error {
	if len(o.Queries) == 0 {
		o.Queries = []string{"q5", "q8"}
	}
	if o.SpecDir == "" {
		o.SpecDir = "examples/nexmark"
	}
	if o.Rounds == 0 {
		o.Rounds = DefaultCheckpointRounds
	}
	if o.Interval == 0 {
		o.Interval = DefaultCheckpointInterval
	}
	if o.Mode == "" {
		o.Mode = barrier.Aligned
	}
	if o.SinkRate == 0 {
		o.SinkRate = DefaultSlowSinkRate
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	return o.Validate()
}

// Validate reports what is wrong with o, its defaults filled in.
func (o *CheckpointOptions) Validate() error {
	switch {
	case o.Events < 0:
		return fmt.Errorf("bench checkpoint: --events %d: want 0 (sized per query) or more", o.Events)
	case o.Rounds < 1 || o.Rounds > 100:
		return fmt.Errorf("bench checkpoint: --rounds %d: want 1 to 100", o.Rounds)
	case o.Interval < jobspec.MinCheckpointInterval:
		return fmt.Errorf("bench checkpoint: --interval %s: want at least %s", o.Interval, jobspec.MinCheckpointInterval)
	case !o.Mode.Valid():
		return fmt.Errorf("bench checkpoint: --mode %q: want aligned, unaligned or at-least-once", o.Mode)
	case o.SinkRate < 0:
		return fmt.Errorf("bench checkpoint: --sink-rate %d: want more than 0", o.SinkRate)
	case o.BackpressureFor < 0:
		return fmt.Errorf("bench checkpoint: --backpressure-for %s: want 0 (none) or more", o.BackpressureFor)
	case o.HeartbeatTimeout < 0 || o.RestartDelay < 0:
		return fmt.Errorf("bench checkpoint: --heartbeat-timeout %s, --restart-delay %s: want 0 (the default) or more", o.HeartbeatTimeout, o.RestartDelay)
	case o.Workers < 0 || o.Workers == 1 || o.Workers > 16:
		return fmt.Errorf("bench checkpoint: --workers %d: want 0 (no recovery run) or 2 to 16 (one is killed, the others take over)", o.Workers)
	}
	return nil
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// runFigures are what one run measured.
type runFigures struct {
	perSec, perCoreSec float64
	stats              checkpoint.Stats
}

// checkpointRun runs a Nexmark query once to its end, with checkpoints
// every o.Interval or without, on the pebble backend, its sinks replaced
// by discard. Time and CPU count from the start of the tasks to their
// end; preparing the job (modules, plan) is left out.
func checkpointRun(ctx context.Context, path string, events int64, on, incremental bool, o CheckpointOptions) (*runFigures, error) {
	spec, err := jobspec.Load(path)
	if err != nil {
		return nil, err
	}
	for _, s := range spec.Sources {
		if s.Source.Connector != "nexmark" {
			return nil, fmt.Errorf("%s: source %s is not a nexmark source", path, s.UID)
		}
		s.Source.Options["count"] = events
	}
	discard, ok := connspec.LookupKind(connspec.KindSink, "discard")
	if !ok {
		return nil, errors.New("the discard sink is not registered")
	}
	for _, s := range spec.Sinks {
		opts, err := discard.ParseOptions(nil)
		if err != nil {
			return nil, err
		}
		s.Sink.Connector, s.Sink.Spec, s.Sink.Options = "discard", discard, opts
	}
	dir, err := os.MkdirTemp("", "weir-bench-checkpoint-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	spec.State.Backend, spec.State.Dir = jobspec.BackendPebble, filepath.Join(dir, "state")
	spec.Checkpoints.Interval = 0 // off unless asked: the spec's other settings (defaults) stay
	spec.Checkpoints.Incremental = incremental
	mo := minicluster.Options{Native: o.Native, Runtime: o.Runtime, BuildCacheDir: o.CacheDir, BuildLog: io.Discard}
	if on {
		mo.Checkpoints = minicluster.CheckpointOptions{Dir: filepath.Join(dir, "checkpoints"), Interval: o.Interval, Mode: o.Mode}
	}
	job, err := minicluster.Prepare(ctx, spec, mo)
	if err != nil {
		return nil, err
	}
	defer job.Close()
	_, wall, cpu, err := timedRun(ctx, job, 0)
	if err != nil {
		return nil, err
	}
	f := &runFigures{perSec: float64(events) / wall, stats: job.Checkpoints()}
	if cpu > 0 {
		f.perCoreSec = float64(events) / cpu
	}
	return f, nil
}

// backpressureSpec is Nexmark q5 cut after its window count, with a file
// sink that writes at most rate records per second per subtask: the
// counts of a sliding window fire in bursts far larger than the sink
// takes, so the queues from the source to the count stay full and the
// source is held back by credits most of the time. The source is
// unbounded; the run ends when the bench stops it.
const backpressureSpec = `name: bench-checkpoint-backpressure
max_parallelism: 128
parallelism: 2
chaining: false
state: {backend: pebble, dir: %q}
modules:
  nexmark: %q
sources:
  - uid: events
    connector: nexmark
    parallelism: 1
    options: {count: 0, rate: 200, seed: 1, format: binary}
    watermark: {strategy: bounded, max_out_of_orderness: 0s}
operators:
  - uid: bids
    module: nexmark
    operator: q5_bids
    parallelism: 1
    input: events
  - uid: count
    module: nexmark
    operator: q5_count
    inputs:
      - {from: bids, partition: key_by}
    window: {type: sliding, size: 10s, slide: 2s}
sinks:
  - uid: out
    connector: file
    options: {path: %q, rate: %d}
    input: count
`

// backpressureRun runs backpressureSpec for o.BackpressureFor with
// checkpoints every o.Interval in mode.
func backpressureRun(ctx context.Context, mode barrier.Mode, o CheckpointOptions) (*BackpressureRun, error) {
	dir, err := os.MkdirTemp("", "weir-bench-backpressure-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	mods, err := filepath.Abs(o.SpecDir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "job.yaml")
	text := fmt.Sprintf(backpressureSpec, filepath.Join(dir, "state"), mods, filepath.Join(dir, "out", "counts.jsonl"), o.SinkRate)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return nil, err
	}
	spec, err := jobspec.Load(path)
	if err != nil {
		return nil, err
	}
	job, err := minicluster.Prepare(ctx, spec, minicluster.Options{Native: o.Native, Runtime: o.Runtime, BuildCacheDir: o.CacheDir, BuildLog: io.Discard,
		Checkpoints: minicluster.CheckpointOptions{Dir: filepath.Join(dir, "checkpoints"), Interval: o.Interval, Mode: mode}})
	if err != nil {
		return nil, err
	}
	defer job.Close()
	start := time.Now()
	run, err := job.Start(ctx)
	if err != nil {
		return nil, err
	}
	ended := make(chan error, 1)
	go func() { ended <- run.Wait() }()
	t := time.NewTimer(o.BackpressureFor)
	defer t.Stop()
	select {
	case <-t.C:
	case err := <-ended:
		// The source is unbounded: ending on its own is a failure.
		return nil, fmt.Errorf("the job ended after %s: %v", time.Since(start).Round(time.Millisecond), err)
	case <-ctx.Done():
		run.Cancel()
		<-ended
		return nil, ctx.Err()
	}
	// Figures first: stopping the run aborts the checkpoint in progress,
	// which is no figure of the mode, and the run's error then is only
	// that.
	stats := job.Checkpoints()
	subs := run.Subtasks()
	metrics := run.Metrics()
	seconds := time.Since(start).Seconds()
	run.Cancel()
	<-ended
	b := &BackpressureRun{Mode: string(mode), Seconds: seconds, SinkRate: o.SinkRate, Failed: stats.Failed}
	for _, m := range metrics {
		if m.Kind == task.NodeSink {
			b.SinkRecords += m.In.Load()
		}
	}
	for _, s := range subs {
		if s.Vertex == 0 && s.Elapsed > 0 {
			b.SourceBackpressured = s.Backpressured.Seconds() / s.Elapsed.Seconds()
		}
	}
	f := summarize(stats.History)
	b.Count, b.P50Ms, b.P99Ms, b.MaxMs, b.AckP50Ms, b.AckP99Ms, b.P50Bytes = f.n, f.p50, f.p99, f.max, f.ackP50, f.ackP99, f.p50Bytes
	return b, nil
}

// ckptFigures sum up a set of completed checkpoints.
type ckptFigures struct {
	n                  int
	p50, p99, max      float64 // duration, ms
	ackP50, ackP99     float64 // to the last acknowledgement, ms
	p50Bytes, maxBytes int64
}

// summarize sums up completed checkpoints (savepoints left out).
func summarize(done []checkpoint.CompletedInfo) ckptFigures {
	var ds, acks []time.Duration
	var sizes []int64
	for _, c := range done {
		if !c.Savepoint {
			ds, acks, sizes = append(ds, c.Duration), append(acks, c.LastAck), append(sizes, c.Size)
		}
	}
	if len(ds) == 0 {
		return ckptFigures{}
	}
	slices.Sort(ds)
	slices.Sort(acks)
	slices.Sort(sizes)
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	n := len(ds)
	return ckptFigures{n: n, p50: ms(ds[rank(n, 50)]), p99: ms(ds[rank(n, 99)]), max: ms(ds[n-1]),
		ackP50: ms(acks[rank(n, 50)]), ackP99: ms(acks[rank(n, 99)]), p50Bytes: sizes[rank(n, 50)], maxBytes: sizes[n-1]}
}

// rank is the index of the p-th percentile of n sorted values (nearest
// rank: the smallest value with at least p%% of the values at or below).
func rank(n, p int) int { return max((n*p+99)/100-1, 0) }

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// WriteTable prints the report.
func (r *CheckpointReport) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "weir bench checkpoint on %s/%s, %d CPUs, %s\n", r.Machine.GOOS, r.Machine.GOARCH, r.Machine.CPUs, r.Machine.Go)
	if r.Machine.CPU != "" {
		fmt.Fprintf(w, "cpu: %s\n", r.Machine.CPU)
	}
	fmt.Fprintf(w, "backend %s, operators %s, checkpoints every %s, %s\n", r.Backend, r.Impl, r.Interval, r.Mode)
	var tw *tabwriter.Writer
	if len(r.Rounds) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "1. throughput with checkpoints / without, side by side (target >= 0.9)")
		fmt.Fprintln(w, "   cpu ratio: events per CPU second of this process, with / without; steadier than wall clock when other processes share the cores")
		tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "query\tround\tfirst\tevents\toff events/s\ton events/s\tratio\toff ev/s/core\ton ev/s/core\tcpu ratio\tcheckpoints\tfailed\t")
		for _, x := range r.Rounds {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\t%.2f\t%s\t%s\t%.2f\t%d\t%d\t\n", x.Query, x.Round, x.First, x.Events, humanRate(x.OffPerSec), humanRate(x.OnPerSec), x.Ratio,
				humanRate(x.OffPerCoreSec), humanRate(x.OnPerCoreSec), x.CPURatio, x.Checkpoints, x.Failed)
		}
		tw.Flush()
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "query\trounds\tratio min\tmedian\tmax\tcpu ratio median\t")
		for _, x := range r.Overhead {
			fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t\n", x.Query, x.Rounds, x.MinRatio, x.MedianRatio, x.MaxRatio, x.MedianCPURatio)
		}
		tw.Flush()
		fmt.Fprintln(w)
		fmt.Fprintln(w, "2. checkpoint duration (trigger to metadata written) and size, of the runs with checkpoints")
		tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "query\tkind\tcheckpoints\tp50 ms\tp99 ms\tmax ms\tlast ack p50 ms\tlast ack p99 ms\tp50 size\tmax size\t")
		for _, x := range r.Durations {
			if !x.Implemented {
				fmt.Fprintf(tw, "%s\t%s\tnot implemented\t-\t-\t-\t-\t-\t-\t-\t\n", x.Query, x.Kind)
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%s\t%s\t\n", x.Query, x.Kind, x.Count, x.P50Ms, x.P99Ms, x.MaxMs, x.AckP50Ms, x.AckP99Ms,
				humanBytes(x.P50Bytes), humanBytes(x.MaxBytes))
		}
		tw.Flush()
	}
	if len(r.Backpressure) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "3. aligned vs unaligned under backpressure: q5 up to its window count, a file sink paced to a rate, checkpoints every "+r.Interval)
		tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "mode\tseconds\tsink rate/subtask\tsink records\tsource backpressured\tcheckpoints\tfailed\tp50 ms\tp99 ms\tmax ms\tlast ack p50 ms\tlast ack p99 ms\tp50 size\t")
		for _, x := range r.Backpressure {
			fmt.Fprintf(tw, "%s\t%.1f\t%d\t%d\t%.0f%%\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%s\t\n", x.Mode, x.Seconds, x.SinkRate, x.SinkRecords, 100*x.SourceBackpressured,
				x.Count, x.Failed, x.P50Ms, x.P99Ms, x.MaxMs, x.AckP50Ms, x.AckP99Ms, humanBytes(x.P50Bytes))
		}
		tw.Flush()
	}
	if x := r.Recovery; x != nil {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "4. recovery from a worker SIGKILL on a coordinator and %d workers (target <= 5 s)\n", x.Workers)
		tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "kill to first record s\tto failure seen s\tto others canceled s\tto tasks running s\t")
		fmt.Fprintf(tw, "%.2f\t%.2f\t%.2f\t%.2f\t\n", x.Seconds, x.Detected, x.Canceled, x.Restarted)
		tw.Flush()
		fmt.Fprintln(w, "  dominated by "+x.Dominant)
		var names []string
		for k := range x.Timeouts {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			fmt.Fprintf(w, "  %s = %s\n", k, x.Timeouts[k])
		}
		fmt.Fprintln(w, "  after the kill:")
		for _, l := range x.Timeline {
			fmt.Fprintln(w, "  "+l)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "note: "+n)
	}
}

func humanBytes(n int64) string {
	switch {
	case n >= 10<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 10<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
