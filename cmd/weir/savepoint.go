package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/weirstream/weir/internal/api"
	"github.com/weirstream/weir/internal/ckptmeta"
	"github.com/weirstream/weir/internal/ckptstore"
	"github.com/weirstream/weir/internal/client"
	"github.com/weirstream/weir/internal/snapshot"
)

// This file is the CLI's side of savepoints: taking one (`weir job
// savepoint`, `weir job stop --savepoint`), restoring from one (`weir job
// submit --from-savepoint`), a job's checkpoint counts (`weir job info`)
// and reading one on disk (`weir savepoint inspect`).

func newJobSavepointCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "savepoint ID [DIR] [--request-id R] [--detached]",
		Short: "Take a savepoint of a running job and print its folder",
		Long: `Asks the coordinator (--coordinator, WEIR_COORDINATOR) for a savepoint of job ID:
a complete, self-contained copy of its state (every operator's keyed and
operator state and timers, its sources' positions) in a canonical format that
any state backend restores, at any parallelism. The job goes on running.

The savepoint is written under DIR as DIR/<job>/chk-<n>; without DIR, under
the cluster's default savepoint folder. A relative DIR is made absolute here;
the workers write it, so on a cluster of several machines it must be a folder
they all reach. The command waits until the savepoint completes, showing
progress on stderr, then prints its folder on stdout; --detached returns at
once with the request id. Ctrl-C stops waiting, not the savepoint.

Every request carries a request id (made up unless --request-id gives one):
sending the same one again never takes a second savepoint, it answers the
first one's status. So a command that lost its connection is retried safely
with the --request-id it printed.

  weir job savepoint 3f2a9c0d1e4b /mnt/savepoints
  SP=$(weir job savepoint 3f2a9c0d1e4b /mnt/savepoints)
  weir job submit job.yaml --from-savepoint "$SP"
  weir job savepoint 3f2a9c0d1e4b --detached --request-id nightly-2026-12-01
  weir job savepoint 3f2a9c0d1e4b --request-id nightly-2026-12-01   (waits for it)
  weir savepoint inspect /mnt/savepoints/3f2a9c0d1e4b/chk-42`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usagef("savepoint takes ID and, optionally, DIR (got %d arguments); see `weir job savepoint --help`", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := ""
			if len(args) == 2 {
				dir = args[1]
			}
			return a.savepointCmd(cmd, args[0], dir, false, false)
		},
	}
	addSavepointFlags(cmd)
	return cmd
}

// addSavepointFlags adds the flags every command that takes a savepoint
// has.
func addSavepointFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.String("request-id", "", "the request's id, to retry safely (default: made up and printed)")
	f.Bool("detached", false, "return once the savepoint is requested, printing its request id")
	f.Bool("wait", true, "wait until the savepoint completes (--wait=false is --detached)")
	f.Duration("poll", 500*time.Millisecond, "how often to ask for the savepoint's status while waiting")
}

// withStopSavepoint gives `weir job stop` its --savepoint DIR and --drain:
// with --savepoint it takes a savepoint that stops the job; without, the
// plain stop runs as before.
func (a *app) withStopSavepoint(cmd *cobra.Command) *cobra.Command {
	cmd.Use = "stop ID [--savepoint DIR [--drain]]"
	cmd.Long = `Stops job ID gracefully: its sources stop, the records in flight drain through
and it ends finished.

With --savepoint DIR it first takes a savepoint under DIR (as DIR/<job>/chk-<n>,
DIR made absolute here), then stops: nothing is processed after the savepoint,
so a job restored from it (weir job submit --from-savepoint) goes on exactly
where this one ended. The command waits for the savepoint as ` + "`weir job savepoint`" + `
does and prints its folder. --drain first lets event time run to the end,
firing every timer and window, for a job that is not coming back.

  weir job stop 3f2a9c0d1e4b
  weir job stop 3f2a9c0d1e4b --savepoint /mnt/savepoints
  weir job stop 3f2a9c0d1e4b --savepoint /mnt/savepoints --drain`
	f := cmd.Flags()
	f.String("savepoint", "", "take a savepoint under this folder, then stop")
	f.Bool("drain", false, "with --savepoint: run event time to the end first (every timer and window fires)")
	addSavepointFlags(cmd)
	plain := cmd.RunE
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		dir := a.cfg.GetString("savepoint")
		if dir == "" {
			for _, name := range []string{"drain", "request-id", "detached", "wait", "poll"} {
				if cmd.Flags().Changed(name) {
					return usagef("--%s goes with --savepoint DIR; a stop without a savepoint takes neither", name)
				}
			}
			return plain(cmd, args)
		}
		return a.savepointCmd(cmd, args[0], dir, true, a.cfg.GetBool("drain"))
	}
	return cmd
}

