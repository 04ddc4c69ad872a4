// Package dispatcher is the coordinator's REST API under /v1 (JSON; the
// OpenAPI document is served at /v1/openapi.json): jobs, their savepoints,
// workers, modules and an overview. It validates every request — sizes, fields, names, job
// specs against the module registry — and hands what is valid to the job
// logic behind two interfaces, Jobs and Workers, which the coordinator's
// JobManager and ResourceManager implement. The module registry
// (coordinator/registry) is its own.
//
// It listens on 127.0.0.1 unless configured otherwise: there is no
// authentication yet (it comes with tenants and tokens), so anyone who can
// reach the port can submit and cancel jobs. See docs/rest.md.
package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/weirstream/weir/coordinator/jobspec"
	"github.com/weirstream/weir/coordinator/plan"
	"github.com/weirstream/weir/coordinator/registry"
	"github.com/weirstream/weir/internal/api"
)

// Jobs is the job logic behind the job routes. Every method gets the
// tenant the request acts for and must only see that tenant's jobs. Errors
// wrapping ErrNotFound, ErrConflict, ErrInvalid or ErrUnavailable become
// 404, 409, 400 and 503 answers with the error's text as the message, and
// errors.ErrUnsupported a 501 (a feature this coordinator lacks);
// an error holding *jobspec.Error values becomes a 400 listing them with
// their positions; any other error is a 500.
type Jobs interface {
	// Submit starts a job. The submission is valid: the spec parsed, its
	// modules resolved to registry digests, its plan built. It returns the
	// new job's status (state created, or failed at once when the job can
	// never get its slots, with the numbers in Message).
	Submit(ctx context.Context, s Submission) (api.JobStatus, error)
	// List returns the tenant's jobs, newest first. Plan and Subtasks
	// may be left out.
	List(ctx context.Context, tenant string) ([]api.JobStatus, error)
	// Get returns one job with its plan and subtasks, or ErrNotFound.
	Get(ctx context.Context, tenant, id string) (api.JobStatus, error)
	// Cancel cancels a job: its tasks are canceled without finishing.
	// Canceling a job that has ended is ErrConflict.
	Cancel(ctx context.Context, tenant, id string) (api.JobStatus, error)
	// Stop stops a job gracefully: its sources stop, the records in
	// flight drain through and the job ends finished. Stopping a job that
	// has ended is ErrConflict.
	Stop(ctx context.Context, tenant, id string) (api.JobStatus, error)
	// Logs returns the job's module log lines after seq after, of one
	// operator (every operator when operator is empty).
	Logs(ctx context.Context, tenant, id, operator string, after int64) (api.JobLogs, error)
	// Savepoint starts a savepoint of a running job and returns at once,
	// with state pending (or, for a request id it has seen, the status
	// of that request — looked up first, so a retry after the job ended
	// still answers: the same id never takes a second savepoint; the
	// same id with another Dir, Stop or Drain is ErrConflict). The
	// request is valid: RequestID is never empty (the dispatcher makes
	// one up when the client sent none), Dir is empty or an absolute,
	// clean path, Drain comes only with Stop. An empty Dir means the
	// cluster's default savepoint folder; with none configured it is
	// ErrInvalid, saying to give one. A job that has ended (or cannot take
	// a savepoint now, with the reason) is ErrConflict; with Stop, the job stops once the
	// savepoint is complete and ends finished.
	Savepoint(ctx context.Context, tenant, id string, req api.SavepointRequest) (api.SavepointStatus, error)
	// SavepointStatus returns the status of a savepoint request of the
	// job; ErrNotFound for a job or request id it does not know.
	SavepointStatus(ctx context.Context, tenant, id, requestID string) (api.SavepointStatus, error)
}

// Workers is the cluster's workers, behind GET /v1/workers and the
// overview.
type Workers interface {
	List(ctx context.Context) ([]api.WorkerStatus, error)
}

// Submission is a validated job for Jobs.Submit.
type Submission struct {
	Tenant string
	// Spec is the spec's text as submitted.
	Spec []byte
	// Job is the parsed spec. Every module in Job.Modules is a registry
	// module whose Registry.Digest is set.
	Job *jobspec.Job
	// Plan is the job's execution plan, built against the registry's
	// descriptors of its modules.
	Plan *plan.Plan
	// Modules are the registry modules by spec module name.
	Modules map[string]api.ModuleInfo
	// FromSavepoint is the absolute, clean path of the savepoint or
	// checkpoint folder (<root>/<job>/chk-<n>) to restore from, or "".
	// Submit opens it (ckptstore.OpenPath) and refuses, as ErrInvalid, a
	// path that is not a completed checkpoint, a max parallelism that
	// differs, or operators with state the job does not have (listing
	// their uids) unless AllowNonRestoredState.
	FromSavepoint         string
	AllowNonRestoredState bool
}

// Errors Jobs and Workers wrap to choose the answer's status.
var (
	ErrNotFound    = errors.New("dispatcher: not found")
	ErrConflict    = errors.New("dispatcher: conflict")
	ErrInvalid     = errors.New("dispatcher: invalid request")
	ErrUnavailable = errors.New("dispatcher: unavailable")
)

// Defaults of Config.
const (
	DefaultAddr              = "127.0.0.1:8081"
	DefaultMaxBodyBytes      = 2*jobspec.MaxSpecBytes + 64<<10 // a spec, JSON-escaped
	DefaultShutdownWait      = 5 * time.Second
	DefaultConcurrentUploads = 4
)

