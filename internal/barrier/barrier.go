// Package barrier aligns checkpoint barriers at one task's input gate: it
// decides, as barriers, data and ends of stream arrive on the gate's input
// channels, which channels to hold, when the task takes its snapshot, which
// in-flight buffers become part of the checkpoint (unaligned mode) and when
// a checkpoint is given up at this task.
//
// An Aligner is a deterministic core: a plain value driven by events
// (Step) that returns actions, with no goroutine, clock or I/O inside. Time
// enters as the Now of events. It lives in internal/ because both sides
// use it: the task runtime (worker/) runs it, and the checkpoint
// coordinator (coordinator/) names the modes barriers carry.
//
// The three modes:
//
//   - Aligned (exactly-once): a channel that delivered the barrier is
//     blocked until every live channel has; then the snapshot is taken and
//     the channels are unblocked. A checkpoint still aligning when the
//     barrier's AlignmentTimeout (when set) has passed since the sources
//     injected it switches to unaligned.
//   - Unaligned (exactly-once, barriers overtake queued data): the
//     snapshot is taken at the first barrier; the data of each channel that
//     lie ahead of its barrier and are processed after the snapshot are
//     persisted with the checkpoint: those processed before the channel's
//     barrier arrives (Verdict.Persist) and those its barrier overtook
//     (PersistInFlight). No channel is blocked.
//   - AtLeastOnce: no channel is blocked; the snapshot is taken when the
//     barrier has arrived on every live channel. Records after the barrier
//     on early channels are in the snapshot and are replayed on recovery.
//
// An ended channel (EndOfStream) counts as having delivered every later
// barrier. Only one checkpoint aligns at a time: a barrier of a newer
// checkpoint aborts an older one still aligning (as a task cannot snapshot
// twice at once, and the coordinator's newer checkpoint subsumes it);
// barriers of older or aborted checkpoints are ignored.
package barrier

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Mode is how a checkpoint's barriers are aligned. It is the text used in
// job specs and descriptors.
type Mode string

// Modes.
const (
	Aligned     Mode = "aligned"
	Unaligned   Mode = "unaligned"
	AtLeastOnce Mode = "at-least-once"
)

// Modes lists the modes, for messages.
var Modes = []Mode{Aligned, Unaligned, AtLeastOnce}

// Valid reports whether m is one of Modes.
func (m Mode) Valid() bool { return m == Aligned || m == Unaligned || m == AtLeastOnce }

// maxAborted bounds the aborts of future checkpoints an Aligner remembers.
const maxAborted = 64

// MaxChannels bounds the input channels of one gate (one per upstream
// subtask; max parallelism is at most 32768).
const MaxChannels = 1 << 15

var (
	// ErrInvalid is returned by New for a Config that does not validate.
	ErrInvalid = errors.New("barrier: invalid config")
	// ErrProtocol is returned by Step for an event the channels' protocol
	// does not allow (a channel that does not exist, anything after a
	// channel's end of stream, a barrier twice on one channel). It means a
	// broken peer or runtime: fail the task. The Aligner is unchanged.
	ErrProtocol = errors.New("barrier: protocol violation")
)

// Config configures an Aligner.
type Config struct {
	// Channels is the number of input channels of the gate, 1 or more.
	Channels int
}

// Validate reports what is wrong with c.
func (c Config) Validate() error {
	if c.Channels < 1 || c.Channels > MaxChannels {
		return fmt.Errorf("%w: %d channels; want 1 to %d", ErrInvalid, c.Channels, MaxChannels)
	}
	return nil
}

