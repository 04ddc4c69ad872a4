package connector

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/weirstream/weir/internal/scripttest"
)

// TestFileSinkScripts runs testdata/filesink/*.txt against real files in
// a temporary folder. Commands (NAME is a sink, CKPT a checkpoint id):
//
//	new NAME index=I par=P [restore=(A@CKPT,...)] [raw=(A@CKPT,...)] [path=FILE]
//	                         makes subtask I of P of the exactly-once file
//	                         sink; restore= hands it RestoreStates of the
//	                         states listed (those of every old subtask),
//	                         raw= exactly the states listed; path= another
//	                         sink path in the same folder
//	write NAME FROM-TO       writes the records FROM..TO (values are the
//	                         numbers), in batches of 7
//	precommit NAME CKPT      keeps the state as NAME@CKPT
//	commit NAME CKPT | flush NAME | close NAME
//	crash NAME [flushed]     the process dies: open files are closed by
//	                         the kernel, nothing buffered is written (with
//	                         flushed: after the buffer reached the file),
//	                         the sink is gone without Close
//	corrupt NAME@CKPT as=NEW@CKPT how=truncate|flip|empty|garbage|resum
//	                         a damaged copy of a state (resum fixes the
//	                         checksum after flipping, to reach the checks
//	                         behind it)
//	touch NAME... | remove GLOB
//	                         make (a line each) or remove files of the folder
//	files                    every file of the folder with its line count
//	expect FROM-TO... [ordered]
//	                         the committed parts (CommittedParts) hold
//	                         exactly these records, each once (and, with
//	                         ordered, increasing per subtask in name
//	                         order); the test fails otherwise
//
// Attempt ids are printed as A1, A2, ... in order of appearance.
func TestFileSinkScripts(t *testing.T) {
	scripttest.Walk(t, filepath.Join("testdata", "filesink"), func(t *testing.T) scripttest.Handler {
		dir := t.TempDir()
		path := filepath.Join(dir, "out", "out.txt")
		sinks := map[string]*fileSink{}
		states := map[string]SinkState{}
		attempts := map[string]string{}
		attemptRE := regexp.MustCompile(`\b[0-9a-f]{16}\b`)
		checksumRE := regexp.MustCompile(`checksum [0-9a-f]{8}, the state says [0-9a-f]{8}`)
		norm := func(s string) string {
			s = strings.ReplaceAll(s, dir, "$DIR")
			// Checksums cover the random attempt ids.
			s = checksumRE.ReplaceAllString(s, "checksum X, the state says Y")
			return attemptRE.ReplaceAllStringFunc(s, func(a string) string {
				if _, ok := attempts[a]; !ok {
					attempts[a] = fmt.Sprintf("A%d", len(attempts)+1)
				}
				return attempts[a]
			})
		}
		result := func(err error) string {
			if err != nil {
				return norm("error: " + err.Error())
			}
			return "ok"
		}
		sink := func(c *scripttest.Cmd) *fileSink {
			p := c.Positional()
			if len(p) < 1 || sinks[p[0]] == nil {
				c.Fatalf("no sink %v", p)
			}
			return sinks[p[0]]
		}
		ckpt := func(c *scripttest.Cmd) uint64 {
			p := c.Positional()
			if len(p) != 2 {
				c.Fatalf("want NAME CKPT")
			}
			n, err := strconv.ParseUint(p[1], 10, 64)
			if err != nil {
				c.Fatalf("checkpoint %q: %v", p[1], err)
			}
			return n
		}
		stateList := func(c *scripttest.Cmd, key string) []SinkState {
			var out []SinkState
			for _, ref := range c.Strs(key) {
				st, ok := states[ref]
				if !ok {
					c.Fatalf("no state %s", ref)
				}
				out = append(out, st)
			}
			return out
		}
		return func(t *testing.T, c *scripttest.Cmd) string {
			switch c.Name {
			case "new":
				name := c.Positional()[0]
				sub := Subtask{Index: c.Int("index", 0), Parallelism: c.Int("par", 1), Exactly: true}
				if c.Has("restore") {
					sub.Restoring, sub.SinkRestore = true, RestoreStates(stateList(c, "restore"), sub.Index, sub.Parallelism)
				}
				if c.Has("raw") {
					sub.Restoring, sub.SinkRestore = true, stateList(c, "raw")
				}
				p := path
				if c.Has("path") {
					p = filepath.Join(filepath.Dir(path), c.Str("path", ""))
				}
				s := mustSpec(t, KindSink, "file")
				snk, err := s.NewSink(mustOptions(t, s, map[string]any{"path": p, "format": "lines"}), sub)
				if err != nil {
					return result(err)
				}
				sinks[name] = snk.(*fileSink)
				return "ok"
			case "write":
				s := sink(c)
				from, to := parseRange(c, c.Positional()[1])
				for n := from; n <= to; n += 7 {
					var b Batch
					for i := n; i <= to && i < n+7; i++ {
						b.Append(nil, []byte(strconv.Itoa(i)), int64(i))
					}
					if err := s.Write(b.Buf, b.Count); err != nil {
						return result(err)
					}
				}
				return "ok"
			case "precommit":
				s, id := sink(c), ckpt(c)
				st, err := s.PreCommit(id)
				if err != nil {
					return result(err)
				}
				d, err := decodeFileSinkState(st, s.names)
				if err != nil {
					c.Fatalf("the sink's own state does not decode: %v", err)
				}
				states[fmt.Sprintf("%s@%d", c.Positional()[0], id)] = SinkState{Index: s.index, State: st}
				var l scripttest.Lines
				l.Printf("state of subtask %d at %d: %d pending, last part %d", d.index, d.takenAt, len(d.txns), d.lastSeq)
				for _, tx := range d.txns {
					l.Printf("  %d: %s -> %s", tx.checkpoint, norm(tx.pending), norm(tx.final))
				}
				return l.String()
			case "commit":
				return result(sink(c).Commit(ckpt(c)))
			case "flush":
				return result(sink(c).Flush())
			case "close":
				return result(sink(c).Close())
			case "crash":
				s := sink(c)
				if c.Has("flushed") {
					if err := s.writeOut(); err != nil {
						return result(err)
					}
				}
				if s.f != nil {
					s.f.Close()
				}
				delete(sinks, c.Positional()[0])
				return "ok"
			case "corrupt":
				ref := c.Positional()[0]
				st, ok := states[ref]
				if !ok {
					c.Fatalf("no state %s", ref)
				}
				b := append([]byte(nil), st.State...)
				switch how := c.MustStr("how"); how {
				case "truncate":
					b = b[:len(b)/2]
				case "flip":
					b[len(b)/2] ^= 0x40
				case "resum":
					b[c.Int("at", len(b)/2)] ^= byte(c.Int("xor", 0x40))
					b = appendStateCRC(b[:len(b)-4])
				case "empty":
					b = nil
				case "garbage":
					b = []byte("this is not a state at all, no")
				default:
					c.Fatalf("how=%s", how)
				}
				states[c.MustStr("as")] = SinkState{Index: st.Index, State: b}
				return "ok"
			case "touch":
				for _, n := range c.Positional() {
					if err := os.WriteFile(filepath.Join(filepath.Dir(path), n), []byte("x\n"), 0o644); err != nil {
						c.Fatalf("%v", err)
					}
				}
				return "ok"
			case "remove":
				ms, _ := filepath.Glob(filepath.Join(filepath.Dir(path), c.Positional()[0]))
				for _, m := range ms {
					os.Remove(m)
				}
				return fmt.Sprintf("removed %d", len(ms))
			case "files":
				var l scripttest.Lines
				for _, f := range listFiles(t, filepath.Dir(path)) {
					l.Printf("%s", norm(f))
				}
				return l.String()
			case "expect":
				var want []int
				ordered := false
				for _, p := range c.Positional() {
					if p == "ordered" {
						ordered = true
						continue
					}
					from, to := parseRange(c, p)
					for n := from; n <= to; n++ {
						want = append(want, n)
					}
				}
				parts, records := checkExactlyOnce(t, c, path, want, ordered)
				return fmt.Sprintf("%d records, each once, in %d parts", records, parts)
			}
			c.Fatalf("unknown command")
			return ""
		}
	})
}

