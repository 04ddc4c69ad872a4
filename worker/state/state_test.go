package state

import (
	"bytes"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/weirstream/weir/wasmabi"
)

// fakeClock is a processing-time clock the test moves by hand.
type fakeClock struct{ now atomic.Int64 }

func (c *fakeClock) clock() int64     { return c.now.Load() }
func (c *fakeClock) advance(ms int64) { c.now.Add(ms) }

// testPebbleOptions keep pebble small so tests start fast.
var testPebbleOptions = PebbleOptions{CacheSize: 1 << 20, MemTableSize: 1 << 20}

type backendMaker struct {
	name string
	open func(t testing.TB, c *fakeClock) Backend
}

func backends() []backendMaker {
	return []backendMaker{
		{"heap", func(t testing.TB, c *fakeClock) Backend { return NewHeap(c.clock) }},
		{"pebble", func(t testing.TB, c *fakeClock) Backend {
			p, err := OpenPebble(t.TempDir(), c.clock, testPebbleOptions)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := p.Close(); err != nil {
					t.Error(err)
				}
			})
			return p
		}},
	}
}

// forEachBackend runs f against a fresh instance of every backend.
func forEachBackend(t *testing.T, f func(t *testing.T, b Backend, c *fakeClock)) {
	for _, m := range backends() {
		t.Run(m.name, func(t *testing.T) {
			c := &fakeClock{}
			f(t, m.open(t, c), c)
		})
	}
}

// The states every scripted case can use.
var scriptStates = []struct {
	name string
	kind wasmabi.StateKind
	ttl  int64
}{
	{"v", wasmabi.StateValue, 0},
	{"l", wasmabi.StateList, 0},
	{"m", wasmabi.StateMap, 0},
	{"v2", wasmabi.StateValue, 0},
	{"vt", wasmabi.StateValue, 100},
	{"lt", wasmabi.StateList, 100},
	{"mt", wasmabi.StateMap, 100},
}

// step is one call of a scripted case. Reads say what they expect: absent
// (want nil, none false), or the value, the list items, or the map entries
// as key, value, key, value...
type step struct {
	op      string // get, put, del, clear, list, entries, tick
	st      string
	kg      uint16
	key     string
	ukey    string
	val     string
	want    []string
	some    bool  // the read finds something (want may still be one empty value)
	wantErr error // errors.Is target
	ms      int64 // tick: clock advance
}

func get(st, key, ukey string, want ...string) step {
	return step{op: "get", st: st, key: key, ukey: ukey, want: want, some: len(want) > 0}
}
func getEmpty(st, key string) step {
	return step{op: "get", st: st, key: key, want: []string{""}, some: true}
}
func put(st, key, ukey, val string) step {
	return step{op: "put", st: st, key: key, ukey: ukey, val: val}
}
func del(st, key, ukey string) step { return step{op: "del", st: st, key: key, ukey: ukey} }
func clr(st, key string) step       { return step{op: "clear", st: st, key: key} }
func list(st, key string, want ...string) step {
	return step{op: "list", st: st, key: key, want: want, some: len(want) > 0}
}
func entries(st, key string, want ...string) step {
	return step{op: "entries", st: st, key: key, want: want, some: len(want) > 0}
}

// errAny is a wantErr that accepts any error.
var errAny = errors.New("any error")

func tick(ms int64) step { return step{op: "tick", ms: ms} }
func inKG(kg uint16, s step) step {
	s.kg = kg
	return s
}
func fails(s step, err error) step {
	s.wantErr = err
	return s
}

