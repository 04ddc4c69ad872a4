package checkpoint

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/ckptmeta"
	"github.com/weirstream/weir/internal/ckptstore"
)

// recordingTasks records what a Runner asks of the tasks.
type recordingTasks struct {
	mu       sync.Mutex
	triggers []TriggerCheckpoint
	notified []uint64
	aborted  []uint64
}

func (r *recordingTasks) Trigger(a TriggerCheckpoint) {
	r.mu.Lock()
	r.triggers = append(r.triggers, a)
	r.mu.Unlock()
}
func (r *recordingTasks) NotifyComplete(a NotifyComplete) {
	r.mu.Lock()
	r.notified = append(r.notified, a.ID)
	r.mu.Unlock()
}
func (r *recordingTasks) Abort(id uint64) {
	r.mu.Lock()
	r.aborted = append(r.aborted, id)
	r.mu.Unlock()
}

// ackWith writes one state file for subtask (0, index) of operator "op"
// into checkpoint id and acknowledges it.
func ackWith(t *testing.T, r *Runner, store ckptstore.Storage, id uint64, index int, body string) {
	t.Helper()
	name := ckptmeta.FileName("op", index, ckptmeta.RoleState)
	w, err := store.Create("job", id, name)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(body))
	fi, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	err = r.Ack(ckptmeta.Ack{Checkpoint: id, Attempt: 1, Vertex: 0, Index: index, Nodes: []ckptmeta.NodeAck{{
		UID: "op", States: []ckptmeta.State{{Name: "count", Kind: "value"}},
		Files: []ckptmeta.AckFile{{Role: ckptmeta.RoleState, Name: fi.Name, Size: fi.Size, CRC32: fi.CRC32}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
}

func newTestRunner(t *testing.T, store ckptstore.Storage, tasks Tasks) *Runner {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Interval = time.Second
	template := ckptmeta.Payload{Version: ckptmeta.Version, Job: "job", MaxParallelism: 4, Operators: []ckptmeta.Operator{{
		UID: "op", Kind: ckptmeta.KindSource, Parallelism: 2,
		Subtasks: []ckptmeta.Subtask{{Index: 0, KeyGroups: [2]int{0, 2}}, {Index: 1, KeyGroups: [2]int{2, 4}}},
	}}}
	r, err := NewRunner(RunnerConfig{Config: cfg, Topology: Topology{Subtasks: []Subtask{{0, 0}, {0, 1}}, Sources: []Subtask{{0, 0}, {0, 1}}},
		Storage: store, Job: "job", Template: template, Tasks: tasks})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The runner carries out a checkpoint end to end against a real folder:
// barriers asked for, metadata written last naming every file with the
// operator's states, the tasks told; then a savepoint copied to its own
// folder, self-contained, and gone from the job's.
func TestRunnerCheckpointAndSavepoint(t *testing.T) {
	store := &ckptstore.Dir{Root: t.TempDir()}
	tasks := &recordingTasks{}
	r := newTestRunner(t, store, tasks)
	r.Running(1)
	if err := r.step(Tick{Now: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if len(tasks.triggers) != 1 || tasks.triggers[0].ID != 1 {
		t.Fatalf("triggers %+v, want checkpoint 1", tasks.triggers)
	}
	ackWith(t, r, store, 1, 0, "zero")
	if ids, _ := store.Completed("job"); len(ids) != 0 {
		t.Fatalf("checkpoint completed with one of two acknowledgements: %v", ids)
	}
	ackWith(t, r, store, 1, 1, "one")
	md, err := ckptstore.Verify(store, "job", 1)
	if err != nil {
		t.Fatalf("checkpoint 1: %v", err)
	}
	p, err := ckptmeta.Decode(md.Payload)
	if err != nil {
		t.Fatal(err)
	}
	op := p.Operator("op")
	if op == nil || len(op.Subtasks[1].Files) != 1 || op.Subtasks[1].Files[0].Size != 3 || len(op.States) != 1 || len(md.Files) != 2 {
		t.Fatalf("metadata %+v, payload operator %+v", md, op)
	}
	if !slices.Equal(tasks.notified, []uint64{1}) {
		t.Fatalf("notified %v, want [1]", tasks.notified)
	}
	if st := r.Stats(); st.Completed != 1 || st.Latest == nil || st.Latest.ID != 1 || st.Latest.Size != 7 {
		t.Fatalf("stats %+v", st)
	}

	spDir := t.TempDir()
	info, err := r.Savepoint("req-1", spDir, nil)
	if err != nil || info.State != SavepointPending {
		t.Fatalf("savepoint: %+v, %v", info, err)
	}
	id := tasks.triggers[len(tasks.triggers)-1].ID
	if !tasks.triggers[len(tasks.triggers)-1].Savepoint {
		t.Fatal("the savepoint's barrier is not marked a savepoint")
	}
	ackWith(t, r, store, id, 0, "sp-zero")
	ackWith(t, r, store, id, 1, "sp-one")
	info, ok := r.SavepointStatus("req-1")
	want := filepath.Join(spDir, "job", "chk-"+itoa(id))
	if !ok || info.State != SavepointCompleted || info.Dir != want {
		t.Fatalf("savepoint status %+v, want completed in %s", info, want)
	}
	s, job, n, err := ckptstore.OpenPath(want)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ckptstore.Verify(s, job, n); err != nil {
		t.Fatalf("the savepoint folder does not verify: %v", err)
	}
	if _, err := os.Stat(filepath.Join(store.Root, "job", "chk-"+itoa(id))); !os.IsNotExist(err) {
		t.Fatalf("the savepoint's files are still in the job's folder: %v", err)
	}
	if slices.Contains(tasks.notified, id) {
		t.Fatal("a savepoint notified the tasks (a recovery from the latest checkpoint would replay what they commit)")
	}
	// The same request again takes no second savepoint.
	before := len(tasks.triggers)
	if info, err := r.Savepoint("req-1", spDir, nil); err != nil || info.State != SavepointCompleted || len(tasks.triggers) != before {
		t.Fatalf("repeated request: %+v, %v, %d triggers (was %d)", info, err, len(tasks.triggers), before)
	}
}

// A checkpoint whose metadata cannot be written (here an acknowledgement
// names an operator the job does not have) fails as storage does: it is
// aborted, the tasks are told, and the failure is counted.
func TestRunnerMetadataFailure(t *testing.T) {
	store := ckptstore.NewMemory()
	tasks := &recordingTasks{}
	r := newTestRunner(t, store, tasks)
	r.Running(1)
	r.step(Tick{Now: time.Hour})
	ackWith(t, r, store, 1, 0, "zero")
	err := r.Ack(ckptmeta.Ack{Checkpoint: 1, Attempt: 1, Vertex: 0, Index: 1, Nodes: []ckptmeta.NodeAck{{UID: "nope", Files: []ckptmeta.AckFile{{Role: "state", Name: "x", Size: 1}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if ids, _ := store.Completed("job"); len(ids) != 0 {
		t.Fatalf("completed %v despite an acknowledgement for an operator the job does not have", ids)
	}
	if st := r.Stats(); st.Failed != 1 || st.LastFailure == "" {
		t.Fatalf("stats %+v, want one failure with its reason", st)
	}
	if !slices.Equal(tasks.aborted, []uint64{1}) {
		t.Fatalf("aborted %v, want [1]", tasks.aborted)
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
