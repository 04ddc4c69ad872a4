package modtest

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/weirstream/weir/wasmabi"
)

// memServices keeps one operator's keyed state and timers in memory and
// collects its logs and counters. It implements wasmhost.Services.
type memServices struct {
	op     string
	states []stateDecl
	data   map[stateSlot]*slotData
	timers map[timerKey]struct{}
	logs   *[]LogLine
	counts map[string]int64
}

type stateDecl struct {
	name string
	kind wasmabi.StateKind
}

type stateSlot struct {
	id  uint32
	key string
}

type slotData struct {
	value []byte
	set   bool
	list  [][]byte
	m     map[string][]byte
}

type timerKey struct {
	domain wasmabi.TimeDomain
	ts     int64
	key    string
}

func newMemServices(op string, logs *[]LogLine, counts map[string]int64) *memServices {
	return &memServices{op: op, data: map[stateSlot]*slotData{}, timers: map[timerKey]struct{}{}, logs: logs, counts: counts}
}

func (s *memServices) StateRegister(name string, kind wasmabi.StateKind) (uint32, error) {
	for i, d := range s.states {
		if d.name == name {
			if d.kind != kind {
				return 0, fmt.Errorf("state %q declared again with another kind", name)
			}
			return uint32(i), nil
		}
	}
	s.states = append(s.states, stateDecl{name, kind})
	return uint32(len(s.states) - 1), nil
}

func (s *memServices) State(op wasmabi.StateOp, id uint32, key, ukey, value, out []byte) (int64, error) {
	if int(id) >= len(s.states) {
		return 0, fmt.Errorf("state id %d was never registered", id)
	}
	kind := s.states[id].kind
	if !kind.Keyed() {
		key = nil // operator state: one per (here, the only) subtask
	}
	kind = kind.Storage()
	slot := stateSlot{id, string(key)}
	d := s.data[slot]
	write := func(b []byte) int64 {
		if len(b) <= len(out) {
			copy(out, b)
		}
		return int64(len(b))
	}
	switch op {
	case wasmabi.StateGet:
		if d == nil {
			return -1, nil
		}
		switch kind {
		case wasmabi.StateValue:
			if !d.set {
				return -1, nil
			}
			return write(d.value), nil
		case wasmabi.StateList:
			if len(d.list) == 0 {
				return -1, nil
			}
			var b []byte
			for _, it := range d.list {
				b = wasmabi.AppendItem(b, it)
			}
			return write(b), nil
		case wasmabi.StateMap:
			v, ok := d.m[string(ukey)]
			if !ok {
				return -1, nil
			}
			return write(v), nil
		}
	case wasmabi.StatePut:
		if d == nil {
			d = &slotData{}
			s.data[slot] = d
		}
		switch kind {
		case wasmabi.StateValue:
			d.value, d.set = slices.Clone(value), true
		case wasmabi.StateList:
			d.list = append(d.list, slices.Clone(value))
		case wasmabi.StateMap:
			if d.m == nil {
				d.m = map[string][]byte{}
			}
			d.m[string(ukey)] = slices.Clone(value)
		}
		return 0, nil
	case wasmabi.StateDelete:
		if d != nil && kind == wasmabi.StateMap {
			delete(d.m, string(ukey))
			return 0, nil
		}
		delete(s.data, slot)
		return 0, nil
	case wasmabi.StateClear:
		delete(s.data, slot)
		return 0, nil
	case wasmabi.StateEntries:
		if kind != wasmabi.StateMap {
			return 0, fmt.Errorf("entries of %q, which is not map state", s.states[id].name)
		}
		if d == nil || len(d.m) == 0 {
			return -1, nil
		}
		keys := make([]string, 0, len(d.m))
		for k := range d.m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b []byte
		for _, k := range keys {
			b = wasmabi.AppendItem(b, []byte(k))
			b = wasmabi.AppendItem(b, d.m[k])
		}
		return write(b), nil
	}
	return 0, fmt.Errorf("unknown state op %d", op)
}

func (s *memServices) Timer(op wasmabi.TimerOp, domain wasmabi.TimeDomain, ts int64, key []byte) error {
	k := timerKey{domain, ts, string(key)}
	if op == wasmabi.TimerRegister {
		s.timers[k] = struct{}{}
	} else {
		delete(s.timers, k)
	}
	return nil
}

// due removes and returns the timers of domain at or before t, in time order.
func (s *memServices) due(domain wasmabi.TimeDomain, t int64) []timerKey {
	var out []timerKey
	for k := range s.timers {
		if k.domain == domain && k.ts <= t {
			out = append(out, k)
		}
	}
	for _, k := range out {
		delete(s.timers, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ts != out[j].ts {
			return out[i].ts < out[j].ts
		}
		return out[i].key < out[j].key
	})
	return out
}

func (s *memServices) Log(level int, msg string) {
	*s.logs = append(*s.logs, LogLine{Operator: s.op, Level: levelName(level), Message: msg})
}

func (s *memServices) Counter(name string, delta int64) { s.counts[s.op+"."+name] += delta }

func levelName(l int) string {
	switch l {
	case wasmabi.LogDebug:
		return "debug"
	case wasmabi.LogInfo:
		return "info"
	case wasmabi.LogWarn:
		return "warn"
	case wasmabi.LogError:
		return "error"
	}
	return strings.ToLower(fmt.Sprintf("level%d", l))
}
