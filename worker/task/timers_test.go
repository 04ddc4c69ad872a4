package task

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/wasmabi"
	"github.com/weirstream/weir/worker/state"
)

// testServices is the services of subtask index of parallelism p of a
// keyed operator "op" of job "j" over maxPar key groups.
func testServices(tb testing.TB, b state.Backend, index, p, maxPar int) *services {
	tb.Helper()
	job := &Job{Name: "j", MaxParallelism: maxPar, State: b}
	t := &subtask{job: job, index: index, keyGroups: keygroup.RangeFor(index, p, maxPar)}
	s := newServices(&node{t: t, spec: &Node{UID: "op"}}, true)
	if s.timersErr != nil {
		tb.Fatal(s.timersErr)
	}
	return s
}

func testBackend(tb testing.TB, kind string) state.Backend {
	tb.Helper()
	if kind == "heap" {
		return state.NewHeap(nil)
	}
	p, err := state.OpenPebble(tb.TempDir(), nil, state.PebbleOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close() })
	return p
}

func TestTimerNamespaceRoundTrip(t *testing.T) {
	wins := []window{{0, 10}, {-10, 0}, {math.MinInt64, math.MaxInt64}, {math.MaxInt64 - 1, math.MaxInt64}, {-1, 1}}
	for _, ns := range []uint8{nsUser, nsWindow, nsExpire} {
		for _, w := range wins {
			if ns == nsUser {
				w = window{}
			}
			b := appendNamespace(nil, ns, w)
			gotNs, gotW, err := decodeNamespace(b)
			if err != nil || gotNs != ns || gotW != w {
				t.Errorf("namespace %d %v: decoded %d %v %v", ns, w, gotNs, gotW, err)
			}
		}
	}
	// Byte order is the order the task needs at one time and key: user
	// timers, then window ends, then expiries; windows by start, then end.
	var enc [][]byte
	for _, ns := range []uint8{nsUser, nsWindow, nsExpire} {
		for _, w := range []window{{math.MinInt64, -5}, {-5, 3}, {-5, 4}, {0, 1}, {7, math.MaxInt64}} {
			enc = append(enc, appendNamespace(nil, ns, w))
			if ns == nsUser {
				break
			}
		}
	}
	if !slices.IsSortedFunc(enc, bytes.Compare) {
		t.Errorf("namespaces out of order: %x", enc)
	}
	for _, bad := range [][]byte{nil, {}, {3}, {0, 0}, {1}, make([]byte, 16), append([]byte{3}, make([]byte, 16)...), append([]byte{1}, make([]byte, 17)...)} {
		if _, _, err := decodeNamespace(bad); err == nil {
			t.Errorf("namespace %x decoded, want an error", bad)
		}
	}
}

// modelTimer is the test's own account of a timer.
type modelTimer struct {
	d   wasmabi.TimeDomain
	ts  int64
	key string
	ns  uint8
	win window
}

// modelCompare is the firing order the backend documents: by time, then key
// (shorter first), then namespace (kind, window start, window end).
func modelCompare(a, b modelTimer) int {
	return cmp.Or(cmp.Compare(a.ts, b.ts), cmp.Compare(len(a.key), len(b.key)), cmp.Compare(a.key, b.key),
		cmp.Compare(a.ns, b.ns), cmp.Compare(a.win.start, b.win.start), cmp.Compare(a.win.end, b.win.end))
}

// TestTimerSetModel drives the timers of two subtasks of one operator,
// sharing a backend, with random adds, deletes (of timers there and not),
// re-adds and pops, against a model: due timers come out in firing order
// with their namespaces, the cached earliest time is always the model's,
// and the cap's count is exactly the live user timers the subtask added.
func TestTimerSetModel(t *testing.T) {
	for _, kind := range []string{"heap", "pebble"} {
		t.Run(kind, func(t *testing.T) {
			const maxPar = 16
			b := testBackend(t, kind)
			subs := []*services{testServices(t, b, 0, 2, maxPar), testServices(t, b, 1, 2, maxPar)}
			models := []map[modelTimer]bool{{}, {}}
			rng := rand.New(rand.NewPCG(1, 2))
			keysOf := [2][]string{}
			for i := range 200 {
				k := fmt.Sprint("key", i, "xy"[:i%3])
				sub := keygroup.Subtask(keygroup.Of([]byte(k), maxPar), 2, maxPar)
				keysOf[sub] = append(keysOf[sub], k)
			}
			var due []timer
			for step := range 20000 {
				si := rng.IntN(2)
				s, m := subs[si], models[si]
				key := keysOf[si][rng.IntN(len(keysOf[si]))]
				kg, err := s.keyGroup([]byte(key))
				if err != nil {
					t.Fatal(err)
				}
				mt := modelTimer{d: wasmabi.TimeDomain(rng.IntN(2)), ts: int64(rng.IntN(1000)), key: key, ns: uint8(rng.IntN(3))}
				if rng.IntN(50) == 0 {
					mt.ts = []int64{math.MinInt64, math.MaxInt64}[rng.IntN(2)] // the ends of time are times too
				}
				if mt.ns != nsUser {
					start := int64(rng.IntN(5)) * 10
					mt.win = window{start, start + 10 + int64(rng.IntN(2))}
				}
				q := s.event
				if mt.d == wasmabi.ProcessingTime {
					q = s.proc
				}
				switch op := rng.IntN(10); {
				case op < 6:
					if err := q.add(kg, mt.ts, []byte(mt.key), mt.ns, mt.win); err != nil {
						t.Fatal(err)
					}
					m[mt] = true
				case op < 9:
					if rng.IntN(2) == 0 {
						// Delete a timer that is there, often the earliest
						// of its domain, which the cache must notice.
						for x := range m {
							if x.d == mt.d && x.ts < mt.ts {
								mt = x
							}
						}
						kg, _ = s.keyGroup([]byte(mt.key))
					}
					if err := q.remove(kg, mt.ts, []byte(mt.key), mt.ns, mt.win); err != nil {
						t.Fatal(err)
					}
					delete(m, mt)
				default:
					upTo := int64(rng.IntN(1000))
					if rng.IntN(20) == 0 {
						upTo = math.MaxInt64 // as at the end of input
					}
					if due, err = q.popDue(upTo, due[:0]); err != nil {
						t.Fatal(err)
					}
					var want []modelTimer
					for x := range m {
						if x.d == mt.d && x.ts <= upTo {
							want = append(want, x)
							delete(m, x)
						}
					}
					slices.SortFunc(want, modelCompare)
					got := make([]modelTimer, len(due))
					for j, tm := range due {
						got[j] = modelTimer{mt.d, tm.ts, string(tm.key), tm.ns, tm.win}
					}
					if !slices.Equal(got, want) {
						t.Fatalf("step %d: subtask %d popped up to %d\n%v\nwant\n%v", step, si, upTo, got, want)
					}
				}
				for d, q := range []*timerSet{s.event, s.proc} {
					wantNext, any := int64(math.MaxInt64), false
					for x := range m {
						if x.d == wasmabi.TimeDomain(d) {
							wantNext, any = min(wantNext, x.ts), true
						}
					}
					if next, ok := q.earliest(); ok != any || (ok && next != wantNext) {
						t.Fatalf("step %d: subtask %d domain %d: earliest %d %v, want %d %v", step, si, d, next, ok, wantNext, any)
					}
				}
				// The cap counts the module's timers, not the windows'.
				var n int
				var bytes int64
				for x := range m {
					if x.ns == nsUser {
						n++
						bytes += timerBytes(len(x.key) + 1)
					}
				}
				if s.timerCount.n != n || s.timerCount.bytes != bytes {
					t.Fatalf("step %d: subtask %d counts %d timers, %d bytes; want %d, %d", step, si, s.timerCount.n, s.timerCount.bytes, n, bytes)
				}
			}
		})
	}
}

