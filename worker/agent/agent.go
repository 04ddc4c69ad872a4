// Package agent is the worker process: it registers its slots with the
// coordinator, long-polls for commands, runs the subtasks of the
// deployment descriptors it is given with the engine's runtime
// (worker/task), joins their channels to other workers over QUIC
// (netstack), fetches the modules they name by digest, and reports task
// states and metrics in its heartbeats. Tasks of different jobs and
// tenants share the process; each deployment's failure stays its own.
package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/weirstream/weir/internal/control"
	"github.com/weirstream/weir/internal/deploy"
	"github.com/weirstream/weir/netstack"
	"github.com/weirstream/weir/worker/state"
	"github.com/weirstream/weir/worker/task"
	"github.com/weirstream/weir/worker/wasmhost"
)

// Config configures a worker.
type Config struct {
	// ID names the worker in the cluster; default host-pid.
	ID string
	// Coordinator is the coordinator's control URL (https://host:port).
	Coordinator string
	// Slots is how many slots the worker offers; default 1.
	Slots int
	// DataAddr is the UDP address of the QUIC data plane; default
	// 127.0.0.1:0.
	DataAddr string
	// CADir holds the cluster's certificate authority (netstack.CAFile).
	CADir string
	// Dir holds the module cache and state; default a temporary folder
	// removed on Close.
	Dir string
	// Runtime configures the WebAssembly host.
	Runtime wasmhost.Config
	// AllowNative lets descriptors name operators linked into the binary
	// (benchmarks); never for tenants' jobs.
	AllowNative bool
	Logger      *slog.Logger
}

// Agent is a running worker.
type Agent struct {
	cfg       Config
	log       *slog.Logger
	transport *netstack.Transport
	client    *http.Client
	modules   *modules
	rt        *wasmhost.Runtime
	tmpDir    string

	mu struct {
		sync.Mutex
		deps     map[depKey]*deployment
		interval time.Duration
		wake     chan struct{} // a state changed: heartbeat now
		acks     []control.JobAck
	}
	ackWake chan struct{}
	wg      sync.WaitGroup
}

type depKey struct {
	job     string
	attempt int
}

// deployment is one descriptor running on this worker.
type deployment struct {
	d      *deploy.Descriptor
	run    *task.Run
	cancel context.CancelFunc
	state  string // running, finished, canceled, failed
	cause  string
	start  time.Time
	last   map[[2]int]task.SubtaskMetrics // at the last heartbeat, for rates
	lastAt time.Time
	// reported is set once a heartbeat told the coordinator of the end.
	reported bool
	logSeen  map[task.LogStream]int64
}

// New sets a worker up: its certificate, QUIC transport and WebAssembly
// runtime. Run registers it.
func New(ctx context.Context, cfg Config) (*Agent, error) {
	if cfg.Slots == 0 {
		cfg.Slots = 1
	}
	if cfg.Slots < 0 || cfg.Slots > 1024 {
		return nil, fmt.Errorf("agent: %d slots; want 1 to 1024", cfg.Slots)
	}
	if cfg.Coordinator == "" {
		return nil, errors.New("agent: no coordinator address (--coordinator)")
	}
	if cfg.ID == "" {
		host, _ := os.Hostname()
		cfg.ID = host + "-" + strconv.Itoa(os.Getpid())
	}
	if err := control.CheckID("worker", cfg.ID); err != nil {
		return nil, err
	}
	if cfg.DataAddr == "" {
		cfg.DataAddr = "127.0.0.1:0"
	}
	a := &Agent{cfg: cfg, log: cfg.Logger}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.mu.deps = map[depKey]*deployment{}
	a.mu.wake = make(chan struct{}, 1)
	a.ackWake = make(chan struct{}, 1)
	a.mu.interval = time.Second
	if cfg.Dir == "" {
		tmp, err := os.MkdirTemp("", "weir-worker-")
		if err != nil {
			return nil, err
		}
		a.tmpDir, a.cfg.Dir = tmp, tmp
	}
	ca, err := netstack.LoadOrCreateCA(cfg.CADir)
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("agent: the cluster CA in %s: %w", cfg.CADir, err)
	}
	cert, err := ca.Issue("weir worker " + cfg.ID)
	if err != nil {
		a.Close()
		return nil, err
	}
	if a.transport, err = netstack.New(netstack.Options{Addr: cfg.DataAddr, CA: ca, Certificate: &cert}); err != nil {
		a.Close()
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	a.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}}}
	if a.rt, err = wasmhost.NewRuntime(ctx, cfg.Runtime); err != nil {
		a.Close()
		return nil, err
	}
	a.modules = &modules{dir: filepath.Join(a.cfg.Dir, "modules"), rt: a.rt, client: a.client, native: cfg.AllowNative, loaded: map[string]*wasmhost.Module{}}
	return a, nil
}

