package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	yaml "go.yaml.in/yaml/v3"

	"github.com/weirstream/weir/coordinator/jobspec"
	"github.com/weirstream/weir/coordinator/registry"
	"github.com/weirstream/weir/internal/api"
	"github.com/weirstream/weir/internal/client"
	"github.com/weirstream/weir/internal/modbuild"
	"github.com/weirstream/weir/internal/modinfo"
)

// client returns a client of the configured coordinator.
func (a *app) client() (*client.Client, error) {
	c, err := client.New(a.cfg.GetString("coordinator"), client.Options{})
	if err != nil {
		return nil, usagef("--coordinator: %v", err)
	}
	return c, nil
}

// apiErrors prints the spec problems an error answer carries, like
// specErrors does for local ones, naming the local file.
func (a *app) apiErrors(file string, err error) error {
	var ce *client.Error
	if !errors.As(err, &ce) || len(ce.Problems) == 0 {
		return err
	}
	if a.jsonOut() {
		_ = a.printJSON(map[string]any{"file": file, "ok": false, "errors": ce.Problems})
	} else {
		for _, p := range ce.Problems {
			e := jobspec.Error{File: file, Line: p.Line, Col: p.Col, Field: p.Field, Msg: p.Message}
			fmt.Fprintln(a.stderr, e.Error())
		}
	}
	if len(ce.Problems) == 1 {
		return fmt.Errorf("%s: 1 problem", file)
	}
	return fmt.Errorf("%s: %d problems", file, len(ce.Problems))
}

func newClusterCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Show a coordinator's cluster: workers, slots, jobs",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "Workers with their slots free and used, and the jobs by state",
		Long: `Asks the coordinator (--coordinator, WEIR_COORDINATOR) for its overview and
its workers.

  weir cluster status
  weir cluster status --coordinator http://10.0.0.5:8081 --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ov, err := c.Overview(cmd.Context())
			if err != nil {
				return err
			}
			ws, err := c.Workers(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOut() {
				return a.printJSON(map[string]any{"overview": ov, "workers": ws})
			}
			fmt.Fprintf(a.stdout, "coordinator %s (weir %s, ABI v%d)\n", c.URL(), ov.Version, ov.ABI)
			fmt.Fprintf(a.stdout, "workers     %d alive, slots %d free of %d\n", ov.Workers, ov.SlotsFree, ov.SlotsTotal)
			fmt.Fprintf(a.stdout, "jobs        %s\n", jobCounts(ov.Jobs))
			fmt.Fprintf(a.stdout, "modules     %d\n\n", ov.Modules)
			tw := tabwriter.NewWriter(a.stdout, 2, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "WORKER\tADDRESS\tSTATE\tSLOTS\tUSED\tFREE\tTASKS\tLAST HEARTBEAT")
			for _, w := range ws {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", w.ID, w.Address, w.State, w.Slots, w.SlotsUsed, w.SlotsFree, w.Tasks, ago(w.LastHeartbeat))
			}
			return tw.Flush()
		},
	})
	return cmd
}

func jobCounts(m map[api.State]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, s := range []api.State{api.StateCreated, api.StateScheduled, api.StateDeploying, api.StateRunning, api.StateRestarting,
		api.StateCanceling, api.StateFinished, api.StateCanceled, api.StateFailed} {
		if n := m[s]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s))
		}
	}
	return strings.Join(parts, ", ")
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

func stamp(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func newModuleUploadCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "upload FILE.wasm|DIR --name NAME --version VERSION",
		Short: "Upload a module to the coordinator's registry as NAME@VERSION",
		Long: `Uploads a .wasm module (or builds an operator folder first) to the registry
