package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"time"

	"github.com/spf13/cobra"

	"github.com/weirstream/weir/internal/barrier"
	"github.com/weirstream/weir/internal/bench"
)

func newBenchCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure weir on this machine and print a table (or JSON with --output json)",
	}
	abi := &cobra.Command{
		Use:   "abi",
		Short: "Cost of records crossing the WebAssembly boundary, per batch size",
		Long: `Runs an identity map and a parse-and-rewrite map over 100-byte records
  (a) as plain native Go, (b) as a Go SDK module, (c) as a C SDK module,
  (d) as a Rust SDK module, (e) as an AssemblyScript SDK module, next to
(f) memcpy, the batch copied in and out with nothing else (the floor of every
module row), at batch sizes 1, 64 and 1024, with the per-call time limit
enforced and not, and prints ns per record and records per second. Each
module's output is checked against an independent computation before it is
timed. Also reports how long the Go module takes to compile, to load from the
on-disk cache and to instantiate again. Needs the go command, clang
(wasm32-wasi), rustc (with the wasm32-wasi or wasm32-wasip1 target) and the
AssemblyScript compiler (go tool task deps:asc) to build the modules.`,
		Args: cobra.NoArgs,
		RunE: a.benchRun(func(ctx context.Context, progress io.Writer) (report, error) {
			return bench.ABI(ctx, bench.ABIOptions{
				Records:  a.cfg.GetInt("records"),
				Batches:  a.cfg.GetIntSlice("batch"),
				CacheDir: a.cfg.GetString("cache-dir"),
				Progress: progress,
			})
		}),
	}
	abi.Flags().Int("records", 200_000, "records per measurement")
	abi.Flags().IntSlice("batch", []int{1, 64, 1024}, "batch sizes")
	nexmark := &cobra.Command{
		Use:   "nexmark",
		Short: "Throughput, CPU, memory and latency of the Nexmark queries on the embedded engine",
		Long: `Runs Nexmark queries (the job specs examples/nexmark/qN.yaml) on the embedded
engine with a bounded nexmark source of --events events and the sinks replaced
by discard, and prints per query: events/s, events/s per core (events divided
by the process's user+sys CPU seconds, generator included, as Flink's published
Nexmark figures count), peak RSS and p99 source-to-sink latency (from latency
markers sent every 10 ms). --impl says which implementations run, side by
side in one run: go (the spec's module: Go SDK operators in WebAssembly), rust
(the same specs with the module swapped for the Rust SDK operators of
examples/nexmark/rust) and native (the Go operators linked into this binary,
no WebAssembly); the last column is each row's events/s per core divided by
native's. --native is short for --impl go,native. Run it from the repository
root.

Examples:
  weir bench nexmark --impl go,rust,native --events 1000000
  weir bench nexmark --query q1 --events 5000000 --native
  weir bench nexmark --query q0,q1,q2,q5,q7,q8 --events 2000000 --output json`,
		Args: cobra.NoArgs,
		RunE: a.benchRun(func(ctx context.Context, progress io.Writer) (report, error) {
			rc, err := a.runtimeConfig()
			if err != nil {
				return nil, err
			}
			return bench.Nexmark(ctx, bench.NexmarkOptions{
				SpecDir:     a.cfg.GetString("spec-dir"),
				Queries:     splitList(a.cfg.GetString("query")),
				Events:      a.cfg.GetInt64("events"),
				Parallelism: a.cfg.GetInt("parallelism"),
				Backend:     a.cfg.GetString("backend"),
				Native:      a.cfg.GetBool("native"),
				Impls:       splitList(a.cfg.GetString("impl")),
				RustDir:     a.cfg.GetString("rust-dir"),
				Workers:     a.cfg.GetInt("workers"),
				Runtime:     rc,
				CacheDir:    a.cfg.GetString("cache-dir"),
				Progress:    progress,
			})
		}),
	}
	nf := nexmark.Flags()
	nf.String("query", "q0,q1,q2,q3,q4,q5,q7,q8", "queries to run, comma-separated")
	nf.Int64("events", 1_000_000, "events per run")
	nf.Int("parallelism", 0, "parallelism of every operator (0: as in the spec)")
	nf.String("backend", "pebble", "state backend: heap or pebble")
	nf.Bool("native", false, "also run each query with natively linked operators (--impl go,native)")
	nf.String("impl", "", "implementations to run side by side, comma-separated: go, rust, native (default go, or go,native with --native)")
	nf.String("rust-dir", "", "folder of the Rust operators for --impl rust (default <spec-dir>/rust)")
	nf.Int("workers", 0, "also run each query on a coordinator and this many worker processes (one slot each, parallelism = workers)")
	nf.String("spec-dir", "examples/nexmark", "folder of the qN.yaml job specs")
	nf.String("cpuprofile", "", "write a CPU profile (go tool pprof) of the runs to this file")
	addLimitFlags(nexmark)
	cmd.AddCommand(abi, nexmark, newBenchShuffleCmd(a), newBenchCheckpointCmd(a))
	return cmd
}

func newBenchShuffleCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "shuffle",
		Short: "Records/s, MB/s and latency of a QUIC channel, next to TLS over TCP on loopback",
		Long: `Moves 100-byte records packed into buffers over one weir channel between two QUIC
transports (mutual TLS, credits, the engine's frames), and in the same run the
same bytes over a plain TLS-over-TCP loopback connection (the baseline) and a
bare quic-go stream. It prints records/s, MB/s, CPU per MB, the ratio to the
baseline (best of --rounds), and p50/p99 record latency at --load of the QUIC
peak with the default flush deadline. Every record is checked to arrive once
and in order.

  weir bench shuffle
  weir bench shuffle --records 500000 --rounds 3 --output json`,
		Args: cobra.NoArgs,
		RunE: a.benchRun(func(ctx context.Context, progress io.Writer) (report, error) {
			return bench.Shuffle(ctx, bench.ShuffleOptions{
				Records: a.cfg.GetInt("records"), RecordSize: a.cfg.GetInt("record-size"), Rounds: a.cfg.GetInt("rounds"),
				Load: a.cfg.GetFloat64("load"), FlushDeadline: a.cfg.GetDuration("flush"), LatencyFor: a.cfg.GetDuration("latency-for"), Progress: progress,
			})
		}),
	}
	f := cmd.Flags()
	f.Int("records", 2_000_000, "records per throughput run")
	f.Int("record-size", 100, "bytes per record")
	f.Int("rounds", 5, "throughput runs per link; the best counts")
	f.Float64("load", 0.5, "share of the QUIC peak rate for the latency run")
	f.Duration("flush", 5*time.Millisecond, "flush deadline of partly filled buffers")
	f.Duration("latency-for", 3*time.Second, "length of the latency run")
	return cmd
}

func newBenchCheckpointCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "checkpoint",
		Short: "What checkpoints cost: throughput with and without, durations and sizes, aligned vs unaligned under backpressure",
		Long: `Runs Nexmark q5 and q8 (the job specs examples/nexmark/qN.yaml, sinks replaced by
discard) on the embedded engine with the pebble backend and prints:

 1. throughput with checkpoints every --interval divided by throughput
    without, measured side by side: --rounds rounds, each running the query
    once without and once with checkpoints, the order alternating; the ratio
    per round (wall clock, and per CPU second) and its range (target >= 0.9);
 2. the duration (trigger to metadata written) p50/p99 and size of those
    checkpoints (full, the default), per query, beside the same figures of
    one more run per round with incremental pebble checkpoints;
 3. aligned vs unaligned checkpoint durations under backpressure: q5 up to
    its window count behind a file sink paced to --sink-rate records/s per
    subtask, each mode for --backpressure-for (0 leaves it out);
 4. recovery: q5 on a coordinator and --workers worker processes of this
    binary on 127.0.0.1 (2 slots each, parallelism 2, checkpoints every
    --interval, restart strategy fixed-delay), one worker SIGKILLed once two
    checkpoints completed; the time from the kill to the first record the
    next attempt processed, with the timeouts that bound it (0 workers
    leaves it out). --heartbeat-timeout and --restart-delay change them.

--events sets the events per run of every query (0: q5 400000, q8 2000000,
about 5 s each as WebAssembly on a 2.8 GHz core). --native runs the
operators linked into this binary. Run it from the repository root.

Examples:
  weir bench checkpoint
  weir bench checkpoint --rounds 5 --events 1000000 --output json
  weir bench checkpoint --query q5 --backpressure-for 0 --workers 0
  weir bench checkpoint --rounds 1 --heartbeat-timeout 1s --restart-delay 100ms`,
		Args: cobra.NoArgs,
		RunE: a.benchRun(func(ctx context.Context, progress io.Writer) (report, error) {
			rc, err := a.runtimeConfig()
			if err != nil {
				return nil, err
			}
			return bench.Checkpoint(ctx, bench.CheckpointOptions{
				SpecDir:          a.cfg.GetString("spec-dir"),
				Queries:          splitList(a.cfg.GetString("query")),
				Events:           a.cfg.GetInt64("events"),
				Rounds:           a.cfg.GetInt("rounds"),
				Interval:         a.cfg.GetDuration("interval"),
				Mode:             barrier.Mode(a.cfg.GetString("mode")),
				Native:           a.cfg.GetBool("native"),
				SinkRate:         a.cfg.GetInt64("sink-rate"),
				BackpressureFor:  a.cfg.GetDuration("backpressure-for"),
				Workers:          a.cfg.GetInt("workers"),
				HeartbeatTimeout: a.cfg.GetDuration("heartbeat-timeout"),
				RestartDelay:     a.cfg.GetDuration("restart-delay"),
				Runtime:          rc,
				CacheDir:         a.cfg.GetString("cache-dir"),
				Progress:         progress,
			})
		}),
	}
	f := cmd.Flags()
	f.String("query", "q5,q8", "queries to run, comma-separated")
	f.Int64("events", 0, "events per run of every query (0: sized per query, about 4 s each)")
	f.Int("rounds", bench.DefaultCheckpointRounds, "rounds of runs without and with checkpoints")
	f.Duration("interval", bench.DefaultCheckpointInterval, "time between checkpoints")
	f.String("mode", "aligned", "barrier mode of the runs with and without checkpoints: aligned, unaligned or at-least-once")
	f.Bool("native", false, "run the operators linked into this binary instead of the WebAssembly module")
	f.Int64("sink-rate", bench.DefaultSlowSinkRate, "records per second per subtask of the slow sink in the backpressure runs")
	f.Duration("backpressure-for", bench.DefaultBackpressureFor, "length of each backpressure run (0: none)")
	f.Int("workers", bench.DefaultRecoveryWorkers, "workers of the recovery run, one of which is killed (0: no recovery run)")
	f.Duration("heartbeat-timeout", 0, "the recovery run's coordinator --heartbeat-timeout (0: its default)")
	f.Duration("restart-delay", 0, "the recovery run's fixed-delay restart delay (0: its default)")
	f.String("spec-dir", "examples/nexmark", "folder of the qN.yaml job specs")
	f.String("cpuprofile", "", "write a CPU profile (go tool pprof) of the runs to this file")
	addLimitFlags(cmd)
	return cmd
}

// benchRun is the RunE of a weir bench command: run gets where progress
// goes (nowhere with --output json), under the CPU profile --cpuprofile
// asks for, and its report is printed as the output format says.
func (a *app) benchRun(run func(ctx context.Context, progress io.Writer) (report, error)) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		progress := a.stderr
		if a.jsonOut() {
			progress = io.Discard
		}
		stop, err := a.startCPUProfile()
		if err != nil {
			return err
		}
		defer stop()
		rep, err := run(cmd.Context(), progress)
		if err != nil {
			return err
		}
		return a.printReport(rep)
	}
}

// startCPUProfile starts the CPU profile the --cpuprofile flag asks for,
// if any, and returns the function that stops and writes it.
func (a *app) startCPUProfile() (stop func(), err error) {
	path := a.cfg.GetString("cpuprofile")
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// report is a benchmark's result: a table, or JSON with --output json.
type report interface{ WriteTable(io.Writer) }

// printReport prints a benchmark's result as the output format says.
func (a *app) printReport(rep report) error {
	if a.jsonOut() {
		return a.printJSON(rep)
	}
	fmt.Fprintln(a.stdout)
	rep.WriteTable(a.stdout)
	return nil
}
