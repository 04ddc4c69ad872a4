// Package checkpoint is the checkpoint coordinator of one job: it decides
// when checkpoints and savepoints start, collects the subtasks'
// acknowledgements, aborts what times out or fails, completes what every
// subtask acknowledged, notifies the tasks (two-phase-commit sinks commit
// then), discards checkpoints beyond the retained count, and fails the job
// when more checkpoints fail in a row than it tolerates.
//
// A Coordinator is a deterministic core: a plain value driven by events
// (Step) that returns actions, with no goroutine, clock, timer or I/O
// inside. Time enters as the Now of events (monotonic); the caller sends a
// Tick at Next and carries out the actions: injecting barriers at sources,
// writing metadata (answered by Persisted or StorageFailed), deleting
// files.
//
// A checkpoint goes through
//
//	triggered -> (every subtask acknowledged) completing -> (metadata written) completed
//
// and may be aborted on the way: by a timeout, a subtask declining it, a
// storage failure, a task failing (the job restarts), or a newer checkpoint
// completing first (subsumed). Only completed checkpoints count, and a
// checkpoint is reported complete to the tasks (NotifyComplete) only once
// its metadata is durable, so a sink never commits what a recovery could
// replay.
package checkpoint

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/weirstream/weir/coordinator/jobspec"
	"github.com/weirstream/weir/internal/barrier"
)

var (
	// ErrInvalid is returned by New for a Config or Topology that does not
	// validate; jobspec.Parse refuses such specs, so seeing it means a
	// Config built by hand.
	ErrInvalid = errors.New("checkpoint: invalid config")
	// ErrBadEvent is returned by Step for an event that cannot be right
	// whatever the timing (a subtask the job does not have, a checkpoint
	// never triggered, an empty savepoint request id). Nothing changed.
	ErrBadEvent = errors.New("checkpoint: bad event")
)

// maxRequests bounds the savepoint request ids remembered for
// idempotence; the oldest finished ones are forgotten first.
const maxRequests = 1000

// Config configures a Coordinator. jobspec.Checkpoints holds the same
// settings as the spec gave them (see FromSpec).
type Config struct {
	// Interval is the time between the starts of periodic checkpoints; 0
	// takes none (savepoints only).
	Interval time.Duration
	// Timeout aborts a checkpoint not completed this long after its start.
	Timeout time.Duration
	// MinPause is the least time from the end (completed or aborted) of a
	// checkpoint to the start of the next periodic one; more than 0
	// implies one at a time.
	MinPause time.Duration
	// MaxConcurrent bounds the periodic checkpoints in progress at once.
	MaxConcurrent int
	// TolerableFailures is how many checkpoints may fail in a row; one
	// more fails the job.
	TolerableFailures int
	// Mode is the barrier mode of periodic checkpoints (savepoints are
	// always aligned).
	Mode barrier.Mode
	// AlignmentTimeout (aligned mode only) is what tasks get to switch a
	// checkpoint to unaligned; the coordinator passes it on.
	AlignmentTimeout time.Duration
	// Retained is how many completed checkpoints are kept.
	Retained int
}

// DefaultConfig returns the defaults of a spec's checkpoints block, with
// Interval 0 (no periodic checkpoints).
func DefaultConfig() Config {
	return Config{
		Timeout:       jobspec.DefaultCheckpointTimeout,
		MaxConcurrent: jobspec.DefaultCheckpointMaxConcurrent,
		Mode:          jobspec.DefaultCheckpointMode,
		Retained:      jobspec.DefaultCheckpointRetained,
	}
}

// FromSpec returns the Config of a parsed spec's checkpoints block.
func FromSpec(c jobspec.Checkpoints) Config {
	return Config{
		Interval: c.Interval, Timeout: c.Timeout, MinPause: c.MinPause, MaxConcurrent: c.MaxConcurrent,
		TolerableFailures: c.TolerableFailures, Mode: c.Mode, AlignmentTimeout: c.AlignmentTimeout, Retained: c.Retained,
	}
}

