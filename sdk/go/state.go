package weir

import (
	"github.com/weirstream/weir/wasmabi"
)

// Keyed state. A state is declared in Open with NewValueState, NewListState
// or NewMapState, and used in ProcessElement and OnTimer, where every access
// is scoped to the key of the record or timer being processed: the handle
// takes the *Context. The state lives in the host, which checkpoints it.
// Operator state (NewOperatorListState, NewUnionListState,
// NewBroadcastState, below) uses the same handles without the key.

// stateRef locates a declared state: the operator it belongs to and its
// position among that operator's states. The host's id for it is per
// instance (see instance.opState), so handles can be shared by instances.
type stateRef struct {
	op   int
	slot int
	name string
	// operator is true for operator state: one per operator subtask, not
	// scoped to a key (see NewOperatorListState).
	operator bool
}

// id returns the host's id of the state and the key to pass with it: the
// current key for keyed state, none for operator state.
func (s *stateRef) id(c *Context, what string) (int32, []byte) {
	if s == nil {
		panic(usageError("weir: " + what + " on a nil state handle (declare states in Open)"))
	}
	if c.opIdx != s.op {
		panic(usageError("weir: " + what + ": state " + quote(s.name) + " belongs to another operator"))
	}
	var key []byte
	if !s.operator {
		key = c.currentKey(what)
	}
	ids := c.in.opState(s.op).ids
	if s.slot >= len(ids) {
		panic(usageError("weir: " + what + ": state " + quote(s.name) + " was not declared in this instance's Open"))
	}
	return ids[s.slot], key
}

// ValueState holds one value of type T per key.
type ValueState[T any] struct {
	ref   stateRef
	codec Codec[T]
}

// NewValueState declares a value state called name. Call it in Open.
func NewValueState[T any](o *OpenContext, name string, codec Codec[T]) *ValueState[T] {
	checkCodec(codec == nil, "NewValueState", name)
	return &ValueState[T]{ref: o.register(name, wasmabi.StateValue, "NewValueState"), codec: codec}
}

// Get returns the value of the current key; ok is false when there is none.
func (s *ValueState[T]) Get(c *Context) (v T, ok bool, err error) {
	id, key := s.ref.id(c, "ValueState.Get")
	b, ok := c.in.stateRead(wasmabi.StateGet, id, key, nil)
	if !ok {
		return v, false, nil
	}
	v, err = s.codec.Decode(b)
	if err != nil {
		return v, false, stateError(s.ref.name, err)
	}
	return v, true, nil
}

// Set sets the value of the current key.
func (s *ValueState[T]) Set(c *Context, v T) {
	id, key := s.ref.id(c, "ValueState.Set")
	in := c.in
	in.enc = s.codec.Append(in.enc[:0], v)
	in.host.State(wasmabi.StatePut, id, key, nil, in.enc)
}

// Clear removes the value of the current key.
func (s *ValueState[T]) Clear(c *Context) {
	id, key := s.ref.id(c, "ValueState.Clear")
	c.in.host.State(wasmabi.StateClear, id, key, nil, nil)
}

// ListState holds a list of values of type T per key.
type ListState[T any] struct {
	ref   stateRef
	codec Codec[T]
}

// NewListState declares a list state called name. Call it in Open.
func NewListState[T any](o *OpenContext, name string, codec Codec[T]) *ListState[T] {
	checkCodec(codec == nil, "NewListState", name)
	return &ListState[T]{ref: o.register(name, wasmabi.StateList, "NewListState"), codec: codec}
}

// Add appends v to the list of the current key.
func (s *ListState[T]) Add(c *Context, v T) {
	id, key := s.ref.id(c, "ListState.Add")
	in := c.in
	in.enc = s.codec.Append(in.enc[:0], v)
	in.host.State(wasmabi.StatePut, id, key, nil, in.enc)
}

// Get returns the list of the current key (nil when empty).
func (s *ListState[T]) Get(c *Context) ([]T, error) {
	var out []T
	err := s.Range(c, func(v T) bool {
		out = append(out, v)
		return true
	})
	return out, err
}

// Range calls fn for each item of the list of the current key, in order,
// until fn returns false. fn may use state.
func (s *ListState[T]) Range(c *Context, fn func(v T) bool) error {
	id, key := s.ref.id(c, "ListState.Range")
	b, ok := c.in.stateTake(wasmabi.StateGet, id, key, nil)
	if !ok {
		return nil
	}
	defer c.in.stateGive(b)
	for len(b) > 0 {
		item, rest, err := wasmabi.NextItem(b)
		if err != nil {
			return stateError(s.ref.name, err)
		}
		v, err := s.codec.Decode(item)
		if err != nil {
			return stateError(s.ref.name, err)
		}
		if !fn(v) {
			return nil
		}
		b = rest
	}
	return nil
}

// Update replaces the list of the current key with vs.
func (s *ListState[T]) Update(c *Context, vs []T) {
	s.Clear(c)
	for _, v := range vs {
		s.Add(c, v)
	}
}

// Clear empties the list of the current key.
func (s *ListState[T]) Clear(c *Context) {
	id, key := s.ref.id(c, "ListState.Clear")
	c.in.host.State(wasmabi.StateClear, id, key, nil, nil)
}

// MapState holds a map from K to V per key.
type MapState[K, V any] struct {
	ref stateRef
	kc  Codec[K]
	vc  Codec[V]
}

