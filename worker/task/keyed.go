package task

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/weirstream/weir/internal/ckptmeta"
	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/wasmabi"
	"github.com/weirstream/weir/worker/state"
	"github.com/weirstream/weir/worker/wasmhost"
)

// services is what one operator subtask reaches on the host: keyed state in
// the job's backend, restricted to the subtask's key groups, timers, logs
// and counters. It implements Services.
type services struct {
	n       *node
	backend state.Backend
	ids     []state.ID
	kinds   []wasmabi.StateKind // storage kinds (value, list, map)
	opState []bool              // operator state: one per subtask, not per key
	kgs     keygroup.Range
	maxPar  int
	ttl     int64
	scratch []byte

	// The operator's timers in the backend (registered once, for a keyed
	// operator): event and proc are its two time domains in the subtask's
	// key groups. timersErr is why registering them failed, returned by
	// every use.
	timers      state.TimersID
	timersErr   error
	event, proc *timerSet
	timerCount  timerCount
	keyed       bool
	// declared are the states the module registered, for checkpoints'
	// metadata and the upgrade check of a restore.
	declared []ckptmeta.State
}

func newServices(n *node, keyed bool) *services {
	s := &services{n: n, keyed: keyed, backend: n.t.job.State, maxPar: n.t.job.MaxParallelism, kgs: n.t.keyGroups, ttl: n.spec.StateTTL.Milliseconds()}
	if keyed {
		s.event, s.proc = newTimerSet(s, wasmabi.EventTime), newTimerSet(s, wasmabi.ProcessingTime)
		s.timerCount = newTimerCount()
		// The job of the timers is the job of the operator's state (see
		// stateName), so they are snapshotted and restored together.
		id, err := s.backend.RegisterTimers(n.stateName("").Job, n.spec.UID)
		if err != nil {
			err = fmt.Errorf("registering the timers of %s subtask %d: %w", n.spec.UID, n.t.index, err)
		}
		s.timers, s.timersErr = id, err
	}
	return s
}

func (s *services) StateRegister(name string, kind wasmabi.StateKind) (uint32, error) {
	if !kind.Valid() {
		return 0, fmt.Errorf("unknown state kind %d", kind)
	}
	if kind.Keyed() && !s.keyed {
		return 0, fmt.Errorf("operator %s is not keyed (kind %s): keyed state needs a process, co_process or aggregate operator after a key_by edge", s.n.spec.UID, s.n.spec.Desc.Kind)
	}
	ttl := s.ttl
	if !kind.Keyed() {
		ttl = 0 // TTL is for keyed state
	}
	id, err := s.backend.RegisterState(s.n.stateName(name), kind, state.Options{TTL: ttl})
	if err != nil {
		return 0, err
	}
	s.ids = append(s.ids, id)
	if !slices.ContainsFunc(s.declared, func(d ckptmeta.State) bool { return d.Name == name }) {
		s.declared = append(s.declared, ckptmeta.State{Name: name, Kind: kind.String()})
		slices.SortFunc(s.declared, func(a, b ckptmeta.State) int { return strings.Compare(a.Name, b.Name) })
	}
	s.kinds = append(s.kinds, kind.Storage())
	s.opState = append(s.opState, !kind.Keyed())
	return uint32(len(s.ids) - 1), nil
}

// keyGroup returns the key group of key, which must be one of the subtask's.
func (s *services) keyGroup(key []byte) (uint16, error) {
	kg := keygroup.Of(key, s.maxPar)
	if !s.kgs.Contains(kg) {
		return 0, fmt.Errorf("key %q is in key group %d, which subtask %d of %s does not own (%s): state and timers may only use the current record's key", key, kg, s.n.t.index, s.n.spec.UID, s.kgs)
	}
	return uint16(kg), nil
}

