//go:build !wasip1

package main

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"unicode"

	weir "github.com/weirstream/weir/sdk/go"
	"github.com/weirstream/weir/sdk/go/weirtest"
)

func open(t *testing.T, name string) *weirtest.Harness {
	t.Helper()
	h, err := weirtest.New(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Open(nil); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestSplit(t *testing.T) {
	h := open(t, "split")
	outs, err := h.Process(
		weir.Record{Value: []byte("Hello, World! hello-again 42x"), Timestamp: 7},
		weir.Record{Value: []byte("  ...  "), Timestamp: 8},
		weir.Record{Value: []byte("Ünïcode CAFÉ, naïve."), Timestamp: 9},
	)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range outs {
		if string(o.Record.Key) != string(o.Record.Value) {
			t.Errorf("key %q, value %q", o.Record.Key, o.Record.Value)
		}
		got = append(got, string(o.Record.Key)+"@"+strconv.FormatInt(o.Record.Timestamp, 10))
	}
	want := "hello@7 world@7 hello@7 again@7 42x@7 ünïcode@9 café@9 naïve@9"
	if strings.Join(got, " ") != want {
		t.Errorf("split:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
}

func TestCount(t *testing.T) {
	h := open(t, "count")
	outs, err := h.Process(
		weir.Record{Key: []byte("a"), Value: []byte("a"), Timestamp: 1},
		weir.Record{Key: []byte("b"), Value: []byte("b"), Timestamp: 2},
		weir.Record{Key: []byte("a"), Value: []byte("a"), Timestamp: 3},
	)
	if err != nil {
		t.Fatal(err)
	}
	outs2, err := h.Process(weir.Record{Key: []byte("a"), Value: []byte("a"), Timestamp: 4})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range append(outs, outs2...) {
		got = append(got, string(o.Record.Key)+"="+string(o.Record.Value)+"@"+strconv.FormatInt(o.Record.Timestamp, 10))
	}
	if want := "a=1@1 b=1@2 a=2@3 a=3@4"; strings.Join(got, " ") != want {
		t.Errorf("count: got %s, want %s", strings.Join(got, " "), want)
	}
	if v, ok := h.Host.Value("count", "a"); !ok || len(v) != 8 || v[0] != 3 {
		t.Errorf("state of a = %v", v)
	}
}

// TestSample runs split then count over sample.txt, one record per line,
// and checks the final counts against a count made here.
func TestSample(t *testing.T) {
	text, err := os.ReadFile("sample.txt")
	if err != nil {
		t.Fatal(err)
	}
	var lines []weir.Record
	for i, l := range strings.Split(strings.TrimRight(string(text), "\n"), "\n") {
		lines = append(lines, weir.Record{Value: []byte(l), Timestamp: int64(i)})
	}
	words, err := open(t, "split").Process(lines...)
	if err != nil {
		t.Fatal(err)
	}
	in := make([]weir.Record, len(words))
	for i, w := range words {
		in[i] = w.Record
	}
	counts, err := open(t, "count").Process(in...)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	all := strings.FieldsFunc(strings.ToLower(string(text)), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	for _, w := range all {
		want[w]++
	}
	if len(counts) != len(all) {
		t.Fatalf("%d counts for %d words", len(counts), len(all))
	}
	got := map[string]int{}
	for _, c := range counts {
		n, _ := strconv.Atoi(string(c.Record.Value))
		got[string(c.Record.Key)] = n
	}
	for w, n := range want {
		if got[w] != n {
			t.Errorf("count[%q] = %d, want %d", w, got[w], n)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d words counted, want %d", len(got), len(want))
	}
}
