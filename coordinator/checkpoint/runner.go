package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/weirstream/weir/internal/ckptmeta"
	"github.com/weirstream/weir/internal/ckptstore"
)

// Tasks is what a Runner drives: the running tasks of the job, wherever
// they run. The calls must not block on the tasks (post and return).
type Tasks interface {
	// Trigger injects the barrier of a at its sources and tells every
	// subtask that ended its input to snapshot directly: it reaches every
	// task.
	Trigger(a TriggerCheckpoint)
	// NotifyComplete tells every task of a.Attempt that checkpoint a.ID
	// is complete; a.Final, that it is the job's final checkpoint: the
	// tasks end once committed.
	NotifyComplete(a NotifyComplete)
	// Abort tells every task that checkpoint id was given up.
	Abort(id uint64)
}

// RunnerConfig configures a Runner.
type RunnerConfig struct {
	Config   Config
	Topology Topology
	// Storage keeps the job's checkpoints under Job.
	Storage ckptstore.Storage
	Job     string
	// Template is the payload of every checkpoint without the subtasks'
	// files and states: job, max parallelism, backend, and per operator
	// its uid, kind, parallelism, module and key groups per subtask.
	Template ckptmeta.Payload
	Tasks    Tasks
	// OnFail is called (under the runner's lock: it must not call back)
	// when more checkpoints failed in a row than tolerated.
	OnFail func(reason string)
	Logger *slog.Logger
}

// Runner carries out a Coordinator's decisions: it ticks it, injects
// barriers through Tasks, writes the metadata of completed checkpoints
// last and atomically, copies savepoints to their folders, and discards
// what is no longer retained. Its methods are safe for concurrent use.
type Runner struct {
	cfg   RunnerConfig
	log   *slog.Logger
	start time.Time
	wake  chan struct{}

	mu      sync.Mutex
	coord   *Coordinator
	acks    map[ackKey]ckptmeta.Ack
	started map[uint64]started
	stops   map[string]func(SavepointInfo) // savepoint request -> what to do once it ended
	stats   Stats
	// lastTriggered is the newest checkpoint this runner started: shared
	// files first uploaded by a later one are not its to delete.
	lastTriggered uint64
}

type ackKey struct {
	id uint64
	s  Subtask
}

type started struct {
	at   time.Duration
	wall time.Time
	mode string
	// firstAck and lastAck are when the first and the latest subtask
	// acknowledged (0: none yet), for CompletedInfo.
	firstAck, lastAck time.Duration
}

// Stats are the job's checkpoint figures.
type Stats struct {
	Completed, Failed int
	InProgress        int
	// Ended counts the subtasks of the running attempt that ended their
	// input and wait for the final checkpoint, of Subtasks.
	Ended, Subtasks int
	Latest          *CompletedInfo
	LastFailure     string
	// History holds the last StatsHistory completed checkpoints and
	// savepoints, oldest first, so a reader can see how long they take
	// and how large they are (weir bench checkpoint prints their p50/p99)
	// without watching the log.
	History []CompletedInfo
}

// StatsHistory is how many completed checkpoints Stats.History keeps: at
// one a second, the last four minutes, in a few KiB.
const StatsHistory = 256

// CompletedInfo describes a completed checkpoint or savepoint.
type CompletedInfo struct {
	ID        uint64
	Path      string
	Duration  time.Duration
	Size      int64
	Savepoint bool
	// FirstAck and LastAck are the times from the trigger to the first
	// and the last subtask's acknowledgement: barriers travelling,
	// snapshots and uploads take up to LastAck; the rest of Duration is
	// writing the metadata.
	FirstAck, LastAck time.Duration
}

// NewRunner returns a runner for a job, idle until Running.
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	c, err := New(cfg.Config, cfg.Topology)
	if err != nil {
		return nil, err
	}
	if cfg.Storage == nil || cfg.Tasks == nil {
		return nil, fmt.Errorf("%w: a runner needs storage and tasks", ErrInvalid)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Runner{cfg: cfg, log: log, start: time.Now(), wake: make(chan struct{}, 1), coord: c,
		acks: map[ackKey]ckptmeta.Ack{}, started: map[uint64]started{}, stops: map[string]func(SavepointInfo){}}, nil
}

func (r *Runner) now() time.Duration { return time.Since(r.start) }

