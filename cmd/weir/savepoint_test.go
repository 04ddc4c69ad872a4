package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/api"
	"github.com/weirstream/weir/internal/barrier"
	"github.com/weirstream/weir/internal/ckptmeta"
	"github.com/weirstream/weir/internal/ckptstore"
	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/internal/snapshot"
	"github.com/weirstream/weir/wasmabi"
)

// stateWant is what inspect must report for one state, counted here as the
// test writes the records.
type stateWant struct {
	kind                 string
	keys, entries, bytes int
}

// testCheckpoint writes savepoint 5 of job "wc" under root with
// internal/ckptstore's Dir and internal/snapshot's Writer, as the engine
// lays one out, independently of the engine: a source with splits and a
// keyed operator "count" at parallelism 2 over 8 key groups with value and
// map state, a union list and timers. It returns the folder and what
// inspect must count for "count".
func testCheckpoint(t *testing.T, root string) (string, map[string]*stateWant, int) {
	t.Helper()
	const maxP, par = 8, 2
	d := &ckptstore.Dir{Root: root}
	var files []ckptstore.FileInfo
	create := func(name, role string, body func(w *bytes.Buffer)) ckptmeta.File {
		var b bytes.Buffer
		body(&b)
		w, err := d.Create("wc", 5, name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(b.Bytes()); err != nil {
			t.Fatal(err)
		}
		fi, err := w.Close()
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, fi)
		return ckptmeta.File{Role: role, Name: name, Size: fi.Size}
	}
	want := map[string]*stateWant{"counts": {kind: "value"}, "seen": {kind: "map"}, "offsets": {kind: "union_list"}}
	timers := 0
	states := []snapshot.State{{Name: "counts", Kind: wasmabi.StateValue}, {Name: "offsets", Kind: wasmabi.StateUnionList}, {Name: "seen", Kind: wasmabi.StateMap}}
	count := ckptmeta.Operator{UID: "count", Kind: ckptmeta.KindOperator, Parallelism: par, Module: "sha256:" + strings.Repeat("ab", 32), ABI: 1,
		States: []ckptmeta.State{{Name: "counts", Kind: "value"}, {Name: "offsets", Kind: "union_list"}, {Name: "seen", Kind: "map"}}}
	for i := range par {
		r := keygroup.RangeFor(i, par, maxP)
		f := create(ckptmeta.FileName("count", i, ckptmeta.RoleState), ckptmeta.RoleState, func(b *bytes.Buffer) {
			w, err := snapshot.NewWriter(b, snapshot.Header{Job: "wc", Operator: "count", Subtask: snapshot.Subtask{Index: i, Parallelism: par, MaxParallelism: maxP}, States: states})
			if err != nil {
				t.Fatal(err)
			}
			for kg := r.Start; kg <= r.End; kg++ {
				for j := range kg + 1 { // kg+1 keys of value state in key group kg
					key, v := fmt.Sprintf("k%d-%d", kg, j), fmt.Sprintf("%08d", j)
					if err := w.Value(0, kg, []byte(key), 0, []byte(v)); err != nil {
						t.Fatal(err)
					}
					want["counts"].keys++
					want["counts"].entries++
					want["counts"].bytes += len(key) + len(v)
				}
				key := fmt.Sprintf("m%d", kg)
				es := []snapshot.Entry{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("bb"), Value: []byte("22")}}
				if err := w.Map(2, kg, []byte(key), es); err != nil {
					t.Fatal(err)
				}
				want["seen"].keys++
				want["seen"].entries += 2
				want["seen"].bytes += len(key) + 1 + 1 + 2 + 2
				if err := w.Timer(kg, wasmabi.EventTime, int64(1000*kg), []byte(key), nil); err != nil {
					t.Fatal(err)
				}
				timers++
			}
			item := fmt.Sprintf("offset-%d", i)
			if err := w.OperatorList(1, []snapshot.Item{{Value: []byte(item)}}); err != nil {
				t.Fatal(err)
			}
			want["offsets"].keys++
			want["offsets"].entries++
			want["offsets"].bytes += len(item)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		})
		count.Subtasks = append(count.Subtasks, ckptmeta.Subtask{Index: i, KeyGroups: [2]int{r.Start, r.End + 1}, Files: []ckptmeta.File{f}})
	}
	split := create(ckptmeta.FileName("gen", 0, ckptmeta.RoleSplits), ckptmeta.RoleSplits, func(b *bytes.Buffer) { b.WriteString("splits of gen") })
	gen := ckptmeta.Operator{UID: "gen", Kind: ckptmeta.KindSource, Parallelism: 1,
		Subtasks: []ckptmeta.Subtask{{Index: 0, KeyGroups: [2]int{0, maxP}, Files: []ckptmeta.File{split}, Ended: true}}}
	payload, err := ckptmeta.Encode(&ckptmeta.Payload{Version: ckptmeta.Version, Job: "wc", Checkpoint: 5, Savepoint: true,
		Taken: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), Mode: "aligned", MaxParallelism: maxP, Backend: "pebble",
		Operators: []ckptmeta.Operator{gen, count}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Commit(ckptstore.Metadata{Job: "wc", Checkpoint: 5, Files: files, Payload: payload}); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "wc", "chk-5"), want, timers
}

