package connector

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

func newSink(t testing.TB, name string, raw map[string]any, sub Subtask) Sink {
	t.Helper()
	s := mustSpec(t, KindSink, name)
	snk, err := s.NewSink(mustOptions(t, s, raw), sub)
	if err != nil {
		t.Fatalf("new %s sink: %v", name, err)
	}
	return snk
}

// sampleRecords covers keys and values a sink must escape or embed.
func sampleRecords() []rec {
	return []rec{
		{"k1", "plain", 1},
		{"", "no key", 2},
		{"tab\tkey", `{"a":[1,2,{"b":null}],"c":"d"}`, -3},
		{"q\"uote", `[1, "two"]`, 4},
		{"ctl\x01\x1f", "line\nbreak\r\\ back", 5},
		{"bad\xffutf8", "\xc3\x28 invalid and ünïcode", 6},
		{"k", `{"not": "closed"`, 7},
		{"k", " {\"x\":1}", 8},
		{"k", "{\"x\":\n1}", 9},
		{"k", "", 10},
		{"k", `"just a json string"`, 11},
	}
}

func batchOf(recs []rec) *Batch {
	var b Batch
	for _, r := range recs {
		b.Append([]byte(r.Key), []byte(r.Value), r.TS)
	}
	return &b
}

// checkJSONL compares JSONL output with recs using encoding/json.
func checkJSONL(t *testing.T, out []byte, recs []rec, rawJSON bool) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(recs) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(recs), out)
	}
	for i, r := range recs {
		var got struct {
			Key       *string         `json:"key"`
			Value     json.RawMessage `json:"value"`
			Timestamp int64           `json:"timestamp"`
		}
		dec := json.NewDecoder(strings.NewReader(lines[i]))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("line %d %q: %v", i, lines[i], err)
		}
		if got.Timestamp != r.TS {
			t.Errorf("line %d: timestamp %d, want %d", i, got.Timestamp, r.TS)
		}
		if r.Key == "" {
			if got.Key != nil {
				t.Errorf("line %d: key %q, want null", i, *got.Key)
			}
		} else if wantKey := jsonRoundTrip(r.Key); got.Key == nil || *got.Key != wantKey {
			t.Errorf("line %d: key %v, want %q", i, got.Key, wantKey)
		}
		// Independent rule: an object or array on one line that
		// encoding/json accepts is embedded; anything else is a string.
		v := []byte(r.Value)
		trimmed := bytes.TrimSpace(v)
		embed := rawJSON && len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') && json.Valid(v) && !bytes.ContainsAny(v, "\r\n")
		if embed {
			var a, b any
			json.Unmarshal(v, &a)
			json.Unmarshal(got.Value, &b)
			if fmt.Sprint(a) != fmt.Sprint(b) {
				t.Errorf("line %d: value %s, want %s embedded", i, got.Value, v)
			}
			continue
		}
		var s string
		if err := json.Unmarshal(got.Value, &s); err != nil {
			t.Errorf("line %d: value %s is not a string: %v", i, got.Value, err)
		} else if s != jsonRoundTrip(r.Value) {
			t.Errorf("line %d: value %q, want %q", i, s, jsonRoundTrip(r.Value))
		}
	}
}

// jsonRoundTrip is what encoding/json makes of s (invalid UTF-8 replaced).
func jsonRoundTrip(s string) string {
	b, _ := json.Marshal(s)
	var out string
	json.Unmarshal(b, &out)
	return out
}

func TestFileSinkJSONL(t *testing.T) {
	for _, rawJSON := range []bool{true, false} {
		path := filepath.Join(t.TempDir(), "sub", "out.jsonl")
		snk := newSink(t, "file", map[string]any{"path": path, "raw_json": rawJSON}, Subtask{Parallelism: 1})
		recs := sampleRecords()
		b := batchOf(recs)
		if err := snk.Write(b.Buf, b.Count); err != nil {
			t.Fatal(err)
		}
		if err := snk.Flush(); err != nil {
			t.Fatal(err)
		}
		out, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		checkJSONL(t, out, recs, rawJSON)
		if err := snk.Close(); err != nil {
			t.Fatal(err)
		}
		if err := snk.Close(); err != nil {
			t.Fatal("second Close:", err)
		}
		if err := snk.Write(b.Buf, b.Count); err == nil {
			t.Fatal("Write after Close accepted")
		}
	}
}