// savepointCmd takes a savepoint of job id under dir ("" for the
// cluster's default), stopping the job if stop, and waits for it unless
// detached.
func (a *app) savepointCmd(cmd *cobra.Command, id, dir string, stop, drain bool) error {
	req := api.SavepointRequest{RequestID: a.cfg.GetString("request-id"), Stop: stop, Drain: drain}
	if req.RequestID == "" {
		req.RequestID = api.NewRequestID()
	} else if err := api.CheckName("request id", req.RequestID); err != nil {
		return usagef("--request-id: %s", strings.TrimPrefix(err.Error(), api.ErrInvalidName.Error()+": "))
	}
	if dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return fmt.Errorf("savepoint folder %s: %w", dir, err)
		}
		req.Dir = abs
	}
	wait := a.cfg.GetBool("wait") && !a.cfg.GetBool("detached")
	poll := a.cfg.GetDuration("poll")
	if wait && poll <= 0 {
		return usagef("--poll %v: want a positive interval", poll)
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	again := againCommand(id, req)
	st, err := c.Savepoint(ctx, id, req)
	if err != nil {
		if errors.Is(err, client.ErrUnreachable) || ctx.Err() != nil {
			return fmt.Errorf("requesting a savepoint of job %s: %w (once the coordinator answers, retry safely with `%s`)", id, err, again)
		}
		return err
	}
	if !wait {
		if a.jsonOut() {
			return a.printJSON(st)
		}
		fmt.Fprintf(a.stdout, "savepoint of job %s requested: request id %s (%s)\n", id, st.RequestID, st.State)
		fmt.Fprintf(a.stdout, "`%s` waits for it and prints its folder\n", again)
		return nil
	}
	return a.waitSavepoint(ctx, c, st, poll, again, stop)
}

// againCommand is the command line that sends req again: how to pick up a
// savepoint whose waiting was interrupted.
func againCommand(id string, req api.SavepointRequest) string {
	var b strings.Builder
	if req.Stop {
		fmt.Fprintf(&b, "weir job stop %s --savepoint %s", id, shellQuote(req.Dir))
		if req.Drain {
			b.WriteString(" --drain")
		}
	} else {
		fmt.Fprintf(&b, "weir job savepoint %s", id)
		if req.Dir != "" {
			b.WriteString(" " + shellQuote(req.Dir))
		}
	}
	b.WriteString(" --request-id " + req.RequestID)
	return b.String()
}

// shellQuote quotes s for a POSIX shell if it needs it.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+=:,@", r))
	}) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// waitSavepoint polls a savepoint until it ends, showing progress on
// stderr: on a terminal a line redrawn at each poll, elsewhere a line per
// change of state. It prints the folder (or, with --output json, the
// status) and fails when the savepoint did.
func (a *app) waitSavepoint(ctx context.Context, c *client.Client, st api.SavepointStatus, poll time.Duration, again string, stop bool) error {
	tty := isTerminal(a.stderr) && !a.jsonOut()
	start := time.Now()
	last := ""
	show := func(s api.SavepointStatus) {
		if a.jsonOut() {
			return
		}
		line := fmt.Sprintf("savepoint %s of job %s: %s", s.RequestID, s.Job, s.State)
		if s.Checkpoint > 0 {
			line += fmt.Sprintf(" (checkpoint %d)", s.Checkpoint)
		}
		switch {
		case tty:
			fmt.Fprintf(a.stderr, "\r\x1b[K%s, %s", line, time.Since(start).Round(100*time.Millisecond))
			if s.State != api.SavepointPending {
				fmt.Fprintln(a.stderr)
			}
		case s.State != last:
			fmt.Fprintln(a.stderr, line)
		}
		last = s.State
	}
	show(st)
	done, err := c.WaitSavepoint(ctx, st, poll, show)
	if err != nil {
		if tty {
			fmt.Fprintln(a.stderr)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("stopped waiting for savepoint %s of job %s (it goes on; `%s` picks it up again)", st.RequestID, st.Job, again)
		}
		return fmt.Errorf("waiting for savepoint %s of job %s: %w (it may go on; `%s` picks it up again)", st.RequestID, st.Job, err, again)
	}
	if a.jsonOut() {
		if err := a.printJSON(done); err != nil {
			return err
		}
	}
	if done.State != api.SavepointCompleted {
		why := done.Error
		if why == "" {
			why = "the coordinator gave no reason"
		}
		what := "the job goes on"
		if stop {
			what = "the job was not stopped"
		}
		return fmt.Errorf("savepoint %s of job %s %s: %s (%s; `weir job info %s` shows its checkpoints)", done.RequestID, done.Job, done.State, why, what, done.Job)
	}
	if a.jsonOut() {
		return nil
	}
	fmt.Fprintln(a.stdout, done.Path)
	if stop {
		fmt.Fprintf(a.stderr, "job %s stops after its savepoint; resume it with: weir job submit JOB.yaml --from-savepoint %s\n", done.Job, shellQuote(done.Path))
	} else {
		fmt.Fprintf(a.stderr, "restore from it with: weir job submit JOB.yaml --from-savepoint %s\n", shellQuote(done.Path))
	}
	return nil
}