func TestSavepointInspect(t *testing.T) {
	root := t.TempDir()
	path, want, timers := testCheckpoint(t, root)

	r := mustWeir(t, "savepoint", "inspect", path, "-o", "json")
	var got inspection
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r.stdout)
	}
	if got.Path != path || got.Job != "wc" || got.Checkpoint != 5 || !got.Savepoint || got.Mode != "aligned" || got.Backend != "pebble" ||
		got.MaxParallelism != 8 || got.Files != 3 || len(got.Problems) != 0 || len(got.Operators) != 2 {
		t.Fatalf("inspect: %+v", got)
	}
	var onDisk int64
	for _, name := range []string{"count.0.state", "count.1.state", "gen.0.splits"} {
		st, err := os.Stat(filepath.Join(path, name))
		if err != nil {
			t.Fatal(err)
		}
		onDisk += st.Size()
	}
	if got.Size != onDisk {
		t.Errorf("size %d, the files on disk have %d", got.Size, onDisk)
	}
	op := got.Operators[1]
	if op.UID != "count" || op.Kind != "operator" || op.Parallelism != 2 || op.ABI != 1 || op.Timers != timers || len(op.Subtasks) != 2 ||
		op.Subtasks[0].KeyGroups != [2]int{0, 4} || op.Subtasks[1].KeyGroups != [2]int{4, 8} {
		t.Errorf("operator count: %+v", op)
	}
	for _, s := range op.States {
		w := want[s.Name]
		if w == nil || s.Kind != w.kind || s.Keys != w.keys || s.Entries != w.entries || s.Bytes != int64(w.bytes) {
			t.Errorf("state %s: %+v, want %+v", s.Name, s, w)
		}
	}
	if len(op.States) != len(want) {
		t.Errorf("%d states, want %d", len(op.States), len(want))
	}
	if src := got.Operators[0]; !src.Subtasks[0].Ended || op.Subtasks[0].Ended {
		t.Errorf("ended: gen %+v, count %+v; want gen's subtask only", src.Subtasks, op.Subtasks)
	}

	r = mustWeir(t, "savepoint", "inspect", path)
	for _, line := range []string{
		`(?m)^savepoint +` + regexp.QuoteMeta(path) + `$`,
		`(?m)^checkpoint id +5$`,
		`(?m)^max parallelism 8$`,
		`(?m)^files +3, .* \(every checksum ok\)$`,
		`(?m)^operator count \(operator, parallelism 2, module sha256:abababababab ABI v1, `,
		`(?m)^operator gen \(source, parallelism 1, `,
		fmt.Sprintf(`(?m)^  counts +value +%d +%d +`, want["counts"].keys, want["counts"].entries),
		fmt.Sprintf(`(?m)^  \(timers\) +%d`, timers),
		`(?m)^  1 +4-7 +state +`,
		`(?m)^  0 +0-7 +splits \(ended its input: final state\) +`,
	} {
		if !regexp.MustCompile(line).MatchString(r.stdout) {
			t.Errorf("text output lacks %s:\n%s", line, r.stdout)
		}
	}
	// The path of _metadata and a path with a trailing slash work too.
	mustWeir(t, "savepoint", "inspect", filepath.Join(path, "_metadata"))
	mustWeir(t, "savepoint", "inspect", path+"/")
}

