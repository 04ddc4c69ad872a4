package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/weirstream/weir/internal/modbuild"
	"github.com/weirstream/weir/wasmabi"
	"github.com/weirstream/weir/worker/modtest"
	"github.com/weirstream/weir/worker/wasmhost"
)

func abiVersion() int { return wasmabi.Version }

func newModuleCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "module",
		Short: "Write, build, test, inspect and upload operator modules",
		Long: `An operator module is a WebAssembly file exporting one or more operators
(map, filter, flat_map, keyed process, window aggregate, co-process) through the
weir ABI. Write one in Go or C with the SDKs, build it, and test it on sample
records before you run it in a job.`,
	}
	cmd.AddCommand(newModuleInitCmd(a), newModuleBuildCmd(a), newModuleTestCmd(a), newModuleInspectCmd(a), newModuleUploadCmd(a), newModuleListCmd(a))
	return cmd
}

func newModuleInitCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "init --lang go|c|rust|assemblyscript DIR",
		Short: "Make a ready-to-build operator template in DIR",
		Long: `Writes an operator template to DIR (created if needed; existing files are
never overwritten): the source with two operators (a map and a keyed process
function), sample input, and a README with the next commands.

  weir module init --lang go ./myop      # or --lang c, --lang rust
  weir module build ./myop
  weir module test ./myop/myop.wasm --operator upper --input ./myop/sample.jsonl`,
		Args: exactArgs(1, "DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			lang := modbuild.Lang(a.cfg.GetString("lang"))
			files, err := modbuild.Init(args[0], lang, a.cfg.GetString("cache-dir"))
			if err != nil {
				return err
			}
			if a.jsonOut() {
				return a.printJSON(map[string]any{"dir": args[0], "lang": lang, "files": files})
			}
			for _, f := range files {
				fmt.Fprintf(a.stdout, "wrote %s\n", f)
			}
			name := filepath.Base(filepath.Clean(args[0]))
			fmt.Fprintf(a.stdout, "\nNext:\n  weir module build %s\n  weir module test %s --operator upper --input %s\n",
				args[0], filepath.Join(args[0], name+".wasm"), filepath.Join(args[0], "sample.jsonl"))
			return nil
		},
	}
	cmd.Flags().String("lang", "go", "language of the template: go, c, rust or assemblyscript")
	return cmd
}

func newModuleBuildCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "build DIR",
		Short: "Compile a Go, C, Rust or AssemblyScript operator folder to a .wasm module",
		Long: `Compiles the operator in DIR to DIR/<name>.wasm (or --out): Go with the Go
toolchain (GOOS=wasip1 GOARCH=wasm, -buildmode=c-shared), C with clang
(--target=wasm32-wasi), Rust (a folder with lib.rs) with plain rustc
(--target wasm32-wasip1 or wasm32-wasi, no cargo), AssemblyScript
(assembly/index.ts or *.ts) with asc. Results are cached by the content of the sources, the
SDK and the toolchain, so an unchanged operator builds instantly.`,
		Args: exactArgs(1, "DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			start := time.Now()
			if !a.jsonOut() {
				fmt.Fprintf(a.stderr, "building %s ...\n", args[0])
			}
			res, err := modbuild.Build(cmd.Context(), modbuild.Options{
				Dir: args[0], Out: a.cfg.GetString("out"), CacheDir: a.cfg.GetString("cache-dir"),
			})
			if err != nil {
				return err
			}
			st, err := os.Stat(res.Out)
			if err != nil {
				return err
			}
			if a.jsonOut() {
				return a.printJSON(map[string]any{"module": res.Out, "lang": res.Lang, "cached": res.Cached, "hash": res.Hash, "bytes": st.Size()})
			}
			how := "built"
			if res.Cached {
				how = "cached"
			}
			fmt.Fprintf(a.stdout, "%s %s (%s, %d KiB, %v)\n", how, res.Out, res.Lang, st.Size()/1024, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	cmd.Flags().String("out", "", "the .wasm file to write (default DIR/<name>.wasm)")
	return cmd
}

func addLimitFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.Uint32("memory-pages", wasmhost.DefaultLimits.MemoryPages, "memory limit per instance, in 64 KiB pages")
	f.Duration("call-timeout", wasmhost.DefaultLimits.CallTimeout, "time limit per call into the module, and per start function, describe and open (negative: no limit, trusted modules only)")
	f.Int("output-limit", wasmhost.DefaultLimits.OutputBytes, "output bytes limit per call")
}

// runtime makes a wasmhost runtime with the configured limits and cache.
func (a *app) runtime(ctx context.Context) (*wasmhost.Runtime, error) {
	cfg, err := a.runtimeConfig()
	if err != nil {
		return nil, err
	}
	return wasmhost.NewRuntime(ctx, cfg)
}

// openModule makes a runtime and loads a .wasm file into it, with errors
// that say what to do. The caller closes the runtime.
func (a *app) openModule(ctx context.Context, path string) (*wasmhost.Runtime, *wasmhost.Module, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("module %s does not exist (build one with `weir module build DIR`)", path)
		}
		return nil, nil, err
	}
	rt, err := a.runtime(ctx)
	if err != nil {
		return nil, nil, err
	}
	mod, err := rt.Load(ctx, filepath.Base(path), b)
	if err != nil {
		rt.Close()
		return nil, nil, err
	}
	return rt, mod, nil
}

func newModuleTestCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "test MODULE.wasm --operator NAME[,NAME...] --input FILE",
		Short: "Run operators of a module locally over sample records",
		Long: `Runs one operator, or a chain of them, over sample records and prints what
comes out, with the module's logs and counters. Keyed state and timers work as
in a job, kept in memory.

Input (--input) is JSON Lines, one record per line:
  {"key": "alice", "value": "hello world", "timestamp": 1700000000000, "headers": {"h": "v"}}
A value that is not a JSON string is passed as its JSON text. --key-field takes
the key from a field of a JSON value. --format lines reads plain text, one
record value per line, with the line number as timestamp.

Event time: after each batch the watermark is the largest timestamp seen
minus --out-of-orderness; processing time is simulated as the largest timestamp
seen. At the end of input every timer fires. An aggregate operator gets one
window per key over the whole input.

  weir module test wc.wasm --operator split,count --input sample.jsonl
  weir module test op.wasm --operator upper --input in.jsonl --output json`,
		Args: exactArgs(1, "MODULE.wasm"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if p := a.cfg.GetString("params"); p != "" && !json.Valid([]byte(p)) {
				return usagef("--params is not valid JSON: %s", p)
			}
			ops := splitList(a.cfg.GetString("operator"))
			if len(ops) == 0 {
				return usagef("--operator is required (see `weir module inspect %s` for the names)", args[0])
			}
			inPath := a.cfg.GetString("input")
			if inPath == "" {
				return usagef("--input is required: a JSON Lines file of sample records")
			}
			ctx := cmd.Context()
			rt, mod, err := a.openModule(ctx, args[0])
			if err != nil {
				return err
			}
			defer rt.Close()
			in, err := os.Open(inPath)
			if err != nil {
				return err
			}
			defer in.Close()
			format := a.cfg.GetString("format")
			if format == "" {
				format = "jsonl"
				if ext := filepath.Ext(inPath); ext == ".txt" || ext == ".text" {
					format = "lines"
				}
			}
			res, err := modtest.Run(ctx, modtest.Options{
				Module: mod, Operators: ops, Params: []byte(a.cfg.GetString("params")),
				Input: in, InputName: inPath, Format: format, KeyField: a.cfg.GetString("key-field"),
				BatchSize: a.cfg.GetInt("batch"), OutOfOrderness: a.cfg.GetDuration("out-of-orderness").Milliseconds(),
			})
			if err != nil {
				return err
			}
			if a.jsonOut() {
				return a.printJSON(res)
			}
			for _, r := range res.Records {
				fmt.Fprintln(a.stdout, r.String())
			}
			for _, l := range res.Logs {
				fmt.Fprintf(a.stderr, "log %s %s: %s\n", l.Operator, l.Level, l.Message)
			}
			for _, name := range sortedNames(res.Counters) {
				fmt.Fprintf(a.stderr, "counter %s = %d\n", name, res.Counters[name])
			}
			for _, u := range res.Usage {
				fmt.Fprintf(a.stderr, "usage %s: memory %s (peak %s of the %s limit), host buffers %s, worst case %s; fuel %d, cpu ~%s in %d calls\n",
					u.Operator, formatBytes(u.Memory), formatBytes(u.PeakMemory), formatBytes(u.MemoryLimit), formatBytes(u.HostBytes), formatBytes(u.WorstCase),
					u.Fuel, u.CPU.Round(time.Millisecond), u.Calls)
			}
			fmt.Fprintf(a.stderr, "%d records in, %d out through %s\n", res.Inputs, len(res.Records), strings.Join(ops, " -> "))
			return nil
		},
	}
	f := cmd.Flags()
	f.String("operator", "", "operator to run, or a comma-separated chain (required)")
	f.String("input", "", "sample records, JSON Lines (required)")
	f.String("format", "", "input format: jsonl or lines (default: lines for .txt, else jsonl)")
	f.String("key-field", "", "take each record's key from this field of its JSON value")
	f.String("params", "", "operator parameters (JSON) passed to every operator's open")
	f.Int("batch", 1024, "records per batch")
	f.Duration("out-of-orderness", 0, "how far behind the largest timestamp the watermark stays")
	addLimitFlags(cmd)
	return cmd
}

func newModuleInspectCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "inspect MODULE.wasm",
		Short: "Show a module's ABI version, operators, imports and size",
		Args:  exactArgs(1, "MODULE.wasm"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			rt, mod, err := a.openModule(ctx, args[0])
			if err != nil {
				return err
			}
			defer rt.Close()
			d := mod.Descriptor()
			if a.jsonOut() {
				return a.printJSON(map[string]any{
					"module": args[0], "bytes": mod.Size(), "abi": wasmabi.Version, "sdk": d.SDK,
					"operators": d.Operators, "imports": mod.Imports(),
				})
			}
			fmt.Fprintf(a.stdout, "module   %s\nsize     %d bytes\nabi      v%d\n", args[0], mod.Size(), wasmabi.Version)
			if d.SDK != "" {
				fmt.Fprintf(a.stdout, "sdk      %s\n", d.SDK)
			}
			fmt.Fprintf(a.stdout, "\noperators:\n")
			tw := tabwriter.NewWriter(a.stdout, 2, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "  #\tNAME\tKIND\tSIDE OUTPUTS")
			for i, op := range d.Operators {
				side := strings.Join(op.SideOutputs, ",")
				if side == "" {
					side = "-"
				}
				fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\n", i, op.Name, op.Kind, side)
			}
			tw.Flush()
			fmt.Fprintf(a.stdout, "\nimports (%d):\n", len(mod.Imports()))
			for _, imp := range mod.Imports() {
				fmt.Fprintf(a.stdout, "  %s\n", imp)
			}
			return nil
		},
	}
	addLimitFlags(cmd)
	return cmd
}

func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s takes %s (got %d arguments); see `weir %s --help`", cmd.Name(), names, len(args), cmd.CommandPath()[len("weir "):])
		}
		return nil
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func sortedNames(m map[string]int64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