// withRestoreFlags gives `weir job submit` its --from-savepoint and
// --allow-non-restored-state, with their help.
func withRestoreFlags(cmd *cobra.Command) {
	addRestoreFlags(cmd)
	cmd.Use = "submit JOB.yaml [--detached] [--from-savepoint PATH [--allow-non-restored-state]]"
	cmd.Long += `

--from-savepoint PATH starts the job from a savepoint's (or a retained
checkpoint's) state: PATH is the folder ` + "`weir job savepoint`" + ` printed,
<root>/<job>/chk-<n>, made absolute here and checked before anything is
uploaded. Operators match by uid; the job may run them at another
parallelism (key groups, timers, operator state and source splits are
redistributed) or with a new module version that declares the same states.
State of an operator the job no longer has is refused, listing the uids,
unless --allow-non-restored-state drops it. ` + "`weir savepoint inspect PATH`" + ` shows
what a savepoint holds.

  weir job submit job.yaml --from-savepoint /mnt/savepoints/3f2a9c0d1e4b/chk-42
  weir job submit job.yaml --from-savepoint ./sp/wc/chk-7 --allow-non-restored-state`
}

// addRestoreFlags adds --from-savepoint and --allow-non-restored-state,
// which a.restoreFrom reads (for any command that starts a job).
func addRestoreFlags(cmd *cobra.Command) {
	cmd.Flags().String("from-savepoint", "", "restore the job's state from this savepoint or checkpoint folder, <root>/<job>/chk-<n>")
	cmd.Flags().Bool("allow-non-restored-state", false, "with --from-savepoint: drop the state of operators the job no longer has")
}

// restoreFrom checks --from-savepoint on this machine: made absolute, and
// a completed checkpoint folder. The coordinator checks it again (and its
// operators against the job's).
func (a *app) restoreFrom() (from string, allow bool, err error) {
	path, allow := a.cfg.GetString("from-savepoint"), a.cfg.GetBool("allow-non-restored-state")
	if path == "" {
		if allow {
			return "", false, usagef("--allow-non-restored-state goes with --from-savepoint PATH")
		}
		return "", false, nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", false, fmt.Errorf("--from-savepoint %s: %w", path, err)
	}
	if _, _, _, err := ckptstore.OpenPath(abs); err != nil {
		return "", false, fmt.Errorf("--from-savepoint: %s", ckptMessage(err))
	}
	return abs, allow, nil
}

// ckptMessage is an error of ckptstore without its package prefix and
// sentinel, which say nothing to a user that the rest does not.
func ckptMessage(err error) string {
	msg := err.Error()
	for _, s := range []error{ckptstore.ErrNotFound, ckptstore.ErrNotCheckpoint, ckptstore.ErrIncomplete, ckptstore.ErrCorrupt} {
		if errors.Is(err, s) {
			msg = strings.TrimPrefix(msg, s.Error()+": ")
		}
	}
	return msg
}

// printCheckpoints prints a job's checkpoint counts, latest checkpoint
// and restore, for `weir job info`.
func (a *app) printCheckpoints(cs *api.CheckpointStats) {
	if cs == nil {
		return
	}
	fmt.Fprintf(a.stdout, "checkpoints %d completed, %d failed, %d in progress\n", cs.Completed, cs.Failed, cs.InProgress)
	if l := cs.Latest; l != nil {
		what := "checkpoint"
		if l.Savepoint {
			what = "savepoint"
		}
		fmt.Fprintf(a.stdout, "  latest    %s %d at %s (%s, %s)\n", what, l.ID, l.Path, time.Duration(l.DurationMs)*time.Millisecond, size(l.Size))
	}
	if cs.LastFailure != "" {
		fmt.Fprintf(a.stdout, "  failure   %s\n", cs.LastFailure)
	}
	if cs.Restored != "" {
		fmt.Fprintf(a.stdout, "  restored  from %s\n", cs.Restored)
	}
	if cs.EndedSubtasks > 0 {
		fmt.Fprintf(a.stdout, "  ending    %d subtasks ended their input; the job ends once its final checkpoint completes\n", cs.EndedSubtasks)
	}
}

func newSavepointCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "savepoint",
		Short: "Read savepoints and checkpoints on disk",
		Long: `A savepoint or checkpoint is a folder <root>/<job>/chk-<n>: a file per operator
subtask and role (state, source splits, sink transactions) and _metadata, written
last, naming every file with its size and checksum. Take one with
` + "`weir job savepoint ID DIR`" + `, restore one with ` + "`weir job submit JOB.yaml --from-savepoint PATH`" + `.

  weir savepoint inspect /mnt/savepoints/3f2a9c0d1e4b/chk-42`,
	}
	cmd.AddCommand(newSavepointInspectCmd(a))
	return cmd
}

func newSavepointInspectCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect PATH",
		Short: "Show what a savepoint or checkpoint holds: operators, states and sizes, modules, key groups",
		Long: `Reads the savepoint or checkpoint folder PATH (<root>/<job>/chk-<n>) on this
machine and prints the job, the checkpoint id, whether it is a savepoint, when
it was taken, its barrier mode, state backend and max parallelism, and per
operator (by uid): its kind and parallelism, its module's digest and ABI
version, each state with its kind, keys, entries and bytes, its timers, and
each subtask's key groups and files.

Every file is read and checked against the size and checksum _metadata gives
it, so inspect also tells whether the checkpoint can be restored: a damaged or
truncated file is named, and the exit status is 1.

  weir savepoint inspect /mnt/savepoints/3f2a9c0d1e4b/chk-42
  weir savepoint inspect ./checkpoints/wc/chk-7 --output json`,
		Args: exactArgs(1, "PATH"),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := inspectCheckpoint(args[0])
			if err != nil {
				return err
			}
			if a.jsonOut() {
				if err := a.printJSON(r); err != nil {
					return err
				}
			} else {
				r.print(a.stdout)
			}
			if len(r.Problems) > 0 {
				return fmt.Errorf("%s cannot be restored: %s; restore from another savepoint or checkpoint", r.Path, problemsSummary(r.Problems))
			}
			return nil
		},
	}
}

func problemsSummary(ps []string) string {
	if len(ps) == 1 {
		return ps[0]
	}
	return fmt.Sprintf("%d problems, the first: %s", len(ps), ps[0])
}

// inspection is what `weir savepoint inspect` reports (its JSON form).
type inspection struct {
	Path           string    `json:"path"`
	Job            string    `json:"job"`
	Checkpoint     uint64    `json:"checkpoint"`
	Savepoint      bool      `json:"savepoint"`
	Taken          time.Time `json:"taken"`
	Mode           string    `json:"mode"`
	Backend        string    `json:"backend,omitempty"`
	MaxParallelism int       `json:"max_parallelism"`
	// Files and Size count every file _metadata names.
	Files     int                 `json:"files"`
	Size      int64               `json:"size"`
	Operators []inspectedOperator `json:"operators"`
	// Problems are the files that failed their checks, each with why.
	Problems []string `json:"problems,omitempty"`
}

type inspectedOperator struct {
	UID         string `json:"uid"`
	Kind        string `json:"kind"`
	Parallelism int    `json:"parallelism"`
	Module      string `json:"module,omitempty"`
	ABI         int    `json:"abi,omitempty"`
	Size        int64  `json:"size"`
	// Incremental says the state is in native pebble checkpoints (an
	// incremental checkpoint): its keys and entries are not counted.
	Incremental bool             `json:"incremental,omitempty"`
	States      []inspectedState `json:"states"`
	Timers      int              `json:"timers"`
	Subtasks    []inspectedSub   `json:"subtasks"`
}

type inspectedState struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	// Keys (for keyed state; 1 per subtask with entries for operator
	// state), Entries (values, list items, map entries) and Bytes (of
	// keys and values), summed over the subtasks.
	Keys    int   `json:"keys"`
	Entries int   `json:"entries"`
	Bytes   int64 `json:"bytes"`
}