// Events.
type (
	// Event is what Step takes.
	Event interface{ isEvent() }

	// Barrier: the barrier of Checkpoint arrived on Channel, in Mode. Now
	// is when (monotonic); Age is how long before Now the sources
	// injected it (0: unknown). AlignmentTimeout (aligned mode; 0: never)
	// is how long the checkpoint may go on aligned before it switches to
	// unaligned, counted from the injection, as the time the barrier
	// spent queued behind data counts too: under backpressure every
	// channel's barrier is late, often by the same time, and counting
	// from the first one's arrival would never switch. The barrier
	// carries the timeout, as the coordinator set it, so a savepoint (0)
	// never switches.
	Barrier struct {
		Channel          int
		Checkpoint       uint64
		Mode             Mode
		AlignmentTimeout time.Duration
		Now              time.Duration
		Age              time.Duration
	}
	// Data asks whether a buffer of Channel may be processed now; Step
	// answers with Hold or Process (Admit is the same without the
	// allocation of a slice).
	Data struct{ Channel int }
	// EndOfStream: Channel delivered its last buffer.
	EndOfStream struct{ Channel int }
	// Abort: the coordinator aborted Checkpoint (or the task gave it up);
	// its barriers are ignored from now on.
	Abort struct{ Checkpoint uint64 }
	// AlignmentTimeout lets the alignment timeout expire; send it at
	// Deadline.
	AlignmentTimeout struct{ Now time.Duration }
)

func (Barrier) isEvent()          {}
func (Data) isEvent()             {}
func (EndOfStream) isEvent()      {}
func (Abort) isEvent()            {}
func (AlignmentTimeout) isEvent() {}

// Actions.
type (
	// Action is what Step returns for the task runtime to carry out, in
	// order.
	Action interface {
		isAction()
		String() string
	}

	// Block: stop taking buffers from Channel (its barrier arrived; what
	// follows belongs after the snapshot).
	Block struct{ Channel int }
	// Unblock: take buffers from Channel again.
	Unblock struct{ Channel int }
	// Snapshot: take the task's snapshot for Checkpoint (the synchronous
	// part, on the task's goroutine) and send its barrier downstream on
	// every output (in unaligned mode ahead of the queued output
	// buffers, which then belong to the checkpoint as well).
	Snapshot struct {
		Checkpoint uint64
		Mode       Mode
	}
	// PersistInFlight: the unaligned barrier of Checkpoint that just
	// arrived on Channel overtook buffers queued ahead of it: they are
	// in-flight data of the checkpoint; persist them with it (they are
	// processed as usual too, and Data does not ask to persist them
	// again). Buffers of a channel whose barrier has not arrived are
	// persisted as they are processed (Verdict.Persist).
	PersistInFlight struct {
		Channel    int
		Checkpoint uint64
	}
	// SwitchToUnaligned: Checkpoint, aligned so far, continues unaligned
	// (the alignment timed out, or an unaligned barrier of it arrived).
	SwitchToUnaligned struct {
		Checkpoint uint64
		Reason     string
	}
	// Done: every live channel has delivered Checkpoint's barrier and its
	// in-flight data are all known: once the snapshot is uploaded the task
	// may acknowledge the checkpoint.
	Done struct{ Checkpoint uint64 }
	// AbortCheckpoint: the task gives Checkpoint up (decline it to the
	// coordinator, drop its snapshot and in-flight data).
	AbortCheckpoint struct {
		ID     uint64
		Reason string
	}
	// Hold answers Data: the channel is blocked; keep the buffer queued.
	Hold struct{ Channel int }
	// Process answers Data: process the buffer; when Persist is not 0,
	// persist it too, as in-flight data of checkpoint Persist.
	Process struct {
		Channel int
		Persist uint64
	}
)

func (Block) isAction()             {}
func (Unblock) isAction()           {}
func (Snapshot) isAction()          {}
func (PersistInFlight) isAction()   {}
func (SwitchToUnaligned) isAction() {}
func (Done) isAction()              {}
func (AbortCheckpoint) isAction()   {}
func (Hold) isAction()              {}
func (Process) isAction()           {}

