package connector

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weirstream/weir/internal/splits"
)

func writeFile(t testing.TB, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "in.txt")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFileLines(t *testing.T) {
	lines := []string{"alpha", "", "gamma delta", "\tsp ace ", "ünïcode", "last"}
	content := strings.Join(lines, "\r\n") // CRLF dropped too
	p := writeFile(t, content)             // no final newline
	got := readAll(t, newSource(t, "file", map[string]any{"path": p}, Subtask{Parallelism: 1}), 4)
	if len(got) != len(lines) {
		t.Fatalf("%d records, want %d", len(got), len(lines))
	}
	for i, l := range lines {
		if got[i] != (rec{"", l, int64(i)}) {
			t.Fatalf("line %d: %+v, want %q at %d", i, got[i], l, i)
		}
	}
	checkSplit(t, "file", map[string]any{"path": writeFile(t, strings.Repeat("some line\nother\n", 50)+"end\n")})
}

func TestFileJSONL(t *testing.T) {
	content := `{"user":"ann","ts":100,"n":1}
{"user":42,"ts":-5,"nested":{"user":"no","ts":1}}

{"ts":7,"user":"b\"o\u0062","list":[{"user":1}]}
  {"a" : "x" , "user" : "spaced" , "ts" : 3 }
`
	p := writeFile(t, content)
	got := readAll(t, newSource(t, "file", map[string]any{"path": p, "format": "jsonl", "key_field": "user", "timestamp_field": "ts"}, Subtask{Parallelism: 1}), 10)
	lines := strings.Split(content, "\n")
	want := []rec{
		{"ann", lines[0], 100},
		{"42", lines[1], -5},
		{`b"ob`, lines[3], 7},
		{"spaced", strings.TrimLeft(lines[4], " "), 3},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	// Without timestamp_field the timestamp is the 0-based line number.
	got = readAll(t, newSource(t, "file", map[string]any{"path": p, "format": "jsonl"}, Subtask{Parallelism: 1}), 10)
	if len(got) != 4 || got[0].TS != 0 || got[1].TS != 1 || got[2].TS != 3 || got[3].TS != 4 || got[0].Key != "" {
		t.Fatalf("line-number timestamps: %+v", got)
	}
}

func TestFileJSONLErrors(t *testing.T) {
	for _, tc := range []struct {
		content string
		opts    map[string]any
		want    string
	}{
		{"{\"a\":1}\n{\"a\":2}\n{\"a\":\n{\"a\":4}\n", nil, ":3: invalid JSON"},
		{"{\"a\":1}\n[1,2]\n", nil, ":2: want a JSON object, got an array"},
		{"{\"a\":1}\n{\"b\":2}\n", map[string]any{"key_field": "a"}, `:2: no field "a" (key_field)`},
		{"{\"a\":true}\n", map[string]any{"key_field": "a"}, `:1: field "a" (key_field) is a bool`},
		{"{\"t\":1}\n\n{\"t\":1.5}\n", map[string]any{"timestamp_field": "t"}, `:3: field "t" (timestamp_field) is 1.5`},
		{"{\"t\":\"9\"}\n", map[string]any{"timestamp_field": "t"}, `:1: field "t" (timestamp_field)`},
	} {
		raw := map[string]any{"format": "jsonl"}
		for k, v := range tc.opts {
			raw[k] = v
		}
		p := writeFile(t, tc.content)
		raw["path"] = p
		src := newSource(t, "file", raw, Subtask{Parallelism: 1})
		var b Batch
		var err error
		for i := 0; i < 10 && err == nil; i++ {
			_, err = src.Read(context.Background(), &b, 1)
		}
		if err == nil || !strings.Contains(err.Error(), p+tc.want) {
			t.Errorf("%q: error %v, want %q", tc.content, err, p+tc.want)
			continue
		}
		// The error sticks and the offset stays before the bad line.
		off := src.Offset()
		if _, err2 := src.Read(context.Background(), &b, 1); err2 == nil || err2.Error() != err.Error() {
			t.Errorf("%q: second Read: %v", tc.content, err2)
		}
		if string(src.Offset()) != string(off) {
			t.Errorf("offset moved after the error")
		}
	}
}

func TestFileLongLine(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 16 MiB file")
	}
	p := writeFile(t, "short\n"+strings.Repeat("x", MaxLineSize+3)+"\n")
	src := newSource(t, "file", map[string]any{"path": p}, Subtask{Parallelism: 1})
	var b Batch
	_, err := src.Read(context.Background(), &b, 10)
	if err == nil || !strings.Contains(err.Error(), p+":2: line longer than") {
		t.Fatalf("got %v", err)
	}
	// A line of exactly MaxLineSize bytes is fine.
	p = writeFile(t, strings.Repeat("y", MaxLineSize)+"\r\nok\n")
	got := readAll(t, newSource(t, "file", map[string]any{"path": p}, Subtask{Parallelism: 1}), 10)
	if len(got) != 2 || len(got[0].Value) != MaxLineSize || got[1].Value != "ok" {
		t.Fatalf("got %d records", len(got))
	}
}