func TestFileSinkLinesAndSubtaskPaths(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.txt")
	var all []string
	for i := 0; i < 3; i++ {
		snk := newSink(t, "file", map[string]any{"path": path, "format": "lines"}, Subtask{Index: i, Parallelism: 3})
		// Many batches, more than the write buffer holds.
		var want []string
		for j := 0; j < 50; j++ {
			var recs []rec
			for k := 0; k < 200; k++ {
				v := fmt.Sprintf("sub %d batch %d rec %d %s", i, j, k, strings.Repeat("p", k))
				recs = append(recs, rec{"key", v, int64(k)})
				want = append(want, v)
			}
			b := batchOf(recs)
			if err := snk.Write(b.Buf, b.Count); err != nil {
				t.Fatal(err)
			}
		}
		if err := snk.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := snk.Close(); err != nil {
			t.Fatal(err)
		}
		out, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("out-%d.txt", i)))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n"); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("subtask %d: %d lines, want %d", i, len(got), len(want))
		}
		all = append(all, want...)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("parallel sink wrote %s itself", path)
	}
	for _, tc := range []struct {
		path string
		sub  Subtask
		want string
	}{
		{"a/out.jsonl", Subtask{Index: 0, Parallelism: 1}, "a/out.jsonl"},
		{"a/out.jsonl", Subtask{Index: 1, Parallelism: 2}, "a/out-1.jsonl"},
		{"a/out", Subtask{Index: 3, Parallelism: 4}, "a/out-3"},
		{"a.b/out.tar.gz", Subtask{Index: 0, Parallelism: 2}, "a.b/out.tar-0.gz"},
		{".hidden", Subtask{Index: 1, Parallelism: 2}, ".hidden-1"},
	} {
		if got := SubtaskPath(tc.path, tc.sub); got != tc.want {
			t.Errorf("SubtaskPath(%q, %d/%d) = %q, want %q", tc.path, tc.sub.Index, tc.sub.Parallelism, got, tc.want)
		}
	}
}

func TestSinkRejectsBadEntries(t *testing.T) {
	snk := newSink(t, "file", map[string]any{"path": filepath.Join(t.TempDir(), "o")}, Subtask{Parallelism: 1})
	defer snk.Close()
	b := batchOf([]rec{{"k", "v", 1}})
	if err := snk.Write(b.Buf[:len(b.Buf)-1], 1); err == nil {
		t.Fatal("truncated entry accepted")
	}
}

func TestStdoutSink(t *testing.T) {
	for _, format := range []string{"text", "jsonl"} {
		var out bytes.Buffer
		restore := SetStdout(&out)
		snk := newSink(t, "stdout", map[string]any{"format": format}, Subtask{Parallelism: 1})
		recs := sampleRecords()
		b := batchOf(recs)
		if err := snk.Write(b.Buf, b.Count); err != nil {
			t.Fatal(err)
		}
		if out.Len() != 0 {
			t.Fatal("stdout sink wrote before Flush: not buffered")
		}
		if err := snk.Close(); err != nil {
			t.Fatal(err)
		}
		restore()
		if format == "jsonl" {
			checkJSONL(t, out.Bytes(), recs, true)
			continue
		}
		var want strings.Builder
		for _, r := range recs {
			if r.Key != "" {
				want.WriteString(r.Key + "\t")
			}
			want.WriteString(r.Value + "\n")
		}
		if out.String() != want.String() {
			t.Fatalf("text output\n%q\nwant\n%q", out.String(), want.String())
		}
	}
}