func (a Block) String() string   { return fmt.Sprintf("block %d", a.Channel) }
func (a Unblock) String() string { return fmt.Sprintf("unblock %d", a.Channel) }
func (a Snapshot) String() string {
	return fmt.Sprintf("snapshot %d (%s)", a.Checkpoint, a.Mode)
}
func (a PersistInFlight) String() string {
	return fmt.Sprintf("persist in-flight of %d into %d", a.Channel, a.Checkpoint)
}
func (a SwitchToUnaligned) String() string {
	return fmt.Sprintf("switch %d to unaligned: %s", a.Checkpoint, a.Reason)
}
func (a Done) String() string { return fmt.Sprintf("done %d", a.Checkpoint) }
func (a AbortCheckpoint) String() string {
	return fmt.Sprintf("abort %d: %s", a.ID, a.Reason)
}
func (a Hold) String() string { return fmt.Sprintf("hold %d", a.Channel) }
func (a Process) String() string {
	if a.Persist != 0 {
		return fmt.Sprintf("process %d, persist into %d", a.Channel, a.Persist)
	}
	return fmt.Sprintf("process %d", a.Channel)
}

// Verdict is the answer to Data: hold the buffer, or process it and, when
// Persist is not 0, persist it as in-flight data of that checkpoint.
type Verdict struct {
	Hold    bool
	Persist uint64
}

// Aligner aligns the barriers of one input gate. It is not safe for
// concurrent use: the task's goroutine owns it.
type Aligner struct {
	cfg   Config
	ended []bool
	// last is the newest checkpoint seen (aligning, done or aborted):
	// barriers of it or older that are not the pending one are stale.
	last uint64
	// aborted holds checkpoints newer than last aborted before their
	// first barrier came, so those barriers are ignored (at most
	// maxAborted, oldest dropped).
	aborted []uint64

	// The checkpoint aligning now; pending is 0 when none is.
	pending uint64
	mode    Mode
	start   time.Duration
	timeout time.Duration // its alignment timeout; 0: none
	arrived []bool        // the channel delivered pending's barrier
	blocked []bool        // the channel is held (Block was returned)
	// open counts the live channels that have not delivered it.
	open int
	// snapshotted is true once the snapshot of pending was taken
	// (unaligned: at the first barrier).
	snapshotted bool
}

// New returns an Aligner for a gate of cfg.Channels channels, none ended.
func New(cfg Config) (*Aligner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := cfg.Channels
	return &Aligner{cfg: cfg, ended: make([]bool, n), arrived: make([]bool, n), blocked: make([]bool, n)}, nil
}

// Pending returns the checkpoint aligning now and its mode; 0 when none.
func (a *Aligner) Pending() (uint64, Mode) { return a.pending, a.mode }

// Deadline returns when the alignment timeout of the pending checkpoint
// expires, and false when none can (nothing aligning, not aligned, or no
// timeout).
func (a *Aligner) Deadline() (time.Duration, bool) {
	if a.pending == 0 || a.mode != Aligned || a.timeout == 0 {
		return 0, false
	}
	return a.start + a.timeout, true
}

// Blocked reports whether channel ch is held.
func (a *Aligner) Blocked(ch int) bool {
	return ch >= 0 && ch < len(a.blocked) && a.blocked[ch]
}

func (a *Aligner) channel(ch int) error {
	if ch < 0 || ch >= len(a.ended) {
		return fmt.Errorf("%w: channel %d; the gate has channels 0 to %d", ErrProtocol, ch, len(a.ended)-1)
	}
	if a.ended[ch] {
		return fmt.Errorf("%w: channel %d already delivered its end of stream", ErrProtocol, ch)
	}
	return nil
}

// Admit answers Data{ch} without allocating: the hot-path form of Step for
// data.
func (a *Aligner) Admit(ch int) (Verdict, error) {
	if err := a.channel(ch); err != nil {
		return Verdict{}, fmt.Errorf("data: %w", err)
	}
	if a.pending == 0 {
		return Verdict{}, nil
	}
	switch {
	case a.blocked[ch]:
		return Verdict{Hold: true}, nil
	case a.mode == Unaligned && a.snapshotted && !a.arrived[ch]:
		return Verdict{Persist: a.pending}, nil
	}
	return Verdict{}, nil
}

