// Package slots is the ResourceManager's slot pool as a deterministic core:
// workers register their slots and send heartbeats, jobs request slots for
// their subtasks and release them, and the pool answers with actions —
// slots allocated, worker lost, start or stop workers — that the caller
// carries out over the network.
//
// Pool is driven by events through Step; it reads no clock (every event
// carries the monotonic time "now" of its arrival) and starts nothing
// itself. Tick events let it notice silence: a worker whose last heartbeat
// is older than the heartbeat timeout is lost, and, with the process
// provider, a worker idle longer than the idle timeout is stopped.
//
// Slot sharing follows Flink (and coordinator/plan): the subtasks of the
// vertices of one slot sharing group share slots, one subtask of each
// vertex per slot, so a group needs as many slots as its largest
// parallelism, and subtask i of every vertex of the group goes to the
// group's i-th slot. A request is served all at once or not at all, so a
// job never holds half the slots it needs while another job waits for
// them.
package slots

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Errors Step returns for events it refuses. The pool is unchanged.
var (
	ErrDuplicateWorker = errors.New("slots: worker already registered")
	ErrUnknownWorker   = errors.New("slots: unknown worker")
	ErrBadRegistration = errors.New("slots: bad registration")
	ErrBadRequest      = errors.New("slots: bad request")
	// ErrUnsatisfiable: the request needs more slots than the cluster can
	// ever have; waiting would never end, so the job should fail.
	ErrUnsatisfiable = errors.New("slots: request can never be satisfied")
)

// Provider says where workers come from.
type Provider string

// Providers.
const (
	// ProviderStandalone: someone else starts workers; the pool only
	// takes what registers.
	ProviderStandalone Provider = "standalone"
	// ProviderProcess: the coordinator starts local worker processes
	// when slots are short and stops those idle too long.
	ProviderProcess Provider = "process"
)

// Placement says how a request's slots are picked among workers.
type Placement string

// Placements.
const (
	// PlacementSpread takes each next slot from the worker with the most
	// free slots, so a job's parallel subtasks land on different workers
	// and a lost worker takes fewer of them.
	PlacementSpread Placement = "spread"
	// PlacementPack fills the busiest workers first, so others stay
	// idle and the process provider can stop them.
	PlacementPack Placement = "pack"
)

// Defaults of Config.
const (
	DefaultHeartbeatTimeout = 3 * time.Second
	DefaultSlotsPerWorker   = 2
	DefaultMaxWorkers       = 8
	DefaultIdleTimeout      = 30 * time.Second
	DefaultStartTimeout     = 30 * time.Second
)

// Bounds of what a worker may register and a job may ask.
const (
	MaxSlotsPerWorker = 1024
	// MaxParallelism bounds a vertex's subtasks (= keygroup's largest max
	// parallelism).
	MaxParallelism = 32768
	// MaxTasks bounds the vertices of one request.
	MaxTasks      = 10_000
	maxIDLen      = 128
	maxAddressLen = 512
)

// Config configures a Pool. Zero fields take the defaults.
type Config struct {
	Provider Provider `json:"provider"` // default standalone
	// HeartbeatTimeout: a worker silent longer than this is lost.
	HeartbeatTimeout time.Duration `json:"heartbeat_timeout"`
	// MaxSlots bounds the slots of the cluster: workers past it are
	// refused, and a request for more fails at once. 0 means no bound
	// with the standalone provider, and MaxWorkers × SlotsPerWorker with
	// the process provider.
	MaxSlots  int       `json:"max_slots"`
	Placement Placement `json:"placement"` // default spread

	// Process provider only.
	SlotsPerWorker int `json:"slots_per_worker"` // slots of each worker it starts
	MaxWorkers     int `json:"max_workers"`      // workers alive or starting, at most
	MinWorkers     int `json:"min_workers"`      // kept even when idle
	// IdleTimeout: a worker with no slot in use for this long is stopped.
	IdleTimeout time.Duration `json:"idle_timeout"`
	// StartTimeout: a started worker that has not registered after this
	// long is given up on, and another may be started in its place.
	StartTimeout time.Duration `json:"start_timeout"`
}