// NewMapState declares a map state called name. Call it in Open.
func NewMapState[K, V any](o *OpenContext, name string, keyCodec Codec[K], valueCodec Codec[V]) *MapState[K, V] {
	checkCodec(keyCodec == nil || valueCodec == nil, "NewMapState", name)
	return &MapState[K, V]{ref: o.register(name, wasmabi.StateMap, "NewMapState"), kc: keyCodec, vc: valueCodec}
}

// Get returns the value of k in the map of the current key.
func (s *MapState[K, V]) Get(c *Context, k K) (v V, ok bool, err error) {
	id, key := s.ref.id(c, "MapState.Get")
	in := c.in
	in.ukey = s.kc.Append(in.ukey[:0], k)
	b, ok := in.stateRead(wasmabi.StateGet, id, key, in.ukey)
	if !ok {
		return v, false, nil
	}
	if v, err = s.vc.Decode(b); err != nil {
		return v, false, stateError(s.ref.name, err)
	}
	return v, true, nil
}

// Put sets k to v in the map of the current key.
func (s *MapState[K, V]) Put(c *Context, k K, v V) {
	id, key := s.ref.id(c, "MapState.Put")
	in := c.in
	in.ukey = s.kc.Append(in.ukey[:0], k)
	in.enc = s.vc.Append(in.enc[:0], v)
	in.host.State(wasmabi.StatePut, id, key, in.ukey, in.enc)
}

// Delete removes k from the map of the current key.
func (s *MapState[K, V]) Delete(c *Context, k K) {
	id, key := s.ref.id(c, "MapState.Delete")
	in := c.in
	in.ukey = s.kc.Append(in.ukey[:0], k)
	in.host.State(wasmabi.StateDelete, id, key, in.ukey, nil)
}

// Range calls fn for each entry of the map of the current key until fn
// returns false. The order is the host's. fn may use state.
func (s *MapState[K, V]) Range(c *Context, fn func(k K, v V) bool) error {
	id, key := s.ref.id(c, "MapState.Range")
	b, ok := c.in.stateTake(wasmabi.StateEntries, id, key, nil)
	if !ok {
		return nil
	}
	defer c.in.stateGive(b)
	for len(b) > 0 {
		kb, rest, err := wasmabi.NextItem(b)
		if err != nil {
			return stateError(s.ref.name, err)
		}
		vb, rest, err := wasmabi.NextItem(rest)
		if err != nil {
			return stateError(s.ref.name, err)
		}
		k, err := s.kc.Decode(kb)
		if err != nil {
			return stateError(s.ref.name, err)
		}
		v, err := s.vc.Decode(vb)
		if err != nil {
			return stateError(s.ref.name, err)
		}
		if !fn(k, v) {
			return nil
		}
		b = rest
	}
	return nil
}

// Clear empties the map of the current key.
func (s *MapState[K, V]) Clear(c *Context) {
	id, key := s.ref.id(c, "MapState.Clear")
	c.in.host.State(wasmabi.StateClear, id, key, nil, nil)
}

// Operator state: one state per operator subtask rather than per key. Any
// operator may declare it in Open (or an OnOpen hook), and use it with the
// *Context of any of its calls (records of any key, timers, finish). The
// handles are the keyed ones; the key is not used. They differ in what
// happens when a job is restored at another parallelism: see wasmabi's
// StateOperatorList, StateUnionList and StateBroadcast.

// NewOperatorListState declares an operator list state called name: a list
// per subtask whose items are split among the subtasks on a rescale.
func NewOperatorListState[T any](o *OpenContext, name string, codec Codec[T]) *ListState[T] {
	checkCodec(codec == nil, "NewOperatorListState", name)
	return &ListState[T]{ref: o.register(name, wasmabi.StateOperatorList, "NewOperatorListState"), codec: codec}
}

// NewUnionListState declares a union list state called name: a list per
// subtask; on a restore every subtask gets the union of all the lists.
func NewUnionListState[T any](o *OpenContext, name string, codec Codec[T]) *ListState[T] {
	checkCodec(codec == nil, "NewUnionListState", name)
	return &ListState[T]{ref: o.register(name, wasmabi.StateUnionList, "NewUnionListState"), codec: codec}
}

// NewBroadcastState declares a broadcast state called name: a map per
// subtask, meant to hold the same entries in every subtask, written from a
// broadcast input (the second input of a CoProcess whose edge is
// broadcast, say) and read when processing the other.
func NewBroadcastState[K, V any](o *OpenContext, name string, keyCodec Codec[K], valueCodec Codec[V]) *MapState[K, V] {
	checkCodec(keyCodec == nil || valueCodec == nil, "NewBroadcastState", name)
	return &MapState[K, V]{ref: o.register(name, wasmabi.StateBroadcast, "NewBroadcastState"), kc: keyCodec, vc: valueCodec}
}

func checkCodec(missing bool, what, name string) {
	if missing {
		panic(usageError("weir: " + what + "(" + quote(name) + "): nil codec"))
	}
}

type stateErr struct {
	name string
	err  error
}

func (e *stateErr) Error() string { return "state " + quote(e.name) + ": " + e.err.Error() }
func (e *stateErr) Unwrap() error { return e.err }

func stateError(name string, err error) error { return &stateErr{name, err} }
