package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/wasmabi"
)

// ErrTTL is returned by Register when a state is registered again with a
// TTL that does not match: TTL cannot be turned on or off for a state that
// has data (the stored values carry a write time only with TTL), and two
// registrations live at the same time must agree on it.
var ErrTTL = errors.New("state: TTL does not match the state's registration")

// maxNameLen bounds job names, operator uids and state names.
const maxNameLen = 4096

// Validate checks per-state options.
func (o Options) Validate() error {
	if o.TTL < 0 {
		return fmt.Errorf("state: TTL %d ms: want 0 (no expiry) or more", o.TTL)
	}
	return nil
}

// wallClock is the Clock used when a backend is given none.
func wallClock() int64 { return time.Now().UnixMilli() }

// decl is what a state was registered with.
type decl struct {
	kind     wasmabi.StateKind // the kind whose operations it has: value, list or map
	declared wasmabi.StateKind // as registered: keyed 1-3 or operator 4-6
	ttl      int64
	tag      uint64 // the state's storage identity: see tagOf
}

func validKind(k wasmabi.StateKind) error {
	if k.Valid() {
		return nil
	}
	return fmt.Errorf("state: kind %d: want value (%d), list (%d), map (%d), operator list (%d), union list (%d) or broadcast (%d)",
		k, wasmabi.StateValue, wasmabi.StateList, wasmabi.StateMap, wasmabi.StateOperatorList, wasmabi.StateUnionList, wasmabi.StateBroadcast)
}

func kindName(k wasmabi.StateKind) string { return k.String() }

// Name is the stable identity of a state: the job, the operator's uid and
// the state's name. It is what snapshots record and restores match, so it
// must not depend on the process, the parallelism or the order in which
// states were registered; two jobs on one worker never share a state, even
// with equal operator uids and state names.
type Name struct {
	Job, Operator, State string
}

func (n Name) String() string {
	return fmt.Sprintf("state %q of operator %q of job %q", n.State, n.Operator, n.Job)
}

func (n Name) validate() error {
	if n.State == "" || len(n.State) > maxNameLen || len(n.Operator) > maxNameLen || len(n.Job) > maxNameLen {
		return fmt.Errorf("state: registering %s: want a state name of 1 to %d bytes and a job and uid of at most %d", n, maxNameLen, maxNameLen)
	}
	return nil
}

// appendName appends the canonical encoding of n: each part
// length-prefixed but the last.
func appendName(dst []byte, n Name) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(n.Job)))
	dst = append(dst, n.Job...)
	dst = binary.AppendUvarint(dst, uint64(len(n.Operator)))
	dst = append(dst, n.Operator...)
	return append(dst, n.State...)
}

// tagOf is the storage identity of a state: a 64-bit hash of its Name.
// The pebble backend keys every entry by it rather than by the ID, which
// is only a handle in this process, so the same state has the same keys in
// every database and every process. Two names with one tag are refused at
// registration (ErrTagCollision; about one chance in 2^40 for a million
// states).
func tagOf(n Name) uint64 { return keygroup.Hash(appendName(nil, n)) }

// ErrTagCollision is returned by Register when two state names hash to
// the same storage tag; renaming either state resolves it.
var ErrTagCollision = errors.New("state: two states have the same storage tag")

type regEntry struct {
	decl
	name Name
	// live is true once the state was registered since the backend was
	// created or opened; entries loaded from disk are not live until then.
	live bool
}

// registry maps state names to IDs. Both backends use it; the pebble
// backend loads it from and persists it to its database. IDs are small
// integers in registration order within one process, for lock-free lookup
// on the hot path; nothing stored depends on them.
type registry struct {
	mu      sync.Mutex
	byName  map[Name]ID      // guarded by mu
	byTag   map[uint64]ID    // guarded by mu
	entries map[ID]*regEntry // guarded by mu
	next    ID               // guarded by mu: the ID the next new state gets
}

func newRegistry() *registry {
	return &registry{byName: map[Name]ID{}, byTag: map[uint64]ID{}, entries: map[ID]*regEntry{}}
}