type inspectedSub struct {
	Index     int             `json:"index"`
	KeyGroups [2]int          `json:"key_groups"`      // first, one past the last
	Ended     bool            `json:"ended,omitempty"` // it had ended its input: its final state
	Finished  bool            `json:"finished,omitempty"`
	Files     []ckptmeta.File `json:"files,omitempty"`
	Size      int64           `json:"size"`
}

// inspectCheckpoint reads and checks the checkpoint folder at path. An
// error is a folder it cannot read at all (missing, not a checkpoint,
// incomplete, a damaged _metadata); damaged files are Problems.
func inspectCheckpoint(path string) (*inspection, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	s, job, n, err := ckptstore.OpenPath(abs)
	if err != nil {
		return nil, errors.New(ckptMessage(err))
	}
	m, err := s.Metadata(job, n)
	if err != nil {
		return nil, fmt.Errorf("%s: %s; it cannot be restored: use another savepoint or checkpoint", abs, ckptMessage(err))
	}
	if len(m.Payload) == 0 {
		return nil, fmt.Errorf("%s: its _metadata has no payload (operators and states): it was not written by weir's checkpoint coordinator", abs)
	}
	p, err := ckptmeta.Decode(m.Payload)
	if err != nil {
		return nil, fmt.Errorf("%s: the _metadata's payload: %w", abs, err)
	}
	folder := filepath.Clean(abs)
	if filepath.Base(folder) == "_metadata" {
		folder = filepath.Dir(folder)
	}
	r := &inspection{Path: folder, Job: job, Checkpoint: n, Savepoint: p.Savepoint, Taken: p.Taken,
		Mode: p.Mode, Backend: p.Backend, MaxParallelism: p.MaxParallelism, Files: len(m.Files)}
	files := map[string]ckptstore.FileInfo{}
	for _, f := range m.Files {
		files[f.Name] = f
		r.Size += f.Size
	}
	checked := map[string]bool{}
	read := func(name string) ([]byte, bool) {
		fi, ok := files[name]
		if !ok {
			r.Problems = append(r.Problems, fmt.Sprintf("%s: named by the payload, not by _metadata", name))
			return nil, false
		}
		checked[name] = true
		b, err := s.Read(job, n, fi)
		if err != nil {
			r.Problems = append(r.Problems, ckptMessage(err))
			return nil, false
		}
		return b, true
	}
	for _, o := range p.Operators {
		op := inspectedOperator{UID: o.UID, Kind: o.Kind, Parallelism: o.Parallelism, Module: o.Module, ABI: o.ABI}
		for _, st := range o.States {
			op.States = append(op.States, inspectedState{Name: st.Name, Kind: st.Kind})
		}
		for _, sub := range o.Subtasks {
			is := inspectedSub{Index: sub.Index, KeyGroups: sub.KeyGroups, Ended: sub.Ended, Finished: sub.Finished, Files: sub.Files}
			op.Incremental = op.Incremental || ckptmeta.Incremental(sub.Files)
			for _, f := range sub.Files {
				if fi, ok := files[f.Name]; ok {
					is.Size += fi.Size
				}
				b, ok := read(f.Name)
				if !ok || f.Role != ckptmeta.RoleState {
					continue
				}
				if err := addSnapshot(&op, sub, p.MaxParallelism, f.Name, b); err != nil {
					r.Problems = append(r.Problems, err.Error())
				}
			}
			op.Size += is.Size
			op.Subtasks = append(op.Subtasks, is)
		}
		r.Operators = append(r.Operators, op)
	}
	// Files only _metadata names are checked too: a restore reads them.
	for _, f := range m.Files {
		if !checked[f.Name] {
			read(f.Name)
		}
	}
	return r, nil
}

// addSnapshot sums one state snapshot file into its operator's states.
func addSnapshot(o *inspectedOperator, sub ckptmeta.Subtask, maxP int, name string, b []byte) error {
	rd, err := snapshot.Open(bytes.NewReader(b), int64(len(b)), name)
	if err != nil {
		return err
	}
	if h := rd.Header(); h.Operator != o.UID || h.Subtask.Index != sub.Index || h.Subtask.Parallelism != o.Parallelism || h.Subtask.MaxParallelism != maxP {
		return fmt.Errorf("%s holds the state of operator %q %s; the metadata says operator %q subtask %d of %d over %d key groups",
			name, h.Operator, h.Subtask, o.UID, sub.Index, o.Parallelism, maxP)
	}
	st, err := rd.Stats()
	if err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	for _, ss := range st.States {
		i := slices.IndexFunc(o.States, func(s inspectedState) bool { return s.Name == ss.Name })
		if i < 0 { // in the snapshot, not declared in the payload
			o.States = append(o.States, inspectedState{Name: ss.Name, Kind: ss.Kind.String()})
			i = len(o.States) - 1
		}
		o.States[i].Keys += ss.Slots
		o.States[i].Entries += ss.Entries
		o.States[i].Bytes += ss.Bytes
	}
	o.Timers += st.Timers
	return nil
}

