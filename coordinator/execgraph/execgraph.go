// Package execgraph is the execution graph of one job as a deterministic
// core: the state of every parallel subtask of the current attempt, the
// job's status derived from them, and the decisions the JobManager takes
// on each event — deploy, cancel, stop, release slots, restart the whole
// job after a delay by its restart strategy, or end it.
//
// A Graph is driven by events through Step and answers with actions; it
// holds no clock, socket or goroutine. Time enters as the Now of each
// event (monotonic), and a restart delay comes back as a RestartJob action
// saying when to send the Tick that carries it out.
//
// Subtask states and the transitions allowed between them:
//
//	created   -> scheduled (slot assigned), canceled
//	scheduled -> deploying (worker accepted), running, finished, failed, canceling
//	deploying -> running, finished, failed, canceling
//	running   -> finished, failed, canceling
//	canceling -> canceled (whatever the worker reports as its end)
//	finished, canceled, failed: terminal
//
// A worker may skip states (its heartbeat carries only the latest), so a
// report of running in scheduled is legal; a report going back (running
// to deploying, finished to running) is an error, except that a subtask
// the graph gave up (failed or canceled) and that reports running after
// all is answered with a CancelTask. Reports carry the job
// attempt they belong to: those of an older attempt are ignored, since
// the subtasks they describe were already given up.
//
// Restarts are of the whole job (as this stage of weir restores nothing
// but the start): on the first failure of an attempt the restart policy
// decides; every other subtask is canceled; once all are terminal the
// attempt's slots are released and, after the delay, the next attempt
// asks for slots anew.
package execgraph

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/weirstream/weir/coordinator/restart"
	"github.com/weirstream/weir/coordinator/slots"
)

// Errors Step returns for events it refuses; the graph is unchanged.
var (
	// ErrIllegalTransition: a report that moves a subtask along no legal
	// transition.
	ErrIllegalTransition = errors.New("execgraph: illegal transition")
	// ErrBadEvent: an event naming what the graph does not have (an
	// unknown subtask, an attempt from the future, a wrong assignment).
	ErrBadEvent = errors.New("execgraph: bad event")
	// ErrTerminal: cancel or stop of a job that has ended.
	ErrTerminal = errors.New("execgraph: job has ended")
	// ErrNotRunning: stop of a job whose subtasks are not all running.
	ErrNotRunning = errors.New("execgraph: job is not running")
)

// State is the state of one subtask.
type State uint8

// Subtask states.
const (
	Created State = iota
	Scheduled
	Deploying
	Running
	Finished
	Canceling
	Canceled
	Failed
)

var stateNames = [...]string{"created", "scheduled", "deploying", "running", "finished", "canceling", "canceled", "failed"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", s)
}

// ParseState reads a state by name.
func ParseState(name string) (State, error) {
	for i, n := range stateNames {
		if n == name {
			return State(i), nil
		}
	}
	return 0, fmt.Errorf("%w: unknown subtask state %q; want one of %s", ErrBadEvent, name, strings.Join(stateNames[:], ", "))
}

// MarshalText writes the state's name (for JSON).
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a state's name.
func (s *State) UnmarshalText(b []byte) error {
	v, err := ParseState(string(b))
	*s = v
	return err
}

// Terminal reports whether the state is an end.
func (s State) Terminal() bool { return s == Finished || s == Canceled || s == Failed }

// legal holds the transitions a report or the graph itself may make.
var legal = map[State][]State{
	Created:   {Scheduled, Canceled},
	Scheduled: {Deploying, Running, Finished, Failed, Canceling, Canceled},
	Deploying: {Running, Finished, Failed, Canceling},
	Running:   {Finished, Failed, Canceling},
	Canceling: {Canceled},
}