// ID is the worker's id.
func (a *Agent) ID() string { return a.cfg.ID }

// DataAddr is the address of the worker's QUIC transport.
func (a *Agent) DataAddr() string { return a.transport.Addr() }

// Run registers the worker and serves the coordinator until ctx ends;
// then it cancels its tasks and waits for them.
func (a *Agent) Run(ctx context.Context) error {
	defer a.stopAll()
	if err := a.register(ctx); err != nil {
		return err
	}
	a.log.Info("registered", "worker", a.cfg.ID, "slots", a.cfg.Slots, "data", a.DataAddr(), "coordinator", a.cfg.Coordinator)
	errc := make(chan error, 3)
	go func() { errc <- a.heartbeats(ctx) }()
	go func() { errc <- a.commands(ctx) }()
	go func() { errc <- a.sendAcks(ctx) }()
	err := <-errc
	<-errc
	<-errc
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// register registers the worker, retrying until the coordinator answers
// or ctx ends.
func (a *Agent) register(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		var reply control.Registered
		err := a.post(ctx, control.PathRegister, control.Register{Worker: a.cfg.ID, DataAddr: a.DataAddr(), Slots: a.cfg.Slots}, &reply)
		if err == nil {
			a.mu.Lock()
			if iv := time.Duration(reply.HeartbeatInterval); iv > 0 {
				a.mu.interval = iv
			}
			a.mu.Unlock()
			a.modules.setURL(reply.ModulesURL)
			return nil
		}
		var refused *refusedError
		if errors.As(err, &refused) {
			return fmt.Errorf("agent: the coordinator refused worker %s: %s", a.cfg.ID, refused.msg)
		}
		a.log.Warn("registering", "err", err, "retry", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

func (a *Agent) heartbeats(ctx context.Context) error {
	for {
		a.mu.Lock()
		iv, wake := a.mu.interval, a.mu.wake
		a.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(iv):
		case <-wake:
		}
		var reply control.HeartbeatReply
		if err := a.post(ctx, control.PathHeartbeat, control.Heartbeat{Worker: a.cfg.ID, Tasks: a.reports(), Logs: a.logs()}, &reply); err != nil {
			if ctx.Err() == nil {
				a.log.Warn("heartbeat", "err", err)
			}
			continue
		}
		a.forgetReported()
		if !reply.Known {
			a.log.Warn("the coordinator does not know this worker: registering again")
			a.stopAll()
			if err := a.register(ctx); err != nil {
				return err
			}
		}
	}
}

// commands long-polls the coordinator and carries out what it says.
func (a *Agent) commands(ctx context.Context) error {
	for ctx.Err() == nil {
		var cmds control.Commands
		if err := a.get(ctx, control.PathCommands+"?worker="+a.cfg.ID, &cmds); err != nil {
			if ctx.Err() == nil {
				a.log.Warn("polling for commands", "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(500 * time.Millisecond):
				}
			}
			continue
		}
		for _, c := range cmds.Commands {
			switch {
			case c.Deploy != nil:
				a.deploy(ctx, c.Deploy)
			case c.Cancel != nil:
				a.cancel(c.Cancel.Job, c.Cancel.Attempt)
			case c.Stop != nil:
				a.stopSources(c.Stop.Job, c.Stop.Attempt)
			case c.Checkpoint != nil:
				a.checkpointCommand(c.Checkpoint)
			}
		}
	}
	return nil
}

// deploy starts a descriptor's subtasks. A descriptor that cannot start
// is reported failed, with why.
func (a *Agent) deploy(ctx context.Context, raw []byte) {
	d, err := deploy.Decode(raw)
	if err != nil {
		a.log.Error("refusing a deployment", "err", err)
		return
	}
	key := depKey{d.Job, d.Attempt}
	a.mu.Lock()
	if _, ok := a.mu.deps[key]; ok {
		a.mu.Unlock()
		return // a repeated command
	}
	// A newer attempt of a job replaces what runs of the older ones.
	for k, dep := range a.mu.deps {
		if k.job == d.Job && k.attempt < d.Attempt && dep.state == "running" {
			dep.cancel()
		}
	}
	dep := &deployment{d: d, state: "deploying", start: time.Now()}
	a.mu.deps[key] = dep
	a.mu.Unlock()

	run, closeState, err := a.start(ctx, d)
	a.mu.Lock()
	if err != nil {
		dep.state, dep.cause = "failed", err.Error()
		a.mu.Unlock()
		a.log.Error("deploying", "job", d.Job, "attempt", d.Attempt, "err", err)
		a.wakeHeartbeat()
		return
	}
	dep.run, dep.state = run, "running"
	dep.cancel = run.Cancel
	a.mu.Unlock()
	a.wakeHeartbeat()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		err := run.Wait()
		closeState()
		a.mu.Lock()
		switch {
		case err == nil:
			dep.state = "finished"
		case errors.Is(err, context.Canceled):
			dep.state = "canceled"
		default:
			dep.state, dep.cause = "failed", err.Error()
		}
		a.mu.Unlock()
		a.log.Info("deployment ended", "job", d.Job, "attempt", d.Attempt, "state", dep.state, "err", err)
		a.wakeHeartbeat()
	}()
}

// start resolves and starts a descriptor's tasks with their own state.
func (a *Agent) start(ctx context.Context, d *deploy.Descriptor) (*task.Run, func(), error) {
	tj, err := task.FromDescriptor(d, a.modules)
	if err != nil {
		return nil, nil, err
	}
	clock := func() int64 { return time.Now().UnixMilli() }
	dir := filepath.Join(a.cfg.Dir, "state", fmt.Sprintf("%s-%d", d.Job, d.Attempt))
	switch d.State.Backend {
	case "pebble":
		db, err := state.OpenPebble(dir, clock, state.PebbleOptions{})
		if err != nil {
			return nil, nil, fmt.Errorf("opening state: %w", err)
		}
		tj.State = db
	default:
		tj.State = state.NewHeap(clock)
	}
	closeState := func() {
		tj.State.Close()
		os.RemoveAll(dir)
	}
	tj.Network = newNetwork(a.transport, d)
	if tj.Checkpoints != nil {
		tj.Checkpoints.OnAck = a.queueAck(d.Job)
	}
	run, err := task.Start(ctx, tj, task.Options{Logger: a.log.With("job", d.Job, "attempt", d.Attempt)})
	if err != nil {
		closeState()
		return nil, nil, err
	}
	return run, closeState, nil
}

func (a *Agent) cancel(job string, attempt int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, dep := range a.mu.deps {
		if k.job == job && k.attempt <= attempt && dep.cancel != nil {
			dep.cancel()
		}
	}
}

func (a *Agent) stopSources(job string, attempt int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if dep := a.mu.deps[depKey{job, attempt}]; dep != nil && dep.run != nil {
		dep.run.StopSources()
	}
}

// stopAll cancels every deployment and waits for them.
func (a *Agent) stopAll() {
	a.mu.Lock()
	for _, dep := range a.mu.deps {
		if dep.cancel != nil {
			dep.cancel()
		}
	}
	a.mu.Unlock()
	a.wg.Wait()
}

func (a *Agent) wakeHeartbeat() {
	select {
	case a.mu.wake <- struct{}{}:
	default:
	}
}

// Close stops the worker's tasks and releases the transport, the runtime
// and any temporary folder.
func (a *Agent) Close() error {
	a.stopAll()
	var errs []error
	if a.transport != nil {
		errs = append(errs, a.transport.Close())
	}
	if a.rt != nil {
		errs = append(errs, a.rt.Close())
	}
	if a.tmpDir != "" {
		errs = append(errs, os.RemoveAll(a.tmpDir))
	}
	return errors.Join(errs...)
}
