package task_test

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/internal/snapshot"
	weir "github.com/weirstream/weir/sdk/go"
	"github.com/weirstream/weir/wasmabi"
	"github.com/weirstream/weir/worker/state"
	"github.com/weirstream/weir/worker/task"
)

func init() {
	weir.Process("t_etimers", &setTimers{})
	// t_hook calls the test's hook (on the task's goroutine, where the
	// backend may be snapshotted) on the first record it sees, and passes
	// records on.
	weir.Map("t_hook", func(r weir.Record) (weir.Record, error) {
		snapHook.once.Do(func() { snapHook.fn() })
		return r, nil
	})
}

// snapHook is what t_etimers and t_hook call on the task's goroutine: the
// test sets it before the run.
var snapHook struct {
	fn   func()
	once sync.Once
}

func setSnapHook(fn func()) {
	snapHook.fn = fn
	snapHook.once = sync.Once{}
}

// setTimers acts on a record's value: "e:T" registers an event-time timer
// at T for the record's key, "xe:T" deletes it, "p:T" registers a
// processing-time timer, "snap" calls the test's hook. A timer that fires
// emits "fired:T".
type setTimers struct{ weir.BaseProcess }

func (p *setTimers) ProcessElement(ctx *weir.Context, r weir.Record) error {
	op, arg, _ := strings.Cut(string(r.Value), ":")
	ts, _ := strconv.ParseInt(arg, 10, 64)
	switch op {
	case "e":
		ctx.RegisterEventTimer(ts)
	case "xe":
		ctx.DeleteEventTimer(ts)
	case "p":
		ctx.RegisterProcessingTimer(ts)
	case "snap":
		snapHook.once.Do(func() { snapHook.fn() })
	default:
		return fmt.Errorf("unknown command %q", r.Value)
	}
	return nil
}

func (p *setTimers) OnTimer(ctx *weir.Context, t weir.Timer) error {
	ctx.Emit(weir.Record{Key: ctx.Key(), Value: []byte("fired:" + strconv.FormatInt(t.Timestamp, 10))})
	return nil
}

// wantTimer is a timer as the test expects it: domain, time, key and the
// namespace decoded.
type wantTimer struct {
	d          wasmabi.TimeDomain
	ts         int64
	key        string
	kind       uint8
	start, end int64
}

func (w wantTimer) String() string {
	return fmt.Sprintf("d%d %q@%d ns%d[%d,%d)", w.d, w.key, w.ts, w.kind, w.start, w.end)
}