// Validate reports what is wrong with c: the rules of the spec's
// checkpoints block, for a Config built another way.
func (c Config) Validate() error {
	var why string
	switch {
	case c.Interval != 0 && c.Interval < jobspec.MinCheckpointInterval:
		why = fmt.Sprintf("interval %s; want 0 (none) or at least %s", c.Interval, jobspec.MinCheckpointInterval)
	case c.Timeout <= 0:
		why = fmt.Sprintf("timeout %s; want more than 0", c.Timeout)
	case c.MinPause < 0:
		why = fmt.Sprintf("min pause %s; want 0 or more", c.MinPause)
	case c.MaxConcurrent < 1 || c.MaxConcurrent > jobspec.MaxCheckpointConcurrent:
		why = fmt.Sprintf("max concurrent %d; want 1 to %d", c.MaxConcurrent, jobspec.MaxCheckpointConcurrent)
	case c.MinPause > 0 && c.MaxConcurrent > 1:
		why = fmt.Sprintf("min pause %s with max concurrent %d; a min pause implies one at a time", c.MinPause, c.MaxConcurrent)
	case c.TolerableFailures < 0:
		why = fmt.Sprintf("tolerable failures %d; want 0 or more", c.TolerableFailures)
	case !c.Mode.Valid():
		why = fmt.Sprintf("mode %q; want aligned, unaligned or at-least-once", c.Mode)
	case c.AlignmentTimeout < 0 || c.AlignmentTimeout > 0 && c.Mode != barrier.Aligned:
		why = fmt.Sprintf("alignment timeout %s in mode %s; want 0, or more in mode aligned", c.AlignmentTimeout, c.Mode)
	case c.Retained < 1 || c.Retained > jobspec.MaxCheckpointsRetained:
		why = fmt.Sprintf("retained %d; want 1 to %d", c.Retained, jobspec.MaxCheckpointsRetained)
	default:
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalid, why)
}

// Subtask names a subtask: its vertex (task) and index, as the execution
// graph numbers them.
type Subtask struct {
	Vertex int
	Index  int
}

// String is "vertex[index]".
func (s Subtask) String() string { return fmt.Sprintf("%d[%d]", s.Vertex, s.Index) }

func less(a, b Subtask) bool {
	return a.Vertex < b.Vertex || a.Vertex == b.Vertex && a.Index < b.Index
}

// Topology is who takes part in the job's checkpoints.
type Topology struct {
	// Subtasks are every subtask of the job: each acknowledges every
	// checkpoint.
	Subtasks []Subtask
	// Sources are the subtasks barriers are injected at; each is one of
	// Subtasks.
	Sources []Subtask
	// FirstID is the id of the first checkpoint, above those an earlier
	// run of the job left in its storage (0 means 1).
	FirstID uint64
}

// Handle is one piece of state a subtask wrote for a checkpoint: a file
// (or object) and its size.
type Handle struct {
	Path string
	Size int64
}

// Ack is one subtask's acknowledgement, as Complete carries it.
type Ack struct {
	Subtask Subtask
	Handles []Handle
	// Ended is true for a subtask that had ended its input when it
	// snapshotted: Handles are its final state.
	Ended bool
}

// Events.
type (
	// Event is what Step takes. Now is the monotonic time it happened.
	Event interface{ isEvent() }

	// JobRunning: every subtask of Attempt (1 for the first run, then
	// one more per restart) runs; checkpoints may start, the first
	// periodic one Interval after Now. Checkpoints of earlier attempts
	// still pending are aborted.
	JobRunning struct {
		Now     time.Duration
		Attempt int
	}
	// TaskFailed: a subtask failed (or its worker was lost): pending
	// checkpoints are aborted and none starts until the next JobRunning.
	// It does not count against tolerable failures: the restart strategy
	// deals with the job's failure.
	TaskFailed struct {
		Now     time.Duration
		Subtask Subtask
		Reason  string
	}
	// TaskEnded: Subtask (of Attempt) ended its input, all of it
	// processed. It stays deployed and takes part in every later
	// checkpoint, snapshotting its final state when the trigger reaches it
	// (no barrier can). Once every subtask has ended, the final checkpoint
	// starts at once (whatever the interval, even 0, and min pause): the
	// first to complete with every acknowledgement Ended is Final, and
	// then the tasks end and no checkpoint starts. An ack with Ended says
	// the same of its subtask. A TaskEnded of an attempt not running yet
	// counts once its JobRunning comes (a subtask may end before every
	// other one runs).
	TaskEnded struct {
		Now     time.Duration
		Subtask Subtask
		Attempt int
	}
	// Tick lets time pass: timeouts expire and periodic checkpoints
	// start. Send it at Next (a Tick at any other time is harmless).
	Tick struct{ Now time.Duration }
	// TaskAck: Subtask (of Attempt) snapshotted Checkpoint and uploaded
	// its state, Handles; Ended when it had ended its input (TaskEnded).
	TaskAck struct {
		Now        time.Duration
		Checkpoint uint64
		Subtask    Subtask
		Attempt    int
		Handles    []Handle
		Ended      bool
	}
	// TaskDeclined: Subtask could not take part in Checkpoint (its
	// snapshot failed, or it aborted the alignment).
	TaskDeclined struct {
		Now        time.Duration
		Checkpoint uint64
		Subtask    Subtask
		Attempt    int
		Reason     string
	}
	// Persisted answers Complete: Checkpoint's metadata is durable.
	Persisted struct {
		Now        time.Duration
		Checkpoint uint64
	}
	// StorageFailed: writing Checkpoint's files or metadata failed (a
	// full or unwritable folder, a lost object store).
	StorageFailed struct {
		Now        time.Duration
		Checkpoint uint64
		Err        string
	}
	// Stopped: the job ended (or its coordinator stopped): nothing
	// pending can complete. Each pending checkpoint is aborted (a
	// savepoint's request fails, for Reason), and nothing starts again.
	Stopped struct {
		Now    time.Duration
		Reason string
	}
	// SavepointRequested asks for a savepoint into Dir. RequestID makes
	// it idempotent: a repeated id starts nothing (SavepointStatus tells
	// how the first one went).
	SavepointRequested struct {
		Now       time.Duration
		RequestID string
		Dir       string
	}
)