// shortDigest shortens a "sha256:<hex>" module digest to 12 hex digits.
func shortDigest(d string) string {
	algo, hex, ok := strings.Cut(d, ":")
	if !ok {
		algo, hex = "sha256", d
	}
	if len(hex) > 12 {
		hex = hex[:12]
	}
	return algo + ":" + hex
}

func (r *inspection) print(w io.Writer) {
	what := "checkpoint"
	if r.Savepoint {
		what = "savepoint"
	}
	backend := r.Backend
	if backend == "" {
		backend = "-"
	}
	fmt.Fprintf(w, "%-15s %s\n", what, r.Path)
	fmt.Fprintf(w, "%-15s %s\n", "job", r.Job)
	fmt.Fprintf(w, "%-15s %d\n", "checkpoint id", r.Checkpoint)
	fmt.Fprintf(w, "%-15s %s\n", "taken", r.Taken.Local().Format("2006-01-02 15:04:05 MST"))
	fmt.Fprintf(w, "%-15s %s\n", "mode", r.Mode)
	fmt.Fprintf(w, "%-15s %s\n", "backend", backend)
	fmt.Fprintf(w, "%-15s %d\n", "max parallelism", r.MaxParallelism)
	check := "every checksum ok"
	if len(r.Problems) > 0 {
		check = fmt.Sprintf("%d CORRUPT", len(r.Problems))
	}
	fmt.Fprintf(w, "%-15s %d, %s (%s)\n", "files", r.Files, size(r.Size), check)
	for _, o := range r.Operators {
		fmt.Fprintf(w, "\noperator %s (%s, parallelism %d", o.UID, o.Kind, o.Parallelism)
		if o.Module != "" {
			fmt.Fprintf(w, ", module %s ABI v%d", shortDigest(o.Module), o.ABI)
		}
		fmt.Fprintf(w, ", %s)\n", size(o.Size))
		tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
		if o.Incremental {
			fmt.Fprintln(tw, "  STATE\tKIND\t(incremental: native pebble checkpoints, keys and entries not counted)")
			for _, s := range o.States {
				fmt.Fprintf(tw, "  %s\t%s\t\n", s.Name, s.Kind)
			}
			tw.Flush()
			tw = tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
		} else if len(o.States) > 0 || o.Timers > 0 {
			fmt.Fprintln(tw, "  STATE\tKIND\tKEYS\tENTRIES\tBYTES")
			for _, s := range o.States {
				fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%s\n", s.Name, s.Kind, s.Keys, s.Entries, size(s.Bytes))
			}
			if o.Timers > 0 {
				fmt.Fprintf(tw, "  (timers)\t\t\t%d\t\n", o.Timers)
			}
			tw.Flush()
			tw = tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
		}
		fmt.Fprintln(tw, "  SUBTASK\tKEY GROUPS\tFILES\tSIZE\t")
		for _, s := range o.Subtasks {
			kg := "none"
			if s.KeyGroups[1] > s.KeyGroups[0] {
				kg = fmt.Sprintf("%d-%d", s.KeyGroups[0], s.KeyGroups[1]-1)
			}
			var roles []string
			var ssts, meta int
			for _, f := range s.Files {
				switch f.Role {
				case ckptmeta.RolePebbleSST:
					ssts++
				case ckptmeta.RolePebbleMeta:
					meta++
				default:
					roles = append(roles, f.Role)
				}
			}
			if ssts+meta > 0 {
				roles = append(roles, fmt.Sprintf("incremental (%d sstables in shared/, %d other files)", ssts, meta))
			}
			fs := strings.Join(roles, ", ")
			switch {
			case s.Finished:
				fs = "(finished before the checkpoint)"
			case fs == "":
				fs = "-"
			}
			if s.Ended {
				fs += " (ended its input: final state)"
			}
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t\n", s.Index, kg, fs, size(s.Size))
		}
		tw.Flush()
	}
	if len(r.Problems) > 0 {
		fmt.Fprintln(w, "\nproblems:")
		for _, p := range r.Problems {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
}
