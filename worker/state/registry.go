package state

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weirstream/weir/wasmabi"
)

// ErrTTL is returned by Register when a state is registered again with a
// TTL that does not match: TTL cannot be turned on or off for a state that
// has data (the stored values carry a write time only with TTL), and two
// registrations live at the same time must agree on it.
var ErrTTL = errors.New("state: TTL does not match the state's registration")

// maxNameLen bounds operator uids and state names.
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
	kind wasmabi.StateKind
	ttl  int64
}

func validKind(k wasmabi.StateKind) error {
	switch k {
	case wasmabi.StateValue, wasmabi.StateList, wasmabi.StateMap:
		return nil
	}
	return fmt.Errorf("state: kind %d: want value (%d), list (%d) or map (%d)", k, wasmabi.StateValue, wasmabi.StateList, wasmabi.StateMap)
}

func kindName(k wasmabi.StateKind) string {
	switch k {
	case wasmabi.StateValue:
		return "value"
	case wasmabi.StateList:
		return "list"
	case wasmabi.StateMap:
		return "map"
	}
	return fmt.Sprintf("kind %d", k)
}

type declName struct{ uid, name string }

type regEntry struct {
	decl
	// live is true once the state was registered since the backend was
	// created or opened; entries loaded from disk are not live until then.
	live bool
}

// registry maps (operator uid, state name) to IDs. Both backends use it;
// the pebble backend loads it from and persists it to its database.
type registry struct {
	mu      sync.Mutex
	byName  map[declName]ID  // guarded by mu
	entries map[ID]*regEntry // guarded by mu
	next    ID               // guarded by mu: the ID the next new state gets
}

func newRegistry() *registry {
	return &registry{byName: map[declName]ID{}, entries: map[ID]*regEntry{}}
}

// load adds a registration read from disk.
func (r *registry) load(uid, name string, id ID, d decl) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.entries[id]; dup {
		return fmt.Errorf("state: registry: id %d recorded twice", id)
	}
	n := declName{uid, name}
	if _, dup := r.byName[n]; dup {
		return fmt.Errorf("state: registry: state %q of operator %q recorded twice", name, uid)
	}
	r.byName[n] = id
	r.entries[id] = &regEntry{decl: d}
	if id >= r.next {
		r.next = id + 1
	}
	return nil
}

// register returns the ID of (uid, name), checking kind and TTL against an
// earlier registration. activate is called, under the registry's lock,
// when the state becomes live in this process (new, or known from disk and
// registered for the first time since open), with the declaration to keep;
// if it fails, nothing changes.
func (r *registry) register(uid, name string, kind wasmabi.StateKind, opts Options, activate func(ID, decl) error) (ID, error) {
	if err := validKind(kind); err != nil {
		return 0, fmt.Errorf("registering state %q of operator %q: %w", name, uid, err)
	}
	if err := opts.Validate(); err != nil {
		return 0, fmt.Errorf("registering state %q of operator %q: %w", name, uid, err)
	}
	if name == "" || len(name) > maxNameLen || len(uid) > maxNameLen {
		return 0, fmt.Errorf("state: registering state %q of operator %q: want a name of 1 to %d bytes and a uid of at most %d", name, uid, maxNameLen, maxNameLen)
	}
	d := decl{kind: kind, ttl: opts.TTL}
	r.mu.Lock()
	defer r.mu.Unlock()
	if id, ok := r.byName[declName{uid, name}]; ok {
		e := r.entries[id]
		switch {
		case e.kind != kind:
			return 0, fmt.Errorf("state: registering state %q of operator %q as %s state: it is %s state: %w", name, uid, kindName(kind), kindName(e.kind), ErrKind)
		case (e.ttl > 0) != (d.ttl > 0), e.live && e.ttl != d.ttl:
			return 0, fmt.Errorf("state: registering state %q of operator %q with TTL %d ms: it has TTL %d ms: %w", name, uid, d.ttl, e.ttl, ErrTTL)
		case e.live:
			return id, nil
		}
		if err := activate(id, d); err != nil {
			return 0, err
		}
		e.decl, e.live = d, true
		return id, nil
	}
	if r.next == math.MaxUint32 {
		return 0, fmt.Errorf("state: registering state %q of operator %q: out of state ids", name, uid)
	}
	id := r.next
	if err := activate(id, d); err != nil {
		return 0, err
	}
	r.byName[declName{uid, name}] = id
	r.entries[id] = &regEntry{decl: d, live: true}
	r.next++
	return id, nil
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