func (JobRunning) isEvent()         {}
func (TaskFailed) isEvent()         {}
func (TaskEnded) isEvent()          {}
func (Tick) isEvent()               {}
func (TaskAck) isEvent()            {}
func (TaskDeclined) isEvent()       {}
func (Persisted) isEvent()          {}
func (StorageFailed) isEvent()      {}
func (SavepointRequested) isEvent() {}
func (Stopped) isEvent()            {}

// Actions.
type (
	// Action is what Step returns for the JobManager to carry out, in
	// order.
	Action interface {
		isAction()
		String() string
	}

	// TriggerCheckpoint: inject the barrier of ID at every one of Sources
	// (of Attempt), and tell every subtask that ended its input to
	// snapshot directly.
	TriggerCheckpoint struct {
		ID        uint64
		Attempt   int
		Timestamp time.Duration // the Now it started at
		Mode      barrier.Mode
		// AlignmentTimeout is Config.AlignmentTimeout for the tasks (0 for
		// savepoints and other modes).
		AlignmentTimeout time.Duration
		Savepoint        bool
		RequestID        string // of the savepoint request
		Dir              string // of the savepoint
		Sources          []Subtask
	}
	// AbortCheckpoint: ID is given up: tell the tasks (they stop aligning
	// and drop its snapshots) and delete its files. For a savepoint,
	// RequestID's requester learns it failed, for Reason.
	AbortCheckpoint struct {
		ID        uint64
		Reason    string
		Savepoint bool
		RequestID string
	}
	// Complete: every subtask acknowledged ID: write its metadata (last,
	// atomically) naming Acks; answer with Persisted or StorageFailed.
	// Final says every subtask had ended its input (every Ack is Ended).
	Complete struct {
		ID        uint64
		Timestamp time.Duration
		Savepoint bool
		RequestID string
		Dir       string
		Acks      []Ack // by subtask
		Final     bool
	}
	// NotifyComplete: checkpoint ID is complete and durable: tell every
	// task (two-phase-commit sinks commit what they pre-committed up to
	// it). Savepoints get none: what a sink pre-committed at a
	// savepoint's barrier is committed with the next checkpoint, so a
	// recovery from the latest checkpoint never replays committed output.
	// Final: it is the job's final checkpoint; once committed the tasks
	// of Attempt end (a later attempt's take their own final checkpoint).
	NotifyComplete struct {
		ID      uint64
		Attempt int
		Final   bool
	}
	// Discard: completed checkpoint ID is beyond the retained count:
	// delete its files (shared files by their reference counts).
	Discard struct{ ID uint64 }
	// DiscardState: Handles of Subtask for Checkpoint are not part of any
	// checkpoint (an acknowledgement that came after the checkpoint was
	// aborted): delete them.
	DiscardState struct {
		Checkpoint uint64
		Subtask    Subtask
		Handles    []Handle
	}
	// RefuseSavepoint: the savepoint of RequestID cannot start, for
	// Reason (the job is not running); the request may be retried.
	RefuseSavepoint struct {
		RequestID string
		Reason    string
	}
	// FailJob: more checkpoints failed in a row than tolerated: fail the
	// job (its restart strategy decides what follows); no checkpoint
	// starts until the next JobRunning.
	FailJob struct{ Reason string }
)

