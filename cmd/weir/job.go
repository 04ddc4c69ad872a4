package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/weirstream/weir/coordinator/jobspec"
	"github.com/weirstream/weir/coordinator/plan"
	"github.com/weirstream/weir/internal/client"
	"github.com/weirstream/weir/internal/minicluster"
)

func newJobCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "job",
		Short: "Check, plan, submit and manage jobs",
		Long: `A job spec (YAML or JSON) declares a job: sources, operators from WebAssembly
modules, sinks, the edges between them, parallelism, windows and state. The
format is in docs/jobspec.md.

  weir job validate job.yaml       check the spec without loading modules
  weir job plan job.yaml           load the modules and print the tasks

On a coordinator (--coordinator, WEIR_COORDINATOR; default ` + client.DefaultURL + `):
  weir job submit job.yaml         upload its modules, submit it, follow it
  weir job list                    the jobs
  weir job info ID                 a job's subtasks: state, worker, slot, metrics
  weir job cancel ID               cancel a job
  weir job stop ID                 stop a job gracefully
  weir job savepoint ID DIR        take a savepoint; prints its folder
  weir job stop ID --savepoint DIR take a savepoint, then stop
  weir job submit job.yaml --from-savepoint PATH   start from a savepoint`,
	}
	cmd.AddCommand(newJobValidateCmd(a), newJobPlanCmd(a), newJobSubmitCmd(a), newJobListCmd(a), newJobInfoCmd(a), newJobCancelCmd(a),
		a.withStopSavepoint(newJobStopCmd(a)), newJobSavepointCmd(a), newJobLogsCmd(a))
	return cmd
}

func newJobValidateCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "validate JOB.yaml",
		Short: "Check a job spec: fields, names, references, cycles, connector options",
		Long: `Checks a job spec without loading its modules: every field, name and
reference, cycles, parallelism, windows, connector names and options, and that
module paths exist. Every problem is printed as file:line:col: field: message.
` + "`weir job plan`" + ` checks the rest against the modules.`,
		Args: exactArgs(1, "JOB.yaml"),
		RunE: func(cmd *cobra.Command, args []string) error {
			j, err := jobspec.Load(args[0])
			if err != nil {
				return a.specErrors(args[0], err)
			}
			if a.jsonOut() {
				return a.printJSON(map[string]any{"file": args[0], "ok": true, "name": j.Name,
					"sources": len(j.Sources), "operators": len(j.Operators), "sinks": len(j.Sinks)})
			}
			fmt.Fprintf(a.stdout, "%s: ok (%d sources, %d operators, %d sinks)\n", args[0], len(j.Sources), len(j.Operators), len(j.Sinks))
			return nil
		},
	}
}

func newJobPlanCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plan JOB.yaml [--format text|dot|json]",
		Short: "Show a job's execution plan: tasks, chains, subtasks, key groups, edges",
		Long: `Loads the job's modules (building operator folders) and prints the
execution plan: operators chained into tasks, each task's parallel subtasks and
their key-group ranges, the edges between tasks and the slots the job needs.

  weir job plan job.yaml
  weir job plan job.yaml --format dot | dot -Tsvg > plan.svg
  weir job plan job.yaml --format json     (same as --output json)`,
		Args: exactArgs(1, "JOB.yaml"),
		RunE: func(cmd *cobra.Command, args []string) error {
			format := a.cfg.GetString("format")
			if a.jsonOut() && !cmd.Flags().Changed("format") {
				format = "json"
			}
			switch format {
			case "text", "dot", "json":
			default:
				return usagef("--format %q: want text, dot or json", format)
			}
			j, err := jobspec.Load(args[0])
			if err != nil {
				return a.specErrors(args[0], err)
			}
			p, err := a.planJob(cmd.Context(), j)
			if err != nil {
				return a.specErrors(args[0], err)
			}
			switch format {
			case "dot":
				return p.Dot(a.stdout)
			case "json":
				return a.printJSON(p)
			}
			return p.Text(a.stdout)
		},
	}
	cmd.Flags().String("format", "text", "text, dot (Graphviz) or json")
	return cmd
}

// specErrors prints every problem in a job spec, one per line, on stderr
// (the error main prints is one line), and returns a summary error.
func (a *app) specErrors(file string, err error) error {
	errs := jobspec.Errors(err)
	if len(errs) == 0 {
		return err
	}
	if a.jsonOut() {
		_ = a.printJSON(map[string]any{"file": file, "ok": false, "errors": errs})
	} else {
		for _, e := range errs {
			fmt.Fprintln(a.stderr, e)
		}
	}
	if len(errs) == 1 {
		return fmt.Errorf("%s: 1 problem", file)
	}
	return fmt.Errorf("%s: %d problems", file, len(errs))
}

// planJob builds the execution plan of a parsed spec, loading (or
// building) its modules with the same resolver `weir run` uses, and
// releases them again: a plan is plain data.
func (a *app) planJob(ctx context.Context, j *jobspec.Job) (*plan.Plan, error) {
	if err := j.LocalOnly(); err != nil {
		return nil, err
	}
	rt, err := a.runtime(ctx)
	if err != nil {
		return nil, err
	}
	defer rt.Close()
	return plan.Build(j, minicluster.NewModules(j, rt, false, a.cfg.GetString("cache-dir"), io.Discard))
}