// Step applies one event and returns what to do, in order. On error (an
// ErrProtocol) nothing changed.
func (a *Aligner) Step(ev Event) ([]Action, error) {
	switch e := ev.(type) {
	case Data:
		v, err := a.Admit(e.Channel)
		if err != nil {
			return nil, err
		}
		if v.Hold {
			return []Action{Hold{Channel: e.Channel}}, nil
		}
		return []Action{Process{Channel: e.Channel, Persist: v.Persist}}, nil
	case Barrier:
		return a.barrier(e)
	case EndOfStream:
		if err := a.channel(e.Channel); err != nil {
			return nil, fmt.Errorf("end of stream: %w", err)
		}
		a.ended[e.Channel] = true
		a.blocked[e.Channel] = false
		if a.pending == 0 || a.arrived[e.Channel] {
			return nil, nil
		}
		// An ended channel has delivered every barrier it ever will.
		a.open--
		return a.complete(nil), nil
	case Abort:
		var out []Action
		switch {
		case e.Checkpoint == a.pending && a.pending != 0:
			out = a.unblockAll(out)
			a.pending = 0
		case e.Checkpoint > a.last && !slices.Contains(a.aborted, e.Checkpoint):
			if len(a.aborted) == maxAborted {
				a.aborted = a.aborted[1:]
			}
			a.aborted = append(a.aborted, e.Checkpoint)
		}
		return out, nil
	case AlignmentTimeout:
		d, ok := a.Deadline()
		if !ok || e.Now < d {
			return nil, nil
		}
		return a.toUnaligned(nil, fmt.Sprintf("still aligning %s after the sources injected its barriers, more than the alignment timeout (%s)", e.Now-a.start, a.timeout), -1), nil
	}
	return nil, fmt.Errorf("%w: unknown event %T", ErrProtocol, ev)
}

func (a *Aligner) barrier(e Barrier) ([]Action, error) {
	if err := a.channel(e.Channel); err != nil {
		return nil, fmt.Errorf("barrier of checkpoint %d: %w", e.Checkpoint, err)
	}
	if e.Checkpoint == 0 {
		return nil, fmt.Errorf("%w: barrier of checkpoint 0 on channel %d; checkpoint ids start at 1", ErrProtocol, e.Channel)
	}
	if !e.Mode.Valid() {
		return nil, fmt.Errorf("%w: barrier of checkpoint %d on channel %d has mode %q", ErrProtocol, e.Checkpoint, e.Channel, e.Mode)
	}
	if e.AlignmentTimeout < 0 {
		return nil, fmt.Errorf("%w: barrier of checkpoint %d on channel %d has alignment timeout %s", ErrProtocol, e.Checkpoint, e.Channel, e.AlignmentTimeout)
	}
	if e.Age < 0 {
		return nil, fmt.Errorf("%w: barrier of checkpoint %d on channel %d has age %s", ErrProtocol, e.Checkpoint, e.Channel, e.Age)
	}
	var out []Action
	switch {
	case a.pending != 0 && e.Checkpoint == a.pending:
		if a.arrived[e.Channel] {
			return nil, fmt.Errorf("%w: a second barrier of checkpoint %d on channel %d", ErrProtocol, e.Checkpoint, e.Channel)
		}
		a.arrived[e.Channel] = true
		a.open--
		if a.mode == Aligned && e.Mode == Unaligned {
			return a.toUnaligned(out, fmt.Sprintf("an unaligned barrier arrived on channel %d", e.Channel), e.Channel), nil
		}
		switch a.mode {
		case Aligned:
			if a.open > 0 {
				out = a.block(out, e.Channel)
			}
		case Unaligned:
			if e.Mode == Unaligned {
				out = append(out, PersistInFlight{Channel: e.Channel, Checkpoint: a.pending})
			}
		}
		return a.complete(out), nil
	case e.Checkpoint <= a.last || slices.Contains(a.aborted, e.Checkpoint):
		// Stale: the barrier of a checkpoint done, aborted, or overtaken
		// here already.
		return nil, nil
	case a.pending != 0:
		out = append(out, AbortCheckpoint{ID: a.pending, Reason: fmt.Sprintf(
			"the barrier of checkpoint %d arrived on channel %d before checkpoint %d had aligned (%d of %d channels)",
			e.Checkpoint, e.Channel, a.pending, a.delivered(), len(a.arrived))})
		out = a.unblockAll(out)
	}
	a.pending, a.mode, a.start, a.timeout, a.snapshotted, a.last = e.Checkpoint, e.Mode, e.Now-e.Age, e.AlignmentTimeout, false, e.Checkpoint
	a.aborted = slices.DeleteFunc(a.aborted, func(id uint64) bool { return id <= a.last })
	a.open = 0
	for i := range a.arrived {
		a.arrived[i] = false
		if !a.ended[i] {
			a.open++
		}
	}
	a.arrived[e.Channel] = true
	a.open--
	switch {
	case e.Mode == Unaligned:
		a.mode = Aligned // toUnaligned starts from aligned; nothing is blocked yet
		return a.toUnaligned(out, "", e.Channel), nil
	case e.Mode == Aligned && a.open > 0:
		out = a.block(out, e.Channel)
		if d, ok := a.Deadline(); ok && e.Now >= d {
			return a.toUnaligned(out, fmt.Sprintf("its first barrier arrived %s after the sources injected it, more than the alignment timeout (%s)", e.Age, a.timeout), -1), nil
		}
	}
	return a.complete(out), nil
}

