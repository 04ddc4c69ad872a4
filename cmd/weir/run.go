package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/weirstream/weir/coordinator/jobspec"
	"github.com/weirstream/weir/internal/api"
	"github.com/weirstream/weir/internal/barrier"
	"github.com/weirstream/weir/internal/ckptstore"
	"github.com/weirstream/weir/internal/minicluster"
	"github.com/weirstream/weir/worker/task"
	"github.com/weirstream/weir/worker/wasmhost"
)

func newRunCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run JOB.yaml",
		Short: "Run a job on the embedded engine, in this process",
		Long: `Runs a job spec (YAML or JSON; see docs/jobspec.md) on the embedded engine:
the planner and every task in this one process, with the same runtime a
cluster uses. Module folders named by the spec are built first (cached).

On a terminal it shows live progress every second: records in and out per
operator, the watermark and backpressure of each task. A bounded job ends
when its sources end; an unbounded one runs until Ctrl-C. At the end it
prints a summary, or one JSON document with --output json.

A job with a checkpoints block (or --checkpoint-interval) takes
checkpoints into its checkpoint folder (the spec's checkpoints.dir,
--checkpoint-dir, or ~/.local/state/weir/checkpoints), a folder per job
named by the spec's name. If the process is killed, --resume starts the
job again from the latest completed checkpoint there: every operator's
state, the sources' positions and the file sink's committed output are
as they were, so the job ends with the output of an uninterrupted run.
--from-savepoint starts it from a savepoint (or any checkpoint folder),
at any parallelism.

Examples:
  weir run examples/wordcount/job.yaml
  weir run examples/nexmark/q5.yaml --output json
  weir run job.yaml --checkpoint-interval 1s        checkpoint every second
  weir run job.yaml --resume                        after a crash: go on from the latest checkpoint
  weir run job.yaml --from-savepoint /sp/job/chk-7  start from a savepoint
  weir job validate examples/nexmark/q5.yaml     check a spec without running it`,
		Args: exactArgs(1, "JOB.yaml"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runJob(cmd.Context(), args[0])
		},
	}
	f := cmd.Flags()
	f.Bool("progress", true, "show live progress on a terminal (stderr)")
	f.Bool("native", false, "run operators linked into this binary instead of WebAssembly modules (benchmarking only)")
	f.String("checkpoint-dir", "", "the checkpoint folder (default: the spec's checkpoints.dir, else ~/.local/state/weir/checkpoints)")
	addCheckpointOverrideFlags(cmd)
	f.Bool("resume", false, "start from the latest completed checkpoint in the checkpoint folder")
	addRestoreFlags(cmd)
	addLimitFlags(cmd)
	return cmd
}

// RunResult is the JSON summary of `weir run`.
type RunResult struct {
	Job        string           `json:"job"`
	Status     string           `json:"status"`
	Error      string           `json:"error,omitempty"`
	DurationMs int64            `json:"duration_ms"`
	Nodes      []NodeResult     `json:"nodes"`
	Counters   map[string]int64 `json:"counters,omitempty"`
	// Logs counts each operator subtask's log lines, and those the rate
	// limit kept off the terminal.
	Logs []task.LogStats `json:"logs,omitempty"`
	// Usage sums the usage of every WebAssembly instance of the job.
	Usage wasmhost.Usage `json:"usage"`
	// Checkpoints are the run's checkpoint figures, when it took any.
	Checkpoints *api.CheckpointStats `json:"checkpoints,omitempty"`
}

// NodeResult is one node's totals.
type NodeResult struct {
	UID         string `json:"uid"`
	Kind        string `json:"kind"`
	Parallelism int    `json:"parallelism"`
	In          int64  `json:"records_in"`
	Out         int64  `json:"records_out"`
	Dropped     int64  `json:"late_dropped,omitempty"`
	// Usage is what the operator's instances used (WebAssembly operators).
	Usage *wasmhost.Usage `json:"usage,omitempty"`
}