func TestSavepointInspectRefuses(t *testing.T) {
	root := t.TempDir()
	path, _, _ := testCheckpoint(t, root)

	// One flipped byte in a state file: named, reported, exit status 1.
	f := filepath.Join(path, "count.1.state")
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x01
	os.WriteFile(f, b, 0o644)
	r := weir(t, "savepoint", "inspect", path)
	if r.code != 1 || !strings.Contains(r.stderr, "count.1.state fails its checksum") || !strings.Contains(r.stderr, "cannot be restored") ||
		!strings.Contains(r.stdout, "1 CORRUPT") || !strings.Contains(r.stdout, "operator count") {
		t.Errorf("corrupt file: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = weir(t, "savepoint", "inspect", path, "-o", "json")
	var got inspection
	if r.code != 1 || json.Unmarshal([]byte(r.stdout), &got) != nil || len(got.Problems) != 1 || !strings.Contains(got.Problems[0], "count.1.state") {
		t.Errorf("corrupt file, json: %d %s", r.code, r.stdout)
	}
	// A truncated one.
	os.WriteFile(filepath.Join(path, "gen.0.splits"), []byte("spl"), 0o644)
	if r := weir(t, "savepoint", "inspect", path); r.code != 1 || !strings.Contains(r.stderr, "2 problems") || !strings.Contains(r.stdout, "gen.0.splits has 3 bytes") {
		t.Errorf("truncated file: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	// A damaged _metadata: nothing to print, say why.
	m := filepath.Join(path, "_metadata")
	mb, _ := os.ReadFile(m)
	mb[10] ^= 0x20
	os.WriteFile(m, mb, 0o644)
	if r := weir(t, "savepoint", "inspect", path); r.code != 1 || !strings.Contains(r.stderr, "_metadata fails its checksum") {
		t.Errorf("damaged metadata: %d %s", r.code, r.stderr)
	}

	missing := filepath.Join(root, "wc", "chk-6")
	if r := weir(t, "savepoint", "inspect", missing); r.code != 1 || !strings.Contains(r.stderr, missing+" does not exist") || !strings.Contains(r.stderr, "<root>/<job>/chk-<n>") {
		t.Errorf("missing path: %d %s", r.code, r.stderr)
	}
	os.Mkdir(missing, 0o755)
	if r := weir(t, "savepoint", "inspect", missing); r.code != 1 || !strings.Contains(r.stderr, "no _metadata") {
		t.Errorf("incomplete: %d %s", r.code, r.stderr)
	}
	if r := weir(t, "savepoint", "inspect", filepath.Join(root, "wc")); r.code != 1 || !strings.Contains(r.stderr, "holds the checkpoints of job wc") {
		t.Errorf("job folder: %d %s", r.code, r.stderr)
	}
	if r := weir(t, "savepoint", "inspect"); r.code != 2 || !strings.Contains(r.stderr, "takes PATH") {
		t.Errorf("no path: %d %s", r.code, r.stderr)
	}
}

// TestSubmitFromSavepoint: --from-savepoint is made absolute and checked
// here, before anything is uploaded.
func TestSubmitFromSavepoint(t *testing.T) {
	c := startCluster(t)
	dir := t.TempDir()
	job := writeWCClusterJob(t, dir)

	missing := filepath.Join(dir, "sp", "wc", "chk-3")
	r := c.weir(t, "job", "submit", job, "--from-savepoint", missing)
	if r.code != 1 || !strings.Contains(r.stderr, "--from-savepoint: "+missing+" does not exist") || strings.Contains(r.stderr, "uploaded") {
		t.Errorf("missing savepoint: %d %s", r.code, r.stderr)
	}
	if r := c.weir(t, "job", "submit", job, "--from-savepoint", dir); r.code != 1 || !strings.Contains(r.stderr, "not named chk-<n>") {
		t.Errorf("not a checkpoint folder: %d %s", r.code, r.stderr)
	}
	if r := c.weir(t, "job", "submit", job, "--allow-non-restored-state"); r.code != 2 || !strings.Contains(r.stderr, "goes with --from-savepoint") {
		t.Errorf("allow without from: %d %s", r.code, r.stderr)
	}
	if n := c.d.Registry().Len(api.DefaultTenant); n != 0 || len(c.jobs.Submissions()) != 0 {
		t.Fatalf("refused submissions uploaded %d modules, submitted %d jobs", n, len(c.jobs.Submissions()))
	}

	// A real savepoint folder, named relative to the command's folder.
	sp, _, _ := testCheckpoint(t, filepath.Join(dir, "savepoints"))
	rel, err := filepath.Rel(repoRoot, sp)
	if err != nil {
		t.Fatal(err)
	}
	c.mustWeir(t, "job", "submit", job, "--detached", "--from-savepoint", rel, "--allow-non-restored-state")
	subs := c.jobs.Submissions()
	if len(subs) != 1 || subs[0].FromSavepoint != sp || !subs[0].AllowNonRestoredState {
		t.Fatalf("submissions %+v", subs)
	}
	r = c.mustWeir(t, "job", "info", "job-0001")
	if !strings.Contains(r.stdout, "  restored  from "+sp) {
		t.Errorf("info:\n%s", r.stdout)
	}
	if r := c.mustWeir(t, "job", "submit", "--help"); !strings.Contains(r.stdout, "--from-savepoint") || !strings.Contains(r.stdout, "weir savepoint inspect PATH") {
		t.Errorf("help:\n%s", r.stdout)
	}
}

// weir job submit --checkpoint-interval/--checkpoint-mode reach the
// coordinator's parsed spec; bad values are refused before anything is
// uploaded.
func TestSubmitCheckpointFlags(t *testing.T) {
	c := startCluster(t)
	dir := t.TempDir()
	job := writeWCClusterJob(t, dir)
	for _, c2 := range []struct{ flag, msg string }{
		{"--checkpoint-mode=exactly", "want aligned, unaligned or at-least-once"},
		{"--checkpoint-interval=-1s", "give a positive interval"},
	} {
		if r := c.weir(t, "job", "submit", job, c2.flag); r.code != 2 || !strings.Contains(r.stderr, c2.msg) {
			t.Errorf("%s: %d %s", c2.flag, r.code, r.stderr)
		}
	}
	if n := c.d.Registry().Len(api.DefaultTenant); n != 0 {
		t.Fatalf("refused submissions uploaded %d modules", n)
	}
	c.mustWeir(t, "job", "submit", job, "--detached", "--checkpoint-interval", "250ms", "--checkpoint-mode", "at-least-once")
	subs := c.jobs.Submissions()
	if len(subs) != 1 || subs[0].Job.Checkpoints.Interval != 250*time.Millisecond || subs[0].Job.Checkpoints.Mode != barrier.AtLeastOnce {
		t.Fatalf("submissions %+v", subs)
	}
	if r := c.mustWeir(t, "job", "submit", "--help"); !strings.Contains(r.stdout, "--checkpoint-interval") {
		t.Errorf("help:\n%s", r.stdout)
	}
}

// TestJobSavepoint takes savepoints through the CLI against the fake
// cluster: waiting, detached, retried by request id, failing, stopping.
func TestJobSavepoint(t *testing.T) {
	c := startCluster(t)
	c.jobs.SetSteps(0, 0)
	dir := t.TempDir()
	job := writeWCClusterJob(t, dir)
	var st api.JobStatus
	json.Unmarshal([]byte(c.mustWeir(t, "job", "submit", job, "--detached", "-o", "json").stdout), &st)
	c.mustWeir(t, "job", "info", st.ID) // it runs

	r := c.mustWeir(t, "job", "savepoint", st.ID, "/mnt/sp", "--poll", "5ms")
	sps := c.jobs.Savepoints()
	if len(sps) != 1 || sps[0].Dir != "/mnt/sp" || sps[0].Stop || !regexp.MustCompile(`^sp-[0-9a-f]{16}$`).MatchString(sps[0].RequestID) {
		t.Fatalf("savepoints %+v", sps)
	}
	if !regexp.MustCompile(`^/mnt/sp/`+st.ID+`/chk-\d+\n$`).MatchString(r.stdout) ||
		!strings.Contains(r.stderr, "savepoint "+sps[0].RequestID+" of job "+st.ID+": pending") || !strings.Contains(r.stderr, ": completed") ||
		!strings.Contains(r.stderr, "--from-savepoint "+strings.TrimSpace(r.stdout)) {
		t.Errorf("savepoint:\nstdout %s\nstderr %s", r.stdout, r.stderr)
	}

	// Detached, then picked up again by its request id: one savepoint.
	r = c.mustWeir(t, "job", "savepoint", st.ID, "/mnt/sp", "--detached", "--request-id", "nightly-1")
	if !strings.Contains(r.stdout, "request id nightly-1") || !strings.Contains(r.stdout, "weir job savepoint "+st.ID+" /mnt/sp --request-id nightly-1") {
		t.Errorf("detached: %s", r.stdout)
	}
	r = c.mustWeir(t, "job", "savepoint", st.ID, "/mnt/sp", "--request-id", "nightly-1", "--poll", "5ms", "-o", "json")
	var sp api.SavepointStatus
	if err := json.Unmarshal([]byte(r.stdout), &sp); err != nil || sp.State != api.SavepointCompleted || sp.RequestID != "nightly-1" {
		t.Errorf("picked up: %v %s", err, r.stdout)
	}
	if n := len(c.jobs.Savepoints()); n != 2 {
		t.Errorf("%d savepoints, want 2: a request id sent twice took a second one", n)
	}
	if r := c.weir(t, "job", "savepoint", st.ID, "--request-id", "a/b"); r.code != 2 || !strings.Contains(r.stderr, "--request-id") {
		t.Errorf("bad request id: %d %s", r.code, r.stderr)
	}
	// Without DIR, the fake cluster has no default folder: its answer.
	if r := c.weir(t, "job", "savepoint", st.ID); r.code != 1 || !strings.Contains(r.stderr, "no default savepoint folder") || !strings.Contains(r.stderr, "HTTP 400") {
		t.Errorf("no folder: %d %s", r.code, r.stderr)
	}
	// A relative DIR is made absolute here.
	r = c.mustWeir(t, "job", "savepoint", st.ID, "sp-rel", "--poll", "5ms")
	if want := filepath.Join(repoRoot, "sp-rel", st.ID); !strings.HasPrefix(r.stdout, filepath.Clean(want)+"/chk-") {
		t.Errorf("relative folder: %s, want under %s", r.stdout, want)
	}

	// A savepoint that fails: status 1 and the reason.
	c.jobs.SetSavepoints("", 2, "the folder /mnt/sp is full")
	if r := c.weir(t, "job", "savepoint", st.ID, "/mnt/sp", "--poll", "5ms"); r.code != 1 || !strings.Contains(r.stderr, "failed: the folder /mnt/sp is full (the job goes on") {
		t.Errorf("failing savepoint: %d %s", r.code, r.stderr)
	}
	r = c.mustWeir(t, "job", "info", st.ID)
	if !regexp.MustCompile(`(?m)^checkpoints \d+ completed, 1 failed, 0 in progress\n  latest    (checkpoint|savepoint) \d+ at /`).MatchString(r.stdout) ||
		!strings.Contains(r.stdout, "  failure   savepoint") {
		t.Errorf("info:\n%s", r.stdout)
	}
	c.jobs.SetSavepoints("", 2, "")

	// Stop: --drain needs --savepoint; with it, the job ends after it.
	if r := c.weir(t, "job", "stop", st.ID, "--drain"); r.code != 2 || !strings.Contains(r.stderr, "--drain goes with --savepoint DIR") {
		t.Errorf("drain alone: %d %s", r.code, r.stderr)
	}
	r = c.mustWeir(t, "job", "stop", st.ID, "--savepoint", "/mnt/sp", "--drain", "--poll", "5ms")
	sps = c.jobs.Savepoints()
	if last := sps[len(sps)-1]; !last.Stop || !last.Drain || last.Dir != "/mnt/sp" {
		t.Errorf("stop request %+v", last)
	}
	if !strings.HasPrefix(r.stdout, "/mnt/sp/"+st.ID+"/chk-") || !strings.Contains(r.stderr, "job "+st.ID+" stops after its savepoint") {
		t.Errorf("stop with savepoint:\n%s\n%s", r.stdout, r.stderr)
	}
	if r := c.mustWeir(t, "job", "info", st.ID); !strings.Contains(r.stdout, "state     finished: stopped with savepoint /mnt/sp/") {
		t.Errorf("after stop:\n%s", r.stdout)
	}
	if r := c.weir(t, "job", "savepoint", st.ID, "/mnt/sp"); r.code != 1 || !strings.Contains(r.stderr, "already ended") {
		t.Errorf("savepoint of an ended job: %d %s", r.code, r.stderr)
	}
	// An unreachable coordinator: the retry hint carries the request id.
	if r := c.weir(t, "job", "savepoint", st.ID, "/mnt/sp", "--coordinator", "http://127.0.0.1:1", "--request-id", "r9"); r.code != 1 ||
		!strings.Contains(r.stderr, "retry safely with `weir job savepoint "+st.ID+" /mnt/sp --request-id r9`") {
		t.Errorf("unreachable: %d %s", r.code, r.stderr)
	}
}
