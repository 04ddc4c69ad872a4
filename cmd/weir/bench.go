package main

import (
	"fmt"
	"io"
	"os"
	"runtime/pprof"

	"github.com/spf13/cobra"

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
  (d) as an AssemblyScript SDK module, next to (e) memcpy, the batch copied
in and out with nothing else (the floor of every module row), at batch sizes 1, 64 and 1024, with the per-call time limit enforced and not,
and prints ns per record and records per second. Each module's output is
checked against an independent computation before it is timed. Also reports
how long the Go module takes to compile, to load from the on-disk cache and to
instantiate again. Needs the go command, clang (wasm32-wasi) and the
AssemblyScript compiler (go tool task deps:asc) to build the modules.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			progress := a.stderr
			if a.jsonOut() {
				progress = io.Discard
			}
			rep, err := bench.ABI(cmd.Context(), bench.ABIOptions{
				Records:  a.cfg.GetInt("records"),
				Batches:  a.cfg.GetIntSlice("batch"),
				CacheDir: a.cfg.GetString("cache-dir"),
				Progress: progress,
			})
			if err != nil {
				return err
			}
			if a.jsonOut() {
				return a.printJSON(rep)
			}
			fmt.Fprintln(a.stdout)
			rep.WriteTable(a.stdout)
			return nil
		},
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
markers sent every 10 ms). With --native each query also runs with its
operators linked natively (the same Go source, no WebAssembly), so the cost of
the sandbox shows side by side. Run it from the repository root.

Examples:
  weir bench nexmark --query q1 --events 5000000 --native
  weir bench nexmark --query q0,q1,q2,q5,q7,q8 --events 2000000 --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			progress := a.stderr
			if a.jsonOut() {
				progress = io.Discard
			}
			if path := a.cfg.GetString("cpuprofile"); path != "" {
				f, err := os.Create(path)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			rep, err := bench.Nexmark(cmd.Context(), bench.NexmarkOptions{
				SpecDir:     a.cfg.GetString("spec-dir"),
				Queries:     splitList(a.cfg.GetString("query")),
				Events:      a.cfg.GetInt64("events"),
				Parallelism: a.cfg.GetInt("parallelism"),
				Backend:     a.cfg.GetString("backend"),
				Native:      a.cfg.GetBool("native"),
				Runtime:     a.runtimeConfig(),
				CacheDir:    a.cfg.GetString("cache-dir"),
				Progress:    progress,
			})
			if err != nil {
				return err
			}
			if a.jsonOut() {
				return a.printJSON(rep)
			}
			fmt.Fprintln(a.stdout)
			rep.WriteTable(a.stdout)
			return nil
		},
	}
	nf := nexmark.Flags()
	nf.String("query", "q0,q1,q2,q3,q4,q5,q7,q8", "queries to run, comma-separated")
	nf.Int64("events", 1_000_000, "events per run")
	nf.Int("parallelism", 0, "parallelism of every operator (0: as in the spec)")
	nf.String("backend", "pebble", "state backend: heap or pebble")
	nf.Bool("native", false, "also run each query with natively linked operators")
	nf.String("spec-dir", "examples/nexmark", "folder of the qN.yaml job specs")
	nf.String("cpuprofile", "", "write a CPU profile (go tool pprof) of the runs to this file")
	addLimitFlags(nexmark)
	cmd.AddCommand(abi, nexmark)
	return cmd
}