func (s *services) State(op wasmabi.StateOp, local uint32, key, userKey, value, out []byte) (int64, error) {
	if int(local) >= len(s.ids) {
		return 0, fmt.Errorf("state id %d was never registered", local)
	}
	var kg uint16
	if s.opState[local] {
		// Operator state lives under the subtask's first key group (no
		// record key is empty, so it meets no keyed state there).
		kg, key = uint16(s.kgs.Start), nil
	} else {
		var err error
		if kg, err = s.keyGroup(key); err != nil {
			return 0, err
		}
	}
	id, kind := s.ids[local], s.kinds[local]
	result := func(b []byte, ok bool, err error) (int64, error) {
		if err != nil || !ok {
			return -1, err
		}
		s.scratch = b[:0]
		if len(b) <= len(out) {
			copy(out, b)
		}
		return int64(len(b)), nil
	}
	switch op {
	case wasmabi.StateGet:
		if kind == wasmabi.StateList {
			return result(s.backend.List(id, kg, key, s.scratch[:0]))
		}
		return result(s.backend.Get(id, kg, key, userKey, s.scratch[:0]))
	case wasmabi.StatePut:
		return 0, s.backend.Put(id, kg, key, userKey, value)
	case wasmabi.StateDelete:
		return 0, s.backend.Delete(id, kg, key, userKey)
	case wasmabi.StateClear:
		return 0, s.backend.Clear(id, kg, key)
	case wasmabi.StateEntries:
		if kind != wasmabi.StateMap {
			return 0, fmt.Errorf("entries of state %d, which is not map state", local)
		}
		return result(s.backend.Entries(id, kg, key, s.scratch[:0]))
	}
	return 0, fmt.Errorf("unknown state op %d", op)
}

func (s *services) Timer(op wasmabi.TimerOp, domain wasmabi.TimeDomain, ts int64, key []byte) error {
	if !s.keyed {
		return fmt.Errorf("operator %s is not keyed: timers need a keyed operator", s.n.spec.UID)
	}
	kg, err := s.keyGroup(key)
	if err != nil {
		return err
	}
	q := s.event
	if domain == wasmabi.ProcessingTime {
		q = s.proc
	}
	if op == wasmabi.TimerRegister {
		// The cap is checked for a timer that may exist already (the count
		// learns that only by adding it): near the cap, registering a
		// timer again may be refused.
		if held := s.timerCount.bytes; held+timerBytes(len(key)+1) > MaxTimerBytes {
			return fmt.Errorf("%w: the timers of operator %s subtask %d hold %d MiB (%d timers), the most an operator subtask may; delete timers that are no longer needed, or coalesce them (one per key and minute, say)",
				wasmhost.ErrHostLimit, s.n.spec.UID, s.n.t.index, held>>20, s.timerCount.n)
		}
		return q.add(kg, ts, key, nsUser, window{})
	}
	return q.remove(kg, ts, key, nsUser, window{})
}

func (s *services) Log(level int, msg string) {
	l := slog.LevelInfo
	switch level {
	case wasmabi.LogDebug:
		l = slog.LevelDebug
	case wasmabi.LogWarn:
		l = slog.LevelWarn
	case wasmabi.LogError:
		l = slog.LevelError
	}
	s.n.t.run.logLine(s.n.spec.UID, s.n.t.index, l, msg)
}

func (s *services) Counter(name string, delta int64) {
	s.n.t.run.counters.add(s.n.spec.UID+"."+name, delta)
}

// counterSet is the job's user counters.
type counterSet struct {
	mu sync.Mutex
	m  map[string]int64
}

func (c *counterSet) add(name string, d int64) {
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]int64{}
	}
	c.m[name] += d
	c.mu.Unlock()
}

func (c *counterSet) snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.m))
	for k, v := range c.m {
		out[k] = v
	}
	return out
}

// stateName is the stable identity of one of the node's states: the job,
// the operator's uid and the state's name, the same in every process and
// at every parallelism, so a snapshot restores anywhere and two jobs on one
// worker never share state.
func (n *node) stateName(name string) state.Name {
	job := n.t.job.ID
	if job == "" {
		job = n.t.job.Name
	}
	return state.Name{Job: job, Operator: n.spec.UID, State: name}
}