func (TriggerCheckpoint) isAction() {}
func (AbortCheckpoint) isAction()   {}
func (Complete) isAction()          {}
func (NotifyComplete) isAction()    {}
func (Discard) isAction()           {}
func (DiscardState) isAction()      {}
func (RefuseSavepoint) isAction()   {}
func (FailJob) isAction()           {}

func subtasks(s []Subtask) string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = x.String()
	}
	return strings.Join(out, " ")
}

func (a TriggerCheckpoint) String() string {
	kind := "checkpoint"
	if a.Savepoint {
		kind = fmt.Sprintf("savepoint (request %s, dir %s)", a.RequestID, a.Dir)
	}
	mode := string(a.Mode)
	if a.AlignmentTimeout > 0 {
		mode += fmt.Sprintf(", alignment timeout %s", a.AlignmentTimeout)
	}
	return fmt.Sprintf("trigger %s %d at %s, attempt %d, %s, sources [%s]", kind, a.ID, a.Timestamp, a.Attempt, mode, subtasks(a.Sources))
}
func (a AbortCheckpoint) String() string {
	if a.Savepoint {
		return fmt.Sprintf("abort savepoint %d (request %s): %s", a.ID, a.RequestID, a.Reason)
	}
	return fmt.Sprintf("abort %d: %s", a.ID, a.Reason)
}
func (a Complete) String() string {
	var size int64
	n, ended := 0, ""
	for _, ack := range a.Acks {
		for _, h := range ack.Handles {
			size += h.Size
			n++
		}
		if ack.Ended && !a.Final {
			ended += " " + ack.Subtask.String()
		}
	}
	switch {
	case a.Final:
		ended = ", final"
	case ended != "":
		ended = ", ended:" + ended
	}
	kind := "checkpoint"
	if a.Savepoint {
		kind = fmt.Sprintf("savepoint (request %s, dir %s)", a.RequestID, a.Dir)
	}
	return fmt.Sprintf("complete %s %d: write metadata, %d acks, %d handles, %d bytes%s", kind, a.ID, len(a.Acks), n, size, ended)
}
func (a NotifyComplete) String() string {
	if a.Final {
		return fmt.Sprintf("notify complete %d, final: the tasks end", a.ID)
	}
	return fmt.Sprintf("notify complete %d", a.ID)
}
func (a Discard) String() string { return fmt.Sprintf("discard %d", a.ID) }
func (a DiscardState) String() string {
	paths := make([]string, len(a.Handles))
	for i, h := range a.Handles {
		paths[i] = h.Path
	}
	return fmt.Sprintf("discard state of %s for %d: %s", a.Subtask, a.Checkpoint, strings.Join(paths, " "))
}
func (a RefuseSavepoint) String() string {
	return fmt.Sprintf("refuse savepoint request %s: %s", a.RequestID, a.Reason)
}
func (a FailJob) String() string { return "fail job: " + a.Reason }

// SavepointState is how a savepoint request went.
type SavepointState string

// Savepoint states.
const (
	SavepointPending   SavepointState = "pending"
	SavepointCompleted SavepointState = "completed"
	SavepointFailed    SavepointState = "failed"
)

// SavepointInfo is what SavepointStatus reports about a request.
type SavepointInfo struct {
	ID     uint64
	Dir    string
	State  SavepointState
	Reason string // why it failed
	// Attempt is the job attempt the savepoint was taken of.
	Attempt int
}

// pending is a checkpoint in progress.
type pending struct {
	id        uint64
	at        time.Duration
	savepoint bool
	request   string
	dir       string
	acks      map[Subtask]Ack
	// completing is true once every subtask acknowledged (Complete was
	// returned) and the metadata is being written; final when every
	// acknowledgement was Ended.
	completing, final bool
}

