package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	clusterpkg "github.com/weirstream/weir/coordinator/cluster"
	"github.com/weirstream/weir/coordinator/dispatcher"
	"github.com/weirstream/weir/coordinator/slots"
	"github.com/weirstream/weir/internal/client"
	"github.com/weirstream/weir/internal/deploy"
)

// defaultDataDir is where a coordinator keeps its registry and the
// cluster's certificate authority, and where workers on the same machine
// find that authority: $XDG_DATA_HOME/weir or ~/.local/share/weir.
func defaultDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "weir")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "weir")
	}
	return filepath.Join(os.TempDir(), "weir")
}

func newCoordinatorCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "coordinator [--job JOB.yaml]",
		Short: "Run a coordinator: the REST API, the module registry, the slot pool and a JobManager per job",
		Long: `Runs a coordinator. It serves the REST API (--listen, default 127.0.0.1:8081;
there is no authentication yet, so it listens on loopback unless told
otherwise), keeps the module registry and the cluster's certificate authority
in --data-dir, and accepts workers on the control address (--control-listen,
HTTPS with the cluster's certificates on both sides).

Workers join with ` + "`weir worker --coordinator http://127.0.0.1:8081 --slots N`" + ` (on the
same machine they find the cluster's certificates in the same --data-dir).
With --provider process the coordinator starts local workers itself when a
job needs slots, and stops them when idle for --idle-timeout.

Application mode: with --job JOB.yaml the coordinator runs that one job,
submitted to itself as ` + "`weir job submit`" + ` would, and exits with its result (0 when it
finished), as a container image of the job would.

  weir coordinator
  weir coordinator --provider process --worker-slots 2
  weir coordinator --job examples/wordcount/job.yaml --provider process`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runCoordinator(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.String("listen", dispatcher.DefaultAddr, "address of the REST API")
	f.String("control-listen", "127.0.0.1:0", "address workers register and poll at (port 0: any free port)")
	f.String("data-dir", defaultDataDir(), "folder of the module registry and the cluster's certificate authority")
	f.String("provider", "standalone", "standalone (workers are started by someone else) or process (start local weir worker processes when slots are short)")
	f.Int("worker-slots", slots.DefaultSlotsPerWorker, "process provider: slots of each worker it starts")
	f.Int("max-workers", slots.DefaultMaxWorkers, "process provider: workers at most")
	f.Duration("idle-timeout", slots.DefaultIdleTimeout, "process provider: stop a worker idle this long")
	f.Duration("heartbeat-timeout", slots.DefaultHeartbeatTimeout, "a worker silent this long is lost, and its tasks fail")
	f.Duration("heartbeat-interval", 500*time.Millisecond, "how often workers send heartbeats")
	f.Int("max-slots", 0, "slots the cluster can ever have (0: no limit with standalone); a job needing more fails at once")
	f.String("job", "", "application mode: run this job spec and exit with its result")
	f.Duration("flush-interval", 5*time.Millisecond, "the longest a partly filled network buffer waits while its task is busy")
	f.String("checkpoint-dir", "", "the checkpoint folder the coordinator and every worker share (default: <data-dir>/checkpoints)")
	f.String("savepoint-dir", "", "where savepoints go when a request names no folder (default: <data-dir>/savepoints)")
	return cmd
}

