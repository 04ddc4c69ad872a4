package state

import (
	"errors"
	"testing"

	"github.com/weirstream/weir/wasmabi"
)

// TestJobsStayApart registers the same operator uid and state names for two
// jobs on one backend and checks that neither sees the other's entries, for
// every kind, and (pebble) after a reopen that registers them in the other
// order.
func TestJobsStayApart(t *testing.T) {
	kinds := []wasmabi.StateKind{wasmabi.StateValue, wasmabi.StateList, wasmabi.StateMap, wasmabi.StateBroadcast}
	names := []string{"v", "l", "m", "b"}
	jobs := []string{"job-a", "job-b"}
	register := func(t *testing.T, b Backend, order []string) map[string][]ID {
		ids := map[string][]ID{}
		for _, j := range order {
			for i, k := range kinds {
				id, err := b.RegisterState(Name{Job: j, Operator: "op", State: names[i]}, k, Options{})
				if err != nil {
					t.Fatal(err)
				}
				ids[j] = append(ids[j], id)
			}
		}
		return ids
	}
	write := func(t *testing.T, b Backend, ids map[string][]ID) {
		for _, j := range jobs {
			for i, id := range ids[j] {
				if err := b.Put(id, 3, []byte("k"), []byte("u"), []byte(j+"/"+names[i])); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	check := func(t *testing.T, b Backend, ids map[string][]ID) {
		t.Helper()
		for _, j := range jobs {
			for i, id := range ids[j] {
				want := j + "/" + names[i]
				var got []byte
				var err error
				switch kinds[i] {
				case wasmabi.StateList:
					got, _, err = b.List(id, 3, []byte("k"), nil)
					want = items(want)
				default:
					got, _, err = b.Get(id, 3, []byte("k"), []byte("u"), nil)
				}
				if err != nil || string(got) != want {
					t.Fatalf("%s %s: %q, %v; want %q", j, names[i], got, err, want)
				}
			}
		}
	}
	t.Run("heap", func(t *testing.T) {
		h := NewHeap(nil)
		ids := register(t, h, jobs)
		write(t, h, ids)
		check(t, h, ids)
	})
	t.Run("pebble", func(t *testing.T) {
		dir, c := t.TempDir(), &fakeClock{}
		p := openTestPebble(t, dir, c)
		ids := register(t, p, jobs)
		write(t, p, ids)
		check(t, p, ids)
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		p = openTestPebble(t, dir, c)
		defer p.Close()
		check(t, p, register(t, p, []string{"job-b", "job-a"}))
	})
}

func TestNameEncoding(t *testing.T) {
	// Parts are length-prefixed: no two names share an encoding or a
	// registry key, however their bytes are split.
	a := Name{Job: "ab", Operator: "c", State: "d"}
	b := Name{Job: "a", Operator: "bc", State: "d"}
	if string(appendName(nil, a)) == string(appendName(nil, b)) || tagOf(a) == tagOf(b) {
		t.Fatal("two names share an encoding")
	}
	if tagOf(a) != tagOf(Name{Job: "ab", Operator: "c", State: "d"}) {
		t.Fatal("tag not a function of the name")
	}
	h := NewHeap(nil)
	if _, err := h.RegisterState(Name{Job: "j", Operator: "o", State: "s"}, wasmabi.StateUnionList, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.RegisterState(Name{Job: "j", Operator: "o", State: "s"}, wasmabi.StateList, Options{}); !errors.Is(err, ErrKind) {
		t.Fatalf("union list registered again as list: %v, want ErrKind", err)
	}
}