// runtimeConfig is the WebAssembly host's configuration from the limit
// flags (and their WEIR_* variables and config keys). Zero is never a
// silent default: --memory-pages, --output-limit and --call-timeout of 0
// are refused, and a negative --call-timeout says "no limit" explicitly.
func (a *app) runtimeConfig() (wasmhost.Config, error) {
	l := wasmhost.Limits{
		MemoryPages: a.cfg.GetUint32("memory-pages"),
		CallTimeout: a.cfg.GetDuration("call-timeout"),
		OutputBytes: a.cfg.GetInt("output-limit"),
	}
	if a.cfg.IsSet("memory-pages") && l.MemoryPages == 0 {
		return wasmhost.Config{}, usagef("--memory-pages 0: give the memory limit per instance, 1 to 65536 pages of 64 KiB (default %d, %d MiB)", wasmhost.DefaultLimits.MemoryPages, wasmhost.DefaultLimits.MemoryPages/16)
	}
	if l.MemoryPages > 65536 {
		return wasmhost.Config{}, usagef("--memory-pages %d: at most 65536 pages (4 GiB), the most a 32-bit module can address", l.MemoryPages)
	}
	if a.cfg.IsSet("call-timeout") && l.CallTimeout == 0 {
		return wasmhost.Config{}, usagef("--call-timeout 0: give a time limit per call such as 10s, or a negative value (-1s) for no limit, for trusted modules only")
	}
	if l.CallTimeout < 0 {
		l.CallTimeout = wasmhost.NoTimeout
	}
	if a.cfg.IsSet("output-limit") && l.OutputBytes <= 0 {
		return wasmhost.Config{}, usagef("--output-limit %d: give the most bytes one call may emit, such as %d", l.OutputBytes, wasmhost.DefaultLimits.OutputBytes)
	}
	return wasmhost.Config{CacheDir: filepath.Join(a.cfg.GetString("cache-dir"), "wazero"), Limits: l}, nil
}

// prepareJob loads and plans a job spec.
func (a *app) prepareJob(ctx context.Context, path string, native bool, edit func(*jobspec.Job) error) (*minicluster.Job, error) {
	rc, err := a.runtimeConfig()
	if err != nil {
		return nil, err
	}
	spec, err := jobspec.Load(path)
	if err != nil {
		return nil, err
	}
	if err := spec.LocalOnly(); err != nil {
		return nil, err
	}
	if edit != nil {
		if err := edit(spec); err != nil {
			return nil, err
		}
	}
	co, err := a.checkpointOptions()
	if err != nil {
		return nil, err
	}
	return minicluster.Prepare(ctx, spec, minicluster.Options{
		Native:        native,
		Runtime:       rc,
		BuildCacheDir: a.cfg.GetString("cache-dir"),
		BuildLog:      io.Discard,
		Logger:        a.logger,
		Checkpoints:   co,
	})
}

// checkpointOptions reads the checkpoint flags of `weir run`.
// addCheckpointOverrideFlags adds --checkpoint-interval and
// --checkpoint-mode (weir run, weir job submit).
func addCheckpointOverrideFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.Duration("checkpoint-interval", 0, "take a checkpoint this often (overrides the spec's checkpoints.interval; 0 keeps it)")
	f.String("checkpoint-mode", "", "barrier mode: aligned, unaligned or at-least-once (overrides the spec)")
}

// checkpointOverrides reads and checks --checkpoint-interval and
// --checkpoint-mode.
func (a *app) checkpointOverrides() (time.Duration, barrier.Mode, error) {
	interval, mode := a.cfg.GetDuration("checkpoint-interval"), barrier.Mode(a.cfg.GetString("checkpoint-mode"))
	if interval < 0 || (interval > 0 && interval < jobspec.MinCheckpointInterval) {
		return 0, "", usagef("--checkpoint-interval %s: give a positive interval of at least %s, such as 1s", interval, jobspec.MinCheckpointInterval)
	}
	if mode != "" && !mode.Valid() {
		return 0, "", usagef("--checkpoint-mode %q: want aligned, unaligned or at-least-once", mode)
	}
	return interval, mode, nil
}