func parseRange(c *scripttest.Cmd, s string) (from, to int) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		b = a
	}
	from, err1 := strconv.Atoi(a)
	to, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || from > to {
		c.Fatalf("range %q: want FROM-TO", s)
	}
	return from, to
}

// listFiles returns "name (N lines)" for every file of dir, sorted.
func listFiles(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s (%d lines)", e.Name(), bytes.Count(b, []byte("\n"))))
	}
	sort.Strings(out)
	return out
}

// checkExactlyOnce reads every committed part of the sink at path, counts
// each number it holds and fails unless want is exactly the multiset of
// what it read, every number once; ordered also wants the numbers of each
// subtask increasing over its parts in name order.
func checkExactlyOnce(t testing.TB, c interface{ Fatalf(string, ...any) }, path string, want []int, ordered bool) (parts, records int) {
	files, err := CommittedParts(path)
	if err != nil {
		c.Fatalf("CommittedParts: %v", err)
	}
	// The glob a reader would use finds the same files.
	globbed, err := filepath.Glob(path + ".part-*")
	if err != nil || strings.Join(globbed, "|") != strings.Join(files, "|") {
		c.Fatalf("CommittedParts %v, glob %v (%v)", files, globbed, err)
	}
	count := map[int]int{}
	last := map[string]int{}
	idxRE := regexp.MustCompile(`\.part-([0-9]+)-`)
	for _, f := range files {
		idx := idxRE.FindStringSubmatch(filepath.Base(f))[1]
		fh, err := os.Open(f)
		if err != nil {
			c.Fatalf("%v", err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 4*fileSinkBuffer)
		for sc.Scan() {
			num, _, _ := strings.Cut(sc.Text(), " ")
			n, err := strconv.Atoi(num)
			if err != nil {
				c.Fatalf("%s: line %q", f, sc.Text())
			}
			if prev, ok := last[idx]; ordered && ok && n <= prev {
				c.Fatalf("%s: %d after %d in subtask %s's output", filepath.Base(f), n, prev, idx)
			}
			last[idx] = n
			count[n]++
			records++
		}
		if err := sc.Err(); err != nil {
			c.Fatalf("reading %s: %v", f, err)
		}
		fh.Close()
	}
	wantCount := map[int]int{}
	for _, n := range want {
		wantCount[n]++
	}
	var bad []string
	for n, k := range count {
		if wantCount[n] != k {
			bad = append(bad, fmt.Sprintf("%d seen %d times, want %d", n, k, wantCount[n]))
		}
	}
	for n, k := range wantCount {
		if count[n] == 0 {
			bad = append(bad, fmt.Sprintf("%d missing (want %d)", n, k))
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		if len(bad) > 20 {
			bad = append(bad[:20], "...")
		}
		c.Fatalf("committed output is not exactly the expected records:\n%s\nfiles: %s", strings.Join(bad, "\n"), strings.Join(listFiles(t, filepath.Dir(path)), "\n"))
	}
	return len(files), records
}

// TestFileSinkExactlyOnceRandom drives the exactly-once file sink as a job
// would, from a seeded random schedule: records from a replayable source
// routed to the sink's subtasks by number, barriers, checkpoints that
// complete (declining older ones) or never do, commit notifications
// delivered late, twice or never, and crashes restored from the latest
// completed checkpoint at a random parallelism with the source rewound.
// After every restore the committed parts must hold exactly the records
// before that checkpoint's barrier; at the end, every record once, each
// subtask's records increasing in name order.
func TestFileSinkExactlyOnceRandom(t *testing.T) {
	seeds := 16
	if testing.Short() {
		seeds = 6
	}
	for seed := 1; seed <= seeds; seed++ {
		t.Run(strconv.Itoa(seed), func(t *testing.T) { runSinkModel(t, int64(seed)) })
	}
}

type modelCheckpoint struct {
	id     uint64
	pos    int // the source's next record at the barrier
	states []SinkState
}

func runSinkModel(t *testing.T, seed int64) {
	rng := rand.New(rand.NewSource(seed))
	const n = 1500
	path := filepath.Join(t.TempDir(), "o", "out.txt")
	spec := mustSpec(t, KindSink, "file")
	opts := mustOptions(t, spec, map[string]any{"path": path, "format": "lines", "rate": 1 << 40})
	var (
		sinks    []*fileSink
		pos      int
		nextID   uint64            = 1
		inflight []modelCheckpoint // pre-committed by every subtask
		latest   *modelCheckpoint  // the latest completed
		notify   [][]uint64        // per subtask: completed, not delivered
		restores int
	)
	start := func(from *modelCheckpoint) {
		p := 1 + rng.Intn(4)
		sinks, notify, inflight, pos = make([]*fileSink, p), make([][]uint64, p), nil, 0
		if from != nil {
			pos = from.pos
		}
		for i := range sinks {
			sub := Subtask{Index: i, Parallelism: p, Exactly: true}
			if from != nil {
				sub.Restoring, sub.SinkRestore = true, RestoreStates(from.states, i, p)
			}
			s, err := spec.NewSink(opts, sub)
			if err != nil {
				t.Fatalf("seed %d: restore %d: subtask %d of %d: %v", seed, restores, i, p, err)
			}
			sinks[i] = s.(*fileSink)
		}
	}
	want := func(to int) []int {
		out := make([]int, to)
		for i := range out {
			out[i] = i
		}
		return out
	}
	start(nil)
	for pos < n {
		switch r := rng.Intn(100); {
		case r < 50: // records
			end := min(pos+1+rng.Intn(40), n)
			batches := make([]Batch, len(sinks))
			for j := pos; j < end; j++ {
				v := strconv.Itoa(j)
				if rng.Intn(300) == 0 { // now and then more than the write buffer
					v += " " + strings.Repeat("p", rng.Intn(3*fileSinkBuffer/2))
				}
				batches[j%len(sinks)].Append(nil, []byte(v), int64(j))
			}
			for i, s := range sinks {
				if err := s.Write(batches[i].Buf, batches[i].Count); err != nil {
					t.Fatal(err)
				}
			}
			pos = end
		case r < 65: // a barrier
			c := modelCheckpoint{id: nextID, pos: pos}
			nextID++
			for i, s := range sinks {
				st, err := s.PreCommit(c.id)
				if err != nil {
					t.Fatal(err)
				}
				c.states = append(c.states, SinkState{Index: i, State: st})
			}
			inflight = append(inflight, c)
		case r < 75: // a checkpoint completes; the older in flight are declined
			if len(inflight) == 0 {
				continue
			}
			k := rng.Intn(len(inflight))
			c := inflight[k]
			inflight, latest = inflight[k+1:], &c
			for i := range notify {
				notify[i] = append(notify[i], c.id)
			}
		case r < 97: // a subtask receives a notification (or a repeat)
			i := rng.Intn(len(sinks))
			if len(notify[i]) == 0 {
				if latest != nil {
					if err := sinks[i].Commit(latest.id); err != nil {
						t.Fatal(err)
					}
				}
				continue
			}
			id := notify[i][0]
			notify[i] = notify[i][1:]
			if err := sinks[i].Commit(id); err != nil {
				t.Fatal(err)
			}
		default: // the process dies; the job restores
			for _, s := range sinks {
				if rng.Intn(2) == 0 {
					if err := s.writeOut(); err != nil {
						t.Fatal(err)
					}
				}
				if s.f != nil {
					s.f.Close()
				}
			}
			restores++
			start(latest)
			to := 0
			if latest != nil {
				to = latest.pos
			}
			checkExactlyOnce(t, t, path, want(to), true)
		}
	}
	// The end of input, then the job's final checkpoint: only its commit
	// makes the last transactions visible.
	for _, s := range sinks {
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PreCommit(nextID); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range sinks {
		if err := s.Commit(nextID); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	checkExactlyOnce(t, t, path, want(n), true)
	t.Logf("seed %d: %d restores, %d checkpoints", seed, restores, nextID-1)
}

// Without Exactly the sink writes its one file through a temporary file:
// a job that does not reach its end leaves the earlier output as it was.
func TestFileSinkPlainDoesNotTruncate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.txt")
	if err := os.WriteFile(path, []byte("earlier run\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	recs := []rec{{"", "a", 1}, {"", "b", 2}}
	snk := newSink(t, "file", map[string]any{"path": path, "format": "lines"}, Subtask{Parallelism: 1})
	b := batchOf(recs)
	if err := snk.Write(b.Buf, b.Count); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "earlier run\n" {
		t.Fatalf("the path changed while the sink ran: %q", got)
	}
	// Cancelled: closed without Flush.
	if err := snk.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "earlier run\n" {
		t.Fatalf("a sink closed without Flush changed the path: %q", got)
	}
	if files := listFiles(t, dir); len(files) != 1 {
		t.Fatalf("files left behind: %v", files)
	}

	// A run that reaches its end replaces it, at Flush.
	snk = newSink(t, "file", map[string]any{"path": path, "format": "lines"}, Subtask{Parallelism: 1})
	if err := snk.Write(b.Buf, b.Count); err != nil {
		t.Fatal(err)
	}
	if err := snk.Flush(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "a\nb\n" {
		t.Fatalf("after Flush: %q", got)
	}
	// Writes after Flush append in place; Close writes them out.
	if err := snk.Write(b.Buf, b.Count); err != nil {
		t.Fatal(err)
	}
	if err := snk.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "a\nb\na\nb\n" {
		t.Fatalf("after a write past Flush and Close: %q", got)
	}
	if files := listFiles(t, dir); len(files) != 1 {
		t.Fatalf("files left behind: %v", files)
	}

	// A job with no record writes an empty file at its end.
	empty := filepath.Join(dir, "empty.txt")
	snk = newSink(t, "file", map[string]any{"path": empty}, Subtask{Parallelism: 1})
	if err := snk.Flush(); err != nil {
		t.Fatal(err)
	}
	snk.Close()
	if st, err := os.Stat(empty); err != nil || st.Size() != 0 {
		t.Fatalf("empty output: %v %v", st, err)
	}
}

func TestFileSinkModes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.jsonl")
	spec := mustSpec(t, KindSink, "file")
	opts := mustOptions(t, spec, map[string]any{"path": path})
	plain, err := spec.NewSink(opts, Subtask{Parallelism: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := plain.(TwoPhaseSink).PreCommit(1); !errors.Is(err, ErrFileSinkMode) {
		t.Fatalf("PreCommit without Exactly: %v", err)
	}
	if _, err := spec.NewSink(opts, Subtask{Parallelism: 1, Restoring: true, SinkRestore: []SinkState{{Index: 0, State: []byte("x")}}}); !errors.Is(err, ErrFileSinkMode) {
		t.Fatalf("restore states without Exactly: %v", err)
	}
	for _, p := range []string{dir + "/", dir + "/..", ".", dir} {
		o := mustOptions(t, spec, map[string]any{"path": p})
		for _, exactly := range []bool{false, true} {
			if _, err := spec.NewSink(o, Subtask{Parallelism: 1, Exactly: exactly}); err == nil || !strings.Contains(err.Error(), "names a folder") {
				t.Errorf("path %q, exactly %v: %v", p, exactly, err)
			}
		}
		if _, err := CommittedParts(p); err == nil && p != dir {
			t.Errorf("CommittedParts(%q) accepted", p)
		}
	}
	long := mustOptions(t, spec, map[string]any{"path": filepath.Join(dir, strings.Repeat("n", 207))})
	if _, err := spec.NewSink(long, Subtask{Parallelism: 1, Exactly: true}); err == nil || !strings.Contains(err.Error(), "at most 206") {
		t.Errorf("a file name too long for its parts: %v", err)
	}
	long = mustOptions(t, spec, map[string]any{"path": filepath.Join(dir, strings.Repeat("n", 206))})
	if s, err := spec.NewSink(long, Subtask{Parallelism: 1, Exactly: true}); err != nil {
		t.Errorf("the longest file name: %v", err)
	} else {
		b := batchOf([]rec{{"", "v", 1}})
		if err := s.Write(b.Buf, b.Count); err != nil {
			t.Fatal(err)
		}
		tp := s.(TwoPhaseSink)
		if _, err := tp.PreCommit(1); err != nil {
			t.Errorf("pre-committing with the longest file name: %v", err)
		}
		if err := tp.Commit(1); err != nil {
			t.Errorf("committing with the longest file name: %v", err)
		}
		s.Close()
	}
	if _, err := CommittedParts(filepath.Join(dir, "nowhere", "out")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("CommittedParts in a missing folder: %v", err)
	}
	// The exactly-once sink is a TwoPhaseSink whose parts a reader finds,
	// in JSONL too.
	ex, err := spec.NewSink(opts, Subtask{Parallelism: 1, Exactly: true})
	if err != nil {
		t.Fatal(err)
	}
	recs := sampleRecords()
	b := batchOf(recs)
	if err := ex.Write(b.Buf, b.Count); err != nil {
		t.Fatal(err)
	}
	tp := ex.(TwoPhaseSink)
	if _, err := tp.PreCommit(1); err != nil {
		t.Fatal(err)
	}
	if parts, _ := CommittedParts(path); len(parts) != 0 {
		t.Fatalf("parts before Commit: %v", parts)
	}
	if err := tp.Commit(1); err != nil {
		t.Fatal(err)
	}
	parts, err := CommittedParts(path)
	if err != nil || len(parts) != 1 {
		t.Fatalf("parts %v, %v", parts, err)
	}
	out, _ := os.ReadFile(parts[0])
	checkJSONL(t, out, recs, true)
	if err := ex.Close(); err != nil {
		t.Fatal(err)
	}
}

func FuzzFileSinkState(f *testing.F) {
	names := newFileSinkNames("out.txt")
	good := encodeFileSinkState(fileSinkState{index: 3, takenAt: 9, lastSeq: 9, txns: []sinkTxn{
		{checkpoint: 8, pending: names.pending(3, "0123456789abcdef", 4), final: names.part(3, 8, "0123456789abcdef")},
		{checkpoint: 9, pending: names.pending(3, "0123456789abcdef", 5), final: names.part(3, 9, "0123456789abcdef")},
	}})
	if _, err := decodeFileSinkState(good, names); err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)-5])
	f.Add(encodeFileSinkState(fileSinkState{}))
	f.Add([]byte(fileSinkStateMagic + "\x01\x00\x00\x00\x80\x80\x80\x80\x80"))
	f.Fuzz(func(t *testing.T, b []byte) {
		// Fuzzed bytes rarely pass the checksum: give them a valid one
		// too, to reach the checks behind it.
		for _, in := range [][]byte{b, appendStateCRC(append([]byte(nil), b...))} {
			st, err := decodeFileSinkState(in, names)
			if err != nil {
				if !errors.Is(err, ErrFileSinkState) {
					t.Fatalf("error %v does not wrap ErrFileSinkState", err)
				}
				continue
			}
			// What decodes names only this sink's files, and encodes
			// back to the same bytes.
			for _, tx := range st.txns {
				if strings.ContainsAny(tx.pending+tx.final, `/\`) {
					t.Fatalf("decoded a path: %+v", tx)
				}
			}
			if again := encodeFileSinkState(st); !bytes.Equal(again, in) {
				t.Fatalf("re-encoded %x, decoded from %x", again, in)
			}
		}
	})
}