// BenchmarkTimerAddExisting is what a window aggregate pays per window and
// batch: registering a timer that exists. allocs/op must be 0.
func BenchmarkTimerAddExisting(b *testing.B) {
	for _, kind := range []string{"heap", "pebble"} {
		b.Run(kind, func(b *testing.B) {
			s := testServices(b, testBackend(b, kind), 0, 1, keygroup.DefaultMaxParallelism)
			keys := make([][]byte, 1024)
			kgs := make([]uint16, len(keys))
			for i := range keys {
				keys[i] = fmt.Appendf(nil, "auction-%d", i)
				kgs[i], _ = s.keyGroup(keys[i])
				if err := s.event.add(kgs[i], 9999, keys[i], nsWindow, window{0, 10000}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				j := i % len(keys)
				if err := s.event.add(kgs[j], 9999, keys[j], nsWindow, window{0, 10000}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTimerFire registers a batch of 1024 timers (one per key) and
// pops them, as a window firing does (the host's window timers) and as
// OnTimer does (a module's timers, counted for the cap); ns/op and
// allocs/op are per batch.
func BenchmarkTimerFire(b *testing.B) {
	for _, kind := range []string{"heap", "pebble"} {
		for _, ns := range []uint8{nsWindow, nsUser} {
			b.Run(fmt.Sprintf("%s/ns=%d", kind, ns), func(b *testing.B) {
				s := testServices(b, testBackend(b, kind), 0, 1, keygroup.DefaultMaxParallelism)
				keys := make([][]byte, 1024)
				kgs := make([]uint16, len(keys))
				for i := range keys {
					keys[i] = fmt.Appendf(nil, "auction-%d", i)
					kgs[i], _ = s.keyGroup(keys[i])
				}
				var due []timer
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					ts := int64(i) * 10
					for j := range keys {
						if err := s.event.add(kgs[j], ts+9, keys[j], ns, window{ts, ts + 10}); err != nil {
							b.Fatal(err)
						}
					}
					var err error
					if due, err = s.event.popDue(ts+9, due[:0]); err != nil || len(due) != len(keys) {
						b.Fatal(len(due), err)
					}
				}
			})
		}
	}
}

// BenchmarkTimerIdleCheck is what the task pays while nothing is due: a
// watermark or a processing-time check against the cached earliest time.
func BenchmarkTimerIdleCheck(b *testing.B) {
	s := testServices(b, state.NewHeap(nil), 0, 1, keygroup.DefaultMaxParallelism)
	key := []byte("k")
	kg, _ := s.keyGroup(key)
	if err := s.proc.add(kg, math.MaxInt64/2, key, nsUser, window{}); err != nil {
		b.Fatal(err)
	}
	var due []timer
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		due, _ = s.proc.popDue(int64(i), due[:0])
	}
}

// BenchmarkNextTimerScan is what asking the backend for the earliest timer
// costs — a walk over the subtask's key groups — which the cache of
// timerSet saves on every idle wait and watermark.
func BenchmarkNextTimerScan(b *testing.B) {
	for _, maxPar := range []int{keygroup.DefaultMaxParallelism, keygroup.MaxMaxParallelism} {
		b.Run(fmt.Sprint("keygroups=", maxPar), func(b *testing.B) {
			s := testServices(b, state.NewHeap(nil), 0, 1, maxPar)
			for i := range 100 {
				key := fmt.Appendf(nil, "k%d", i)
				kg, _ := s.keyGroup(key)
				if err := s.proc.add(kg, int64(i), key, nsUser, window{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, _, err := s.backend.NextTimer(s.timers, s.kgs, wasmabi.ProcessingTime); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