// delivered counts the channels that delivered pending's barrier or ended.
func (a *Aligner) delivered() int { return len(a.arrived) - a.open }

// toUnaligned takes the snapshot of the pending (aligned) checkpoint now:
// the channels held so far are released; the data of the others up to
// their barriers, and what the unaligned barrier that just arrived on
// channel priority (-1: none) overtook, are in-flight data. reason ""
// means the checkpoint was unaligned from its first barrier.
func (a *Aligner) toUnaligned(out []Action, reason string, priority int) []Action {
	if reason != "" {
		out = append(out, SwitchToUnaligned{Checkpoint: a.pending, Reason: reason})
	}
	out = append(out, Snapshot{Checkpoint: a.pending, Mode: Unaligned})
	if priority >= 0 {
		out = append(out, PersistInFlight{Channel: priority, Checkpoint: a.pending})
	}
	out = a.unblockAll(out)
	a.mode, a.snapshotted = Unaligned, true
	return a.complete(out)
}

// complete finishes the pending checkpoint when every live channel has
// delivered its barrier.
func (a *Aligner) complete(out []Action) []Action {
	if a.pending == 0 || a.open > 0 {
		return out
	}
	id := a.pending
	switch a.mode {
	case Aligned:
		out = append(out, Snapshot{Checkpoint: id, Mode: Aligned})
		out = a.unblockAll(out)
	case AtLeastOnce:
		out = append(out, Snapshot{Checkpoint: id, Mode: AtLeastOnce})
	}
	a.pending = 0
	return append(out, Done{Checkpoint: id})
}

func (a *Aligner) block(out []Action, ch int) []Action {
	a.blocked[ch] = true
	return append(out, Block{Channel: ch})
}

// unblockAll releases every held channel.
func (a *Aligner) unblockAll(out []Action) []Action {
	for ch, b := range a.blocked {
		if b {
			a.blocked[ch] = false
			out = append(out, Unblock{Channel: ch})
		}
	}
	return out
}

// String describes the gate, for logs and script tests: the pending
// checkpoint and each channel's state.
func (a *Aligner) String() string {
	var b strings.Builder
	if a.pending == 0 {
		fmt.Fprintf(&b, "idle, last %d", a.last)
	} else {
		fmt.Fprintf(&b, "aligning %d (%s) since %s", a.pending, a.mode, a.start)
	}
	for ch := range a.ended {
		var st string
		switch {
		case a.ended[ch]:
			st = "ended"
		case a.Blocked(ch):
			st = "blocked"
		case a.pending != 0 && a.arrived[ch]:
			st = "arrived"
		case a.pending != 0 && a.mode == Unaligned && a.snapshotted:
			st = "persisting"
		default:
			st = "open"
		}
		fmt.Fprintf(&b, "; %d %s", ch, st)
	}
	return b.String()
}