var scriptCases = []struct {
	name  string
	steps []step
}{
	{"value", []step{
		get("v", "k", ""),
		put("v", "k", "", "hello"),
		get("v", "k", "", "hello"),
		put("v", "k", "", "hi"),
		get("v", "k", "", "hi"),
		put("v", "k", "", "a longer value than before"),
		get("v", "k", "", "a longer value than before"),
		put("v", "k", "", ""),
		getEmpty("v", "k"),
		del("v", "k", ""),
		get("v", "k", ""),
		put("v", "k", "", "again"),
		clr("v", "k"),
		get("v", "k", ""),
		put("v", "", "", "empty key"),
		get("v", "", "", "empty key"),
		get("v", "k", ""),
	}},
	{"list", []step{
		get("l", "k", ""),
		list("l", "k"),
		put("l", "k", "", "a"),
		put("l", "k", "", ""),
		put("l", "k", "", "c"),
		list("l", "k", "a", "", "c"),
		get("l", "k", "", "a", "", "c"),
		del("l", "k", ""),
		list("l", "k"),
		put("l", "k", "", "d"),
		put("l", "k", "", "a"),
		list("l", "k", "d", "a"),
		clr("l", "k"),
		get("l", "k", ""),
		put("l", "k", "", "e"),
		list("l", "k", "e"),
	}},
	{"map", []step{
		get("m", "k", "u"),
		entries("m", "k"),
		put("m", "k", "u1", "one"),
		put("m", "k", "u0", "zero"),
		put("m", "k", "u2", "two"),
		put("m", "k", "", "empty user key"),
		put("m", "k", "u\xff", "high"),
		get("m", "k", "u1", "one"),
		get("m", "k", "u3"),
		entries("m", "k", "", "empty user key", "u0", "zero", "u1", "one", "u2", "two", "u\xff", "high"),
		put("m", "k", "u1", "ONE!"),
		del("m", "k", "u0"),
		del("m", "k", "nope"),
		entries("m", "k", "", "empty user key", "u1", "ONE!", "u2", "two", "u\xff", "high"),
		get("m", "k", "u0"),
		clr("m", "k"),
		entries("m", "k"),
		get("m", "k", "u1"),
		put("m", "k", "u", ""),
		entries("m", "k", "u", ""),
		del("m", "k", "u"),
		entries("m", "k"),
	}},
	{"isolation", []step{
		put("v", "k", "", "kg0"),
		inKG(1, put("v", "k", "", "kg1")),
		put("v2", "k", "", "other state"),
		put("v", "ka", "", "longer key"),
		get("v", "k", "", "kg0"),
		inKG(1, get("v", "k", "", "kg1")),
		inKG(2, get("v", "k", "")),
		get("v2", "k", "", "other state"),
		get("v", "ka", "", "longer key"),
		// Record key + user key that concatenate alike must not meet.
		put("m", "a", "bc", "a/bc"),
		put("m", "ab", "c", "ab/c"),
		entries("m", "a", "bc", "a/bc"),
		entries("m", "ab", "c", "ab/c"),
		put("l", "a", "", "1"),
		put("l", "ab", "", "2"),
		inKG(1, put("l", "a", "", "3")),
		list("l", "a", "1"),
		list("l", "ab", "2"),
		inKG(1, list("l", "a", "3")),
		clr("l", "a"),
		list("l", "ab", "2"),
		inKG(1, list("l", "a", "3")),
		del("v", "k", ""),
		inKG(1, get("v", "k", "", "kg1")),
		get("v", "ka", "", "longer key"),
		inKG(32767, put("v", "k", "", "last key group")),
		inKG(32767, get("v", "k", "", "last key group")),
	}},
	{"kinds", []step{
		fails(entries("v", "k"), ErrKind),
		fails(entries("l", "k"), ErrKind),
		fails(list("v", "k"), ErrKind),
		fails(list("m", "k"), ErrKind),
		fails(inKG(32768, get("v", "k", "")), errAny),
		fails(inKG(65535, put("v", "k", "", "x")), errAny),
	}},
	{"ttl", []step{
		put("vt", "k", "", "v"),
		put("lt", "k", "", "a"),
		put("mt", "k", "u", "1"),
		tick(50),
		put("lt", "k", "", "b"),
		put("mt", "k", "w", "2"),
		tick(49), // 99 ms after the first writes
		get("vt", "k", "", "v"),
		list("lt", "k", "a", "b"),
		entries("mt", "k", "u", "1", "w", "2"),
		tick(1), // 100 ms: the first writes expire
		get("vt", "k", ""),
		list("lt", "k", "b"),
		get("lt", "k", "", "b"),
		get("mt", "k", "u"),
		entries("mt", "k", "w", "2"),
		put("mt", "k", "w", "3"), // a write restarts the entry's time
		put("vt", "k", "", "again"),
		tick(99),
		entries("mt", "k", "w", "3"),
		get("vt", "k", "", "again"),
		list("lt", "k"),
		tick(1),
		entries("mt", "k"),
		get("vt", "k", ""),
		put("lt", "k", "", "c"),
		list("lt", "k", "c"),
		// States without TTL never expire.
		put("v", "k", "", "forever"),
		tick(1 << 40),
		get("v", "k", "", "forever"),
		list("lt", "k"),
	}},
}

func TestScripts(t *testing.T) {
	for _, tc := range scriptCases {
		t.Run(tc.name, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, b Backend, c *fakeClock) {
				ids := map[string]ID{}
				for _, s := range scriptStates {
					id, err := b.Register("op", s.name, s.kind, Options{TTL: s.ttl})
					if err != nil {
						t.Fatal(err)
					}
					ids[s.name] = id
				}
				for i, s := range tc.steps {
					runStep(t, b, c, ids, i, s)
				}
			})
		})
	}
}