of the coordinator (--coordinator, WEIR_COORDINATOR). The coordinator checks it
(WebAssembly, ABI version, operators, size) before storing it by content. A
version is immutable: the same bytes again are a no-op, other bytes under the
same NAME@VERSION are refused. Job specs then name it as NAME@VERSION:

  weir module upload wordcount.wasm --name wordcount --version 1.0
  modules: {wc: wordcount@1.0}`,
		Args: exactArgs(1, "FILE.wasm or DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, version := a.cfg.GetString("name"), a.cfg.GetString("version")
			if name == "" {
				name = strings.TrimSuffix(filepath.Base(filepath.Clean(args[0])), ".wasm")
			}
			if version == "" {
				return usagef("--version is required (versions are immutable; e.g. --version 1.0)")
			}
			for _, c := range [][2]string{{"name", name}, {"version", version}} {
				if err := api.CheckName(c[0], c[1]); err != nil {
					return usagef("--%s: %s", c[0], strings.TrimPrefix(err.Error(), api.ErrInvalidName.Error()+": "))
				}
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			b, err := a.moduleBytes(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			m, created, err := c.Upload(cmd.Context(), name, version, b)
			if err != nil {
				return err
			}
			if a.jsonOut() {
				return a.printJSON(map[string]any{"module": m, "created": created})
			}
			how := "uploaded"
			if !created {
				how = "already there:"
			}
			fmt.Fprintf(a.stdout, "%s %s@%s (sha256 %.12s, %s, operators: %s)\n", how, m.Name, m.Version, m.Digest, size(m.Size), operatorNames(m))
			return nil
		},
	}
	cmd.Flags().String("name", "", "module name (default: the file name without .wasm)")
	cmd.Flags().String("version", "", "module version (required)")
	return cmd
}

// moduleBytes reads a .wasm file, or builds an operator folder and reads
// the result.
func (a *app) moduleBytes(ctx context.Context, path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		res, err := modbuild.Build(ctx, modbuild.Options{Dir: path, CacheDir: a.cfg.GetString("cache-dir"), Out: filepath.Join(os.TempDir(), fmt.Sprintf("weir-upload-%d.wasm", os.Getpid()))})
		if err != nil {
			return nil, fmt.Errorf("building module %s: %w", path, err)
		}
		defer os.Remove(res.Out)
		path = res.Out
	}
	return os.ReadFile(path)
}

func size(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

func operatorNames(m api.ModuleInfo) string {
	var names []string
	for _, op := range m.Operators {
		names = append(names, op.Name+" ("+string(op.Kind)+")")
	}
	return strings.Join(names, ", ")
}

func newModuleListCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list [--name NAME]",
		Short: "List the modules in the coordinator's registry",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ms, err := c.Modules(cmd.Context(), a.cfg.GetString("name"))
			if err != nil {
				return err
			}
			if a.jsonOut() {
				return a.printJSON(map[string]any{"modules": ms})
			}
			tw := tabwriter.NewWriter(a.stdout, 2, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tVERSION\tDIGEST\tSIZE\tABI\tOPERATORS\tUPLOADED")
			for _, m := range ms {
				fmt.Fprintf(tw, "%s\t%s\t%.12s\t%s\tv%d\t%s\t%s\n", m.Name, m.Version, m.Digest, size(m.Size), m.ABI, operatorNames(m), stamp(&m.Uploaded))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().String("name", "", "only the versions of this module")
	return cmd
}

func newJobSubmitCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "submit JOB.yaml [--detached]",
		Short: "Submit a job to a coordinator and follow it until it ends",
		Long: `Submits a job spec to the coordinator (--coordinator, WEIR_COORDINATOR).
Modules the spec names by local path (a .wasm file, or an operator folder,
which is built first) are uploaded to the registry as <job>.<module> with a
version made from their content (sha256-<16 hex digits>), and the spec sent
names them as NAME@VERSION; the file itself is left as it is. Relative paths
in connector options resolve against the spec's folder on workers that share
this machine's filesystem.

Without --detached it follows the job, printing its progress, until it ends;
the exit status is 0 when it finished, 1 when it failed or was canceled.
Ctrl-C stops following, not the job (cancel it with ` + "`weir job cancel ID`" + `).