func (a *app) checkpointOptions() (minicluster.CheckpointOptions, error) {
	o := minicluster.CheckpointOptions{
		Dir:    a.cfg.GetString("checkpoint-dir"),
		Resume: a.cfg.GetBool("resume"),
	}
	var err error
	if o.Interval, o.Mode, err = a.checkpointOverrides(); err != nil {
		return o, err
	}
	from, allow, err := a.restoreFrom()
	if err != nil {
		return o, err
	}
	o.FromSavepoint, o.AllowNonRestored = from, allow
	if o.Resume && o.FromSavepoint != "" {
		return o, usagef("--resume and --from-savepoint: give one of them (where the job starts from)")
	}
	if o.Dir != "" {
		d, err := filepath.Abs(o.Dir)
		if err != nil {
			return o, err
		}
		o.Dir = d
	}
	return o, nil
}

func (a *app) runJob(ctx context.Context, path string) error {
	a.term = &terminal{w: a.stderr}
	a.logger = slog.New(&logHandler{t: a.term, debug: a.cfg.GetBool("debug")})
	job, err := a.prepareJob(ctx, path, a.cfg.GetBool("native"), nil)
	if err != nil {
		return err
	}
	defer job.Close()
	start := time.Now()
	run, err := job.Start(ctx)
	if err != nil {
		return err
	}
	var stop chan struct{}
	var stopped chan struct{}
	if a.cfg.GetBool("progress") && !a.jsonOut() && isTerminal(a.stderr) {
		stop, stopped = make(chan struct{}), make(chan struct{})
		go func() {
			defer close(stopped)
			a.progress(run, start, stop)
		}()
	}
	go func() {
		<-ctx.Done()
		run.Cancel()
	}()
	runErr := run.Wait()
	if stop != nil {
		close(stop)
		<-stopped
	}
	res := summarize(job.Spec.Name, run, time.Since(start), runErr)
	res.Checkpoints = checkpointSummary(job)
	if a.jsonOut() {
		if err := a.printJSON(res); err != nil {
			return err
		}
		if runErr != nil {
			return fmt.Errorf("job %s failed: %w", job.Spec.Name, runErr)
		}
		return nil
	}
	if runErr != nil {
		if c := res.Checkpoints; c != nil && c.Latest != nil {
			fmt.Fprintf(a.stderr, "weir: the latest completed checkpoint is %s: `weir run %s --resume` goes on from it\n", c.Latest.Path, path)
		}
		return fmt.Errorf("job %s failed after %s: %w", job.Spec.Name, time.Since(start).Round(time.Millisecond), runErr)
	}
	printSummary(a.stderr, res)
	return nil
}

// checkpointSummary is the run's checkpoint figures (nil when it takes
// none).
func checkpointSummary(job *minicluster.Job) *api.CheckpointStats {
	st := job.Checkpoints()
	if st.Completed == 0 && st.Failed == 0 && job.Restored == nil {
		return nil
	}
	out := &api.CheckpointStats{Completed: st.Completed, Failed: st.Failed, InProgress: st.InProgress, LastFailure: st.LastFailure}
	if l := st.Latest; l != nil {
		out.Latest = &api.CheckpointInfo{ID: l.ID, Path: l.Path, DurationMs: l.Duration.Milliseconds(), Size: l.Size, Savepoint: l.Savepoint}
	}
	if r := job.Restored; r != nil {
		out.Restored = ckptstore.PathOf(r.Storage, r.Meta.Job, r.Meta.Checkpoint)
	}
	return out
}

func summarize(name string, run *task.Run, d time.Duration, err error) RunResult {
	res := RunResult{Job: name, Status: "finished", DurationMs: d.Milliseconds(), Counters: run.Counters()}
	if err != nil {
		res.Status, res.Error = "failed", err.Error()
	}
	for _, m := range run.Metrics() {
		nr := NodeResult{UID: m.UID, Kind: m.Kind.String(), Parallelism: m.Parallelism, In: m.In.Load(), Out: m.Out.Load(), Dropped: m.Dropped.Load()}
		if u := m.Usage(); u.Calls > 0 {
			nr.Usage = &u
		}
		res.Nodes = append(res.Nodes, nr)
	}
	res.Logs = run.LogStats()
	res.Usage = run.Usage()
	if len(res.Counters) == 0 {
		res.Counters = nil
	}
	return res
}