// CanTransition reports whether a subtask may go from one state to
// another.
func CanTransition(from, to State) bool {
	for _, s := range legal[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Status is the job's status, derived from its subtasks and what was
// asked of it.
type Status string

// Job statuses.
const (
	// StatusCreated: the first attempt waits for its slots.
	StatusCreated Status = "created"
	// StatusRunning: subtasks are being deployed or run.
	StatusRunning Status = "running"
	// StatusFinishing: some subtasks have finished (bounded input, or
	// after a stop) and none failed; the rest are winding down.
	StatusFinishing Status = "finishing"
	StatusFinished  Status = "finished"
	// StatusFailing: a failure the restart strategy gave up on; the other
	// subtasks are being canceled.
	StatusFailing   Status = "failing"
	StatusFailed    Status = "failed"
	StatusCanceling Status = "canceling"
	StatusCanceled  Status = "canceled"
	// StatusRestarting: after a failure, the subtasks of the attempt are
	// being canceled or the restart delay runs.
	StatusRestarting Status = "restarting"
)

// Terminal reports whether the status is an end.
func (s Status) Terminal() bool {
	return s == StatusFinished || s == StatusFailed || s == StatusCanceled
}

// SubtaskID names a subtask: its vertex and index.
type SubtaskID struct {
	Vertex int `json:"vertex"`
	Index  int `json:"index"`
}

// Events.
type (
	// Event is what Step takes. Now is the monotonic time it happened.
	Event interface{ isEvent() }

	// Start begins the first attempt: the graph asks for slots.
	Start struct{ Now time.Duration }
	// SlotsAssigned gives the attempt its slots, one per subtask (as
	// slots.Allocated carries them).
	SlotsAssigned struct {
		Now         time.Duration
		Attempt     int
		Assignments []slots.Assignment
	}
	// SlotRequestFailed: the slot pool refused the attempt's request
	// (slots.ErrUnsatisfiable); no restart can cure it.
	SlotRequestFailed struct {
		Now     time.Duration
		Attempt int
		Reason  string
	}
	// Deployed answers a Deploy: the worker accepted the descriptor (Err
	// "") or refused it.
	Deployed struct {
		Now     time.Duration
		Subtask SubtaskID
		Attempt int
		Err     string
	}
	// TaskState is a subtask's state as its worker reports it: deploying,
	// running, finished, canceled or failed (with Cause).
	TaskState struct {
		Now     time.Duration
		Subtask SubtaskID
		Attempt int
		State   State
		Cause   string
	}
	// WorkerLost: the worker is gone; its subtasks fail, and the graph
	// does not release their slots. Send it for a slots.WorkerLost naming
	// the job (so the pool has dropped those slots already); a worker
	// seen to die otherwise goes to the pool first, as slots.Unregister.
	WorkerLost struct {
		Now    time.Duration
		Worker string
		Reason string
	}
	// Cancel asks the job to end now: every subtask is canceled.
	Cancel struct{ Now time.Duration }
	// Stop asks the job to end gracefully: its sources end and the rest
	// drain and finish.
	Stop struct{ Now time.Duration }
	// Tick lets a restart delay end; send it at RestartJob.At.
	Tick struct{ Now time.Duration }
)

func (Start) isEvent()             {}
func (SlotsAssigned) isEvent()     {}
func (SlotRequestFailed) isEvent() {}
func (Deployed) isEvent()          {}
func (TaskState) isEvent()         {}
func (WorkerLost) isEvent()        {}
func (Cancel) isEvent()            {}
func (Stop) isEvent()              {}
func (Tick) isEvent()              {}

// Actions.
type (
	// Action is what Step returns for the JobManager to carry out.
	Action interface {
		isAction()
		String() string
	}

	// RequestSlots asks the slot pool for the attempt's slots
	// (slots.Request with these tasks).
	RequestSlots struct {
		Attempt int
		Tasks   []slots.Task
	}
	// WithdrawSlotRequest withdraws the attempt's waiting request
	// (slots.CancelRequest).
	WithdrawSlotRequest struct{ Attempt int }
	// Deploy sends the subtask's descriptor to the worker of Slot; answer
	// with Deployed.
	Deploy struct {
		Subtask SubtaskID
		Name    string // "vertex name[index]", for logs
		Attempt int
		Slot    slots.SlotID
	}
	// CancelTask asks the worker of Slot to cancel the subtask; it
	// reports canceled when done.
	CancelTask struct {
		Subtask SubtaskID
		Name    string
		Attempt int
		Slot    slots.SlotID
	}
	// StopTask asks the worker of Slot to end a source subtask's input,
	// so it and everything downstream finish.
	StopTask struct {
		Subtask SubtaskID
		Name    string
		Attempt int
		Slot    slots.SlotID
	}
	// ReleaseSlots gives the attempt's slots back (slots.Release). Slots
	// of lost workers are left out.
	ReleaseSlots struct {
		Attempt int
		Slots   []slots.SlotID
	}
	// RestartJob: the job restarts as Attempt after Delay; send a Tick at
	// (or after) At.
	RestartJob struct {
		Attempt int
		Delay   time.Duration
		At      time.Duration
	}
	// JobTerminal: the job has ended with Status, for Reason.
	JobTerminal struct {
		Status Status
		Reason string
	}
)

func (RequestSlots) isAction()        {}
func (WithdrawSlotRequest) isAction() {}
func (Deploy) isAction()              {}
func (CancelTask) isAction()          {}
func (StopTask) isAction()            {}
func (ReleaseSlots) isAction()        {}
func (RestartJob) isAction()          {}
func (JobTerminal) isAction()         {}

func (a RequestSlots) String() string {
	n := 0
	for _, t := range a.Tasks {
		n += t.Parallelism
	}
	return fmt.Sprintf("request slots for attempt %d (%d subtasks)", a.Attempt, n)
}
func (a WithdrawSlotRequest) String() string {
	return fmt.Sprintf("withdraw slot request of attempt %d", a.Attempt)
}
func (a Deploy) String() string {
	return fmt.Sprintf("deploy %s attempt %d to %s", a.Name, a.Attempt, a.Slot)
}
func (a CancelTask) String() string {
	return fmt.Sprintf("cancel %s attempt %d on %s", a.Name, a.Attempt, a.Slot)
}
func (a StopTask) String() string {
	return fmt.Sprintf("stop %s attempt %d on %s", a.Name, a.Attempt, a.Slot)
}
func (a ReleaseSlots) String() string {
	s := make([]string, len(a.Slots))
	for i, x := range a.Slots {
		s[i] = x.String()
	}
	return fmt.Sprintf("release slots of attempt %d [%s]", a.Attempt, strings.Join(s, " "))
}
func (a RestartJob) String() string {
	return fmt.Sprintf("restart as attempt %d after %s (at %s)", a.Attempt, a.Delay, a.At)
}
func (a JobTerminal) String() string {
	if a.Reason == "" {
		return fmt.Sprintf("job %s", a.Status)
	}
	return fmt.Sprintf("job %s: %s", a.Status, a.Reason)
}

// phase is what the job is doing, beside its subtasks' states.
type phase uint8

const (
	phaseRunning    phase = iota // deploying or running the attempt
	phaseStopping                // sources asked to end
	phaseRestarting              // tearing down the attempt, then waiting for the delay
	phaseFailing                 // tearing down for good
	phaseCanceling
	phaseDone // terminal: status in Graph.end
)

type subtask struct {
	id    SubtaskID
	name  string
	state State
	slot  slots.SlotID
	has   bool // slot is set
	cause string
}

// Failure is one failure the graph saw, for the job's exception history.
type Failure struct {
	At      time.Duration `json:"at"`
	Attempt int           `json:"attempt"`
	// Subtasks are the names of the failed subtasks, none when the job
	// as a whole failed (no slots).
	Subtasks []string `json:"subtasks,omitempty"`
	Cause    string   `json:"cause"`
}

// maxFailures bounds the exception history kept.
const maxFailures = 32

// Graph is the execution graph of one job. It is not safe for concurrent
// use: the JobManager's goroutine owns it.
type Graph struct {
	plan     Plan
	policy   *restart.Policy
	vertices map[int]int // vertex id -> index in plan.Vertices
	subtasks []*subtask  // vertex by vertex, index by index
	byID     map[SubtaskID]*subtask

	attempt  int
	started  bool
	phase    phase
	waiting  bool // the attempt's slot request is outstanding
	released bool // the attempt's slots were released
	lost     map[string]bool

	restartDelay time.Duration
	restartAt    time.Duration
	scheduled    bool // RestartJob was emitted for this teardown

	// count holds how many subtasks are in each state, so checks
	// after each report cost nothing per subtask.
	count [len(stateNames)]int

	end      Status
	reason   string // why the job fails or failed
	failures []Failure
}

// New returns the graph of a plan, before Start. policy decides restarts;
// nil means the job never restarts.
func New(p Plan, policy *restart.Policy) (*Graph, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	g := &Graph{plan: p, policy: policy, vertices: map[int]int{}, byID: map[SubtaskID]*subtask{}, attempt: 1, lost: map[string]bool{}}
	for i, v := range p.Vertices {
		g.vertices[v.ID] = i
		for k := range v.Parallelism {
			s := &subtask{id: SubtaskID{v.ID, k}, name: fmt.Sprintf("%s[%d]", v.Name, k)}
			g.subtasks = append(g.subtasks, s)
			g.byID[s.id] = s
		}
	}
	g.count[Created] = len(g.subtasks)
	return g, nil
}

// Step applies one event and returns the actions it calls for. An event
// Step refuses returns an error and changes nothing.
func (g *Graph) Step(ev Event) ([]Action, error) {
	var acts []Action
	switch e := ev.(type) {
	case Start:
		if g.started {
			return nil, fmt.Errorf("%w: job %s was started already", ErrBadEvent, g.plan.Job)
		}
		g.started = true
		acts = g.requestSlots()
	case SlotsAssigned:
		return g.assign(e)
	case SlotRequestFailed:
		if e.Attempt != g.attempt || !g.waiting {
			return nil, nil // an old attempt's request: nothing waits on it
		}
		g.waiting = false
		acts = g.fail(e.Now, nil, "getting slots: "+e.Reason, true)
	case Deployed:
		return g.deployed(e)
	case TaskState:
		return g.report(e)
	case WorkerLost:
		acts = g.workerLost(e)
	case Cancel:
		return g.cancel(e)
	case Stop:
		return g.stop()
	case Tick:
		if g.phase == phaseRestarting && g.settled() && e.Now >= g.restartAt {
			acts = g.nextAttempt()
		}
	default:
		return nil, fmt.Errorf("%w: unknown event %T", ErrBadEvent, ev)
	}
	return acts, nil
}

func (g *Graph) requestSlots() []Action {
	g.waiting = true
	return []Action{RequestSlots{Attempt: g.attempt, Tasks: g.plan.tasks()}}
}

func (g *Graph) assign(e SlotsAssigned) ([]Action, error) {
	if e.Attempt != g.attempt || !g.waiting || g.phase != phaseRunning {
		// Slots for an attempt that no longer wants them (canceled,
		// restarted, ended): give them straight back.
		return []Action{ReleaseSlots{Attempt: e.Attempt, Slots: distinctSlots(e.Assignments)}}, nil
	}
	got := map[SubtaskID]slots.SlotID{}
	type vertexSlot struct {
		vertex int
		slot   slots.SlotID
	}
	shared := map[vertexSlot]bool{}
	for _, a := range e.Assignments {
		id := SubtaskID{a.Vertex, a.Index}
		switch {
		case g.byID[id] == nil:
			return nil, fmt.Errorf("%w: slots assigned to subtask %d.%d, which job %s does not have", ErrBadEvent, a.Vertex, a.Index, g.plan.Job)
		case a.Slot.Worker == "":
			return nil, fmt.Errorf("%w: %s assigned a slot without a worker", ErrBadEvent, g.byID[id].name)
		}
		if _, dup := got[id]; dup {
			return nil, fmt.Errorf("%w: two slots assigned to %s", ErrBadEvent, g.byID[id].name)
		}
		// A slot hosts at most one subtask of each vertex.
		k := vertexSlot{a.Vertex, a.Slot}
		if shared[k] {
			return nil, fmt.Errorf("%w: two subtasks of vertex %d assigned to slot %s", ErrBadEvent, a.Vertex, a.Slot)
		}
		shared[k] = true
		got[id] = a.Slot
	}
	if len(got) != len(g.subtasks) {
		return nil, fmt.Errorf("%w: %d of the %d subtasks of job %s got slots; a request is served whole", ErrBadEvent, len(got), len(g.subtasks), g.plan.Job)
	}
	g.waiting = false
	// Workers lost before now held none of these slots; a worker that
	// registers again under its id is a new one.
	g.lost = map[string]bool{}
	var acts []Action
	for _, s := range g.subtasks {
		s.slot, s.has = got[s.id], true
		g.set(s, Scheduled)
		acts = append(acts, Deploy{Subtask: s.id, Name: s.name, Attempt: g.attempt, Slot: s.slot})
	}
	return acts, nil
}

func (g *Graph) deployed(e Deployed) ([]Action, error) {
	if e.Attempt < g.attempt || g.phase == phaseDone {
		return nil, nil
	}
	s, err := g.lookup(e.Subtask, e.Attempt)
	if err != nil {
		return nil, err
	}
	switch s.state {
	case Scheduled:
		if e.Err == "" {
			g.set(s, Deploying)
			return nil, nil
		}
		return g.fail(e.Now, []*subtask{s}, fmt.Sprintf("deploying to %s: %s", s.slot, e.Err), false), nil
	case Canceling:
		if e.Err != "" {
			// Nothing runs there: the cancel is done.
			g.set(s, Canceled)
			return g.settle(), nil
		}
		return nil, nil
	case Created:
		return nil, fmt.Errorf("%w: %s was deployed, but it has no slot", ErrIllegalTransition, s.name)
	}
	// A state report overtook the answer: nothing to learn from it.
	return nil, nil
}

func (g *Graph) lookup(id SubtaskID, attempt int) (*subtask, error) {
	if attempt > g.attempt {
		return nil, fmt.Errorf("%w: report of attempt %d, but job %s is at attempt %d", ErrBadEvent, attempt, g.plan.Job, g.attempt)
	}
	s := g.byID[id]
	if s == nil {
		return nil, fmt.Errorf("%w: job %s has no subtask %d.%d", ErrBadEvent, g.plan.Job, id.Vertex, id.Index)
	}
	return s, nil
}

func (g *Graph) report(e TaskState) ([]Action, error) {
	if e.Attempt < g.attempt || g.phase == phaseDone {
		return nil, nil // stale: that execution was given up
	}
	s, err := g.lookup(e.Subtask, e.Attempt)
	if err != nil {
		return nil, err
	}
	switch e.State {
	case Deploying, Running, Finished, Canceled, Failed:
	default:
		return nil, fmt.Errorf("%w: a worker reports %s of %s; workers report deploying, running, finished, canceled or failed", ErrBadEvent, e.State, s.name)
	}
	if e.State == s.state || (s.has && g.lost[s.slot.Worker]) {
		// Heartbeats repeat states; and a lost worker's word no longer
		// counts (it was partitioned away, its subtasks given up).
		return nil, nil
	}
	if !s.has {
		return nil, fmt.Errorf("%w: %s reported %s, but it was never deployed", ErrIllegalTransition, s.name, e.State)
	}
	if s.state == Failed || s.state == Canceled {
		if e.State.Terminal() {
			return nil, nil // it has ended, whatever the worker calls it
		}
		// A subtask given up (its deploy answer was lost or timed out)
		// runs after all: stop it, it belongs to nothing now.
		return []Action{CancelTask{Subtask: s.id, Name: s.name, Attempt: g.attempt, Slot: s.slot}}, nil
	}
	if s.state == Canceling {
		if e.State.Terminal() {
			// However it ended, it ended because we asked.
			g.set(s, Canceled)
			return g.settle(), nil
		}
		return nil, nil
	}
	if !CanTransition(s.state, e.State) {
		return nil, fmt.Errorf("%w: %s reported %s while %s", ErrIllegalTransition, s.name, e.State, s.state)
	}
	switch e.State {
	case Failed:
		cause := e.Cause
		if cause == "" {
			cause = "failed without a cause"
		}
		return g.fail(e.Now, []*subtask{s}, cause, false), nil
	case Canceled:
		// Canceled without being asked: the worker gave it up.
		return g.fail(e.Now, []*subtask{s}, "canceled by its worker: "+orNone(e.Cause), false), nil
	}
	g.set(s, e.State)
	if e.State == Finished {
		return g.settle(), nil
	}
	return nil, nil
}

func orNone(s string) string {
	if s == "" {
		return "no cause given"
	}
	return s
}

func (g *Graph) workerLost(e WorkerLost) []Action {
	if g.phase == phaseDone {
		return nil
	}
	g.lost[e.Worker] = true
	var failed []*subtask
	for _, s := range g.subtasks {
		if !s.has || s.slot.Worker != e.Worker || s.state.Terminal() {
			continue
		}
		if s.state == Canceling {
			g.set(s, Canceled) // gone with its worker, as asked
			continue
		}
		failed = append(failed, s)
	}
	if len(failed) == 0 {
		return g.settle()
	}
	return g.fail(e.Now, failed, fmt.Sprintf("worker %s lost: %s", e.Worker, orNone(e.Reason)), false)
}

// fail marks subs failed (none: the job as a whole failed) and, on the
// attempt's first failure, decides with the restart policy and cancels
// the rest. A lost worker fails all its subtasks in one call: one
// failure for the policy, as it was one incident.
func (g *Graph) fail(now time.Duration, subs []*subtask, cause string, unrecoverable bool) []Action {
	var names []string
	for _, s := range subs {
		s.cause = cause
		g.set(s, Failed)
		names = append(names, s.name)
	}
	if len(names) > 0 {
		cause = strings.Join(first(names, 3), ", ") + ": " + cause
	}
	g.failures = append(g.failures, Failure{At: now, Attempt: g.attempt, Subtasks: names, Cause: cause})
	if len(g.failures) > maxFailures {
		g.failures = g.failures[len(g.failures)-maxFailures:]
	}
	switch g.phase {
	case phaseRunning:
		d := restart.Decision{Reason: "the job has no restart strategy; last failure: " + cause}
		if g.policy != nil {
			d = g.policy.Decide(now, restart.Failure{Cause: cause, Unrecoverable: unrecoverable})
		}
		if d.Restart {
			g.phase = phaseRestarting
			g.restartDelay, g.restartAt, g.scheduled = d.Delay, now+d.Delay, false
		} else {
			g.phase, g.reason = phaseFailing, d.Reason
		}
	case phaseStopping:
		// The job was asked to end: a failure while draining ends it
		// rather than running it all again.
		g.phase, g.reason = phaseFailing, "failed while stopping: "+cause
	default:
		// Failing, restarting or canceling already: the first failure
		// decided, this one is part of the same teardown.
		return g.settle()
	}
	return append(g.cancelAll(), g.settle()...)
}

// cancelAll cancels every subtask not ended yet.
func (g *Graph) cancelAll() []Action {
	var acts []Action
	if g.waiting {
		g.waiting = false
		acts = append(acts, WithdrawSlotRequest{Attempt: g.attempt})
	}
	for _, s := range g.subtasks {
		switch {
		case s.state.Terminal() || s.state == Canceling:
		case s.state == Created || g.lost[s.slot.Worker]:
			g.set(s, Canceled) // nothing runs anywhere
		default:
			g.set(s, Canceling)
			acts = append(acts, CancelTask{Subtask: s.id, Name: s.name, Attempt: g.attempt, Slot: s.slot})
		}
	}
	return acts
}

// set moves a subtask to a state, keeping the counts.
func (g *Graph) set(s *subtask, st State) {
	g.count[s.state]--
	g.count[st]++
	s.state = st
}

// settled reports whether every subtask has ended.
func (g *Graph) settled() bool {
	return g.count[Finished]+g.count[Canceled]+g.count[Failed] == len(g.subtasks)
}

// settle acts when the last subtask has ended: release the slots, then
// end the job or schedule its restart.
func (g *Graph) settle() []Action {
	if g.phase == phaseDone || !g.settled() {
		return nil
	}
	acts := g.release()
	switch g.phase {
	case phaseRunning, phaseStopping:
		// Only finished subtasks end these phases: a failure moves on.
		acts = append(acts, g.finish(StatusFinished, ""))
	case phaseFailing:
		acts = append(acts, g.finish(StatusFailed, g.reason))
	case phaseCanceling:
		acts = append(acts, g.finish(StatusCanceled, "canceled on request"))
	case phaseRestarting:
		if !g.scheduled {
			g.scheduled = true
			acts = append(acts, RestartJob{Attempt: g.attempt + 1, Delay: g.restartDelay, At: g.restartAt})
		}
	}
	return acts
}

func (g *Graph) release() []Action {
	if g.released {
		return nil
	}
	g.released = true
	seen := map[slots.SlotID]bool{}
	var held []slots.SlotID
	for _, s := range g.subtasks {
		if s.has && !g.lost[s.slot.Worker] && !seen[s.slot] {
			seen[s.slot] = true
			held = append(held, s.slot)
		}
	}
	if len(held) == 0 {
		return nil
	}
	sortSlots(held)
	return []Action{ReleaseSlots{Attempt: g.attempt, Slots: held}}
}

func (g *Graph) finish(st Status, reason string) Action {
	g.phase, g.end, g.reason = phaseDone, st, reason
	return JobTerminal{Status: st, Reason: reason}
}

// nextAttempt starts the next attempt from created subtasks.
func (g *Graph) nextAttempt() []Action {
	g.attempt++
	g.phase, g.released, g.scheduled = phaseRunning, false, false
	g.lost = map[string]bool{}
	for _, s := range g.subtasks {
		*s = subtask{id: s.id, name: s.name}
	}
	g.count = [len(stateNames)]int{Created: len(g.subtasks)}
	return g.requestSlots()
}

func (g *Graph) cancel(e Cancel) ([]Action, error) {
	switch g.phase {
	case phaseDone:
		return nil, fmt.Errorf("%w: job %s is %s", ErrTerminal, g.plan.Job, g.end)
	case phaseCanceling, phaseFailing:
		return nil, nil // ending already
	case phaseRestarting:
		if g.settled() {
			// Waiting out the restart delay: nothing runs, the slots are
			// back; end here.
			return []Action{g.finish(StatusCanceled, "canceled on request")}, nil
		}
	}
	g.phase = phaseCanceling
	return append(g.cancelAll(), g.settle()...), nil
}

func (g *Graph) stop() ([]Action, error) {
	switch g.phase {
	case phaseDone:
		return nil, fmt.Errorf("%w: job %s is %s", ErrTerminal, g.plan.Job, g.end)
	case phaseStopping:
		return nil, nil
	case phaseRunning:
	default:
		return nil, fmt.Errorf("%w: job %s is %s; cancel it instead", ErrNotRunning, g.plan.Job, g.Status())
	}
	var notYet []string
	for _, s := range g.subtasks {
		if s.state != Running && s.state != Finished {
			notYet = append(notYet, s.name+" "+s.state.String())
		}
	}
	if len(notYet) > 0 {
		return nil, fmt.Errorf("%w: %d subtasks are not running yet (%s); retry when they are, or cancel", ErrNotRunning, len(notYet), strings.Join(first(notYet, 5), ", "))
	}
	g.phase = phaseStopping
	var acts []Action
	for _, s := range g.subtasks {
		if g.plan.Vertices[g.vertices[s.id.Vertex]].Source && s.state == Running {
			acts = append(acts, StopTask{Subtask: s.id, Name: s.name, Attempt: g.attempt, Slot: s.slot})
		}
	}
	return acts, nil
}

func first(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return append(s[:n:n], fmt.Sprintf("and %d more", len(s)-n))
}

// Status returns the job's status.
func (g *Graph) Status() Status {
	switch g.phase {
	case phaseDone:
		return g.end
	case phaseCanceling:
		return StatusCanceling
	case phaseFailing:
		return StatusFailing
	case phaseRestarting:
		return StatusRestarting
	case phaseStopping:
		return StatusFinishing
	}
	switch {
	case g.count[Created] == len(g.subtasks) && g.attempt == 1:
		return StatusCreated
	case g.count[Finished] > 0:
		return StatusFinishing
	}
	return StatusRunning
}

// RestartAt returns when the pending restart is due, while the job is
// restarting.
func (g *Graph) RestartAt() (time.Duration, bool) {
	return g.restartAt, g.phase == phaseRestarting
}

// Attempt returns the number of the current attempt, 1 for the first.
func (g *Graph) Attempt() int { return g.attempt }

// Reason says why the job failed or is failing; "" otherwise.
func (g *Graph) Reason() string {
	if g.phase == phaseFailing || g.end == StatusFailed {
		return g.reason
	}
	return ""
}

// Failures returns the latest failures, oldest first (at most 32).
func (g *Graph) Failures() []Failure { return append([]Failure(nil), g.failures...) }

// SubtaskInfo describes a subtask of the current attempt.
type SubtaskInfo struct {
	ID    SubtaskID     `json:"id"`
	Name  string        `json:"name"`
	State State         `json:"state"`
	Slot  *slots.SlotID `json:"slot,omitempty"`
	Cause string        `json:"cause,omitempty"` // why it failed
}

// Subtasks returns every subtask, vertex by vertex, index by index.
func (g *Graph) Subtasks() []SubtaskInfo {
	out := make([]SubtaskInfo, len(g.subtasks))
	for i, s := range g.subtasks {
		out[i] = SubtaskInfo{ID: s.id, Name: s.name, State: s.state, Cause: s.cause}
		if s.has {
			slot := s.slot
			out[i].Slot = &slot
		}
	}
	return out
}

func distinctSlots(as []slots.Assignment) []slots.SlotID {
	seen := map[slots.SlotID]bool{}
	var out []slots.SlotID
	for _, a := range as {
		if !seen[a.Slot] {
			seen[a.Slot] = true
			out = append(out, a.Slot)
		}
	}
	sortSlots(out)
	return out
}

func sortSlots(s []slots.SlotID) {
	sort.Slice(s, func(i, j int) bool {
		if s[i].Worker != s[j].Worker {
			return s[i].Worker < s[j].Worker
		}
		return s[i].Index < s[j].Index
	})
}
