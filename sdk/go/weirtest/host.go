//go:build !wasip1

package weirtest

import (
	"cmp"
	"slices"

	"github.com/weirstream/weir/wasmabi"
)

// Host is an in-memory weir.Host. Its fields can be inspected by tests.
type Host struct {
	// Out collects the output entries of the current call.
	Out []byte
	// OutputCalls counts the calls of Output (over the Host's life).
	OutputCalls int
	// Failure is the message of the last Fail.
	Failure string
	// Logs collects log lines.
	Logs []LogLine
	// Counters sums the counters, CounterCalls counts the calls of Counter.
	Counters     map[string]int64
	CounterCalls int
	// States lists the declared states; the id of a state is its index.
	States []StateDecl
	// Timers holds the registered timers.
	Timers map[TimerKey]bool

	values map[stateKey][]byte
	lists  map[stateKey][][]byte
	maps   map[stateKey]map[string][]byte
}

// LogLine is one line the module logged.
type LogLine struct {
	Level int
	Msg   string
}

// StateDecl is a declared state.
type StateDecl struct {
	Name string
	Kind wasmabi.StateKind
}

// TimerKey is a registered timer.
type TimerKey struct {
	Key    string
	Domain wasmabi.TimeDomain
	TS     int64
}

type stateKey struct {
	id  int32
	key string
}

// NewHost returns an empty Host.
func NewHost() *Host {
	return &Host{
		Counters: map[string]int64{},
		Timers:   map[TimerKey]bool{},
		values:   map[stateKey][]byte{},
		lists:    map[stateKey][][]byte{},
		maps:     map[stateKey]map[string][]byte{},
	}
}

func (h *Host) Output(b []byte) {
	h.Out = append(h.Out, b...)
	h.OutputCalls++
}

func (h *Host) Fail(msg string) { h.Failure = msg }

func (h *Host) Log(level int, msg string) { h.Logs = append(h.Logs, LogLine{level, msg}) }

func (h *Host) Counter(name string, delta int64) {
	h.Counters[name] += delta
	h.CounterCalls++
}

func (h *Host) StateRegister(name string, kind wasmabi.StateKind) int32 {
	for i, s := range h.States {
		if s.Name == name {
			if s.Kind != kind {
				return -1
			}
			return int32(i)
		}
	}
	h.States = append(h.States, StateDecl{name, kind})
	return int32(len(h.States) - 1)
}

func (h *Host) State(op wasmabi.StateOp, id int32, key, userKey, value []byte) int64 {
	if id < 0 || int(id) >= len(h.States) {
		panic("weirtest: state of unknown id")
	}
	kind := h.States[id].Kind
	if kind.Keyed() && key == nil {
		panic("weirtest: keyed state without a key")
	}
	if !kind.Keyed() {
		key = nil // operator state: one per instance
	}
	sk := stateKey{id, string(key)}
	var res []byte
	switch kind.Storage() {
	case wasmabi.StateValue:
		switch op {
		case wasmabi.StateGet:
			v, ok := h.values[sk]
			if !ok {
				return -1
			}
			res = v
		case wasmabi.StatePut:
			h.values[sk] = slices.Clone(value)
			return 0
		case wasmabi.StateDelete, wasmabi.StateClear:
			delete(h.values, sk)
			return 0
		default:
			panic("weirtest: bad op on value state")
		}
	case wasmabi.StateList:
		switch op {
		case wasmabi.StateGet:
			l := h.lists[sk]
			if len(l) == 0 {
				return -1
			}
			for _, it := range l {
				res = wasmabi.AppendItem(res, it)
			}
		case wasmabi.StatePut:
			h.lists[sk] = append(h.lists[sk], slices.Clone(value))
			return 0
		case wasmabi.StateDelete, wasmabi.StateClear:
			delete(h.lists, sk)
			return 0
		default:
			panic("weirtest: bad op on list state")
		}
	case wasmabi.StateMap:
		m := h.maps[sk]
		switch op {
		case wasmabi.StateGet:
			v, ok := m[string(userKey)]
			if !ok {
				return -1
			}
			res = v
		case wasmabi.StatePut:
			if m == nil {
				m = map[string][]byte{}
				h.maps[sk] = m
			}
			m[string(userKey)] = slices.Clone(value)
			return 0
		case wasmabi.StateDelete:
			delete(m, string(userKey))
			return 0
		case wasmabi.StateEntries:
			if len(m) == 0 {
				return -1
			}
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				res = wasmabi.AppendItem(res, []byte(k))
				res = wasmabi.AppendItem(res, m[k])
			}
		case wasmabi.StateClear:
			delete(h.maps, sk)
			return 0
		default:
			panic("weirtest: bad op on map state")
		}
	}
	if len(res) <= len(value) {
		copy(value, res)
	}
	return int64(len(res))
}

func (h *Host) Timer(op wasmabi.TimerOp, domain wasmabi.TimeDomain, ts int64, key []byte) {
	if key == nil {
		panic("weirtest: timer without a key")
	}
	k := TimerKey{string(key), domain, ts}
	switch op {
	case wasmabi.TimerRegister:
		h.Timers[k] = true
	case wasmabi.TimerDelete:
		delete(h.Timers, k)
	default:
		panic("weirtest: bad timer op")
	}
}

// Value returns the raw value of a value state for key.
func (h *Host) Value(state string, key string) ([]byte, bool) {
	id := h.stateID(state)
	v, ok := h.values[stateKey{id, key}]
	return v, ok
}

// List returns the raw items of a list state for key.
func (h *Host) List(state string, key string) [][]byte {
	return h.lists[stateKey{h.stateID(state), key}]
}

// Map returns the raw entries of a map state for key.
func (h *Host) Map(state string, key string) map[string][]byte {
	return h.maps[stateKey{h.stateID(state), key}]
}

func (h *Host) stateID(name string) int32 {
	for i, s := range h.States {
		if s.Name == name {
			return int32(i)
		}
	}
	return -1
}

// due removes and returns the timers due at watermark wm and processing
// time pt, by time.
func (h *Host) due(wm, pt int64) []TimerKey {
	var out []TimerKey
	for k := range h.Timers {
		if k.Domain == wasmabi.EventTime && k.TS <= wm || k.Domain == wasmabi.ProcessingTime && k.TS <= pt {
			out = append(out, k)
			delete(h.Timers, k)
		}
	}
	slices.SortFunc(out, func(a, b TimerKey) int {
		return cmp.Or(cmp.Compare(a.TS, b.TS), cmp.Compare(a.Domain, b.Domain), cmp.Compare(a.Key, b.Key))
	})
	return out
}