--checkpoint-interval and --checkpoint-mode override the spec's checkpoints
block (an interval turns checkpoints on), as for weir run.

  weir job submit examples/wordcount/job.yaml
  weir job submit job.yaml --detached --output json
  weir job submit job.yaml --checkpoint-interval 5s --checkpoint-mode unaligned`,
		Args: exactArgs(1, "JOB.yaml"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			poll := a.cfg.GetDuration("poll")
			if poll <= 0 {
				return usagef("--poll %v: want a positive interval", poll)
			}
			from, allow, err := a.restoreFrom() // checked before anything is uploaded
			if err != nil {
				return err
			}
			interval, mode, err := a.checkpointOverrides()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			req, err := a.submission(ctx, c, args[0])
			if err != nil {
				return err
			}
			req.FromSavepoint, req.AllowNonRestoredState, req.CheckpointMode = from, allow, string(mode)
			if interval > 0 {
				req.CheckpointInterval = interval.String()
			}
			st, err := c.Submit(ctx, req)
			if err != nil {
				return a.apiErrors(args[0], err)
			}
			if a.cfg.GetBool("detached") {
				if a.jsonOut() {
					return a.printJSON(st)
				}
				fmt.Fprintf(a.stdout, "submitted job %s (%s): %s\n", st.ID, st.Name, st.State)
				return nil
			}
			if !a.jsonOut() {
				fmt.Fprintf(a.stderr, "submitted job %s (%s); following it (Ctrl-C stops following, not the job)\n", st.ID, st.Name)
			}
			return a.follow(ctx, c, st, poll)
		},
	}
	cmd.Flags().Bool("detached", false, "return once the job is submitted, without following it")
	cmd.Flags().Duration("poll", time.Second, "how often to ask for the job's status while following it")
	addCheckpointOverrideFlags(cmd)
	withRestoreFlags(cmd)
	return cmd
}

// moduleUploader stores modules: the coordinator's API (*client.Client),
// or the registry of a coordinator that starts with its own job
// (registryUploader).
type moduleUploader interface {
	Upload(ctx context.Context, name, version string, wasm []byte) (api.ModuleInfo, bool, error)
}

// registryUploader uploads straight into a registry, for a coordinator
// started with its job (application mode): a.submission with it, then
// Dispatcher.Submit.
type registryUploader struct {
	reg    *registry.Registry
	tenant string
}

func (u registryUploader) Upload(ctx context.Context, name, version string, wasm []byte) (api.ModuleInfo, bool, error) {
	return u.reg.Put(ctx, u.tenant, name, version, wasm)
}

// submission reads a spec, uploads the modules it names by local path and
// returns the request with the spec rewritten to name them NAME@VERSION.
func (a *app) submission(ctx context.Context, c moduleUploader, path string) (api.SubmitRequest, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return api.SubmitRequest{}, fmt.Errorf("reading job spec: %w", err)
	}
	j, err := jobspec.Parse(src, path)
	if err != nil {
		return api.SubmitRequest{}, a.specErrors(path, err)
	}
	refs := map[string]string{}
	for _, m := range j.Modules {
		if m.Registry != nil {
			continue
		}
		b, err := a.moduleBytes(ctx, m.Resolved)
		if err != nil {
			return api.SubmitRequest{}, fmt.Errorf("%s: module %s: %w", path, m.Name, err)
		}
		name := j.Name + "." + m.Name
		version := "sha256-" + modinfo.Digest(b)[:16]
		info, created, err := c.Upload(ctx, name, version, b)
		if err != nil {
			return api.SubmitRequest{}, fmt.Errorf("%s: uploading module %s (%s): %w", path, m.Name, m.Path, err)
		}
		if created && !a.jsonOut() {
			fmt.Fprintf(a.stderr, "uploaded module %s as %s@%s (%s)\n", m.Path, info.Name, info.Version, size(info.Size))
		}
		refs[m.Name] = info.Name + "@" + info.Version
	}
	spec, err := rewriteModules(src, refs)
	if err != nil {
		return api.SubmitRequest{}, fmt.Errorf("%s: %w", path, err)
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return api.SubmitRequest{}, err
	}
	return api.SubmitRequest{Spec: string(spec), File: filepath.Base(path), Dir: dir}, nil
}

// rewriteModules replaces the values of the spec's modules map named in
// refs (module name -> NAME@VERSION), in place in the text, so every other
// line and column stays where it was and the coordinator's errors point
// into the user's file.
func rewriteModules(src []byte, refs map[string]string) ([]byte, error) {
	if len(refs) == 0 {
		return src, nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("rewriting module paths: the spec is not a YAML map")
	}
	root := doc.Content[0]
	var mods *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "modules" {
			mods = root.Content[i+1]
		}
	}
	if mods == nil || mods.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("rewriting module paths: no modules map")
	}
	lines := strings.SplitAfter(string(src), "\n")
	// Replace from the end of each line, so earlier columns stay valid.
	type edit struct {
		line, col, n int
		with         string
	}
	var edits []edit
	for i := 0; i+1 < len(mods.Content); i += 2 {
		k, v := mods.Content[i], mods.Content[i+1]
		ref, ok := refs[k.Value]
		if !ok {
			continue
		}
		if v.Kind != yaml.ScalarNode || v.Line < 1 || v.Line > len(lines) {
			return nil, fmt.Errorf("rewriting module %s: its path is not a plain string", k.Value)
		}
		line := lines[v.Line-1]
		start := v.Column - 1
		n, err := scalarLen(line[start:], v)
		if err != nil {
			return nil, fmt.Errorf("rewriting module %s: %w", k.Value, err)
		}
		edits = append(edits, edit{v.Line - 1, start, n, ref})
	}
	sort.Slice(edits, func(i, j int) bool {
		if edits[i].line != edits[j].line {
			return edits[i].line < edits[j].line
		}
		return edits[i].col > edits[j].col
	})
	for _, e := range edits {
		l := lines[e.line]
		lines[e.line] = l[:e.col] + e.with + l[e.col+e.n:]
	}
	return []byte(strings.Join(lines, "")), nil
}

// scalarLen is the length in the source of the scalar v starting at s.
func scalarLen(s string, v *yaml.Node) (int, error) {
	switch v.Style {
	case 0:
		if strings.HasPrefix(s, v.Value) {
			return len(v.Value), nil
		}
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		q := s[0]
		for i := 1; i < len(s); i++ {
			if s[i] == '\\' && q == '"' {
				i++
				continue
			}
			if s[i] == q {
				if q == '\'' && i+1 < len(s) && s[i+1] == '\'' {
					i++
					continue
				}
				return i + 1, nil
			}
		}
	}
	return 0, errors.New("its path is not a one-line string; write it plain or quoted on one line")
}

func newJobListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the jobs on the coordinator",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			jobs, err := c.Jobs(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOut() {
				return a.printJSON(map[string]any{"jobs": jobs})
			}
			tw := tabwriter.NewWriter(a.stdout, 2, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tSTATE\tSLOTS\tSUBMITTED\tMESSAGE")
			for _, j := range jobs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", j.ID, j.Name, j.State, j.Slots, stamp(&j.Submitted), j.Message)
			}
			return tw.Flush()
		},
	}
}

func newJobInfoCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "info ID",
		Short: "Show a job: its state, and every subtask's state, worker, slot and metrics",
		Args:  exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			st, err := c.Job(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.jsonOut() {
				return a.printJSON(st)
			}
			a.printJob(st)
			return nil
		},
	}
}

// printJob prints a job's header and its subtask table.
func (a *app) printJob(st api.JobStatus) {
	fmt.Fprintf(a.stdout, "job       %s (%s)\nstate     %s", st.ID, st.Name, st.State)
	if st.Message != "" {
		fmt.Fprintf(a.stdout, ": %s", st.Message)
	}
	fmt.Fprintf(a.stdout, "\nattempt   %d\nslots     %d\nsubmitted %s\nstarted   %s\nended     %s\n", st.Attempt, st.Slots, stamp(&st.Submitted), stamp(st.Started), stamp(st.Ended))
	if len(st.Modules) > 0 {
		names := make([]string, 0, len(st.Modules))
		for n := range st.Modules {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			m := st.Modules[n]
			fmt.Fprintf(a.stdout, "module    %s = %s@%s (sha256 %.12s)\n", n, m.Name, m.Version, m.Digest)
		}
	}
	a.printCheckpoints(st.Checkpoints)
	if len(st.Subtasks) == 0 {
		return
	}
	fmt.Fprintln(a.stdout)
	tw := tabwriter.NewWriter(a.stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tSUBTASK\tSTATE\tWORKER\tSLOT\tRECORDS IN\tRECORDS OUT\tBUSY\tBACKPRESSURED\tFAILURE")
	for _, s := range st.Subtasks {
		worker := s.Worker
		if worker == "" {
			worker = "-"
		}
		fmt.Fprintf(tw, "%s\t%d/%d\t%s\t%s\t%d\t%d\t%d\t%.0f%%\t%.0f%%\t%s\n", s.Task, s.Index, s.Parallelism, s.State, worker, s.Slot,
			s.Metrics.RecordsIn, s.Metrics.RecordsOut, s.Metrics.BusyMsPerSec/10, s.Metrics.BackpressuredMsPerSec/10, s.Failure)
	}
	tw.Flush()
	// Channels with credits short or a backlog: where backpressure sits.
	var rows []string
	for _, s := range st.Subtasks {
		for _, c := range s.Metrics.Channels {
			if c.Backlog > 0 || c.Direction == "out" && c.Credits == 0 {
				rows = append(rows, fmt.Sprintf("%s\t%d\t%s\t%s\t%d\t%d", s.Task, s.Index, c.Direction, c.Peer, c.Credits, c.Backlog))
			}
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(a.stdout, "\nchannels out of credit or with a backlog:")
	tw = tabwriter.NewWriter(a.stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tSUBTASK\tDIR\tCHANNEL\tCREDITS\tBACKLOG")
	for _, r := range rows {
		fmt.Fprintln(tw, r)
	}
	tw.Flush()
}

func newJobCancelCmd(a *app) *cobra.Command {
	return a.jobActionCmd("cancel", "Cancel a job: its tasks stop without finishing", (*client.Client).Cancel)
}

func newJobStopCmd(a *app) *cobra.Command {
	return a.jobActionCmd("stop", "Stop a job gracefully: sources stop, records in flight drain, it finishes", (*client.Client).Stop)
}

func (a *app) jobActionCmd(name, short string, act func(*client.Client, context.Context, string) (api.JobStatus, error)) *cobra.Command {
	return &cobra.Command{
		Use:   name + " ID",
		Short: short,
		Args:  exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			st, err := act(c, cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.jsonOut() {
				return a.printJSON(st)
			}
			fmt.Fprintf(a.stdout, "job %s: %s\n", st.ID, st.State)
			return nil
		},
	}
}

// follow polls a job until it ends, showing progress: on a terminal a
// block redrawn at each poll, elsewhere a line per change of state. It
// returns an error when the job did not finish.
func (a *app) follow(ctx context.Context, c *client.Client, st api.JobStatus, poll time.Duration) error {
	tty := isTerminal(a.stderr) && !a.jsonOut()
	lines := 0
	last := api.State("")
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		if !a.jsonOut() {
			if tty {
				if lines > 0 {
					fmt.Fprintf(a.stderr, "\x1b[%dA\x1b[J", lines)
				}
				s := progressBlock(st)
				fmt.Fprint(a.stderr, s)
				lines = strings.Count(s, "\n")
			} else if st.State != last {
				line := fmt.Sprintf("job %s: %s", st.ID, st.State)
				if st.Message != "" {
					line += " (" + st.Message + ")"
				}
				fmt.Fprintln(a.stderr, line)
			}
		}
		last = st.State
		if st.State.Terminal() {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped following job %s (it goes on; `weir job info %s`, `weir job cancel %s`)", st.ID, st.ID, st.ID)
		case <-tick.C:
		}
		next, err := c.Job(ctx, st.ID)
		if err != nil {
			if ctx.Err() != nil {
				continue // reported at the top of the loop
			}
			return fmt.Errorf("following job %s: %w", st.ID, err)
		}
		st = next
	}
	if a.jsonOut() {
		if err := a.printJSON(st); err != nil {
			return err
		}
	} else {
		a.printJob(st)
	}
	if st.State != api.StateFinished {
		msg := ""
		if st.Message != "" {
			msg = ": " + st.Message
		}
		return fmt.Errorf("job %s %s%s", st.ID, st.State, msg)
	}
	return nil
}

// progressBlock is the live view of a job: its state and, per task, the
// records in and out summed over its subtasks and the largest
// backpressure.
func progressBlock(st api.JobStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "job %s (%s): %s", st.ID, st.Name, st.State)
	if st.Message != "" {
		fmt.Fprintf(&b, " (%s)", st.Message)
	}
	b.WriteByte('\n')
	type agg struct {
		in, out        int64
		backpressure   float64
		running, total int
	}
	var order []string
	tasks := map[string]*agg{}
	for _, s := range st.Subtasks {
		t := tasks[s.Task]
		if t == nil {
			t = &agg{}
			tasks[s.Task] = t
			order = append(order, s.Task)
		}
		t.in += s.Metrics.RecordsIn
		t.out += s.Metrics.RecordsOut
		t.backpressure = max(t.backpressure, s.Metrics.BackpressuredMsPerSec/10)
		t.total++
		if s.State == api.StateRunning {
			t.running++
		}
	}
	for _, name := range order {
		t := tasks[name]
		fmt.Fprintf(&b, "  %-32s %d/%d running  in %12d  out %12d  backpressure %3.0f%%\n", name, t.running, t.total, t.in, t.out, t.backpressure)
	}
	return b.String()
}

func newJobLogsCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "logs ID [--operator OP] [--follow]",
		Short: "Print the log lines a job's modules wrote (weir.Log), per operator subtask",
		Long: `Prints the job's module log lines that the coordinator keeps (the latest few