func TestStdoutSinkConcurrent(t *testing.T) {
	var out bytes.Buffer
	restore := SetStdout(&out)
	defer restore()
	const subtasks, batches, perBatch = 4, 40, 100
	var wg sync.WaitGroup
	errs := make(chan error, subtasks)
	for i := 0; i < subtasks; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			snk := newSink(t, "stdout", map[string]any{"format": "jsonl"}, Subtask{Index: i, Parallelism: subtasks})
			for j := 0; j < batches; j++ {
				var recs []rec
				for k := 0; k < perBatch; k++ {
					recs = append(recs, rec{fmt.Sprintf("s%d", i), fmt.Sprintf("%d-%d-%s", j, k, strings.Repeat("x", 50+k)), int64(j*perBatch + k)})
				}
				b := batchOf(recs)
				if err := snk.Write(b.Buf, b.Count); err != nil {
					errs <- err
					return
				}
				if j%10 == 0 {
					snk.Flush()
				}
			}
			errs <- snk.Close()
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string][]int64{}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var v struct {
			Key       string `json:"key"`
			Value     string `json:"value"`
			Timestamp int64  `json:"timestamp"`
		}
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("interleaved or broken line %q: %v", sc.Text(), err)
		}
		seen[v.Key] = append(seen[v.Key], v.Timestamp)
	}
	for i := 0; i < subtasks; i++ {
		ts := seen[fmt.Sprintf("s%d", i)]
		if len(ts) != batches*perBatch || !sort.SliceIsSorted(ts, func(a, b int) bool { return ts[a] < ts[b] }) {
			t.Fatalf("subtask %d: %d lines (want %d), in order: %v", i, len(ts), batches*perBatch, sort.SliceIsSorted(ts, func(a, b int) bool { return ts[a] < ts[b] }))
		}
	}
}

func TestDiscardSink(t *testing.T) {
	r0, b0 := DiscardTotals()
	snk := newSink(t, "discard", nil, Subtask{Parallelism: 1})
	b := batchOf(sampleRecords())
	for i := 0; i < 3; i++ {
		if err := snk.Write(b.Buf, b.Count); err != nil {
			t.Fatal(err)
		}
	}
	d := snk.(*DiscardSink)
	if d.Count() != int64(3*b.Count) || d.Bytes() != int64(3*len(b.Buf)) {
		t.Fatalf("count %d bytes %d, want %d %d", d.Count(), d.Bytes(), 3*b.Count, 3*len(b.Buf))
	}
	if r1, b1 := DiscardTotals(); r1-r0 < d.Count() || b1-b0 < d.Bytes() {
		t.Fatal("totals did not grow")
	}
	if snk.Flush() != nil || snk.Close() != nil {
		t.Fatal("discard Flush/Close failed")
	}
}

// BenchmarkFileSinkJSONLWrite writes 1024-record batches; exactly
// pre-commits and commits a transaction every 256 batches (a checkpoint
// every ~262k records), to show what the two phases add.
func BenchmarkFileSinkJSONLWrite(b *testing.B) {
	for _, exactly := range []bool{false, true} {
		b.Run(map[bool]string{false: "plain", true: "exactly"}[exactly], func(b *testing.B) {
			s := mustSpec(b, KindSink, "file")
			snk, err := s.NewSink(mustOptions(b, s, map[string]any{"path": filepath.Join(b.TempDir(), "out.jsonl")}), Subtask{Parallelism: 1, Exactly: exactly})
			if err != nil {
				b.Fatal(err)
			}
			defer snk.Close()
			var batch Batch
			for i := 0; i < 1024; i++ {
				batch.Append([]byte(fmt.Sprintf("key-%d", i%100)), []byte(fmt.Sprintf(`{"seq":%d,"key":"key-%d","value":%d}`, i, i%100, i*7)), int64(i))
			}
			b.SetBytes(int64(len(batch.Buf) / batch.Count))
			b.ReportAllocs()
			b.ResetTimer()
			var ckpt uint64
			for done, batches := 0, 0; done < b.N; done, batches = done+batch.Count, batches+1 {
				if err := snk.Write(batch.Buf, batch.Count); err != nil {
					b.Fatal(err)
				}
				if exactly && batches%256 == 255 {
					ckpt++
					tp := snk.(TwoPhaseSink)
					if _, err := tp.PreCommit(ckpt); err != nil {
						b.Fatal(err)
					}
					if err := tp.Commit(ckpt); err != nil {
						b.Fatal(err)
					}
				}
			}
			if err := snk.Flush(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			// Per record, not per batch of 1024.
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64((b.N+batch.Count-1)/batch.Count*batch.Count), "ns/record")
		})
	}
}