// Run ticks the coordinator until ctx is done.
func (r *Runner) Run(ctx context.Context) error {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		r.mu.Lock()
		next, ok := r.coord.Next()
		r.mu.Unlock()
		if ok {
			t.Reset(max(next-r.now(), 0))
		} else {
			t.Reset(time.Hour)
		}
		select {
		case <-ctx.Done():
			r.stopped()
			return nil
		case <-r.wake:
		case <-t.C:
			r.step(Tick{Now: r.now()})
		}
	}
}

// stopped ends what is pending when the runner stops (the job ended):
// a savepoint request still pending fails, saying so, instead of staying
// pending for good. Nothing is sent or deleted: a coordinator that lost
// its leadership must not touch what its successor now runs.
func (r *Runner) stopped() {
	r.mu.Lock()
	defer r.mu.Unlock()
	acts, _ := r.coord.Step(Stopped{Now: r.now(), Reason: "the job ended before it completed"})
	for _, a := range acts {
		if a, ok := a.(AbortCheckpoint); ok {
			r.forget(a.ID)
			if a.Savepoint {
				r.savepointEnded(a.RequestID)
			}
		}
	}
	r.stats.InProgress = 0
}

// step applies ev and carries out the actions; r.mu must not be held.
func (r *Runner) step(ev Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.stepLocked(ev)
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return err
}

func (r *Runner) stepLocked(ev Event) error {
	acts, err := r.coord.Step(ev)
	if err != nil {
		return err
	}
	for len(acts) > 0 {
		a := acts[0]
		acts = acts[1:]
		more := r.do(a)
		acts = append(acts, more...)
	}
	r.stats.InProgress = len(r.coord.Pending())
	return nil
}

// do carries out one action and returns the coordinator's actions that
// follow from what it did.
func (r *Runner) do(a Action) []Action {
	switch a := a.(type) {
	case TriggerCheckpoint:
		r.started[a.ID] = started{at: a.Timestamp, wall: time.Now(), mode: string(a.Mode)}
		r.lastTriggered = max(r.lastTriggered, a.ID)
		r.log.Debug("checkpoint triggered", "checkpoint", a.ID, "savepoint", a.Savepoint, "mode", a.Mode)
		r.cfg.Tasks.Trigger(a)
	case AbortCheckpoint:
		r.cfg.Tasks.Abort(a.ID)
		r.forget(a.ID)
		_ = r.cfg.Storage.Discard(r.cfg.Job, a.ID)
		r.collectShared()
		r.stats.Failed++
		r.stats.LastFailure = fmt.Sprintf("checkpoint %d: %s", a.ID, a.Reason)
		r.log.Warn("checkpoint aborted", "checkpoint", a.ID, "reason", a.Reason)
		if a.Savepoint {
			r.savepointEnded(a.RequestID)
		}
	case Complete:
		path, size, err := r.persist(a)
		if err != nil {
			return r.must(StorageFailed{Now: r.now(), Checkpoint: a.ID, Err: err.Error()})
		}
		st := r.started[a.ID]
		r.stats.Completed++
		r.stats.Latest = &CompletedInfo{ID: a.ID, Path: path, Duration: r.now() - st.at, Size: size, Savepoint: a.Savepoint}
		if st.lastAck > 0 {
			r.stats.Latest.FirstAck, r.stats.Latest.LastAck = st.firstAck-st.at, st.lastAck-st.at
		}
		if len(r.stats.History) == StatsHistory {
			r.stats.History = append(r.stats.History[:0], r.stats.History[1:]...)
		}
		r.stats.History = append(r.stats.History, *r.stats.Latest)
		r.log.Info("checkpoint completed", "checkpoint", a.ID, "savepoint", a.Savepoint, "path", path, "bytes", size, "duration", r.now()-st.at)
		r.forget(a.ID)
		out := r.must(Persisted{Now: r.now(), Checkpoint: a.ID})
		if a.Savepoint {
			r.savepointEnded(a.RequestID)
		}
		return out
	case NotifyComplete:
		r.cfg.Tasks.NotifyComplete(a)
	case Discard:
		if err := r.cfg.Storage.Discard(r.cfg.Job, a.ID); err != nil {
			r.log.Warn("discarding a checkpoint", "checkpoint", a.ID, "err", err)
		}
		r.collectShared()
	case DiscardState:
		// The files live in the checkpoint's folder, which its abort
		// discarded (or will); shared files go once no checkpoint names
		// them.
		r.collectShared()
	case RefuseSavepoint:
		r.log.Warn("savepoint refused", "request", a.RequestID, "reason", a.Reason)
		if f := r.stops[a.RequestID]; f != nil {
			delete(r.stops, a.RequestID)
			f(SavepointInfo{State: SavepointFailed, Reason: a.Reason})
		}
	case FailJob:
		r.stats.LastFailure = a.Reason
		if r.cfg.OnFail != nil {
			r.cfg.OnFail(a.Reason)
		}
	}
	return nil
}