// WithDefaults returns c with its zero fields set to the defaults.
func (c Config) WithDefaults() Config {
	if c.Provider == "" {
		c.Provider = ProviderStandalone
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if c.Placement == "" {
		c.Placement = PlacementSpread
	}
	if c.Provider == ProviderProcess {
		if c.SlotsPerWorker == 0 {
			c.SlotsPerWorker = DefaultSlotsPerWorker
		}
		if c.MaxWorkers == 0 {
			c.MaxWorkers = DefaultMaxWorkers
		}
		if c.IdleTimeout == 0 {
			c.IdleTimeout = DefaultIdleTimeout
		}
		if c.StartTimeout == 0 {
			c.StartTimeout = DefaultStartTimeout
		}
		if c.MaxSlots == 0 {
			c.MaxSlots = c.MaxWorkers * c.SlotsPerWorker
		}
	}
	return c
}

// Validate reports a config that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Provider != ProviderStandalone && c.Provider != ProviderProcess:
		return fmt.Errorf("slots: unknown provider %q; want standalone or process", c.Provider)
	case c.Placement != PlacementSpread && c.Placement != PlacementPack:
		return fmt.Errorf("slots: unknown placement %q; want spread or pack", c.Placement)
	case c.HeartbeatTimeout <= 0:
		return fmt.Errorf("slots: heartbeat timeout %s; want more than 0", c.HeartbeatTimeout)
	}
	if c.Provider == ProviderProcess {
		switch {
		case c.SlotsPerWorker < 1 || c.SlotsPerWorker > MaxSlotsPerWorker:
			return fmt.Errorf("slots: %d slots per worker; want 1 to %d", c.SlotsPerWorker, MaxSlotsPerWorker)
		case c.MaxWorkers < 1 || c.MinWorkers < 0 || c.MinWorkers > c.MaxWorkers:
			return fmt.Errorf("slots: min workers %d, max workers %d; want 0 <= min <= max and max 1 or more", c.MinWorkers, c.MaxWorkers)
		case c.IdleTimeout <= 0 || c.StartTimeout <= 0:
			return fmt.Errorf("slots: idle timeout %s, start timeout %s; want both more than 0", c.IdleTimeout, c.StartTimeout)
		}
	}
	if c.MaxSlots < 0 {
		return fmt.Errorf("slots: max slots %d; want 0 (no bound) or more", c.MaxSlots)
	}
	return nil
}

// SlotID names one slot: the worker and the slot's index on it.
type SlotID struct {
	Worker string `json:"worker"`
	Index  int    `json:"index"`
}

// String formats the slot as "worker/index".
func (s SlotID) String() string { return fmt.Sprintf("%s/%d", s.Worker, s.Index) }

// Task is one vertex of a request: its parallel subtasks need slots.
type Task struct {
	Vertex           int    `json:"vertex"`
	Parallelism      int    `json:"parallelism"`
	SlotSharingGroup string `json:"slot_sharing_group"`
}

// Assignment places one subtask (vertex, index) in a slot.
type Assignment struct {
	Vertex int    `json:"vertex"`
	Index  int    `json:"index"`
	Slot   SlotID `json:"slot"`
}

// Events.
type (
	// Event is what Step takes.
	Event interface{ isEvent() }

	// Register is a worker offering Slots slots, reachable at Address.
	Register struct {
		Now     time.Duration
		Worker  string
		Address string
		Slots   int
	}
	// Heartbeat says the worker is alive.
	Heartbeat struct {
		Now    time.Duration
		Worker string
	}
	// Unregister is a worker leaving: it shut down, or (process
	// provider) its process exited.
	Unregister struct {
		Now    time.Duration
		Worker string
		Reason string
	}
	// Tick lets the pool act on time passing.
	Tick struct{ Now time.Duration }
	// Request asks slots for every subtask of a job attempt. A job has at
	// most one request waiting; a request of a later attempt replaces it.
	Request struct {
		Now     time.Duration
		Job     string
		Attempt int
		Tasks   []Task
	}
	// CancelRequest withdraws the job's waiting request, if any.
	CancelRequest struct {
		Now time.Duration
		Job string
	}
	// Release gives back slots of a job attempt; nil Slots means all of
	// them. Slots the attempt does not hold (a lost worker's) are skipped.
	Release struct {
		Now     time.Duration
		Job     string
		Attempt int
		Slots   []SlotID
	}
	// StartFailed says N of the workers a StartWorkers asked for will not
	// come (process provider). The pool asks again after StartTimeout,
	// not at once, so a broken worker command does not spin; waiting
	// requests show the reason meanwhile.
	StartFailed struct {
		Now    time.Duration
		N      int
		Reason string
	}
)