func runStep(t *testing.T, b Backend, c *fakeClock, ids map[string]ID, i int, s step) {
	t.Helper()
	id := ids[s.st]
	key, ukey := []byte(s.key), []byte(s.ukey)
	var (
		got  []byte
		some bool
		err  error
		read = true
		dst  = []byte("prefix") // results must be appended, not written over
	)
	switch s.op {
	case "tick":
		c.advance(s.ms)
		return
	case "get":
		got, some, err = b.Get(id, s.kg, key, ukey, dst)
	case "list":
		got, some, err = b.List(id, s.kg, key, dst)
	case "entries":
		got, some, err = b.Entries(id, s.kg, key, dst)
	case "put":
		err, read = b.Put(id, s.kg, key, ukey, []byte(s.val)), false
	case "del":
		err, read = b.Delete(id, s.kg, key, ukey), false
	case "clear":
		err, read = b.Clear(id, s.kg, key), false
	default:
		t.Fatalf("step %d: unknown op %q", i, s.op)
	}
	where := fmt.Sprintf("step %d (%s %s kg %d key %q ukey %q)", i, s.op, s.st, s.kg, s.key, s.ukey)
	if s.wantErr != nil {
		if err == nil || (s.wantErr != errAny && !errors.Is(err, s.wantErr)) {
			t.Fatalf("%s: err %v, want %v", where, err, s.wantErr)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	if !read {
		return
	}
	if !bytes.HasPrefix(got, []byte("prefix")) {
		t.Fatalf("%s: dst not kept: %q", where, got)
	}
	got = got[len("prefix"):]
	var want []byte
	if s.op == "get" && ids[s.st] != ids["l"] && ids[s.st] != ids["lt"] {
		if len(s.want) > 0 {
			want = []byte(s.want[0])
		}
	} else {
		for _, w := range s.want {
			want = wasmabi.AppendItem(want, []byte(w))
		}
	}
	if some != s.some || !bytes.Equal(got, want) {
		t.Fatalf("%s: got %q (found %v), want %q (found %v)", where, got, some, want, s.some)
	}
}

func TestRegister(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend, c *fakeClock) {
		a, err := b.Register("op1", "s", wasmabi.StateValue, Options{})
		if err != nil {
			t.Fatal(err)
		}
		again, err := b.Register("op1", "s", wasmabi.StateValue, Options{})
		if err != nil || again != a {
			t.Fatalf("again: %d, %v; want %d", again, err, a)
		}
		other, err := b.Register("op2", "s", wasmabi.StateValue, Options{})
		if err != nil || other == a {
			t.Fatalf("other operator: %d, %v; want an id other than %d", other, err, a)
		}
		if _, err := b.Register("op1", "s", wasmabi.StateMap, Options{}); !errors.Is(err, ErrKind) {
			t.Fatalf("other kind: %v, want ErrKind", err)
		}
		if _, err := b.Register("op1", "s", wasmabi.StateValue, Options{TTL: 5}); !errors.Is(err, ErrTTL) {
			t.Fatalf("TTL on: %v, want ErrTTL", err)
		}
		tt, err := b.Register("op1", "t", wasmabi.StateList, Options{TTL: 5})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Register("op1", "t", wasmabi.StateList, Options{TTL: 6}); !errors.Is(err, ErrTTL) {
			t.Fatalf("other TTL: %v, want ErrTTL", err)
		}
		if got, err := b.Register("op1", "t", wasmabi.StateList, Options{TTL: 5}); err != nil || got != tt {
			t.Fatalf("same TTL: %d, %v; want %d", got, err, tt)
		}
		for _, bad := range []struct {
			uid, name string
			kind      wasmabi.StateKind
			ttl       int64
		}{
			{"op", "x", 0, 0},
			{"op", "x", 7, 0},
			{"op", "x", wasmabi.StateOperatorList, 5}, // TTL is for keyed state
			{"op", "x", wasmabi.StateValue, -1},
			{"op", "", wasmabi.StateValue, 0},
			{"op", string(make([]byte, maxNameLen+1)), wasmabi.StateValue, 0},
		} {
			if _, err := b.Register(bad.uid, bad.name, bad.kind, Options{TTL: bad.ttl}); err == nil {
				t.Errorf("Register(%q, name of %d bytes, %d, TTL %d): no error", bad.uid, len(bad.name), bad.kind, bad.ttl)
			}
		}
		if _, _, err := b.Get(1000, 0, nil, nil, nil); !errors.Is(err, ErrUnknownID) {
			t.Fatalf("unknown id: %v", err)
		}
		if err := b.Put(1000, 0, nil, nil, nil); !errors.Is(err, ErrUnknownID) {
			t.Fatalf("unknown id: %v", err)
		}
	})
}

func TestClosed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend, c *fakeClock) {
		id, err := b.Register("op", "s", wasmabi.StateValue, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatalf("second close: %v", err)
		}
		if _, _, err := b.Get(id, 0, nil, nil, nil); !errors.Is(err, ErrClosed) {
			t.Fatalf("get after close: %v", err)
		}
		if err := b.Put(id, 0, nil, nil, nil); !errors.Is(err, ErrClosed) {
			t.Fatalf("put after close: %v", err)
		}
		if _, err := b.Register("op", "s", wasmabi.StateValue, Options{}); !errors.Is(err, ErrClosed) {
			t.Fatalf("register after close: %v", err)
		}
	})
}
