// Package snapshot is the canonical, backend-independent format of the
// state of one operator subtask: its keyed state (value, list and map) by
// key group, its operator state (list, union list, broadcast) and its
// timers. A heap backend and a pebble backend write the same bytes for the
// same state, and either restores what the other wrote, at any parallelism
// with the same max parallelism.
//
// A snapshot file is
//
//	magic "weirsnap" | version u16 | header | records... | end (0) | crc32c u32
//
// all integers big-endian or uvarint/varint as noted in codec.go. The
// checksum (Castagnoli) covers every byte before it; Open verifies it before
// anything is decoded, so a truncated or corrupted file is refused whole.
//
// Records come in a canonical order: keyed slots and timers by key group,
// then (keyed slots) by state in header order and record key (shorter
// first, then bytewise), timers by domain, time, key and namespace;
// operator state after every key group. List items keep insertion order,
// map entries are sorted by user key. The package imports nothing of weir
// but internal/keygroup, so coordinator and worker can both read it.
package snapshot

import (
	"errors"
	"fmt"

	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/wasmabi"
)

// Errors.
var (
	ErrCorrupt  = errors.New("snapshot: corrupt")
	ErrMismatch = errors.New("snapshot: does not match the restore target")
)

// Version is the format version this build writes and reads.
const Version = 1

// MaxNameLen bounds job names, operator uids and state names.
const MaxNameLen = 4096

// maxStates bounds the states of one operator in one snapshot.
const maxStates = 1 << 16

// Subtask says which subtask of an operator a snapshot belongs to, or is
// restored into: index of parallelism, over MaxParallelism key groups.
type Subtask struct {
	Index, Parallelism, MaxParallelism int
}

// Validate checks the subtask.
func (s Subtask) Validate() error {
	if err := keygroup.Validate(s.Parallelism, s.MaxParallelism); err != nil {
		return fmt.Errorf("snapshot: subtask: %w", err)
	}
	if s.Index < 0 || s.Index >= s.Parallelism {
		return fmt.Errorf("snapshot: subtask index %d: want 0 to %d", s.Index, s.Parallelism-1)
	}
	return nil
}

// Range is the key groups the subtask owns.
func (s Subtask) Range() keygroup.Range {
	return keygroup.RangeFor(s.Index, s.Parallelism, s.MaxParallelism)
}

func (s Subtask) String() string {
	return fmt.Sprintf("subtask %d of %d (key groups %s of %d)", s.Index, s.Parallelism, s.Range(), s.MaxParallelism)
}

// State is one declared state of the operator.
type State struct {
	Name string
	Kind wasmabi.StateKind // as declared: keyed 1-3 or operator 4-6
	TTL  int64             // ms, 0: none
}

// Header describes a snapshot: whose state it holds and which states.
type Header struct {
	Job      string // the job that took it (informational: restores match by operator uid)
	Operator string // the operator's uid
	Subtask  Subtask
	States   []State // sorted by name; records refer to them by index
}

// Validate checks a header, as Open does with a decoded one.
func (h *Header) Validate() error {
	if len(h.Job) > MaxNameLen || len(h.Operator) > MaxNameLen {
		return fmt.Errorf("snapshot: job or operator name over %d bytes", MaxNameLen)
	}
	if err := h.Subtask.Validate(); err != nil {
		return err
	}
	if len(h.States) > maxStates {
		return fmt.Errorf("snapshot: %d states: want at most %d", len(h.States), maxStates)
	}
	for i, s := range h.States {
		if s.Name == "" || len(s.Name) > MaxNameLen {
			return fmt.Errorf("snapshot: state %d: want a name of 1 to %d bytes", i, MaxNameLen)
		}
		if i > 0 && h.States[i-1].Name >= s.Name {
			return fmt.Errorf("snapshot: states %q and %q: want sorted, distinct names", h.States[i-1].Name, s.Name)
		}
		if !s.Kind.Valid() {
			return fmt.Errorf("snapshot: state %q: unknown kind %d", s.Name, s.Kind)
		}
		if s.TTL < 0 || (s.TTL > 0 && !s.Kind.Keyed()) {
			return fmt.Errorf("snapshot: state %q: TTL %d: want 0, or more for keyed state", s.Name, s.TTL)
		}
	}
	return nil
}

// RecordType says what a Record holds.
type RecordType uint8

const (
	recEnd RecordType = iota
	// Value is one key's value state: State, KeyGroup, Key, TS, Value.
	Value
	// List is one key's list state: State, KeyGroup, Key, Items.
	List
	// Map is one key's map state: State, KeyGroup, Key, Entries.
	Map
	// OperatorList is the subtask's operator list or union list state:
	// State, Items.
	OperatorList
	// Broadcast is the subtask's broadcast state: State, Entries.
	Broadcast
	// Timer is one timer: KeyGroup, Domain, TS, Key, Namespace.
	Timer
	recLimit
)

func (t RecordType) String() string {
	switch t {
	case Value:
		return "value"
	case List:
		return "list"
	case Map:
		return "map"
	case OperatorList:
		return "operator list"
	case Broadcast:
		return "broadcast"
	case Timer:
		return "timer"
	}
	return fmt.Sprintf("record type %d", t)
}

// Item is one list item with its write time (0 without TTL).
type Item struct {
	TS    int64
	Value []byte
}

// Entry is one map entry with its write time (0 without TTL).
type Entry struct {
	Key   []byte
	TS    int64
	Value []byte
}

// Record is one unit of a snapshot. Which fields mean something depends on
// Type. A Reader reuses one Record and its slices between calls.
type Record struct {
	Type      RecordType
	State     int // index into Header.States
	KeyGroup  int
	Key       []byte
	TS        int64
	Value     []byte
	Items     []Item
	Entries   []Entry
	Domain    wasmabi.TimeDomain
	Namespace []byte
}

// CompareKeys orders record keys as snapshots do: shorter first, then
// bytewise (the order of a length-prefixed key).
func CompareKeys(a, b []byte) int {
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	for i := range a {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}