func (Register) isEvent()      {}
func (Heartbeat) isEvent()     {}
func (Unregister) isEvent()    {}
func (Tick) isEvent()          {}
func (Request) isEvent()       {}
func (CancelRequest) isEvent() {}
func (Release) isEvent()       {}
func (StartFailed) isEvent()   {}

// Actions.
type (
	// Action is what Step returns for the caller to carry out.
	Action interface {
		isAction()
		String() string
	}

	// Allocated gives a job attempt its slots: one Assignment per subtask
	// of its request, ordered by vertex and index.
	Allocated struct {
		Job         string
		Attempt     int
		Assignments []Assignment
	}
	// WorkerLost: the worker is gone (silent past the heartbeat timeout,
	// or unregistered). Jobs lists the jobs that held slots on it, whose
	// subtasks there are lost; those slots are no longer theirs.
	WorkerLost struct {
		Worker string
		Reason string
		Jobs   []string
	}
	// StartWorkers asks the process provider to start N workers of
	// SlotsEach slots.
	StartWorkers struct {
		N         int
		SlotsEach int
	}
	// StopWorker asks the process provider to stop an idle worker. Its
	// slots are not offered any more; an Unregister should follow.
	StopWorker struct {
		Worker string
		Reason string
	}
)

func (Allocated) isAction()    {}
func (WorkerLost) isAction()   {}
func (StartWorkers) isAction() {}
func (StopWorker) isAction()   {}

func (a Allocated) String() string {
	// By slot: "w1/0 [0.0 1.0]".
	bySlot := map[SlotID][]string{}
	var order []SlotID
	for _, as := range a.Assignments {
		if _, ok := bySlot[as.Slot]; !ok {
			order = append(order, as.Slot)
		}
		bySlot[as.Slot] = append(bySlot[as.Slot], fmt.Sprintf("%d.%d", as.Vertex, as.Index))
	}
	sortSlots(order)
	var b strings.Builder
	fmt.Fprintf(&b, "allocated %s attempt %d:", a.Job, a.Attempt)
	for _, s := range order {
		fmt.Fprintf(&b, " %s [%s]", s, strings.Join(bySlot[s], " "))
	}
	return b.String()
}

func (a WorkerLost) String() string {
	return fmt.Sprintf("worker lost %s (%s), jobs [%s]", a.Worker, a.Reason, strings.Join(a.Jobs, " "))
}

func (a StartWorkers) String() string {
	return fmt.Sprintf("start %d workers of %d slots", a.N, a.SlotsEach)
}

func (a StopWorker) String() string { return fmt.Sprintf("stop worker %s (%s)", a.Worker, a.Reason) }

// worker is a registered worker.
type worker struct {
	id, address   string
	slots         []holder // by slot index; zero holder = free
	lastHeartbeat time.Duration
	registered    time.Duration
	idleSince     time.Duration // when its last slot became free
	stopping      bool          // asked to stop: offers no slots
}

// holder is the job attempt holding a slot.
type holder struct {
	job     string
	attempt int
}

func (w *worker) used() int {
	n := 0
	for _, h := range w.slots {
		if h.job != "" {
			n++
		}
	}
	return n
}

func (w *worker) free() int {
	if w.stopping {
		return 0
	}
	return len(w.slots) - w.used()
}

// pending is a request waiting for slots.
type pending struct {
	Request
	groups []groupNeed
	need   int
}

// groupNeed is what a slot sharing group needs: as many slots as its
// largest parallelism.
type groupNeed struct {
	name  string
	slots int
	tasks []Task
}

// Pool is the slot pool. It is not safe for concurrent use: one goroutine
// (the ResourceManager's) owns it and feeds it events in order.
type Pool struct {
	cfg      Config
	workers  map[string]*worker
	pending  []*pending      // in arrival order
	starting []time.Duration // deadlines of workers asked for and not yet registered
	// After a failed start: no new start before retryAt; startErr says
	// why, in Waiting.
	retryAt  time.Duration
	startErr string
	now      time.Duration
}

