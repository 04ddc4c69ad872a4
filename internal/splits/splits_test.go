package splits

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeFile(t testing.TB, content []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "in")
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkFileSplits checks the splits of content against a computation on
// the whole content: contiguous cover of every byte, each start a line
// start, each Line the count of newlines before it, no empty split.
func checkFileSplits(t *testing.T, content []byte) []Split {
	t.Helper()
	p := writeFile(t, content)
	sp, err := Files(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(sp) < 1 || len(sp) > FileSplits {
		t.Fatalf("%d splits of %d bytes", len(sp), len(content))
	}
	var at int64
	for i, s := range sp {
		if s.ID != i || s.Of != len(sp) || s.Kind != KindFile || s.Path != p || s.Stride != 0 {
			t.Fatalf("split %d: %+v", i, s)
		}
		if s.Start != at {
			t.Fatalf("split %d starts at %d, want %d (contiguous)", i, s.Start, at)
		}
		if s.Start > 0 && content[s.Start-1] != '\n' {
			t.Fatalf("split %d starts at %d, not after a newline", i, s.Start)
		}
		if want := int64(bytes.Count(content[:s.Start], []byte{'\n'})); s.Line != want {
			t.Fatalf("split %d: line %d, want %d", i, s.Line, want)
		}
		if s.End <= s.Start && len(content) > 0 {
			t.Fatalf("split %d is empty: %+v", i, s)
		}
		st := Fresh(s)
		if err := st.Validate(); err != nil {
			t.Fatal(err)
		}
		at = s.End
	}
	if at != int64(len(content)) {
		t.Fatalf("splits end at %d, the file at %d", at, len(content))
	}
	return sp
}

func TestFiles(t *testing.T) {
	checkFileSplits(t, nil)
	checkFileSplits(t, []byte("one line, no newline"))
	checkFileSplits(t, []byte("\n\n\n\n"))
	checkFileSplits(t, []byte("a\nb"))
	if sp := checkFileSplits(t, []byte(strings.Repeat("line\n", 1000))); len(sp) != FileSplits {
		t.Fatalf("%d splits of 1000 short lines, want %d", len(sp), FileSplits)
	}
	rng := rand.New(rand.NewSource(3))
	for i := 0; i < 50; i++ {
		var b []byte
		for n := rng.Intn(3000); n > 0; n-- {
			b = append(b, bytes.Repeat([]byte{'x'}, rng.Intn([]int{5, 50, 5000}[rng.Intn(3)]))...)
			if rng.Intn(10) > 0 {
				b = append(b, '\n')
			}
		}
		checkFileSplits(t, b)
	}
	// Over the 64 KiB read buffer: cuts and counts across its boundaries.
	big := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz\n"), 100_000)
	checkFileSplits(t, big)
	if _, err := Files(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestSequenceCoversEveryNumberOnce(t *testing.T) {
	for _, count := range []int64{1, 719, 720, 721, 5000} {
		seen := make([]int, count)
		for _, s := range Sequence(count) {
			for st := Fresh(s); !st.Done(); st.Next += s.Stride {
				if err := st.Validate(); err != nil {
					t.Fatal(err)
				}
				seen[st.Next]++
			}
		}
		for n, c := range seen {
			if c != 1 {
				t.Fatalf("count %d: number %d in %d splits", count, n, c)
			}
		}
	}
	s := Fresh(Sequence(0)[5])
	if s.Done() || s.Split.End != Unbounded {
		t.Fatal("unbounded split done")
	}
}

// At a parallelism dividing SequenceSplits, subtask i's splits hold
// exactly the numbers i, i+p, ...
func TestOwnerStrides(t *testing.T) {
	for _, p := range []int{1, 2, 3, 4, 5, 6, 8, 9, 10, 12, 16, 24} {
		for i := 0; i < p; i++ {
			for _, st := range Take("datagen", Sequence(0), i, p).States {
				if st.Split.Start%int64(p) != int64(i) {
					t.Fatalf("p=%d: subtask %d has split starting at %d", p, i, st.Split.Start)
				}
			}
		}
	}
}

func snapshots(all []Split, p int) []Snapshot {
	var out []Snapshot
	for i := 0; i < p; i++ {
		out = append(out, Take("file", all, i, p))
	}
	return out
}

func TestAssign(t *testing.T) {
	all := make([]Split, 10)
	for i := range all {
		all[i] = Split{ID: i, Of: 10, Kind: KindFile, Path: "f", Start: int64(i * 10), End: int64(i*10 + 10), Line: int64(i)}
	}
	old := snapshots(all, 3)
	old[1].States[0].Next, old[1].States[0].NextLine = 15, 2 // split 1 half read
	for _, p := range []int{1, 2, 4, 10, 11} {
		got := map[int]State{}
		for i := 0; i < p; i++ {
			sn, err := Assign(old, i, p)
			if err != nil {
				t.Fatal(err)
			}
			for j, st := range sn.States {
				if Owner(st.Split.ID, p) != i || (j > 0 && sn.States[j-1].Split.ID >= st.Split.ID) {
					t.Fatalf("p=%d subtask %d: %+v", p, i, sn.States)
				}
				got[st.Split.ID] = st
			}
		}
		all, err := Redistribute(old, p)
		if err != nil || len(all) != p {
			t.Fatalf("p=%d: Redistribute: %d, %v", p, len(all), err)
		}
		for i := range all {
			one, _ := Assign(old, i, p)
			if !reflect.DeepEqual(one, all[i]) {
				t.Fatalf("p=%d: Redistribute and Assign differ for subtask %d", p, i)
			}
		}
		if len(got) != 10 || got[1].Next != 15 || got[1].NextLine != 2 || got[2].Next != 20 {
			t.Fatalf("p=%d: %+v", p, got)
		}
	}
	for _, tc := range []struct {
		name string
		old  []Snapshot
		want string
	}{
		{"lost subtask", old[:2], "split 2 missing"},
		{"doubled subtask", append(snapshots(all, 3), old[0]), "appears twice"},
		{"mixed connectors", []Snapshot{old[0], {Connector: "datagen", States: old[1].States}, old[2]}, "connectors"},
		{"none", nil, "no snapshot"},
	} {
		if _, err := Assign(tc.old, 0, 2); err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, err := Assign(old, 2, 2); err == nil {
		t.Error("subtask 2 of 2 accepted")
	}
}

func TestValidate(t *testing.T) {
	seq := Sequence(100)[3] // 3, 723, ...: only 3 is below 100
	file := Split{ID: 0, Of: 1, Kind: KindFile, Path: "f", Start: 10, End: 20, Line: 2}
	for _, tc := range []struct {
		st State
		ok bool
	}{
		{State{Split: seq, Next: 3}, true},
		{State{Split: seq, Next: 723}, true}, // done
		{State{Split: seq, Next: 1443}, false},
		{State{Split: seq, Next: 4}, false},
		{State{Split: seq, Next: -717}, false},
		{State{Split: file, Next: 10, NextLine: 2}, true},
		{State{Split: file, Next: 20, NextLine: 5}, true},
		{State{Split: file, Next: 21, NextLine: 5}, false},
		{State{Split: file, Next: 12, NextLine: 5}, false}, // 3 lines in 2 bytes
		{State{Split: file, Next: 9, NextLine: 2}, false},
		{State{Split: Split{ID: 1, Of: 1, Kind: KindFile, Path: "f"}}, false},
		{State{Split: Split{Of: 1, Kind: 9}}, false},
		{State{Split: Split{Of: 1, Kind: KindFile}}, false},
	} {
		if err := tc.st.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: %v, want ok=%v", tc.st, err, tc.ok)
		}
	}
}

func TestCodec(t *testing.T) {
	p := writeFile(t, []byte(strings.Repeat("some line\n", 500)))
	fs, err := Files(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, sn := range []Snapshot{
		Take("file", fs, 1, 3),
		Take("datagen", Sequence(0), 0, 1),
		Take("nexmark", Sequence(10), 2, 5),
		{Connector: "datagen", States: []State{}},
	} {
		if len(sn.States) > 0 {
			sn.States[0].Next += sn.States[0].Split.Stride
			if sn.States[0].Split.Kind == KindFile {
				sn.States[0].Next, sn.States[0].NextLine = sn.States[0].Split.Start+10, sn.States[0].Split.Line+1
			}
		}
		b := Encode(sn)
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", sn.Connector, err)
		}
		if !reflect.DeepEqual(got, sn) {
			t.Fatalf("%s: round trip differs:\n%+v\n%+v", sn.Connector, got, sn)
		}
		// Every truncation and every flipped bit is refused.
		for i := 0; i < len(b); i++ {
			if _, err := Decode(b[:i]); err == nil {
				t.Fatalf("%s: truncated to %d bytes accepted", sn.Connector, i)
			}
			c := append([]byte{}, b...)
			c[i] ^= 1 << (i % 8)
			if _, err := Decode(c); err == nil {
				t.Fatalf("%s: bit flipped in byte %d accepted", sn.Connector, i)
			}
		}
	}
	// 720 sequence splits of an unbounded stream: what one subtask at
	// parallelism 1 checkpoints.
	if n := len(Encode(Take("datagen", Sequence(0), 0, 1))); n > 720*16 {
		t.Fatalf("snapshot of 720 splits takes %d bytes", n)
	}
}

// Snapshots travel in deployment descriptors as JSON too.
func TestJSON(t *testing.T) {
	sn := Take("nexmark", Sequence(0), 1, 4)
	sn.States[2].Next += 3 * SequenceSplits
	b, err := json.Marshal(sn)
	if err != nil {
		t.Fatal(err)
	}
	var got Snapshot
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, sn) || got.Validate() != nil {
		t.Fatalf("JSON round trip differs")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode(Take("datagen", Sequence(50), 1, 2)))
	f.Add(Encode(Snapshot{Connector: "file", States: []State{Fresh(Split{Of: 1, Kind: KindFile, Path: "p", End: 5})}}))
	f.Add([]byte("weirsplt\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		sn, err := Decode(b)
		if err != nil {
			return
		}
		again, err := Decode(Encode(sn))
		if err != nil || !reflect.DeepEqual(again, sn) {
			t.Fatalf("re-encoding a decoded snapshot: %v\n%+v\n%+v", err, sn, again)
		}
	})
}

func ExampleAssign() {
	// A stream of 10 numbers read by 2 subtasks: subtask 0 took 0 and 2,
	// subtask 1 took nothing. Restored at parallelism 3, subtask 0 holds
	// the splits 0, 3, 6, ... continuing where they were.
	all := Sequence(10)
	old := []Snapshot{Take("datagen", all, 0, 2), Take("datagen", all, 1, 2)}
	old[0].States[0].Next += SequenceSplits // took 0
	old[0].States[1].Next += SequenceSplits // took 2
	sn, _ := Assign(old, 0, 3)
	for _, st := range sn.States[:4] {
		fmt.Println(st.Split.ID, st.Next, st.Done())
	}
	// Output:
	// 0 720 true
	// 3 3 false
	// 6 6 false
	// 9 9 false
}