// Coordinator runs one job's checkpoints. It is not safe for concurrent
// use: the job's goroutine owns it.
type Coordinator struct {
	cfg      Config
	subtasks map[Subtask]bool
	sources  []Subtask

	running bool
	attempt int
	ended   map[Subtask]bool // subtasks of the running attempt that ended their input
	// early holds end notices of an attempt not yet running (a subtask
	// may end before every other runs), by subtask: the attempt.
	early map[Subtask]int
	// finalAt is when the final checkpoint is due once every subtask has
	// ended (set when the last one does; after a failed one, later);
	// final is true once it completed: the job is ending.
	finalAt time.Duration
	final   bool
	last    time.Duration // latest Now seen; time never goes back

	nextID  uint64        // the id of the next checkpoint or savepoint
	nextDue time.Duration // when the next periodic checkpoint is due
	lastEnd time.Duration // when the latest checkpoint ended, for MinPause
	hasEnd  bool          // lastEnd is set

	pending   []*pending // by id
	completed []uint64   // retained checkpoint ids, oldest first
	failures  int        // checkpoints failed in a row

	requests map[string]*SavepointInfo
	order    []string // request ids, oldest first
}

// New returns the coordinator of a job with topo, idle until JobRunning.
func New(cfg Config, topo Topology) (*Coordinator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Coordinator{cfg: cfg, subtasks: map[Subtask]bool{}, nextID: 1, requests: map[string]*SavepointInfo{}}
	for _, s := range topo.Subtasks {
		if c.subtasks[s] {
			return nil, fmt.Errorf("%w: subtask %s listed twice", ErrInvalid, s)
		}
		c.subtasks[s] = true
	}
	if len(c.subtasks) == 0 || len(topo.Sources) == 0 {
		return nil, fmt.Errorf("%w: %d subtasks, %d sources; want at least one of each", ErrInvalid, len(c.subtasks), len(topo.Sources))
	}
	seen := map[Subtask]bool{}
	for _, s := range topo.Sources {
		if !c.subtasks[s] || seen[s] {
			return nil, fmt.Errorf("%w: source %s is not a subtask or listed twice", ErrInvalid, s)
		}
		seen[s] = true
	}
	c.sources = slices.Clone(topo.Sources)
	if topo.FirstID > 0 {
		c.nextID = topo.FirstID
	}
	sort.Slice(c.sources, func(i, j int) bool { return less(c.sources[i], c.sources[j]) })
	return c, nil
}

// Completed returns the retained completed checkpoints, oldest first: the
// last is the one to recover from.
func (c *Coordinator) Completed() []uint64 { return slices.Clone(c.completed) }

// Ended returns how many subtasks of the running attempt ended their
// input and wait for the final checkpoint (0 once it completed, or when
// no attempt runs), and how many the job has.
func (c *Coordinator) Ended() (ended, subtasks int) {
	if !c.running || c.final {
		return 0, len(c.subtasks)
	}
	return len(c.ended), len(c.subtasks)
}

// Pending returns the checkpoints and savepoints in progress, by id.
func (c *Coordinator) Pending() []uint64 {
	out := make([]uint64, len(c.pending))
	for i, p := range c.pending {
		out[i] = p.id
	}
	return out
}

// SavepointStatus reports how the savepoint request id went; false when
// the id is unknown (never seen, refused, or forgotten long after).
func (c *Coordinator) SavepointStatus(id string) (SavepointInfo, bool) {
	info, ok := c.requests[id]
	if !ok {
		return SavepointInfo{}, false
	}
	return *info, true
}

// Next returns when the next Tick is needed (the earliest timeout or due
// periodic checkpoint), and false when no Tick is (the job is not running
// and nothing is pending).
func (c *Coordinator) Next() (time.Duration, bool) {
	var at time.Duration
	ok := false
	take := func(t time.Duration) {
		if !ok || t < at {
			at, ok = t, true
		}
	}
	for _, p := range c.pending {
		take(p.at + c.cfg.Timeout)
	}
	switch {
	case !c.running || c.final:
	case c.allEnded():
		if c.periodicPending() == 0 {
			take(c.finalAt)
		}
	case c.cfg.Interval > 0:
		due := c.nextDue
		if c.cfg.MinPause > 0 && c.hasEnd {
			due = max(due, c.lastEnd+c.cfg.MinPause)
		}
		if c.periodicPending() < c.cfg.MaxConcurrent && (c.cfg.MinPause == 0 || c.periodicPending() == 0) {
			take(due)
		}
	}
	return at, ok
}

func (c *Coordinator) periodicPending() int {
	n := 0
	for _, p := range c.pending {
		if !p.savepoint {
			n++
		}
	}
	return n
}

func (c *Coordinator) find(id uint64) *pending {
	for _, p := range c.pending {
		if p.id == id {
			return p
		}
	}
	return nil
}

