// Package state holds the keyed state of a worker's operators: value, list
// and map state scoped to a record key, as the ABI's state host function
// offers it, in one of two backends — heap (Go maps, in memory) and pebble
// (an LSM on local disk, one instance per worker).
//
// Every keyed entry lives under its key group (see internal/keygroup), the
// first component of its storage key, so the entries of a key-group range
// are contiguous and can be cut out whole when a job is rescaled.
package state

import (
	"errors"

	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/internal/snapshot"
	"github.com/weirstream/weir/wasmabi"
)

// ID is the handle of one registered state (a Name) in one Backend, in
// this process: small integers in registration order, for a lock-free
// lookup per call. Nothing stored or snapshotted depends on it.
type ID uint32

// Backend is the keyed state of one worker. The subtasks of one operator
// share its IDs and run on different goroutines, each on its own key
// groups: a Backend is safe for concurrent use by goroutines that use
// disjoint key groups (implementations keep their per-call scratch per key
// group), and not for two goroutines on one key group.
//
// Slices passed in are only read during the call. Slices returned are
// appended to dst and owned by the caller.
type Backend interface {
	// RegisterState declares the state n with a kind and returns its ID;
	// registering n again returns the same ID, or an error if the kind
	// differs. Keyed kinds (value, list, map) are scoped to a record key;
	// operator kinds (operator list, union list, broadcast) have the
	// operations of list, list and map state and live in one slot per
	// subtask: key group OperatorKeyGroup(range), empty key. The declared
	// kind decides how a snapshot's state is redistributed on restore.
	RegisterState(n Name, kind wasmabi.StateKind, opts Options) (ID, error)
	// Register is RegisterState(Name{Operator: uid, State: name}), a
	// state of no job: callers that know their job use RegisterState.
	Register(uid, name string, kind wasmabi.StateKind, opts Options) (ID, error)

	// Get appends to dst the value of a value state, or the value of
	// userKey in a map state, for key in key group kg; ok is false when
	// there is none.
	Get(id ID, kg uint16, key, userKey, dst []byte) (out []byte, ok bool, err error)
	// Put sets a value state, appends value to a list state, or sets
	// userKey to value in a map state.
	Put(id ID, kg uint16, key, userKey, value []byte) error
	// Delete clears a value or list state, or removes userKey from a map
	// state.
	Delete(id ID, kg uint16, key, userKey []byte) error
	// Clear removes everything the state holds for key.
	Clear(id ID, kg uint16, key []byte) error
	// List appends to dst the items of a list state in insertion order,
	// each encoded with wasmabi.AppendItem; ok is false when empty.
	List(id ID, kg uint16, key, dst []byte) (out []byte, ok bool, err error)
	// Entries appends to dst the entries of a map state in user-key byte
	// order, each as two wasmabi items (user key, value); ok is false when
	// empty.
	Entries(id ID, kg uint16, key, dst []byte) (out []byte, ok bool, err error)

	// RegisterTimers returns the handle of the timers of operator (job,
	// uid). Timers are kept by key group, like keyed state, so they are
	// snapshotted and restored with the keys they belong to.
	RegisterTimers(job, operator string) (TimersID, error)
	// AddTimer registers the timer (domain d, time ts, key, namespace ns)
	// in key group kg; again is a no-op.
	AddTimer(t TimersID, kg uint16, d wasmabi.TimeDomain, ts int64, key, ns []byte) error
	// DeleteTimer removes a timer, if registered.
	DeleteTimer(t TimersID, kg uint16, d wasmabi.TimeDomain, ts int64, key, ns []byte) error
	// NextTimer returns the earliest time of a timer of domain d in the
	// key groups r.
	NextTimer(t TimersID, r keygroup.Range, d wasmabi.TimeDomain) (ts int64, ok bool, err error)
	// PopDueTimers removes the timers of domain d in r with time <= upTo
	// and appends them to dst by time, then key, then namespace.
	PopDueTimers(t TimersID, r keygroup.Range, d wasmabi.TimeDomain, upTo int64, dst []Timer) ([]Timer, error)

	// Snapshot takes the synchronous part of a snapshot of operator (job,
	// uid) for subtask sub: its keyed state in sub's key groups, its
	// operator state and its timers. It runs on the goroutine that owns
	// those key groups (the task's, at the barrier) and is short: the
	// heap freezes its maps (copy on write), pebble flushes the pending
	// writes and takes a pebble snapshot. The returned Snapshot's WriteTo
	// is the asynchronous part; Release it before the backend's Close.
	Snapshot(job, operator string, sub snapshot.Subtask) (*Snapshot, error)
	// Restore loads, into job and the key groups of target, the state of
	// the operator of the snapshots from, taken at any parallelism with
	// the same max parallelism: keyed state and timers of target's key
	// groups, operator state redistributed by kind (see
	// internal/snapshot). It registers the snapshots' states; it runs on
	// the goroutine that owns target's key groups, before the task uses
	// them, and refuses key groups that hold state of the operator
	// (ErrNotEmpty). from must hold every subtask of one run that has
	// operator state; for keyed state alone, those whose key groups
	// overlap target's suffice.
	Restore(job string, target snapshot.Subtask, from []*snapshot.Reader) error

	// Close releases the backend; a pebble backend flushes and closes its
	// database.
	Close() error
}

// OperatorKeyGroup is the key group under which a subtask that owns the
// key groups r keeps its operator state (with an empty record key).
func OperatorKeyGroup(r keygroup.Range) uint16 { return uint16(r.Start) }

// Options are per-state settings.
type Options struct {
	// TTL, in milliseconds of processing time, after which an entry that
	// was not written is treated as absent (0: no expiry). An entry's time
	// is the Clock's value when it was last written.
	TTL int64
}

// Clock returns the processing time in ms used for TTL. Backends take one
// at construction so tests can drive expiry.
type Clock func() int64

// Errors.
var (
	ErrUnknownID = errors.New("state: unknown state id")
	ErrKind      = errors.New("state: operation not valid for this kind of state")
	ErrClosed    = errors.New("state: backend closed")
)