func (a *app) runCoordinator(ctx context.Context) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	v := a.cfg
	dataDir := v.GetString("data-dir")
	log := slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	provider := slots.Provider(v.GetString("provider"))
	procs := &workerProcs{dataDir: dataDir, log: log, procs: map[int]*workerProc{}}
	cfg := clusterpkg.Config{
		ControlAddr:       v.GetString("control-listen"),
		CADir:             filepath.Join(dataDir, "cluster"),
		HeartbeatInterval: v.GetDuration("heartbeat-interval"),
		Slots: slots.Config{Provider: provider, HeartbeatTimeout: v.GetDuration("heartbeat-timeout"), MaxSlots: v.GetInt("max-slots"),
			SlotsPerWorker: v.GetInt("worker-slots"), MaxWorkers: v.GetInt("max-workers"), IdleTimeout: v.GetDuration("idle-timeout")},
		Buffers:     deploy.Buffers{FlushInterval: deploy.Duration(v.GetDuration("flush-interval"))},
		Checkpoints: clusterpkg.CheckpointDefaults{Dir: orDefault(v.GetString("checkpoint-dir"), filepath.Join(dataDir, "checkpoints")), SavepointDir: orDefault(v.GetString("savepoint-dir"), filepath.Join(dataDir, "savepoints"))},
		Logger:      log,
	}
	switch provider {
	case slots.ProviderStandalone:
	case slots.ProviderProcess:
		cfg.StartWorkers, cfg.StopWorker = procs.start, procs.stop
	default:
		return usagef("--provider %q: want standalone or process", provider)
	}
	cl, err := clusterpkg.New(cfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	d, err := dispatcher.New(dispatcher.Config{Addr: v.GetString("listen"), RegistryDir: filepath.Join(dataDir, "registry"), Jobs: cl.Jobs(), Workers: cl.Workers(),
		Version: version, Logger: log, ControlURL: cl.ControlURL()})
	if err != nil {
		return err
	}
	defer d.Close()
	cl.SetModulesURL(d.URL() + "/v1/modules/by-digest")
	procs.rest = d.URL()
	defer procs.stopAll()
	errc := make(chan error, 1)
	go func() { errc <- d.Run(ctx) }()
	log.Info("coordinator ready", "rest", d.URL(), "control", cl.ControlURL(), "data-dir", dataDir, "provider", provider)
	if !a.jsonOut() && v.GetString("job") == "" {
		fmt.Fprintf(a.stderr, "coordinator listening on %s\n  start a worker:  weir worker --coordinator %s --slots 2\n  submit a job:    weir job submit JOB.yaml --coordinator %s\n", d.URL(), d.URL(), d.URL())
	}
	if spec := v.GetString("job"); spec != "" {
		return a.applicationMode(ctx, d.URL(), spec)
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		return err
	}
}

// applicationMode submits the job to this coordinator, follows it, and
// returns its result.
func (a *app) applicationMode(ctx context.Context, url, spec string) error {
	c, err := client.New(url, client.Options{})
	if err != nil {
		return err
	}
	req, err := a.submission(ctx, c, spec)
	if err != nil {
		return err
	}
	st, err := c.Submit(ctx, req)
	if err != nil {
		return a.apiErrors(spec, err)
	}
	return a.follow(ctx, c, st, 500*time.Millisecond)
}

// workerProcs is the process provider: local weir worker processes.
type workerProcs struct {
	dataDir, rest string
	log           *slog.Logger
	mu            sync.Mutex
	next          int
	procs         map[int]*workerProc
}

type workerProc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *workerProcs) start(n, slotsEach int) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	for range n {
		p.mu.Lock()
		p.next++
		id := p.next
		cmd := exec.Command(self, "worker", "--coordinator", p.rest, "--slots", strconv.Itoa(slotsEach),
			"--data-dir", p.dataDir, "--id", fmt.Sprintf("proc-%d-%d", os.Getpid(), id))
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			p.mu.Unlock()
			return fmt.Errorf("starting a worker: %w", err)
		}
		wp := &workerProc{cmd: cmd, done: make(chan struct{})}
		p.procs[id] = wp
		p.mu.Unlock()
		p.log.Info("started a worker", "pid", cmd.Process.Pid, "slots", slotsEach)
		go func() {
			cmd.Wait()
			close(wp.done)
			p.mu.Lock()
			delete(p.procs, id)
			p.mu.Unlock()
		}()
	}
	return nil
}

func (p *workerProcs) stop(worker string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, wp := range p.procs {
		if fmt.Sprintf("proc-%d-%d", os.Getpid(), id) == worker {
			wp.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
}

func (p *workerProcs) stopAll() {
	p.mu.Lock()
	var wps []*workerProc
	for _, wp := range p.procs {
		wp.cmd.Process.Signal(syscall.SIGTERM)
		wps = append(wps, wp)
	}
	p.mu.Unlock()
	deadline := time.After(10 * time.Second)
	for _, wp := range wps {
		select {
		case <-wp.done:
		case <-deadline:
			wp.cmd.Process.Kill()
			<-wp.done
		}
	}
}

// orDefault returns s, or def when s is empty, made absolute: workers
// resolve these folders from their own working directories.
func orDefault(s, def string) string {
	if s == "" {
		s = def
	}
	if abs, err := filepath.Abs(s); err == nil {
		return abs
	}
	return s
}