// Step applies one event and returns what to do, in order. On error (an
// ErrBadEvent) nothing changed.
func (c *Coordinator) Step(ev Event) ([]Action, error) {
	switch e := ev.(type) {
	case JobRunning:
		if e.Attempt <= c.attempt {
			return nil, fmt.Errorf("%w: job running as attempt %d, but attempt %d ran already", ErrBadEvent, e.Attempt, c.attempt)
		}
		now := c.clock(e.Now)
		out := c.abortAll(nil, fmt.Sprintf("the job restarted as attempt %d", e.Attempt))
		c.running, c.attempt, c.failures, c.ended, c.final = true, e.Attempt, 0, map[Subtask]bool{}, false
		c.nextDue = now + c.cfg.Interval
		for s, a := range c.early {
			if a == e.Attempt {
				c.markEnded(s, now)
			}
			if a <= e.Attempt {
				delete(c.early, s)
			}
		}
		return out, nil
	case TaskEnded:
		if !c.subtasks[e.Subtask] {
			return nil, fmt.Errorf("ended: %w: the job has no subtask %s", ErrBadEvent, e.Subtask)
		}
		now := c.clock(e.Now)
		switch {
		case e.Attempt == c.attempt && c.running:
			c.markEnded(e.Subtask, now)
		case e.Attempt > c.attempt:
			if c.early == nil {
				c.early = map[Subtask]int{}
			}
			c.early[e.Subtask] = max(c.early[e.Subtask], e.Attempt)
		}
		return nil, nil
	case TaskFailed:
		c.clock(e.Now)
		c.running = false
		return c.abortAll(nil, fmt.Sprintf("task %s failed: %s", e.Subtask, e.Reason)), nil
	case Tick:
		return c.tick(c.clock(e.Now)), nil
	case TaskAck:
		return c.ack(e)
	case TaskDeclined:
		if err := c.checkFrom(e.Checkpoint, e.Subtask); err != nil {
			return nil, fmt.Errorf("decline: %w", err)
		}
		now := c.clock(e.Now)
		p := c.find(e.Checkpoint)
		if p == nil || p.completing || e.Attempt != c.attempt {
			return nil, nil // late: the checkpoint ended already
		}
		return c.fail(nil, p, now, fmt.Sprintf("subtask %s declined: %s", e.Subtask, e.Reason)), nil
	case Persisted:
		if err := c.check(e.Checkpoint); err != nil {
			return nil, fmt.Errorf("persisted: %w", err)
		}
		return c.persisted(c.clock(e.Now), e.Checkpoint), nil
	case StorageFailed:
		if err := c.check(e.Checkpoint); err != nil {
			return nil, fmt.Errorf("storage failed: %w", err)
		}
		now := c.clock(e.Now)
		p := c.find(e.Checkpoint)
		if p == nil {
			return nil, nil
		}
		return c.fail(nil, p, now, "storage failed: "+e.Err), nil
	case SavepointRequested:
		return c.savepoint(e)
	case Stopped:
		c.clock(e.Now)
		c.running = false
		return c.abortAll(nil, e.Reason), nil
	}
	return nil, fmt.Errorf("%w: unknown event %T", ErrBadEvent, ev)
}

// clock returns now, or the latest time seen if now is before it.
func (c *Coordinator) clock(now time.Duration) time.Duration {
	c.last = max(c.last, now)
	return c.last
}

// check refuses a checkpoint id never handed out.
func (c *Coordinator) check(id uint64) error {
	if id == 0 || id >= c.nextID {
		return fmt.Errorf("%w: checkpoint %d was never triggered (the latest is %d)", ErrBadEvent, id, c.nextID-1)
	}
	return nil
}

// checkFrom refuses, besides what check does, a subtask the job does not
// have.
func (c *Coordinator) checkFrom(id uint64, s Subtask) error {
	if !c.subtasks[s] {
		return fmt.Errorf("%w: the job has no subtask %s", ErrBadEvent, s)
	}
	return c.check(id)
}

