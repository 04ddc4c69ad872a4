package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"

	"github.com/weirstream/weir/internal/keygroup"
)

// PebbleCheckpoint is a native, incremental checkpoint of a pebble
// backend: a directory that opens as a pebble backend (OpenPebble) and
// holds the state of the checkpointed key groups, and maybe entries of
// others (whole sstables are kept; DeleteKeyGroups drops them after a
// restore). Its sstables are immutable and named uniquely per database,
// so an uploader that kept the names it uploaded for this database sends
// only the new ones and refers to the others (Shared).
type PebbleCheckpoint struct {
	Dir   string
	Files []CheckpointFile // sorted by name
}

// CheckpointFile is one file of a PebbleCheckpoint.
type CheckpointFile struct {
	Name   string // relative to Dir
	Size   int64
	SST    bool // an sstable: immutable, may be shared between checkpoints
	Shared bool // an sstable named in the previous checkpoint given to Checkpoint
}

// Checkpoint writes a native checkpoint of the key groups r into dir,
// which must not exist. It is the synchronous part of an incremental
// checkpoint: it runs on the goroutine that owns r, gives r's pending
// writes to pebble, then has pebble hard-link the sstables that hold keys
// of r (or the backend's own records) and copy its manifest and WAL, and
// writes the timers of r to TimersFile. The memtables are flushed first:
// their data then is in sstables, which later checkpoints share, and the
// WAL copied is short (without the flush each checkpoint would carry
// everything written since pebble last flushed). Files in prev name the
// sstables of an earlier checkpoint of this database; the result marks
// those it shares. The upload of the new files is the caller's
// asynchronous part; OpenCheckpoint reads the directory back.
//
// This is an alternative to Snapshot for the same parallelism and
// backend; savepoints and rescaling use Snapshot's canonical format.
func (p *Pebble) Checkpoint(dir string, r keygroup.Range, prev *PebbleCheckpoint) (*PebbleCheckpoint, error) {
	return p.checkpoint(dir, r, prev, nil)
}

// Owner names the operators (of one job) whose key groups the goroutine
// calling CheckpointOf owns: other operators' subtasks may own the same
// key-group numbers on other goroutines.
type Owner struct {
	Job       string
	Operators []string
	// Checkpoint is the id of the checkpoint being taken (0: unknown).
	// With the WAL on, only the first of a job's subtasks to take
	// checkpoint n flushes the memtables; the others' checkpoints carry
	// what was written since in the WAL they copy (below 4 MiB of live
	// WAL; more and they flush too). One flush per
	// checkpoint, not one per subtask, keeps the sstables few and large,
	// so compactions do not rewrite them all between two checkpoints
	// and incremental checkpoints stay incremental.
	Checkpoint uint64
}

// walCarryLimit bounds the live WAL bytes a checkpoint copies instead of
// flushing the memtables (see Owner.Checkpoint).
const walCarryLimit = 4 << 20

// CheckpointOf is Checkpoint for the goroutine that owns the key groups r
// of o's operators only: it flushes their pending writes and writes their
// timers, not those of other operators in r (whose entries the sstables
// may hold too; a snapshot taken of the checkpoint reads only the
// operator it is of).
func (p *Pebble) CheckpointOf(dir string, o Owner, r keygroup.Range, prev *PebbleCheckpoint) (*PebbleCheckpoint, error) {
	return p.checkpoint(dir, r, prev, &o)
}

func (p *Pebble) checkpoint(dir string, r keygroup.Range, prev *PebbleCheckpoint, o *Owner) (*PebbleCheckpoint, error) {
	if p.closed.Load() {
		return nil, ErrClosed
	}
	lo, hi, err := keyGroupBounds(r)
	if err != nil {
		return nil, err
	}
	if o == nil {
		err = p.flushAll(r, false)
	} else {
		err = p.flushOperators(o, r)
	}
	if err != nil {
		return nil, fmt.Errorf("state: checkpointing key groups %v: %w", r, err)
	}
	p.ckptMu.Lock()
	defer p.ckptMu.Unlock()
	opts := []pebble.CheckpointOption{pebble.WithRestrictToSpans([]pebble.CheckpointSpan{
		{Start: lo, End: hi},
		// The backend's records: FF FF then 'r' or 'v', below FF FF FF.
		{Start: metaPrefix, End: []byte{0xFF, 0xFF, 0xFF}},
	})}
	if p.mustFlush(o) {
		if err := p.db.Flush(); err != nil {
			return nil, fmt.Errorf("state: checkpointing key groups %v: flushing memtables: %w", r, err)
		}
	}
	if !p.noWAL {
		opts = append(opts, pebble.WithFlushedWAL())
	}
	if err := p.db.Checkpoint(dir, opts...); err != nil {
		return nil, fmt.Errorf("state: checkpointing key groups %v into %s: %w", r, dir, err)
	}
	if err := p.writeTimers(filepath.Join(dir, TimersFile), r, o); err != nil {
		return nil, errors.Join(fmt.Errorf("state: checkpointing the timers of key groups %v: %w", r, err), os.RemoveAll(dir))
	}
	c := &PebbleCheckpoint{Dir: dir}
	var shared map[string]bool
	if prev != nil {
		shared = map[string]bool{}
		for _, f := range prev.Files {
			if f.SST {
				shared[f.Name] = true
			}
		}
	}
	err = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		name, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		sst := strings.HasSuffix(name, ".sst")
		c.Files = append(c.Files, CheckpointFile{Name: name, Size: info.Size(), SST: sst, Shared: sst && shared[name]})
		return nil
	})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("state: listing checkpoint %s: %w", dir, err), os.RemoveAll(dir))
	}
	slices.SortFunc(c.Files, func(a, b CheckpointFile) int { return strings.Compare(a.Name, b.Name) })
	return c, nil
}

// mustFlush says whether a checkpoint for o flushes the memtables first;
// ckptMu is held. Without the WAL every checkpoint must; with it, the
// first of each checkpoint does, and later ones while the WAL they would
// copy stays small.
func (p *Pebble) mustFlush(o *Owner) bool {
	if p.noWAL || o == nil || o.Checkpoint == 0 {
		return true
	}
	round := flushRound{job: o.Job, id: o.Checkpoint}
	// MemTable.Size is the memtables' allocated capacity, not their
	// contents; the live WAL is what the checkpoint would copy.
	if p.flushedFor == round && p.db.Metrics().WAL.Size < walCarryLimit {
		return false
	}
	p.flushedFor = round
	return true
}

// flushRound names a checkpoint whose flush was done.
type flushRound struct {
	job string
	id  uint64
}

// flushOperators gives the pending writes of o's states in r to pebble.
func (p *Pebble) flushOperators(o *Owner, r keygroup.Range) error {
	var shards []*pebbleState
	for _, uid := range o.Operators {
		for _, st := range p.reg.operatorStates(o.Job, uid) {
			reg := p.states.get(st.id)
			for kg := r.Start; kg <= r.End; kg++ {
				if s := reg.shards[kg]; s != nil && s.hasPending() {
					shards = append(shards, s)
				}
			}
		}
	}
	return p.flushShards(shards)
}