// load adds a registration read from disk.
func (r *registry) load(n Name, d decl) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.byName[n]; dup {
		return fmt.Errorf("state: registry: %s recorded twice", n)
	}
	d.tag = tagOf(n)
	if other, dup := r.byTag[d.tag]; dup {
		return fmt.Errorf("state: registry: %s and %s: %w", n, r.entries[other].name, ErrTagCollision)
	}
	id := r.next
	r.next++
	r.byName[n], r.byTag[d.tag] = id, id
	r.entries[id] = &regEntry{decl: d, name: n}
	return nil
}

// register returns the ID of n, checking kind and TTL against an earlier
// registration. activate is called, under the registry's lock, when the
// state becomes live in this process (new, or known from disk and
// registered for the first time since open), with the declaration to keep;
// if it fails, nothing changes.
func (r *registry) register(n Name, kind wasmabi.StateKind, opts Options, activate func(ID, decl) error) (ID, error) {
	if err := validKind(kind); err != nil {
		return 0, fmt.Errorf("registering %s: %w", n, err)
	}
	if err := opts.Validate(); err != nil {
		return 0, fmt.Errorf("registering %s: %w", n, err)
	}
	if opts.TTL > 0 && !kind.Keyed() {
		return 0, fmt.Errorf("state: registering %s as %s state with TTL %d ms: TTL is for keyed state: %w", n, kindName(kind), opts.TTL, ErrTTL)
	}
	if err := n.validate(); err != nil {
		return 0, err
	}
	d := decl{kind: kind.Storage(), declared: kind, ttl: opts.TTL, tag: tagOf(n)}
	r.mu.Lock()
	defer r.mu.Unlock()
	if id, ok := r.byName[n]; ok {
		e := r.entries[id]
		switch {
		case e.declared != kind:
			return 0, fmt.Errorf("state: registering %s as %s state: it is %s state: %w", n, kindName(kind), kindName(e.declared), ErrKind)
		case (e.ttl > 0) != (d.ttl > 0), e.live && e.ttl != d.ttl:
			return 0, fmt.Errorf("state: registering %s with TTL %d ms: it has TTL %d ms: %w", n, d.ttl, e.ttl, ErrTTL)
		case e.live:
			return id, nil
		}
		if err := activate(id, d); err != nil {
			return 0, err
		}
		e.decl, e.live = d, true
		return id, nil
	}
	if other, dup := r.byTag[d.tag]; dup {
		return 0, fmt.Errorf("state: registering %s: %s: %w", n, r.entries[other].name, ErrTagCollision)
	}
	if r.next == math.MaxUint32 {
		return 0, fmt.Errorf("state: registering %s: out of state ids", n)
	}
	id := r.next
	if err := activate(id, d); err != nil {
		return 0, err
	}
	r.byName[n], r.byTag[d.tag] = id, id
	r.entries[id] = &regEntry{decl: d, name: n, live: true}
	r.next++
	return id, nil
}

// regInfo is a live registration, as snapshots list them.
type regInfo struct {
	id   ID
	name Name
	decl
}

// operatorStates returns the live states of operator (job, uid), sorted by
// state name.
func (r *registry) operatorStates(job, uid string) []regInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []regInfo
	for n, id := range r.byName {
		if e := r.entries[id]; e.live && n.Job == job && n.Operator == uid {
			out = append(out, regInfo{id: id, name: n, decl: e.decl})
		}
	}
	slices.SortFunc(out, func(a, b regInfo) int { return strings.Compare(a.name.State, b.name.State) })
	return out
}

// table holds a backend's per-state values by ID for lock-free lookup on
// the hot path: readers load the slice, writers (under the registry's lock)
// publish a copy.
type table[S any] struct{ p atomic.Pointer[[]*S] }

func (t *table[S]) get(id ID) *S {
	s := t.p.Load()
	if s == nil || uint64(id) >= uint64(len(*s)) {
		return nil
	}
	return (*s)[id]
}

// set publishes s as the state of id; callers serialise.
func (t *table[S]) set(id ID, s *S) {
	var old []*S
	if p := t.p.Load(); p != nil {
		old = *p
	}
	n := make([]*S, max(len(old), int(id)+1))
	copy(n, old)
	n[id] = s
	t.p.Store(&n)
}

// each calls fn with every published state.
func (t *table[S]) each(fn func(*S)) {
	p := t.p.Load()
	if p == nil {
		return
	}
	for _, s := range *p {
		if s != nil {
			fn(s)
		}
	}
}