func TestFileOffsets(t *testing.T) {
	var sb strings.Builder
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&sb, "line %d %s\n", i, strings.Repeat("z", i%7))
	}
	content := sb.String()
	p := writeFile(t, content)
	for par := 1; par <= 3; par++ {
		sub := Subtask{Index: par - 1, Parallelism: par}
		raw := map[string]any{"path": p}
		want := readAll(t, newSource(t, "file", raw, sub), 1000)
		src := newSource(t, "file", raw, sub)
		var b Batch
		if _, err := src.Read(context.Background(), &b, 10); err != nil {
			t.Fatal(err)
		}
		first := decode(t, &b)
		off := src.Offset()
		// The offset holds, for the split being read, the byte position
		// just after the last line read and the next line number.
		sn, err := splits.Decode(off)
		if err != nil {
			t.Fatal(err)
		}
		lastLine := first[len(first)-1].TS
		var pos, line int64 = -1, -1
		for _, st := range sn.States {
			if st.NextLine == lastLine+1 && st.Next > st.Split.Start {
				pos, line = st.Next, st.NextLine
			}
		}
		if line != lastLine+1 {
			t.Fatalf("no split's position is after line %d: %+v", lastLine, sn.States)
		}
		if wantPos := int64(len(strings.Join(strings.SplitAfter(content, "\n")[:line], ""))); pos != wantPos {
			t.Fatalf("offset byte %d, want %d", pos, wantPos)
		}
		resumed := newSource(t, "file", raw, sub).(Seekable)
		if err := resumed.Seek(off); err != nil {
			t.Fatal(err)
		}
		if got := append(first, readAll(t, resumed, 7)...); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("par %d: resumed stream differs", par)
		}
	}
	src := newSource(t, "file", map[string]any{"path": p}, Subtask{Parallelism: 1}).(Seekable)
	past := splits.Snapshot{Connector: "file", States: []splits.State{splits.Fresh(splits.Split{Of: 1, Kind: splits.KindFile, Path: p, End: int64(len(content) + 1)})}}
	if err := src.Seek(splits.Encode(past)); err == nil {
		t.Fatal("Seek past the end accepted")
	}
}

func TestFileOptions(t *testing.T) {
	s := mustSpec(t, KindSource, "file")
	for _, raw := range []map[string]any{{}, {"path": ""}, {"path": "x", "key_field": "k"}, {"path": "x", "format": "csv"}} {
		if _, err := s.ParseOptions(raw); err == nil {
			t.Errorf("%v accepted", raw)
		}
	}
	if s.Keyed(mustOptions(t, s, map[string]any{"path": "x"})) || !s.Keyed(mustOptions(t, s, map[string]any{"path": "x", "format": "jsonl", "key_field": "k"})) {
		t.Fatal("Keyed must follow key_field")
	}
	if _, err := s.NewSource(mustOptions(t, s, map[string]any{"path": filepath.Join(t.TempDir(), "missing")}), Subtask{Parallelism: 1}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing file: %v", err)
	}
}

func BenchmarkFileJSONLRead(b *testing.B) {
	var sb strings.Builder
	for i := 0; i < 10000; i++ {
		fmt.Fprintf(&sb, `{"user":"u%d","ts":%d,"text":"some words here"}`+"\n", i%100, i)
	}
	p := writeFile(b, sb.String())
	s := mustSpec(b, KindSource, "file")
	o := mustOptions(b, s, map[string]any{"path": p, "format": "jsonl", "key_field": "user", "timestamp_field": "ts"})
	var batch Batch
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		src, err := s.NewSource(o, Subtask{Parallelism: 1})
		if err != nil {
			b.Fatal(err)
		}
		for done < b.N {
			batch.Reset()
			n, err := src.Read(context.Background(), &batch, 1024)
			done += n
			if err != nil {
				break
			}
		}
		src.Close()
	}
}
