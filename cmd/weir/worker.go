package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/weirstream/weir/worker/agent"
	"github.com/weirstream/weir/worker/wasmhost"
)

func newWorkerCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "worker --coordinator URL [--slots N]",
		Short: "Run a worker: offer slots to a coordinator and run the tasks it deploys",
		Long: `Runs a worker. It asks the coordinator (--coordinator, the REST API's URL, or
WEIR_COORDINATOR) where its control endpoint is, registers --slots slots there,
and runs the tasks of the jobs it is given, exchanging records with other
workers over QUIC (--data-listen) with the cluster's certificates, which it
finds in --data-dir (the coordinator's, when both run on one machine).

Modules are fetched from the coordinator by content digest, checked, cached in
the worker's folder and compiled once for every job that uses them. SIGTERM or
Ctrl-C cancels the running tasks and leaves.

  weir worker --coordinator http://127.0.0.1:8081 --slots 2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runWorker(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.Int("slots", 1, "slots this worker offers")
	f.String("data-listen", "127.0.0.1:0", "UDP address of the data plane (QUIC)")
	f.String("data-dir", defaultDataDir(), "folder holding the cluster's certificate authority (cluster/)")
	f.String("work-dir", "", "folder for the module cache and state (default: a temporary folder)")
	f.String("id", "", "the worker's id in the cluster (default host-pid)")
	f.Bool("allow-native", false, "let jobs use operators linked into this binary (benchmarks only)")
	f.Int64("memory-budget", 8<<30, "bytes every module and instance on this worker may cost at worst, together (docs/abi.md); a deploy past it fails with the figures")
	return cmd
}

func (a *app) runWorker(ctx context.Context) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	v := a.cfg
	c, err := a.client()
	if err != nil {
		return err
	}
	// The control endpoint is in the overview; wait for a coordinator
	// that is still starting.
	var controlURL string
	for deadline := time.Now().Add(30 * time.Second); ; {
		o, err := c.Overview(ctx)
		if err == nil && o.Control != "" {
			controlURL = o.Control
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("it names no control endpoint")
			}
			return fmt.Errorf("asking the coordinator at %s: %v (is `weir coordinator` running there?)", c.URL(), err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
	log := slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	w, err := agent.New(ctx, agent.Config{
		ID: v.GetString("id"), Coordinator: controlURL, Slots: v.GetInt("slots"), DataAddr: v.GetString("data-listen"),
		CADir: filepath.Join(v.GetString("data-dir"), "cluster"), Dir: v.GetString("work-dir"),
		AllowNative: v.GetBool("allow-native"), Logger: log,
		Runtime: wasmhost.Config{Budget: wasmhost.NewBudget(v.GetInt64("memory-budget"))},
	})
	if err != nil {
		return err
	}
	defer w.Close()
	return w.Run(ctx)
}
