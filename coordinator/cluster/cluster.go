// Package cluster is the coordinator's ResourceManager and JobManagers
// joined to the network: it serves the control endpoints workers use
// (register, heartbeat, commands; HTTPS with the cluster's certificates
// on both sides), feeds what they say into the deterministic cores — the
// slot pool (coordinator/slots) and one execution graph per job
// (coordinator/execgraph) — and carries out their actions: deployment
// descriptors to workers, cancels, slot releases, restarts, workers
// started and stopped by the process provider. It implements the
// Dispatcher's Jobs and Workers.
//
// One mutex guards every core: they are plain types stepped one event at
// a time, and the I/O they ask for (queueing a command, starting a
// process) never blocks under the lock.
package cluster

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/weirstream/weir/coordinator/execgraph"
	"github.com/weirstream/weir/coordinator/plan"
	"github.com/weirstream/weir/coordinator/slots"
	"github.com/weirstream/weir/internal/api"
	"github.com/weirstream/weir/internal/control"
	"github.com/weirstream/weir/internal/deploy"
	"github.com/weirstream/weir/netstack"
)

// Config configures a cluster.
type Config struct {
	// ControlAddr is where workers reach the control endpoints; default
	// 127.0.0.1:0.
	ControlAddr string
	// CADir holds the cluster's certificate authority, created when
	// missing; workers need the same.
	CADir string
	// HeartbeatInterval is how often workers send heartbeats (default
	// 500ms); Slots.HeartbeatTimeout how long a silent one lives.
	HeartbeatInterval time.Duration
	Slots             slots.Config
	// ModulesURL is where workers fetch modules by digest.
	ModulesURL string
	// Buffers are the data plane's settings in every descriptor.
	Buffers deploy.Buffers
	// StartWorkers starts n workers of slotsEach slots (the process
	// provider); nil with the standalone provider.
	StartWorkers func(n, slotsEach int) error
	// StopWorker stops a worker the process provider started.
	StopWorker func(id string)
	// Checkpoints are the checkpoint and savepoint folders.
	Checkpoints CheckpointDefaults
	Logger      *slog.Logger
}

// Cluster is a running coordinator core.
type Cluster struct {
	cfg   Config
	log   *slog.Logger
	epoch time.Time // Now of the cores counts from here
	ln    net.Listener
	srv   *http.Server
	stop  chan struct{}
	wg    sync.WaitGroup
	async asyncQueue // checkpoint.go

	mu struct {
		sync.Mutex
		pool    *slots.Pool
		workers map[string]*workerConn
		jobs    map[string]*job
		closed  bool
	}
}

// workerConn is what the coordinator keeps of a registered worker.
type workerConn struct {
	id, dataAddr string
	slots        int
	registered   time.Time
	lastBeat     time.Time
	queue        []control.Command
	notify       chan struct{}
}

// New starts the control endpoints and the ticker.
func New(cfg Config) (*Cluster, error) {
	if cfg.ControlAddr == "" {
		cfg.ControlAddr = "127.0.0.1:0"
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 500 * time.Millisecond
	}
	if cfg.CADir == "" {
		return nil, errors.New("cluster: no folder for the cluster CA")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Slots = cfg.Slots.WithDefaults()
	pool, err := slots.New(cfg.Slots)
	if err != nil {
		return nil, err
	}
	ca, err := netstack.LoadOrCreateCA(cfg.CADir)
	if err != nil {
		return nil, fmt.Errorf("cluster: the cluster CA in %s: %w", cfg.CADir, err)
	}
	cert, err := ca.Issue("weir coordinator")
	if err != nil {
		return nil, err
	}
	certs := x509.NewCertPool()
	certs.AddCert(ca.Cert)
	ln, err := net.Listen("tcp", cfg.ControlAddr)
	if err != nil {
		return nil, fmt.Errorf("cluster: listening on %s: %w", cfg.ControlAddr, err)
	}
	c := &Cluster{cfg: cfg, log: cfg.Logger, epoch: time.Now(), stop: make(chan struct{})}
	c.mu.pool = pool
	c.mu.workers = map[string]*workerConn{}
	c.mu.jobs = map[string]*job{}
	c.ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: certs, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13})
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+control.PathRegister, c.handleRegister)
	mux.HandleFunc("POST "+control.PathHeartbeat, c.handleHeartbeat)
	mux.HandleFunc("GET "+control.PathCommands, c.handleCommands)
	mux.HandleFunc("POST "+control.PathAcks, c.handleAcks)
	c.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug)}
	c.async.wake = make(chan struct{}, 1)
	c.wg.Add(3)
	go func() { defer c.wg.Done(); c.srv.Serve(c.ln) }()
	go func() { defer c.wg.Done(); c.tick() }()
	go func() { defer c.wg.Done(); c.async.run(c.stop) }()
	return c, nil
}

// SetModulesURL sets where workers fetch modules by digest (the REST
// API's address may be known only after the cluster starts).
func (c *Cluster) SetModulesURL(u string) {
	c.mu.Lock()
	c.cfg.ModulesURL = u
	c.mu.Unlock()
}