func (c *Coordinator) tick(now time.Duration) []Action {
	var out []Action
	for _, p := range slices.Clone(c.pending) {
		if now < p.at+c.cfg.Timeout || c.find(p.id) == nil {
			continue
		}
		why := fmt.Sprintf("timed out after %s with %d of %d subtasks acknowledged%s", c.cfg.Timeout, len(p.acks), len(c.subtasks), c.missing(p))
		if p.completing {
			why = fmt.Sprintf("timed out after %s while its metadata was written", c.cfg.Timeout)
		}
		out = c.fail(out, p, now, why)
	}
	if c.running && !c.final && c.allEnded() {
		if c.periodicPending() > 0 || now < c.finalAt {
			return out
		}
		c.finalAt = maxDuration // until it fails
		return append(out, c.trigger(now, false, "", ""))
	}
	if !c.running || c.final || c.cfg.Interval == 0 || now < c.nextDue {
		return out
	}
	n := c.periodicPending()
	if n >= c.cfg.MaxConcurrent || c.cfg.MinPause > 0 && (n > 0 || c.hasEnd && now < c.lastEnd+c.cfg.MinPause) {
		return out // due, but waits for a slot or the pause
	}
	c.nextDue = now + c.cfg.Interval
	return append(out, c.trigger(now, false, "", ""))
}

// missing lists, for messages, the first subtasks that have not
// acknowledged p.
func (c *Coordinator) missing(p *pending) string {
	var miss []Subtask
	for s := range c.subtasks {
		if _, ok := p.acks[s]; !ok {
			miss = append(miss, s)
		}
	}
	if len(miss) == 0 {
		return ""
	}
	sort.Slice(miss, func(i, j int) bool { return less(miss[i], miss[j]) })
	more := ""
	if len(miss) > 5 {
		more = fmt.Sprintf(" and %d more", len(miss)-5)
		miss = miss[:5]
	}
	return fmt.Sprintf(" (waiting for %s%s)", subtasks(miss), more)
}

// maxDuration is a due time that never comes.
const maxDuration = time.Duration(1<<63 - 1)

// allEnded says every subtask of the running attempt ended its input.
func (c *Coordinator) allEnded() bool { return len(c.ended) == len(c.subtasks) }

// markEnded records that s ended its input; when it is the last, the
// final checkpoint is due at once.
func (c *Coordinator) markEnded(s Subtask, now time.Duration) {
	if c.ended[s] {
		return
	}
	c.ended[s] = true
	if c.allEnded() {
		c.finalAt = now
	}
}

func (c *Coordinator) trigger(now time.Duration, savepoint bool, request, dir string) TriggerCheckpoint {
	p := &pending{id: c.nextID, at: now, savepoint: savepoint, request: request, dir: dir, acks: map[Subtask]Ack{}}
	c.nextID++
	c.pending = append(c.pending, p)
	t := TriggerCheckpoint{ID: p.id, Attempt: c.attempt, Timestamp: now, Mode: c.cfg.Mode, Savepoint: savepoint,
		RequestID: request, Dir: dir, Sources: slices.Clone(c.sources)}
	if savepoint {
		t.Mode = barrier.Aligned // a savepoint is self-contained: no in-flight data
	} else if c.cfg.Mode == barrier.Aligned {
		t.AlignmentTimeout = c.cfg.AlignmentTimeout
	}
	return t
}

func (c *Coordinator) ack(e TaskAck) ([]Action, error) {
	if err := c.checkFrom(e.Checkpoint, e.Subtask); err != nil {
		return nil, fmt.Errorf("ack: %w", err)
	}
	c.clock(e.Now)
	p := c.find(e.Checkpoint)
	switch {
	case p == nil && slices.Contains(c.completed, e.Checkpoint):
		return nil, nil // a repeated ack of a completed checkpoint: its state is in use
	case p == nil:
		// Late: the checkpoint was aborted (or discarded); nothing will
		// reference this state.
		if len(e.Handles) == 0 {
			return nil, nil
		}
		return []Action{DiscardState{Checkpoint: e.Checkpoint, Subtask: e.Subtask, Handles: e.Handles}}, nil
	case e.Attempt != c.attempt:
		return nil, nil // a zombie of another attempt: its files are not ours to delete
	case p.completing:
		return nil, nil
	}
	if _, dup := p.acks[e.Subtask]; dup {
		return nil, nil
	}
	p.acks[e.Subtask] = Ack{Subtask: e.Subtask, Handles: slices.Clone(e.Handles), Ended: e.Ended}
	if e.Ended && c.running {
		c.markEnded(e.Subtask, c.last)
	}
	return c.maybeComplete(p), nil
}

// maybeComplete returns Complete once every subtask has acknowledged p.
func (c *Coordinator) maybeComplete(p *pending) []Action {
	if len(p.acks) < len(c.subtasks) {
		return nil
	}
	p.completing = true
	acks := make([]Ack, 0, len(p.acks))
	final := !p.savepoint
	for _, a := range p.acks {
		acks = append(acks, a)
		final = final && a.Ended
	}
	p.final = final
	sort.Slice(acks, func(i, j int) bool { return less(acks[i].Subtask, acks[j].Subtask) })
	return []Action{Complete{ID: p.id, Timestamp: p.at, Savepoint: p.savepoint, RequestID: p.request, Dir: p.dir, Acks: acks, Final: final}}
}

