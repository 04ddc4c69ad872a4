package task

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/weirstream/weir/internal/ckptmeta"
	"github.com/weirstream/weir/internal/ckptstore"
	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/internal/snapshot"
	"github.com/weirstream/weir/worker/state"
)

// Incremental checkpoints of the pebble backend. At the barrier a subtask
// takes one native pebble checkpoint of its key groups for all its
// operators (state.Pebble.Checkpoint: hard-linked sstables, a short WAL,
// the manifest, the timers). The upload sends every sstable its base (its
// latest checkpoint known complete) did not have to the job's shared area
// under a name unique to this database (ckptmeta.SharedName), names the
// base's sstables again without sending them, and writes the other files
// into the checkpoint's folder. The coordinator deletes shared files no
// retained checkpoint names. A restore downloads an old subtask's files,
// opens them (state.OpenCheckpoint) and takes the canonical snapshot of
// the operator there, which goes through the same Backend.Restore as a
// full checkpoint: any parallelism, either backend.

// incrState is a subtask's incremental checkpoints: what it uploaded, by
// checkpoint, until it learns which completed. The upload goroutine adds,
// the subtask's goroutine reads and moves on: mu guards the fields.
type incrState struct {
	mu sync.Mutex
	// base is the latest checkpoint of this subtask known complete; the
	// next one shares its sstables.
	base *uploadedCheckpoint
	// pending are uploaded checkpoints not yet known complete.
	pending map[uint64]*uploadedCheckpoint
}

// uploadedCheckpoint is one uploaded native checkpoint: its files, and
// the shared file each sstable went to, by its name in the checkpoint.
type uploadedCheckpoint struct {
	ckpt   *state.PebbleCheckpoint
	shared map[string]ckptmeta.AckFile
}

func (s *incrState) current() *uploadedCheckpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.base
}

func (s *incrState) uploaded(id uint64, u *uploadedCheckpoint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending == nil {
		s.pending = map[uint64]*uploadedCheckpoint{}
	}
	s.pending[id] = u
}

// completed: checkpoint id is complete; it becomes the base (older
// pending ones are subsumed).
func (s *incrState) completed(id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.pending[id]; u != nil {
		s.base = u
	}
	for n := range s.pending {
		if n <= id {
			delete(s.pending, n)
		}
	}
}

// aborted: checkpoint id was given up. If this subtask had uploaded it,
// the next checkpoint is full: the coordinator aborts a checkpoint that
// names a shared file it already deleted (a base older than the latest
// completed checkpoint, whose completion the subtask had not yet heard
// of), and only a full upload is sure to name none.
func (s *incrState) aborted(id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pending[id]; ok {
		delete(s.pending, id)
		s.base = nil
	}
}

// incrementalBackend returns the pebble backend when the subtask's next
// checkpoint is incremental: a periodic checkpoint of a job on pebble
// that asked for it.
func (t *subtask) incrementalBackend(savepoint bool) *state.Pebble {
	cp := t.checkpointing()
	if cp == nil || !cp.Incremental || savepoint {
		return nil
	}
	db, _ := t.job.State.(*state.Pebble)
	return db
}

// checkpointPebble takes the synchronous part of an incremental
// checkpoint, on the subtask's goroutine: the native checkpoint of its key
// groups beside the database.
func (t *subtask) checkpointPebble(c *ckptState) error {
	parent := c.db.Dir() + ".checkpoints"
	dir := filepath.Join(parent, fmt.Sprintf("a%d-v%d-s%d-c%d", t.job.Attempt, t.v.ID, t.index, c.id))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("checkpointing its pebble state: %w", err)
	}
	if err := os.RemoveAll(dir); err != nil { // left by a run that crashed
		return fmt.Errorf("checkpointing its pebble state: %w", err)
	}
	c.base = t.incr.current()
	var prev *state.PebbleCheckpoint
	if c.base != nil {
		prev = c.base.ckpt
	}
	own := state.Owner{Job: t.stateJob(), Checkpoint: c.id}
	for _, i := range c.pebbleNodes {
		own.Operators = append(own.Operators, c.nodes[i].UID)
	}
	pc, err := c.db.CheckpointOf(dir, own, t.keyGroups, prev)
	if err != nil {
		return err
	}
	c.pebble = pc
	return nil
}

// uploadPebble uploads the native checkpoint of c and returns its files
// for the acknowledgement: the base's sstables named again, the new ones
// in the shared area, the rest in the checkpoint's folder.
func (t *subtask) uploadPebble(c *ckptState) ([]ckptmeta.AckFile, error) {
	cp := t.checkpointing()
	uid := c.nodes[c.pebbleNodes[0]].UID
	u := &uploadedCheckpoint{ckpt: c.pebble, shared: map[string]ckptmeta.AckFile{}}
	var out []ckptmeta.AckFile
	for _, f := range c.pebble.Files {
		if f.SST && f.Shared && c.base != nil {
			if a, ok := c.base.shared[f.Name]; ok {
				out = append(out, a)
				u.shared[f.Name] = a
				continue
			}
		}
		if filepath.Base(f.Name) != f.Name {
			return nil, fmt.Errorf("pebble checkpoint file %s is in a subfolder, which checkpoints do not keep", f.Name)
		}
		role := ckptmeta.RolePebbleMeta
		var w ckptstore.Writer
		var err error
		if f.SST {
			role = ckptmeta.RolePebbleSST
			w, err = cp.Storage.CreateShared(cp.StorageJob, ckptmeta.SharedName(t.job.Attempt, t.v.ID, t.index, c.db.Instance(), c.id, f.Name))
		} else {
			w, err = cp.Storage.Create(cp.StorageJob, c.id, ckptmeta.FileName(uid, t.index, ckptmeta.RolePebbleMeta)+"."+f.Name)
		}
		if err != nil {
			return nil, err
		}
		if err := copyFrom(w, filepath.Join(c.pebble.Dir, f.Name)); err != nil {
			w.Abort()
			return nil, err
		}
		fi, err := w.Close()
		if err != nil {
			return nil, err
		}
		a := ckptmeta.AckFile{Role: role, Name: fi.Name, Size: fi.Size, CRC32: fi.CRC32, Shared: fi.Shared, Path: f.Name}
		out = append(out, a)
		if f.SST {
			u.shared[f.Name] = a
		}
	}
	t.incr.uploaded(c.id, u)
	return out, nil
}