func (r *Runner) must(ev Event) []Action {
	acts, err := r.coord.Step(ev)
	if err != nil {
		r.log.Error("checkpoint coordinator refused an event", "event", fmt.Sprintf("%T", ev), "err", err)
	}
	return acts
}

func (r *Runner) forget(id uint64) {
	delete(r.started, id)
	for k := range r.acks {
		if k.id == id {
			delete(r.acks, k)
		}
	}
}

// savepointEnded runs what was waiting for savepoint request to end.
func (r *Runner) savepointEnded(request string) {
	f := r.stops[request]
	if f == nil {
		return
	}
	delete(r.stops, request)
	if info, ok := r.coord.SavepointStatus(request); ok {
		f(r.located(info))
	}
}

// persist writes the metadata of a completed checkpoint (a savepoint:
// copies its files to its folder first) and returns where it is.
func (r *Runner) persist(a Complete) (string, int64, error) {
	p := r.cfg.Template
	p.Version = ckptmeta.Version
	p.Checkpoint = a.ID
	p.Savepoint = a.Savepoint
	st := r.started[a.ID]
	p.Taken, p.Mode = st.wall, st.mode
	p.Operators = make([]ckptmeta.Operator, len(r.cfg.Template.Operators))
	byUID := map[string]*ckptmeta.Operator{}
	for i, o := range r.cfg.Template.Operators {
		o.Subtasks = append([]ckptmeta.Subtask(nil), o.Subtasks...)
		p.Operators[i] = o
		byUID[o.UID] = &p.Operators[i]
	}
	var files []ckptstore.FileInfo
	var size int64
	// Every operator of an incremental subtask's chain names the same
	// files: the metadata lists each once.
	listed := map[ckptstore.FileInfo]bool{}
	for _, ack := range a.Acks {
		got, ok := r.acks[ackKey{a.ID, ack.Subtask}]
		if !ok {
			return "", 0, fmt.Errorf("checkpoint %d: no acknowledgement of %s on record", a.ID, ack.Subtask)
		}
		for _, n := range got.Nodes {
			op := byUID[n.UID]
			if op == nil || ack.Subtask.Index >= len(op.Subtasks) {
				return "", 0, fmt.Errorf("checkpoint %d: %s acknowledged for operator %s, which the job does not have", a.ID, ack.Subtask, n.UID)
			}
			s := &op.Subtasks[ack.Subtask.Index]
			for _, f := range n.Files {
				s.Files = append(s.Files, ckptmeta.File{Role: f.Role, Name: f.Name, Size: f.Size, Shared: f.Shared, Path: f.Path})
				fi := ckptstore.FileInfo{Name: f.Name, Size: f.Size, CRC32: f.CRC32, Shared: f.Shared}
				if !listed[fi] {
					listed[fi] = true
					files = append(files, fi)
					size += f.Size
				}
			}
			if len(n.States) > 0 && len(op.States) == 0 {
				op.States = n.States
			}
		}
		if ack.Ended {
			for i := range p.Operators {
				if o := &p.Operators[i]; o.Vertex == ack.Subtask.Vertex && ack.Subtask.Index < len(o.Subtasks) {
					o.Subtasks[ack.Subtask.Index].Ended = true
				}
			}
		}
	}
	payload, err := ckptmeta.Encode(&p)
	if err != nil {
		return "", 0, err
	}
	if err := r.checkShared(a.ID, a.Savepoint, files); err != nil {
		return "", 0, err
	}
	store, job := r.cfg.Storage, r.cfg.Job
	if a.Savepoint {
		sp := &ckptstore.Dir{Root: a.Dir}
		for _, f := range files {
			if err := copyFile(r.cfg.Storage, r.cfg.Job, a.ID, f, sp, job); err != nil {
				_ = sp.Discard(job, a.ID)
				return "", 0, fmt.Errorf("copying savepoint %d to %s: %w", a.ID, a.Dir, err)
			}
		}
		store = sp
	}
	if err := store.Commit(ckptstore.Metadata{Version: ckptstore.MetadataVersion, Job: job, Checkpoint: a.ID, Files: files, Payload: payload}); err != nil {
		return "", 0, err
	}
	if a.Savepoint {
		_ = r.cfg.Storage.Discard(r.cfg.Job, a.ID)
	}
	return ckptstore.PathOf(store, job, a.ID), size, nil
}