func printSummary(w io.Writer, res RunResult) {
	fmt.Fprintf(w, "job %s %s in %s\n", res.Job, res.Status, (time.Duration(res.DurationMs) * time.Millisecond).String())
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "node\tkind\tparallelism\trecords in\trecords out\tpeak memory\tfuel\tcpu\t")
	for _, n := range res.Nodes {
		in, out := fmt.Sprint(n.In), fmt.Sprint(n.Out)
		if n.Kind == "source" {
			in = "-"
		}
		if n.Kind == "sink" {
			out = "-"
		}
		mem, fuel, cpu := "-", "-", "-"
		if u := n.Usage; u != nil {
			mem, fuel, cpu = formatBytes(u.PeakMemory), fmt.Sprint(u.Fuel), "~"+u.CPU.Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t\n", n.UID, n.Kind, n.Parallelism, in, out, mem, fuel, cpu)
	}
	tw.Flush()
	if u := res.Usage; u.Calls > 0 {
		fmt.Fprintf(w, "modules: peak memory %s, fuel %d, cpu ~%s in %d calls\n", formatBytes(u.PeakMemory), u.Fuel, u.CPU.Round(time.Millisecond), u.Calls)
	}
	for _, l := range res.Logs {
		if l.Dropped > 0 {
			fmt.Fprintf(w, "logs: %s subtask %d logged %d lines; %d were not shown (more than 20 a second)\n", l.Operator, l.Subtask, l.Lines, l.Dropped)
		}
	}
	if c := res.Checkpoints; c != nil {
		if c.Restored != "" {
			fmt.Fprintf(w, "restored from %s\n", c.Restored)
		}
		fmt.Fprintf(w, "checkpoints: %d completed, %d failed", c.Completed, c.Failed)
		if l := c.Latest; l != nil {
			fmt.Fprintf(w, "; the latest, %d, in %s (%s, %dms)", l.ID, l.Path, formatBytes(l.Size), l.DurationMs)
		}
		fmt.Fprintln(w)
		if c.LastFailure != "" {
			fmt.Fprintf(w, "  last failure: %s\n", c.LastFailure)
		}
	}
	if len(res.Counters) > 0 {
		names := make([]string, 0, len(res.Counters))
		for k := range res.Counters {
			names = append(names, k)
		}
		sort.Strings(names)
		fmt.Fprintln(w, "counters:")
		for _, k := range names {
			fmt.Fprintf(w, "  %s = %d\n", k, res.Counters[k])
		}
	}
}

// progress redraws a status block on the terminal every second.
func (a *app) progress(run *task.Run, start time.Time, stop <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	prev := map[string]int64{}
	for {
		select {
		case <-stop:
			a.term.mu.Lock()
			a.term.eraseLocked()
			a.term.mu.Unlock()
			return
		case <-tick.C:
		}
		var b strings.Builder
		fmt.Fprintf(&b, "running %s\n", time.Since(start).Round(time.Second))
		for _, m := range run.Metrics() {
			in, out := m.In.Load(), m.Out.Load()
			rate := out - prev[m.UID]
			if m.Kind == task.NodeSink {
				rate = in - prev[m.UID]
				prev[m.UID] = in
			} else {
				prev[m.UID] = out
			}
			fmt.Fprintf(&b, "  %-24s in %12d  out %12d  %10d/s\n", m.UID, in, out, rate)
		}
		for _, t := range run.Tasks() {
			fmt.Fprintf(&b, "  task %-40s watermark %-24s backpressure %3.0f%%\n", t.Name, formatWatermark(t.Watermark), 100*t.Backpress)
		}
		s := b.String()
		a.term.mu.Lock()
		a.term.eraseLocked()
		fmt.Fprint(a.term.w, s)
		a.term.lines = strings.Count(s, "\n")
		a.term.mu.Unlock()
	}
}

// formatBytes prints a byte count in KiB or MiB.
func formatBytes(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

func formatWatermark(wm int64) string {
	switch wm {
	case math.MinInt64:
		return "none"
	case math.MaxInt64:
		return "end"
	}
	return time.UnixMilli(wm).UTC().Format("2006-01-02T15:04:05.000")
}

// isTerminal reports whether w is a character device.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