func (c *Coordinator) persisted(now time.Duration, id uint64) []Action {
	p := c.find(id)
	if p == nil || !p.completing {
		return nil // aborted (timed out, subsumed) while its metadata was written
	}
	c.remove(p)
	if p.savepoint {
		c.requests[p.request].State = SavepointCompleted
		return nil
	}
	c.failures = 0
	c.lastEnd, c.hasEnd = now, true
	out := []Action{NotifyComplete{ID: id, Attempt: c.attempt, Final: p.final}}
	if p.final {
		c.final = true
	}
	// Older checkpoints still in progress are subsumed: this one is newer
	// and complete.
	for _, q := range slices.Clone(c.pending) {
		if q.id < id && !q.savepoint {
			c.remove(q)
			out = append(out, AbortCheckpoint{ID: q.id, Reason: fmt.Sprintf("subsumed by checkpoint %d", id)})
		}
	}
	c.completed = append(c.completed, id)
	for len(c.completed) > c.cfg.Retained {
		out = append(out, Discard{ID: c.completed[0]})
		c.completed = c.completed[1:]
	}
	return out
}

func (c *Coordinator) remove(p *pending) {
	c.pending = slices.DeleteFunc(c.pending, func(q *pending) bool { return q == p })
}

// abort ends p without counting a failure.
func (c *Coordinator) abort(out []Action, p *pending, reason string) []Action {
	c.remove(p)
	if p.savepoint {
		info := c.requests[p.request]
		info.State, info.Reason = SavepointFailed, reason
	}
	return append(out, AbortCheckpoint{ID: p.id, Reason: reason, Savepoint: p.savepoint, RequestID: p.request})
}

func (c *Coordinator) abortAll(out []Action, reason string) []Action {
	for _, p := range slices.Clone(c.pending) {
		out = c.abort(out, p, reason)
	}
	return out
}

// fail aborts p for a failure of its own; a periodic checkpoint's failure
// counts, and one more than tolerated fails the job.
func (c *Coordinator) fail(out []Action, p *pending, now time.Duration, reason string) []Action {
	out = c.abort(out, p, reason)
	if p.savepoint {
		return out
	}
	c.lastEnd, c.hasEnd = now, true
	if c.allEnded() && c.finalAt == maxDuration {
		// The final checkpoint failed: the next one after a pause.
		c.finalAt = now + max(c.cfg.Interval, c.cfg.MinPause, time.Second)
	}
	c.failures++
	if c.failures <= c.cfg.TolerableFailures {
		return out
	}
	why := fmt.Sprintf("checkpoints failed in a row: %d, more than tolerable_failures (%d); the last, %d: %s",
		c.failures, c.cfg.TolerableFailures, p.id, reason)
	c.failures, c.running = 0, false
	out = c.abortAll(out, "the job fails: "+why)
	return append(out, FailJob{Reason: why})
}

func (c *Coordinator) savepoint(e SavepointRequested) ([]Action, error) {
	if e.RequestID == "" {
		return nil, fmt.Errorf("%w: a savepoint request needs a request id", ErrBadEvent)
	}
	now := c.clock(e.Now)
	if _, known := c.requests[e.RequestID]; known {
		return nil, nil
	}
	if !c.running {
		return []Action{RefuseSavepoint{RequestID: e.RequestID, Reason: "the job is not running (it is starting, restarting or failing); retry when it runs"}}, nil
	}
	if c.final {
		return []Action{RefuseSavepoint{RequestID: e.RequestID, Reason: "the job took its final checkpoint and is ending"}}, nil
	}
	if len(c.order) == maxRequests {
		// Forget the oldest finished request (a pending one stays).
		for i, id := range c.order {
			if c.requests[id].State != SavepointPending {
				delete(c.requests, id)
				c.order = slices.Delete(c.order, i, i+1)
				break
			}
		}
	}
	t := c.trigger(now, true, e.RequestID, e.Dir)
	c.requests[e.RequestID] = &SavepointInfo{ID: t.ID, Dir: e.Dir, State: SavepointPending, Attempt: c.attempt}
	c.order = append(c.order, e.RequestID)
	return []Action{t}, nil
}