func openBackend(t *testing.T, kind string) state.Backend {
	t.Helper()
	if kind == "heap" {
		return state.NewHeap(nil)
	}
	p, err := state.OpenPebble(t.TempDir(), nil, state.PebbleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// takeSnapshot snapshots operator uid of job (one subtask over maxPar key
// groups) and writes it out, as a checkpoint would.
func takeSnapshot(t *testing.T, b state.Backend, job, uid string, maxPar int) ([]byte, error) {
	sn, err := b.Snapshot(job, uid, snapshot.Subtask{Index: 0, Parallelism: 1, MaxParallelism: maxPar})
	if err != nil {
		return nil, err
	}
	defer sn.Release()
	var buf bytes.Buffer
	if _, err := sn.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// restoredTimers restores snap (of operator uid, one subtask) into a fresh
// backend of kind at parallelism p and returns, by subtask, the timers the
// backend holds in the subtask's key groups, in the order it fires them,
// and the times NextTimer gave before popping.
func restoredTimers(t *testing.T, kind string, snap []byte, job, uid string, p, maxPar int) (timers [][]wantTimer, next [][2]int64) {
	t.Helper()
	b := openBackend(t, kind)
	t.Cleanup(func() { b.Close() })
	r, err := snapshot.Open(bytes.NewReader(snap), int64(len(snap)), "snapshot")
	if err != nil {
		t.Fatal(err)
	}
	for i := range p {
		if err := b.Restore(job, snapshot.Subtask{Index: i, Parallelism: p, MaxParallelism: maxPar}, []*snapshot.Reader{r}); err != nil {
			t.Fatalf("restoring subtask %d of %d: %v", i, p, err)
		}
	}
	id, err := b.RegisterTimers(job, uid)
	if err != nil {
		t.Fatal(err)
	}
	timers, next = make([][]wantTimer, p), make([][2]int64, p)
	for i := range p {
		kgs := keygroup.RangeFor(i, p, maxPar)
		for _, d := range []wasmabi.TimeDomain{wasmabi.EventTime, wasmabi.ProcessingTime} {
			ts, ok, err := b.NextTimer(id, kgs, d)
			if err != nil {
				t.Fatal(err)
			}
			next[i][d] = math.MaxInt64
			if ok {
				next[i][d] = ts
			}
			due, err := b.PopDueTimers(id, kgs, d, math.MaxInt64, nil)
			if err != nil {
				t.Fatal(err)
			}
			for j, tm := range due {
				if j > 0 && tm.Time < due[j-1].Time {
					t.Errorf("subtask %d: PopDueTimers gave %d after %d: not in time order", i, tm.Time, due[j-1].Time)
				}
				if got := keygroup.Of(tm.Key, maxPar); !kgs.Contains(got) || int(tm.KeyGroup) != got {
					t.Errorf("subtask %d (key groups %s): timer of key %q in key group %d, the key's is %d", i, kgs, tm.Key, tm.KeyGroup, got)
				}
				k, s, e, err := task.DecodeTimerNamespace(tm.Namespace)
				if err != nil {
					t.Fatal(err)
				}
				timers[i] = append(timers[i], wantTimer{d, tm.Time, string(tm.Key), k, s, e})
			}
		}
	}
	return timers, next
}

// checkRestored compares the timers of a restore at parallelism p with
// want, the test's own record: each subtask must hold exactly the timers
// of the keys in its key groups, and NextTimer must give their earliest.
func checkRestored(t *testing.T, got [][]wantTimer, next [][2]int64, want []wantTimer, maxPar int) {
	t.Helper()
	p := len(got)
	for i := range p {
		kgs := keygroup.RangeFor(i, p, maxPar)
		var mine []wantTimer
		earliest := [2]int64{math.MaxInt64, math.MaxInt64}
		for _, w := range want {
			if kgs.Contains(keygroup.Of([]byte(w.key), maxPar)) {
				mine = append(mine, w)
				earliest[w.d] = min(earliest[w.d], w.ts)
			}
		}
		sortTimers(mine)
		g := slices.Clone(got[i])
		sortTimers(g)
		if !slices.Equal(g, mine) {
			t.Errorf("parallelism %d, subtask %d: restored timers\n%v\nwant\n%v", p, i, g, mine)
		}
		if next[i] != earliest {
			t.Errorf("parallelism %d, subtask %d: NextTimer (event, processing) = %v, want %v", p, i, next[i], earliest)
		}
	}
}

func sortTimers(ts []wantTimer) {
	slices.SortFunc(ts, func(a, b wantTimer) int { return strings.Compare(a.String(), b.String()) })
}

// TestTimersInSnapshot runs a keyed process operator that registers and
// deletes event-time timers (and registers processing-time ones far in the
// future), snapshots its state on its own goroutine in the middle of the
// run, restores the snapshot into fresh backends at parallelism 1 and 3 —
// of the other kind too — and finds there exactly the timers the input
// asked for, each in the key groups of its key. The run itself then fires
// every timer left, once.
func TestTimersInSnapshot(t *testing.T) {
	const maxPar = 8
	far := int64(math.MaxInt64 / 2) // a processing time that never comes
	var in []rec
	want := map[wantTimer]bool{} // the test's own record of the live timers
	for i := range 40 {
		key := fmt.Sprint("k", i%7)
		ts := int64(100 + i*13%50)
		in = append(in, rec{key, fmt.Sprint("e:", ts), 0})
		want[wantTimer{d: wasmabi.EventTime, ts: ts, key: key}] = true
		if i%5 == 0 {
			in = append(in, rec{key, fmt.Sprint("xe:", ts), 0})
			delete(want, wantTimer{d: wasmabi.EventTime, ts: ts, key: key})
		}
		if i%9 == 0 {
			in = append(in, rec{key, fmt.Sprint("p:", far+int64(i)), 0})
			want[wantTimer{d: wasmabi.ProcessingTime, ts: far + int64(i), key: key}] = true
		}
	}
	in = append(in, rec{"k0", "xe:99999", 0}) // deleting a timer that is not there changes nothing
	in = append(in, rec{"k3", "snap", 0})
	var wants []wantTimer
	for w := range want {
		wants = append(wants, w)
	}
	for _, backend := range []string{"heap", "pebble"} {
		t.Run(backend, func(t *testing.T) {
			src := &listSource{recs: in}
			job, outs := chainJob(t, "snaptimers-"+backend, src, []string{"t_etimers"}, []bool{true}, nil, 0)
			job.State = openBackend(t, backend)
			defer job.State.Close()
			var snap []byte
			var snapErr error
			setSnapHook(func() { snap, snapErr = takeSnapshot(t, job.State, job.Name, "t_etimers", maxPar) })
			if err := run(t, job); err != nil {
				t.Fatal(err)
			}
			if snapErr != nil || snap == nil {
				t.Fatalf("snapshot at the barrier: %v (taken: %v)", snapErr, snap != nil)
			}
			for _, into := range []string{"heap", "pebble"} {
				for _, p := range []int{1, 3} {
					got, next := restoredTimers(t, into, snap, "restored", "t_etimers", p, maxPar)
					checkRestored(t, got, next, wants, maxPar)
				}
			}
			// The run fired what was left at its end: every timer once.
			var fired, wantFired []string
			for _, r := range outs[0].recs {
				fired = append(fired, r.key+" "+r.value)
			}
			for _, w := range wants {
				wantFired = append(wantFired, fmt.Sprintf("%s fired:%d", w.key, w.ts))
			}
			slices.Sort(fired)
			slices.Sort(wantFired)
			if !slices.Equal(fired, wantFired) {
				t.Errorf("fired %q, want %q", fired, wantFired)
			}
		})
	}
}

// TestWindowTimersInSnapshot snapshots a tumbling window aggregate with
// allowed lateness just as its first windows fire (from a chained
// operator that sees their results, on the same goroutine): the snapshot
// holds the end timers of the windows still open and the expiry timers of
// the windows that fired, with their windows, as the test computes them
// from the input.
func TestWindowTimersInSnapshot(t *testing.T) {
	const maxPar = 8
	const size, lateness = 10, 5
	in := []rec{{"a", "1", 1}, {"b", "2", 3}, {"a", "3", 15}, {"b", "4", 25}, {"c", "5", 27}, {"a", "6", 8}, {"", "wm:12", 0}, {"c", "7", 31}}
	var wants []wantTimer
	seen := map[string]bool{}
	for _, r := range in[:6] { // the records before the watermark
		start := r.ts / size * size
		w := wantTimer{d: wasmabi.EventTime, ts: start + size - 1, key: r.key, kind: 1, start: start, end: start + size}
		if w.ts <= 12 { // fired at wm:12: its expiry is left
			w.kind, w.ts = 2, w.ts+lateness
		}
		if !seen[w.String()] {
			seen[w.String()] = true
			wants = append(wants, w)
		}
	}
	for _, backend := range []string{"heap", "pebble"} {
		t.Run(backend, func(t *testing.T) {
			win := &task.WindowSpec{Type: task.WindowTumbling, Size: size * time.Millisecond, AllowedLateness: lateness * time.Millisecond}
			job, outs := chainJob(t, "snapwin-"+backend, &listSource{recs: in}, []string{"t_punct", "t_sum", "t_hook"}, []bool{false, true, false}, win, 0)
			// chainJob gives the window to the last operator; t_hook is a
			// map chained after the window aggregate.
			for _, v := range job.Vertices {
				for _, n := range v.Nodes {
					switch n.UID {
					case "t_sum":
						n.Window = win
					case "t_hook":
						n.Window = nil
					}
				}
			}
			job.State = openBackend(t, backend)
			defer job.State.Close()
			var snap []byte
			var snapErr error
			setSnapHook(func() { snap, snapErr = takeSnapshot(t, job.State, job.Name, "t_sum", maxPar) })
			if err := run(t, job); err != nil {
				t.Fatal(err)
			}
			if snapErr != nil || snap == nil {
				t.Fatalf("snapshot at the first results: %v (taken: %v)", snapErr, snap != nil)
			}
			for _, p := range []int{1, 2} {
				got, next := restoredTimers(t, "heap", snap, "restored", "t_sum", p, maxPar)
				checkRestored(t, got, next, wants, maxPar)
			}
			// The run goes on as if no snapshot had been taken: one result
			// per key and window, the sum of its records.
			sums := map[string]int64{}
			for _, r := range in {
				if r.key != "" {
					v, _ := strconv.ParseInt(r.value, 10, 64)
					sums[fmt.Sprintf("%s %d", r.key, r.ts/size*size+size-1)] += v
				}
			}
			var got, wantRes []string
			for _, r := range outs[0].recs {
				got = append(got, fmt.Sprintf("%s %s", r.key, r.value))
			}
			for k, v := range sums {
				key, end, _ := strings.Cut(k, " ")
				wantRes = append(wantRes, fmt.Sprintf("%s %d@%s", key, v, end))
			}
			slices.Sort(got)
			slices.Sort(wantRes)
			if !slices.Equal(got, wantRes) {
				t.Errorf("results %q, want %q", got, wantRes)
			}
		})
	}
}