func copyFile(from ckptstore.Storage, job string, n uint64, f ckptstore.FileInfo, to ckptstore.Storage, toJob string) error {
	b, err := from.Read(job, n, f)
	if err != nil {
		return err
	}
	w, err := to.Create(toJob, n, f.Name)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		w.Abort()
		return err
	}
	_, err = w.Close()
	return err
}

// Running says every subtask of attempt runs: checkpoints may start.
func (r *Runner) Running(attempt int) { r.step(JobRunning{Now: r.now(), Attempt: attempt}) }

// Ack takes a subtask's acknowledgement or decline, or its notice that
// it ended its input (ckptmeta.Ack.IsEndNotice).
func (r *Runner) Ack(a ckptmeta.Ack) error {
	s := Subtask{Vertex: a.Vertex, Index: a.Index}
	if a.IsEndNotice() {
		return r.step(TaskEnded{Now: r.now(), Subtask: s, Attempt: a.Attempt})
	}
	r.log.Debug("checkpoint acknowledged", "checkpoint", a.Checkpoint, "subtask", s.String(), "declined", a.Declined)
	if a.Declined != "" {
		return r.step(TaskDeclined{Now: r.now(), Checkpoint: a.Checkpoint, Subtask: s, Attempt: a.Attempt, Reason: a.Declined})
	}
	var hs []Handle
	for _, n := range a.Nodes {
		for _, f := range n.Files {
			hs = append(hs, Handle{Path: f.Name, Size: f.Size})
		}
	}
	r.mu.Lock()
	r.acks[ackKey{a.Checkpoint, s}] = a
	if st, ok := r.started[a.Checkpoint]; ok {
		now := r.now()
		if st.firstAck == 0 {
			st.firstAck = now
		}
		st.lastAck = now
		r.started[a.Checkpoint] = st
	}
	r.mu.Unlock()
	err := r.step(TaskAck{Now: r.now(), Checkpoint: a.Checkpoint, Subtask: s, Attempt: a.Attempt, Handles: hs, Ended: a.Ended})
	if err != nil {
		r.mu.Lock()
		delete(r.acks, ackKey{a.Checkpoint, s})
		r.mu.Unlock()
	}
	return err
}

// Failed says a subtask (or its worker) failed: pending checkpoints end.
func (r *Runner) Failed(s Subtask, reason string) {
	r.step(TaskFailed{Now: r.now(), Subtask: s, Reason: reason})
}

// ErrSavepointRefused is returned by Savepoint when the job cannot take
// one now.
var ErrSavepointRefused = errors.New("checkpoint: savepoint refused")