// ControlURL is the URL of the control endpoints workers use.
func (c *Cluster) ControlURL() string { return "https://" + c.ln.Addr().String() }

// Close stops the control endpoints and the ticker. Jobs are left as
// they are: their workers cancel them when the coordinator is gone.
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return nil
	}
	c.mu.closed = true
	for _, w := range c.mu.workers {
		close(w.notify)
	}
	for _, j := range c.mu.jobs {
		j.endCheckpoints()
	}
	c.mu.Unlock()
	close(c.stop)
	err := c.srv.Close()
	c.wg.Wait()
	return err
}

func (c *Cluster) now() time.Duration { return time.Since(c.epoch) }

// tick lets time pass for the cores: heartbeat timeouts, idle workers,
// restart delays.
func (c *Cluster) tick() {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		c.mu.Lock()
		now := c.now()
		acts, err := c.mu.pool.Step(slots.Tick{Now: now})
		if err != nil {
			c.log.Error("slot pool tick", "err", err)
		}
		c.carryPool(acts)
		for _, j := range c.mu.jobs {
			if at, ok := j.graph.RestartAt(); ok && now >= at {
				c.jobStep(j, execgraph.Tick{Now: now})
			}
		}
		c.mu.Unlock()
	}
}

// carryPool carries out the slot pool's actions; c.mu is held.
func (c *Cluster) carryPool(acts []slots.Action) {
	for _, a := range acts {
		switch a := a.(type) {
		case slots.Allocated:
			j := c.mu.jobs[a.Job]
			if j == nil {
				continue
			}
			j.assign = map[execgraph.SubtaskID]slots.SlotID{}
			for _, as := range a.Assignments {
				j.assign[execgraph.SubtaskID{Vertex: as.Vertex, Index: as.Index}] = as.Slot
			}
			c.jobStep(j, execgraph.SlotsAssigned{Now: c.now(), Attempt: a.Attempt, Assignments: a.Assignments})
		case slots.WorkerLost:
			c.log.Warn("worker lost", "worker", a.Worker, "reason", a.Reason)
			if w := c.mu.workers[a.Worker]; w != nil {
				close(w.notify)
				delete(c.mu.workers, a.Worker)
			}
			for _, id := range a.Jobs {
				if j := c.mu.jobs[id]; j != nil {
					c.jobStep(j, execgraph.WorkerLost{Now: c.now(), Worker: a.Worker, Reason: a.Reason})
				}
			}
		case slots.StartWorkers:
			if c.cfg.StartWorkers == nil {
				continue
			}
			n, each := a.N, a.SlotsEach
			go func() {
				if err := c.cfg.StartWorkers(n, each); err != nil {
					c.mu.Lock()
					acts, _ := c.mu.pool.Step(slots.StartFailed{Now: c.now(), N: n, Reason: err.Error()})
					c.carryPool(acts)
					c.mu.Unlock()
				}
			}()
		case slots.StopWorker:
			if c.cfg.StopWorker != nil {
				go c.cfg.StopWorker(a.Worker)
			}
		}
	}
}

// send queues a command for a worker and wakes its long-poll; c.mu is
// held.
func (c *Cluster) send(worker string, cmd control.Command) {
	w := c.mu.workers[worker]
	if w == nil {
		return
	}
	w.queue = append(w.queue, cmd)
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// ListWorkers lists the registered workers.
func (c *Cluster) ListWorkers(ctx context.Context) ([]api.WorkerStatus, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []api.WorkerStatus
	for _, wi := range c.mu.pool.Workers() {
		w := c.mu.workers[wi.ID]
		st := api.WorkerStatus{ID: wi.ID, Address: wi.Address, State: "alive", Slots: wi.Slots, SlotsUsed: wi.Used, SlotsFree: wi.Slots - wi.Used}
		if w != nil {
			st.Registered, st.LastHeartbeat = w.registered, w.lastBeat
		}
		for _, j := range c.mu.jobs {
			for _, s := range j.assign {
				if s.Worker == wi.ID && !j.graph.Status().Terminal() {
					st.Tasks++
				}
			}
		}
		out = append(out, st)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out, nil
}

func newID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func newRand() *mrand.Rand {
	var seed [32]byte
	rand.Read(seed[:])
	return mrand.New(mrand.NewChaCha8(seed))
}

// descriptorOptions are the options of a job attempt's descriptors.
func (c *Cluster) descriptorOptions(j *job) plan.DescriptorOptions {
	return plan.DescriptorOptions{
		Job: j.id, Attempt: j.graph.Attempt(), Tenant: j.tenant, Buffers: c.cfg.Buffers,
		Module: func(name string) (string, string, error) {
			m, ok := j.modules[name]
			if !ok {
				return "", "", fmt.Errorf("module %q is not in the registry", name)
			}
			return m.Digest, m.Name + "@" + m.Version, nil
		},
	}
}