func copyFrom(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, bufio.NewReaderSize(f, 1<<20))
	return err
}

// restoreIncremental returns canonical snapshots of operator uid taken of
// the incremental checkpoints of its old subtasks that target needs
// (those whose key groups overlap target's, or all when the operator has
// operator state, which is redistributed over every subtask), and a
// cleanup to call once they have been read.
func (r *Restore) restoreIncremental(uid string, target snapshot.Subtask) ([]*snapshot.Reader, func(), error) {
	var cleanups []func()
	cleanup := func() {
		for _, f := range cleanups {
			f()
		}
	}
	op := r.Payload.Operator(uid)
	if op == nil {
		return nil, cleanup, nil
	}
	all := slices.ContainsFunc(op.States, func(s ckptmeta.State) bool {
		return s.Kind != "value" && s.Kind != "list" && s.Kind != "map"
	})
	want := target.Range()
	var out []*snapshot.Reader
	for i, st := range op.Subtasks {
		if !ckptmeta.Incremental(st.Files) {
			continue
		}
		had := keygroup.Range{Start: st.KeyGroups[0], End: st.KeyGroups[1] - 1}
		if !all && (had.End < want.Start || had.Start > want.End) {
			continue
		}
		old := snapshot.Subtask{Index: i, Parallelism: op.Parallelism, MaxParallelism: r.Payload.MaxParallelism}
		rd, done, err := r.snapshotOfIncremental(uid, old, st.Files)
		cleanups = append(cleanups, done)
		if err != nil {
			return nil, cleanup, fmt.Errorf("restoring %s from the incremental checkpoint of its subtask %d in checkpoint %d: %w", uid, i, r.Meta.Checkpoint, err)
		}
		if rd != nil {
			out = append(out, rd)
		}
	}
	return out, cleanup, nil
}

// snapshotOfIncremental downloads one old subtask's native checkpoint
// into a temporary folder, opens it and writes the canonical snapshot of
// operator uid in old's key groups to a file there; nil when the
// checkpoint holds no state of uid.
func (r *Restore) snapshotOfIncremental(uid string, old snapshot.Subtask, files []ckptmeta.File) (*snapshot.Reader, func(), error) {
	tmp, err := os.MkdirTemp("", "weir-restore-")
	if err != nil {
		return nil, func() {}, err
	}
	var snapFile *os.File
	done := func() {
		if snapFile != nil {
			snapFile.Close()
		}
		os.RemoveAll(tmp)
	}
	dbDir := filepath.Join(tmp, "db")
	if err := os.Mkdir(dbDir, 0o755); err != nil {
		return nil, done, err
	}
	for _, f := range files {
		if f.Role != ckptmeta.RolePebbleSST && f.Role != ckptmeta.RolePebbleMeta {
			continue
		}
		if f.Path == "" || filepath.Base(f.Path) != f.Path || f.Path == "." || f.Path == ".." {
			return nil, done, fmt.Errorf("file %s has path %q, not a file name", f.Name, f.Path)
		}
		fi, ok := r.fileInfo(f.Name, f.Shared)
		if !ok {
			return nil, done, fmt.Errorf("its payload names file %s, which its file list does not", f.Name)
		}
		b, err := r.Storage.Read(r.Meta.Job, r.Meta.Checkpoint, fi)
		if err != nil {
			return nil, done, err
		}
		if err := os.WriteFile(filepath.Join(dbDir, f.Path), b, 0o644); err != nil {
			return nil, done, err
		}
	}
	db, err := state.OpenCheckpoint(dbDir, state.PebbleOptions{CacheSize: 8 << 20, MemTableSize: 8 << 20})
	if err != nil {
		return nil, done, err
	}
	defer db.Close()
	jobs := db.JobsOf(uid)
	switch len(jobs) {
	case 0:
		return nil, done, nil
	case 1:
	default:
		return nil, done, fmt.Errorf("it holds state of operator %s of several jobs (%v)", uid, jobs)
	}
	s, err := db.Snapshot(jobs[0], uid, old)
	if err != nil {
		return nil, done, err
	}
	defer s.Release()
	if snapFile, err = os.Create(filepath.Join(tmp, "snapshot")); err != nil {
		return nil, done, err
	}
	bw := bufio.NewWriterSize(snapFile, 1<<20)
	n, err := s.WriteTo(bw)
	if err = errors.Join(err, bw.Flush()); err != nil {
		return nil, done, err
	}
	rd, err := snapshot.Open(snapFile, n, ckptmeta.FileName(uid, old.Index, ckptmeta.RolePebbleMeta))
	if err != nil {
		return nil, done, err
	}
	return rd, done, nil
}