// Savepoint requests a savepoint into dir under request (idempotent).
// then, if not nil, is called once it ended (completed or failed), under
// the runner's lock.
func (r *Runner) Savepoint(request, dir string, then func(SavepointInfo)) (SavepointInfo, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if info, ok := r.coord.SavepointStatus(request); ok {
		return r.located(info), nil
	}
	if then != nil {
		r.stops[request] = then
	}
	if err := r.stepLocked(SavepointRequested{Now: r.now(), RequestID: request, Dir: dir}); err != nil {
		delete(r.stops, request)
		return SavepointInfo{}, err
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
	if info, ok := r.coord.SavepointStatus(request); ok {
		return r.located(info), nil
	}
	delete(r.stops, request)
	return SavepointInfo{State: SavepointFailed}, fmt.Errorf("%w: the job is not running all its tasks; try again once it is", ErrSavepointRefused)
}

// SavepointStatus reports how savepoint request went; Dir is the
// savepoint's folder once completed.
func (r *Runner) SavepointStatus(request string) (SavepointInfo, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	info, ok := r.coord.SavepointStatus(request)
	return r.located(info), ok
}

// located turns a completed savepoint's Dir into its folder.
func (r *Runner) located(info SavepointInfo) SavepointInfo {
	if info.State == SavepointCompleted {
		info.Dir = ckptstore.PathOf(&ckptstore.Dir{Root: info.Dir}, r.cfg.Job, info.ID)
	}
	return info
}

// Stats returns the job's checkpoint figures.
func (r *Runner) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.Ended, s.Subtasks = r.coord.Ended()
	if s.Latest != nil {
		l := *s.Latest
		s.Latest = &l
	}
	s.History = append([]CompletedInfo(nil), s.History...)
	return s
}

// checkShared makes sure the shared files a checkpoint names are there
// before its metadata says so. A subtask names its base's sstables
// without uploading them again; if its base was discarded meanwhile (it
// had not yet heard that a newer checkpoint completed) collectShared may
// have deleted some, and the checkpoint fails instead of completing with
// files missing. Deletions happen only under r.mu, which is held, so the
// check stays true until the metadata is written. A savepoint must be
// self-contained: it names no shared file.
func (r *Runner) checkShared(id uint64, savepoint bool, files []ckptstore.FileInfo) error {
	var named []ckptstore.FileInfo
	for _, f := range files {
		if f.Shared {
			named = append(named, f)
		}
	}
	if len(named) == 0 {
		return nil
	}
	if savepoint {
		return fmt.Errorf("savepoint %d names %d shared files (%s, ...): a savepoint must be self-contained", id, len(named), named[0].Name)
	}
	have, err := r.cfg.Storage.ListShared(r.cfg.Job)
	if err != nil {
		return fmt.Errorf("checkpoint %d: checking its shared files: %w", id, err)
	}
	size := make(map[string]int64, len(have))
	for _, f := range have {
		size[f.Name] = f.Size
	}
	for _, f := range named {
		if got, ok := size[f.Name]; !ok || got != f.Size {
			return fmt.Errorf("checkpoint %d names shared file %s, which is not in the shared area (or has another size): it was deleted once no retained checkpoint named it, and a subtask still based its checkpoint on it; the subtask's next checkpoint uploads its sstables in full", id, f.Name)
		}
	}
	return nil
}

// collectShared deletes the shared files no retained completed checkpoint
// names and no checkpoint in progress may still be uploading: those whose
// first checkpoint (ckptmeta.SharedOrigin) this runner started and is not
// pending. What the retained checkpoints name is read from their metadata,
// so it holds across coordinator restarts; if any metadata cannot be read,
// nothing is deleted. r.mu is held.
func (r *Runner) collectShared() {
	s, job := r.cfg.Storage, r.cfg.Job
	have, err := s.ListShared(job)
	if err != nil || len(have) == 0 {
		if err != nil {
			r.log.Warn("listing shared checkpoint files", "err", err)
		}
		return
	}
	ns, err := s.Completed(job)
	if err != nil {
		r.log.Warn("listing completed checkpoints to collect shared files", "err", err)
		return
	}
	named := map[string]bool{}
	for _, n := range ns {
		m, err := s.Metadata(job, n)
		if err != nil {
			r.log.Warn("keeping every shared file: a retained checkpoint's metadata cannot be read", "checkpoint", n, "err", err)
			return
		}
		for _, name := range ckptstore.SharedNames(m) {
			named[name] = true
		}
	}
	pending := map[uint64]bool{}
	for _, id := range r.coord.Pending() {
		pending[id] = true
	}
	deleted := 0
	for _, f := range have {
		origin, ok := ckptmeta.SharedOrigin(f.Name)
		if named[f.Name] || !ok || pending[origin] || origin > r.lastTriggered {
			continue
		}
		if err := s.DiscardShared(job, f.Name); err != nil {
			r.log.Warn("deleting a shared checkpoint file", "file", f.Name, "err", err)
			continue
		}
		deleted++
	}
	if deleted > 0 {
		r.log.Debug("shared checkpoint files deleted", "files", deleted)
	}
}