// Config configures a Dispatcher.
type Config struct {
	// Addr is the address to listen on (default 127.0.0.1:8081; port 0
	// picks a free one, see Dispatcher.Addr).
	Addr string
	// RegistryDir holds the module registry.
	RegistryDir string
	// MaxModuleBytes bounds module uploads (default 64 MiB).
	MaxModuleBytes int
	// MaxBodyBytes bounds JSON request bodies (default: twice the largest
	// job spec, plus room).
	MaxBodyBytes int64
	// ConcurrentUploads bounds the module uploads read and checked at
	// once (default 4); more wait their turn before their body is read,
	// so memory stays under about ConcurrentUploads x MaxModuleBytes.
	ConcurrentUploads int
	// Internal, when set, serves every path under /internal/ on the same
	// listener: room for the coordinator's own control traffic (worker
	// registration, heartbeats) if it travels over HTTP. It is not part
	// of the public API and not in the OpenAPI document.
	Internal http.Handler
	// Jobs and Workers are the job logic; both are required.
	Jobs    Jobs
	Workers Workers
	// Version is reported by the overview.
	Version string
	// ControlURL is where workers register, reported by the overview.
	ControlURL string
	// Logger gets one line per failed request and per internal error
	// (default: discard).
	Logger *slog.Logger
	// ShutdownWait bounds how long Run waits for requests in flight when
	// its context ends (default 5s).
	ShutdownWait time.Duration
}

// Validate fills defaults and checks the values.
func (c *Config) Validate() error {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.RegistryDir == "" {
		return errors.New("dispatcher: no registry folder given (Config.RegistryDir)")
	}
	if c.Jobs == nil || c.Workers == nil {
		return errors.New("dispatcher: Config.Jobs and Config.Workers are required")
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxBodyBytes < 0 {
		return fmt.Errorf("dispatcher: negative body limit %d", c.MaxBodyBytes)
	}
	if c.ConcurrentUploads == 0 {
		c.ConcurrentUploads = DefaultConcurrentUploads
	}
	if c.ConcurrentUploads < 0 {
		return fmt.Errorf("dispatcher: negative upload concurrency %d", c.ConcurrentUploads)
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ShutdownWait == 0 {
		c.ShutdownWait = DefaultShutdownWait
	}
	return nil
}

// Dispatcher serves the REST API. New listens; Run serves until its
// context ends; Close stops everything.
type Dispatcher struct {
	cfg     Config
	reg     *registry.Registry
	ln      net.Listener
	srv     *http.Server
	handler http.Handler
	routes  []route
	uploads chan struct{} // a token per upload being read or checked

	mu struct {
		sync.Mutex
		running chan struct{} // closed when Run returns; nil before Run
		closed  bool
	}
	closeOnce sync.Once
	closeErr  error
}

// New opens the registry in cfg.RegistryDir and listens on cfg.Addr.
func New(cfg Config) (*Dispatcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	reg, err := registry.Open(registry.Config{Dir: cfg.RegistryDir, MaxModuleBytes: cfg.MaxModuleBytes})
	if err != nil {
		return nil, err
	}
	d := newDispatcher(cfg, reg)
	d.ln, err = net.Listen("tcp", cfg.Addr)
	if err != nil {
		reg.Close()
		return nil, fmt.Errorf("dispatcher: listening on %s: %w", cfg.Addr, err)
	}
	d.srv = &http.Server{
		Handler:           d.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       5 * time.Minute, // a 64 MiB upload over a slow link
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	return d, nil
}

// NewHandler returns the API's handler over an open registry without
// listening, for tests and for embedding in another server. cfg.Addr and
// cfg.RegistryDir are ignored.
func NewHandler(cfg Config, reg *registry.Registry) (http.Handler, error) {
	cfg.RegistryDir = "-"
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return newDispatcher(cfg, reg).handler, nil
}

func newDispatcher(cfg Config, reg *registry.Registry) *Dispatcher {
	d := &Dispatcher{cfg: cfg, reg: reg, uploads: make(chan struct{}, cfg.ConcurrentUploads)}
	d.routes = d.routeTable()
	d.handler = d.mux()
	return d
}

// Addr is the address the Dispatcher listens on.
func (d *Dispatcher) Addr() string { return d.ln.Addr().String() }

// URL is the API's base URL, http://ADDR.
func (d *Dispatcher) URL() string { return "http://" + d.Addr() }

// Registry is the module registry the Dispatcher serves.
func (d *Dispatcher) Registry() *registry.Registry { return d.reg }

// Handler is the API's handler.
func (d *Dispatcher) Handler() http.Handler { return d.handler }

// Run serves until ctx ends, then waits up to Config.ShutdownWait for the
// requests in flight. It returns nil after ctx ends or Close.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.mu.Lock()
	if d.mu.closed || d.mu.running != nil {
		d.mu.Unlock()
		return errors.New("dispatcher: Run called twice, or after Close")
	}
	done := make(chan struct{})
	d.mu.running = done
	d.mu.Unlock()
	defer close(done)

	errc := make(chan error, 1)
	go func() { errc <- d.srv.Serve(d.ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), d.cfg.ShutdownWait)
		defer cancel()
		if err := d.srv.Shutdown(sctx); err != nil {
			d.srv.Close()
		}
		<-errc
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("dispatcher: serving: %w", err)
	}
}

// Close stops serving at once, closes the registry and waits for Run to
// return. It is idempotent.
func (d *Dispatcher) Close() error {
	d.closeOnce.Do(func() {
		d.mu.Lock()
		d.mu.closed = true
		running := d.mu.running
		d.mu.Unlock()
		err := d.srv.Close()
		if cerr := d.ln.Close(); err == nil && running == nil && !errors.Is(cerr, net.ErrClosed) {
			err = cerr
		}
		if running != nil {
			<-running
		}
		if rerr := d.reg.Close(); err == nil {
			err = rerr
		}
		d.closeErr = err
	})
	return d.closeErr
}