// New returns an empty pool.
func New(cfg Config) (*Pool, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Pool{cfg: cfg, workers: map[string]*worker{}}, nil
}

// Config returns the pool's config with defaults applied.
func (p *Pool) Config() Config { return p.cfg }

var idRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`)

// Step applies one event and returns the actions it calls for. An event
// Step refuses returns an error and changes nothing but the pool's clock.
func (p *Pool) Step(ev Event) ([]Action, error) {
	var acts []Action
	var err error
	switch e := ev.(type) {
	case Register:
		p.advance(e.Now)
		err = p.register(e)
	case Heartbeat:
		p.advance(e.Now)
		w := p.workers[e.Worker]
		if w == nil {
			return nil, fmt.Errorf("%w: heartbeat from %q, which is not registered (or was declared lost); register again", ErrUnknownWorker, e.Worker)
		}
		w.lastHeartbeat = p.now
	case Unregister:
		p.advance(e.Now)
		if p.workers[e.Worker] == nil {
			return nil, fmt.Errorf("%w: %q leaves, but it is not registered", ErrUnknownWorker, e.Worker)
		}
		reason := e.Reason
		if reason == "" {
			reason = "unregistered"
		}
		acts = append(acts, p.remove(e.Worker, reason))
	case Tick:
		p.advance(e.Now)
		acts = append(acts, p.expire()...)
	case Request:
		p.advance(e.Now)
		err = p.request(e)
	case CancelRequest:
		p.advance(e.Now)
		p.dropPending(e.Job)
	case Release:
		p.advance(e.Now)
		p.release(e)
	case StartFailed:
		p.advance(e.Now)
		n := min(max(e.N, 0), len(p.starting))
		p.starting = p.starting[n:]
		p.retryAt = p.now + p.cfg.StartTimeout
		p.startErr = e.Reason
	default:
		return nil, fmt.Errorf("slots: unknown event %T", ev)
	}
	if err != nil {
		return nil, err
	}
	return append(acts, p.reconcile()...), nil
}

// advance moves the pool's clock; events from the past are taken as now.
func (p *Pool) advance(now time.Duration) {
	p.now = max(p.now, now)
}

func (p *Pool) register(e Register) error {
	switch {
	case e.Worker == "" || len(e.Worker) > maxIDLen || !idRE.MatchString(e.Worker) || e.Worker[0] == '.':
		// Ids name folders and appear in URLs: no '/', no "..".
		return fmt.Errorf("%w: worker id %q; want 1 to %d letters, digits, '_', '.', ':' or '-', not starting with '.'", ErrBadRegistration, e.Worker, maxIDLen)
	case e.Address == "" || len(e.Address) > maxAddressLen:
		return fmt.Errorf("%w: worker %s: address %q; want a host:port of at most %d bytes", ErrBadRegistration, e.Worker, e.Address, maxAddressLen)
	case e.Slots < 1 || e.Slots > MaxSlotsPerWorker:
		return fmt.Errorf("%w: worker %s offers %d slots; want 1 to %d", ErrBadRegistration, e.Worker, e.Slots, MaxSlotsPerWorker)
	}
	if w := p.workers[e.Worker]; w != nil {
		return fmt.Errorf("%w: %s is registered from %s with %d slots, last heartbeat %s ago; give each worker its own id, or wait %s for the old one to time out",
			ErrDuplicateWorker, e.Worker, w.address, len(w.slots), p.now-w.lastHeartbeat, p.cfg.HeartbeatTimeout)
	}
	if p.cfg.MaxSlots > 0 && p.totalSlots()+e.Slots > p.cfg.MaxSlots {
		return fmt.Errorf("%w: worker %s would bring the cluster to %d slots, more than max_slots %d", ErrBadRegistration, e.Worker, p.totalSlots()+e.Slots, p.cfg.MaxSlots)
	}
	p.workers[e.Worker] = &worker{id: e.Worker, address: e.Address, slots: make([]holder, e.Slots),
		lastHeartbeat: p.now, registered: p.now, idleSince: p.now}
	if len(p.starting) > 0 {
		p.starting = p.starting[1:] // one of those we started, most likely
	}
	p.startErr = ""
	return nil
}

func (p *Pool) totalSlots() int {
	n := 0
	for _, w := range p.workers {
		n += len(w.slots)
	}
	return n
}

// remove drops a worker and the allocations on it.
func (p *Pool) remove(id, reason string) Action {
	w := p.workers[id]
	jobs := map[string]bool{}
	for _, h := range w.slots {
		if h.job != "" {
			jobs[h.job] = true
		}
	}
	delete(p.workers, id)
	lost := WorkerLost{Worker: id, Reason: reason, Jobs: []string{}}
	for j := range jobs {
		lost.Jobs = append(lost.Jobs, j)
	}
	sort.Strings(lost.Jobs)
	return lost
}

// expire declares silent workers lost and forgets workers that never came.
func (p *Pool) expire() []Action {
	var acts []Action
	for _, id := range p.workerIDs() {
		w := p.workers[id]
		if silent := p.now - w.lastHeartbeat; silent > p.cfg.HeartbeatTimeout {
			acts = append(acts, p.remove(id, fmt.Sprintf("no heartbeat for %s, timeout %s", silent, p.cfg.HeartbeatTimeout)))
		}
	}
	keep := p.starting[:0]
	for _, deadline := range p.starting {
		if deadline > p.now {
			keep = append(keep, deadline)
		}
	}
	p.starting = keep
	return acts
}

func (p *Pool) workerIDs() []string {
	ids := make([]string, 0, len(p.workers))
	for id := range p.workers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func (p *Pool) request(e Request) error {
	if e.Job == "" || len(e.Job) > maxIDLen {
		return fmt.Errorf("%w: job id %q", ErrBadRequest, e.Job)
	}
	if len(e.Tasks) == 0 || len(e.Tasks) > MaxTasks {
		return fmt.Errorf("%w: job %s asks for %d tasks; want 1 to %d", ErrBadRequest, e.Job, len(e.Tasks), MaxTasks)
	}
	byGroup := map[string]*groupNeed{}
	var groups []groupNeed
	var order []string
	seen := map[int]bool{}
	for _, t := range e.Tasks {
		switch {
		case seen[t.Vertex]:
			return fmt.Errorf("%w: job %s lists vertex %d twice", ErrBadRequest, e.Job, t.Vertex)
		case t.Parallelism < 1 || t.Parallelism > MaxParallelism:
			return fmt.Errorf("%w: job %s: vertex %d has parallelism %d; want 1 to %d", ErrBadRequest, e.Job, t.Vertex, t.Parallelism, MaxParallelism)
		case t.SlotSharingGroup == "":
			return fmt.Errorf("%w: job %s: vertex %d has no slot sharing group", ErrBadRequest, e.Job, t.Vertex)
		}
		seen[t.Vertex] = true
		g := byGroup[t.SlotSharingGroup]
		if g == nil {
			g = &groupNeed{name: t.SlotSharingGroup}
			byGroup[t.SlotSharingGroup] = g
			order = append(order, t.SlotSharingGroup)
		}
		g.slots = max(g.slots, t.Parallelism)
		g.tasks = append(g.tasks, t)
	}
	need := 0
	var parts []string
	for _, name := range order {
		g := byGroup[name]
		groups = append(groups, *g)
		need += g.slots
		parts = append(parts, fmt.Sprintf("%s %d", name, g.slots))
	}
	if p.cfg.MaxSlots > 0 && need > p.cfg.MaxSlots {
		why := "max_slots"
		if p.cfg.Provider == ProviderProcess {
			why = fmt.Sprintf("%d workers of %d slots", p.cfg.MaxWorkers, p.cfg.SlotsPerWorker)
		}
		return fmt.Errorf("%w: job %s needs %d slots (by slot sharing group: %s), more than the cluster can ever have (%d: %s); lower its parallelism or raise the cluster's limit",
			ErrUnsatisfiable, e.Job, need, strings.Join(parts, ", "), p.cfg.MaxSlots, why)
	}
	for _, q := range p.pending {
		if q.Job == e.Job && q.Attempt >= e.Attempt {
			return fmt.Errorf("%w: job %s attempt %d is already waiting for slots (attempt %d)", ErrBadRequest, e.Job, e.Attempt, q.Attempt)
		}
	}
	for _, w := range p.workers {
		for _, h := range w.slots {
			if h.job == e.Job && h.attempt >= e.Attempt {
				return fmt.Errorf("%w: job %s attempt %d already holds slots of attempt %d", ErrBadRequest, e.Job, e.Attempt, h.attempt)
			}
		}
	}
	p.dropPending(e.Job)
	p.pending = append(p.pending, &pending{Request: e, groups: groups, need: need})
	return nil
}

func (p *Pool) dropPending(job string) {
	keep := p.pending[:0]
	for _, q := range p.pending {
		if q.Job != job {
			keep = append(keep, q)
		}
	}
	p.pending = keep
}

func (p *Pool) release(e Release) {
	only := map[SlotID]bool{}
	for _, s := range e.Slots {
		only[s] = true
	}
	for _, w := range p.workers {
		for i, h := range w.slots {
			if h.job != e.Job || h.attempt != e.Attempt || (e.Slots != nil && !only[SlotID{w.id, i}]) {
				continue
			}
			w.slots[i] = holder{}
			if w.used() == 0 {
				w.idleSince = p.now
			}
		}
	}
}

// reconcile serves waiting requests, then (process provider) starts or
// stops workers.
func (p *Pool) reconcile() []Action {
	var acts []Action
	// First fit in arrival order: a small request is not held up behind a
	// large one that does not fit yet. The price: a large request can wait
	// while small ones keep taking the slots it needs.
	keep := p.pending[:0]
	for _, q := range p.pending {
		if q.need <= p.freeSlots() {
			acts = append(acts, p.allocate(q))
		} else {
			keep = append(keep, q)
		}
	}
	p.pending = keep
	if p.cfg.Provider != ProviderProcess {
		return acts
	}
	demand := 0
	for _, q := range p.pending {
		demand += q.need
	}
	alive := 0
	for _, w := range p.workers {
		if !w.stopping {
			alive++
		}
	}
	supply := p.freeSlots() + len(p.starting)*p.cfg.SlotsPerWorker
	n := 0
	if demand > supply {
		n = (demand - supply + p.cfg.SlotsPerWorker - 1) / p.cfg.SlotsPerWorker
	}
	n = max(n, p.cfg.MinWorkers-alive-len(p.starting))
	n = min(n, p.cfg.MaxWorkers-alive-len(p.starting))
	if n > 0 && p.now >= p.retryAt {
		for range n {
			p.starting = append(p.starting, p.now+p.cfg.StartTimeout)
		}
		acts = append(acts, StartWorkers{N: n, SlotsEach: p.cfg.SlotsPerWorker})
	}
	if demand == 0 {
		for _, id := range p.workerIDs() {
			w := p.workers[id]
			if w.stopping || w.used() > 0 || alive <= p.cfg.MinWorkers {
				continue
			}
			if idle := p.now - w.idleSince; idle >= p.cfg.IdleTimeout {
				w.stopping = true
				alive--
				acts = append(acts, StopWorker{Worker: id, Reason: fmt.Sprintf("idle for %s, timeout %s", idle, p.cfg.IdleTimeout)})
			}
		}
	}
	return acts
}

func (p *Pool) freeSlots() int {
	n := 0
	for _, w := range p.workers {
		n += w.free()
	}
	return n
}

// allocate takes the slots of a request that fits.
func (p *Pool) allocate(q *pending) Action {
	picked := p.pick(q.need)
	a := Allocated{Job: q.Job, Attempt: q.Attempt}
	next := 0
	for _, g := range q.groups {
		group := picked[next : next+g.slots]
		next += g.slots
		for _, t := range g.tasks {
			for i := range t.Parallelism {
				a.Assignments = append(a.Assignments, Assignment{Vertex: t.Vertex, Index: i, Slot: group[i]})
			}
		}
		for _, s := range group {
			p.workers[s.Worker].slots[s.Index] = holder{job: q.Job, attempt: q.Attempt}
		}
	}
	sort.Slice(a.Assignments, func(i, j int) bool {
		x, y := a.Assignments[i], a.Assignments[j]
		if x.Vertex != y.Vertex {
			return x.Vertex < y.Vertex
		}
		return x.Index < y.Index
	})
	return a
}

// pick chooses n free slots by the placement, in the order they are to
// be used.
func (p *Pool) pick(n int) []SlotID {
	free := map[string][]int{} // worker -> free slot indexes, ascending
	for id, w := range p.workers {
		if w.stopping {
			continue
		}
		for i, h := range w.slots {
			if h.job == "" {
				free[id] = append(free[id], i)
			}
		}
	}
	ids := p.workerIDs()
	out := make([]SlotID, 0, n)
	for len(out) < n {
		best := ""
		for _, id := range ids {
			f := len(free[id])
			if f == 0 {
				continue
			}
			if best == "" {
				best = id
				continue
			}
			b := len(free[best])
			used := len(p.workers[id].slots) - f
			bestUsed := len(p.workers[best].slots) - b
			if p.cfg.Placement == PlacementSpread && f > b ||
				p.cfg.Placement == PlacementPack && used > bestUsed {
				best = id
			}
		}
		out = append(out, SlotID{best, free[best][0]})
		free[best] = free[best][1:]
	}
	return out
}

// Waiting describes a request waiting for slots.
type Waiting struct {
	Job      string `json:"job"`
	Attempt  int    `json:"attempt"`
	Need     int    `json:"need"`     // slots the request needs
	Free     int    `json:"free"`     // slots free in the cluster now
	Starting int    `json:"starting"` // workers started and not registered yet
	// StartError is why starting a worker failed last (process
	// provider), "" when none failed since a worker registered.
	StartError string `json:"start_error,omitempty"`
}

// String says what the job waits for: "waiting for 3 slots, 1 free".
func (w Waiting) String() string {
	s := fmt.Sprintf("waiting for %d slots, %d free", w.Need, w.Free)
	if w.Starting > 0 {
		s += fmt.Sprintf(", %d workers starting", w.Starting)
	}
	if w.StartError != "" {
		s += "; starting a worker failed: " + w.StartError
	}
	return s
}

// Pending returns the waiting requests in arrival order.
func (p *Pool) Pending() []Waiting {
	out := make([]Waiting, 0, len(p.pending))
	for _, q := range p.pending {
		out = append(out, Waiting{Job: q.Job, Attempt: q.Attempt, Need: q.need, Free: p.freeSlots(), Starting: len(p.starting), StartError: p.startErr})
	}
	return out
}

// WaitingFor returns the job's waiting request, if it has one.
func (p *Pool) WaitingFor(job string) (Waiting, bool) {
	for _, w := range p.Pending() {
		if w.Job == job {
			return w, true
		}
	}
	return Waiting{}, false
}

// WorkerInfo describes a registered worker.
type WorkerInfo struct {
	ID            string        `json:"id"`
	Address       string        `json:"address"`
	Slots         int           `json:"slots"`
	Used          int           `json:"used"`
	LastHeartbeat time.Duration `json:"last_heartbeat"` // monotonic time of it
	Stopping      bool          `json:"stopping"`
	// Jobs holds the job of each slot by index, "" for a free one.
	Jobs []string `json:"jobs"`
}

// Workers returns the registered workers by id.
func (p *Pool) Workers() []WorkerInfo {
	var out []WorkerInfo
	for _, id := range p.workerIDs() {
		w := p.workers[id]
		info := WorkerInfo{ID: id, Address: w.address, Slots: len(w.slots), Used: w.used(), LastHeartbeat: w.lastHeartbeat, Stopping: w.stopping}
		for _, h := range w.slots {
			info.Jobs = append(info.Jobs, h.job)
		}
		out = append(out, info)
	}
	return out
}

// Address returns a registered worker's address.
func (p *Pool) Address(worker string) (string, bool) {
	w := p.workers[worker]
	if w == nil {
		return "", false
	}
	return w.address, true
}

func sortSlots(s []SlotID) {
	sort.Slice(s, func(i, j int) bool {
		if s[i].Worker != s[j].Worker {
			return s[i].Worker < s[j].Worker
		}
		return s[i].Index < s[j].Index
	})
}
