package main

import (
	"fmt"
	"io"

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
at batch sizes 1, 64 and 1024, with the per-call time limit enforced and not,
and prints ns per record and records per second. Each module's output is
checked against an independent computation before it is timed. Also reports
how long the Go module takes to compile, to load from the on-disk cache and to
instantiate again. Needs the go command and clang (wasm32-wasi) on PATH to
build the modules.`,
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
	cmd.AddCommand(abi)
	return cmd
}