thousand), oldest first, as "time [operator/subtask] level: message". Workers
send them with their heartbeats, rate-limited per operator subtask (see
docs/abi.md). --follow keeps printing new lines until the job ends.

  weir job logs 3f2a9c0d1e4b
  weir job logs 3f2a9c0d1e4b --operator count --follow
  weir job logs 3f2a9c0d1e4b --output json`,
		Args: exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx, id, op := cmd.Context(), args[0], a.cfg.GetString("operator")
			var after int64
			tick := time.NewTicker(500 * time.Millisecond)
			defer tick.Stop()
			for {
				l, err := c.Logs(ctx, id, op, after)
				if err != nil {
					return a.apiErrors("", err)
				}
				if l.Lost > 0 && !a.jsonOut() {
					fmt.Fprintf(a.stderr, "(%d earlier lines are no longer kept)\n", l.Lost)
				}
				for _, line := range l.Lines {
					if a.jsonOut() {
						if err := json.NewEncoder(a.stdout).Encode(line); err != nil {
							return err
						}
						continue
					}
					fmt.Fprintf(a.stdout, "%s [%s/%d] %s: %s\n", line.Time.Format("15:04:05.000"), line.Operator, line.Subtask, strings.ToLower(line.Level), line.Message)
				}
				after = l.Next
				if !a.cfg.GetBool("follow") {
					return nil
				}
				st, err := c.Job(ctx, id)
				if err != nil {
					return a.apiErrors("", err)
				}
				if st.State.Terminal() && len(l.Lines) == 0 {
					return nil
				}
				select {
				case <-ctx.Done():
					return nil
				case <-tick.C:
				}
			}
		},
	}
	cmd.Flags().String("operator", "", "only this operator's lines (its uid)")
	cmd.Flags().BoolP("follow", "f", false, "keep printing new lines until the job ends")
	return cmd
}
