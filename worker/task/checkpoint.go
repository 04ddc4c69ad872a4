package task

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weirstream/weir/internal/barrier"
	"github.com/weirstream/weir/internal/ckptmeta"
	"github.com/weirstream/weir/internal/ckptstore"
	"github.com/weirstream/weir/internal/deploy"
	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/internal/snapshot"
	"github.com/weirstream/weir/internal/splits"
	"github.com/weirstream/weir/netstack"
	"github.com/weirstream/weir/wasmabi"
	"github.com/weirstream/weir/worker/connector"
	"github.com/weirstream/weir/worker/state"
)

// Checkpoints. The checkpoint coordinator (coordinator/checkpoint) starts
// a checkpoint by having the runs that hold its sources inject a barrier
// (Run.TriggerCheckpoint). Barriers travel in band; each subtask aligns
// them at its input gate with an internal/barrier Aligner, takes the
// synchronous part of its snapshot on its own goroutine (source splits,
// backend snapshots of its operators, its sinks' pre-commits), sends the
// barrier on, and uploads the files from another goroutine; then it
// acknowledges (Checkpointing.OnAck). Once the checkpoint is complete the
// coordinator says so (Run.NotifyComplete) and two-phase-commit sinks
// commit.
//
// The end of a checkpointed job is a checkpoint too. A subtask that ended
// its input (everything fired, the end sent on) says so (an end notice
// through OnAck) and stays: no barrier can reach it any more, so the
// trigger, which reaches every subtask, has it snapshot its final state
// directly. Its sinks keep what they wrote since their last pre-commit
// open. The first checkpoint every subtask took after it ended is the
// final one: once it completed, the sinks commit and the subtasks end. So
// every record of a bounded job is committed by a checkpoint, and a
// failure at any moment of its end restores a checkpoint and writes
// nothing twice.

// Checkpointing is the checkpoint setup of a Job.
type Checkpointing struct {
	// Storage receives the subtasks' snapshot files, under StorageJob
	// (the job's id in the storage).
	Storage    ckptstore.Storage
	StorageJob string
	// AlignmentTimeout, for aligned checkpoints, switches a checkpoint
	// still aligning this long after the sources injected its barriers
	// to unaligned; 0 never does.
	AlignmentTimeout time.Duration
	// OnAck receives each subtask's acknowledgement (or decline) of a
	// checkpoint, and its notice that it ended its input
	// (ckptmeta.Ack.IsEndNotice), from any goroutine.
	OnAck func(ckptmeta.Ack)
	// Restore is the checkpoint the run starts from; nil starts afresh.
	Restore *Restore
	// Incremental has subtasks on the pebble backend take periodic
	// checkpoints as native pebble checkpoints of their key groups,
	// uploading only the sstables their previous completed checkpoint did
	// not (savepoints stay canonical).
	Incremental bool
}

// Restore is a completed checkpoint or savepoint to start from.
type Restore struct {
	Storage ckptstore.Storage
	Meta    ckptstore.Metadata
	Payload *ckptmeta.Payload
	// AllowNonRestored drops the state of operators the job no longer
	// has instead of refusing the restore.
	AllowNonRestored bool
}

// OpenRestore reads and checks checkpoint n of job in s for a job of
// shape: its metadata and every file's checksum, its payload, and whether
// it fits the job (ckptmeta.Payload.CheckRestore).
func OpenRestore(s ckptstore.Storage, job string, n uint64, shape ckptmeta.Shape, allowNonRestored bool) (*Restore, error) {
	where := ckptstore.PathOf(s, job, n)
	md, err := ckptstore.Verify(s, job, n)
	if err != nil {
		return nil, fmt.Errorf("restoring %s: %w", where, err)
	}
	p, err := ckptmeta.Decode(md.Payload)
	if err != nil {
		return nil, fmt.Errorf("restoring %s: %w", where, err)
	}
	if err := p.Restorable(); err != nil {
		return nil, fmt.Errorf("restoring %s: %v; restore an earlier checkpoint", where, err)
	}
	if err := p.CheckRestore(shape, allowNonRestored); err != nil {
		return nil, err
	}
	return &Restore{Storage: s, Meta: md, Payload: p, AllowNonRestored: allowNonRestored}, nil
}

// checkpointsFromDescriptor sets up the checkpoints of a deployment.
func checkpointsFromDescriptor(d *deploy.Descriptor) (*Checkpointing, error) {
	if d.Checkpoints == nil {
		if d.Restore != nil {
			return nil, fmt.Errorf("task: the descriptor restores %s but sets no checkpoint folder", d.Restore.Checkpoint)
		}
		return nil, nil
	}
	cp := &Checkpointing{Storage: &ckptstore.Dir{Root: d.Checkpoints.Dir}, StorageJob: d.Job, AlignmentTimeout: time.Duration(d.Checkpoints.AlignmentTimeout), Incremental: d.Checkpoints.Incremental}
	if d.Restore != nil {
		s, job, n, err := ckptstore.OpenPath(d.Restore.Checkpoint)
		if err != nil {
			return nil, err
		}
		if cp.Restore, err = OpenRestore(s, job, n, ckptmeta.ShapeOf(d), d.Restore.AllowNonRestored); err != nil {
			return nil, err
		}
	}
	return cp, nil
}

// evBarrier is a checkpoint barrier; its Value packs the checkpoint id,
// whether it is a savepoint, its mode and when a source injected it
// (barrierValue).
const evBarrier uint8 = 16

var modeCodes = []barrier.Mode{barrier.Aligned, barrier.Unaligned, barrier.AtLeastOnce}

// barrierValue packs a barrier: bits 0-1 the mode, bit 2 savepoint, bits
// 3-39 the checkpoint id, bits 40-63 the wall-clock milliseconds (mod
// 2^24, 4.6 hours) at which the sources injected it.
func barrierValue(id uint64, mode barrier.Mode, savepoint bool, injected uint32) int64 {
	v := uint64(injected&millisMask)<<40 | (id&maxBarrierID)<<3 | uint64(slices.Index(modeCodes, mode))
	if savepoint {
		v |= 4
	}
	return int64(v)
}

const (
	// maxBarrierID is the largest checkpoint id a barrier carries: one
	// checkpoint a second for 4000 years.
	maxBarrierID = 1<<37 - 1
	millisMask   = 1<<24 - 1
)

func parseBarrier(v int64) (id uint64, mode barrier.Mode, savepoint bool, injected uint32, err error) {
	u := uint64(v)
	c := int(u & 3)
	id = u >> 3 & maxBarrierID
	if c >= len(modeCodes) || id == 0 {
		return 0, "", false, 0, fmt.Errorf("malformed barrier %#x", u)
	}
	return id, modeCodes[c], u&4 != 0, uint32(u >> 40), nil
}

// wallMillis is the wall clock in milliseconds mod 2^24, as barriers
// carry it.
func wallMillis() uint32 { return uint32(time.Now().UnixMilli()) & millisMask }

// barrierAge is how long ago a barrier was injected, by this machine's
// clock: up to 2.3 hours; a clock behind the injecting one's gives 0.
func barrierAge(injected uint32) time.Duration {
	d := (wallMillis() - injected) & millisMask
	if d > millisMask/2 {
		return 0
	}
	return time.Duration(d) * time.Millisecond
}

// mail is a request to a subtask from outside its goroutine.
type mail struct {
	kind      uint8 // mailTrigger, mailNotify, mailAbort
	id        uint64
	mode      barrier.Mode
	savepoint bool
	final     bool // mailNotify: the job's final checkpoint
}

const (
	mailTrigger uint8 = iota + 1
	mailNotify
	mailAbort
)

// mailbox holds a subtask's mail; the subtask polls has (an atomic, so
// the hot path takes no lock) and is woken through wake.
type mailbox struct {
	has  atomic.Bool
	wake chan struct{}
	mu   sync.Mutex
	box  []mail
}

func (m *mailbox) post(x mail) {
	m.mu.Lock()
	m.box = append(m.box, x)
	m.has.Store(true)
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *mailbox) take(dst []mail) []mail {
	m.mu.Lock()
	dst = append(dst, m.box...)
	m.box = m.box[:0]
	m.has.Store(false)
	m.mu.Unlock()
	return dst
}

// TriggerCheckpoint starts checkpoint id in this run: every source
// subtask injects its barrier after the batch it is reading, and every
// subtask that ended its input snapshots directly.
func (r *Run) TriggerCheckpoint(id uint64, mode barrier.Mode, savepoint bool) {
	for _, t := range r.subtasks {
		t.mail.post(mail{kind: mailTrigger, id: id, mode: mode, savepoint: savepoint})
	}
}

// NotifyComplete tells every subtask that checkpoint id is complete and
// durable: two-phase-commit sinks commit up to it. final says it is the
// job's final checkpoint: then the subtasks end.
func (r *Run) NotifyComplete(id uint64, final bool) {
	for _, t := range r.subtasks {
		t.mail.post(mail{kind: mailNotify, id: id, final: final})
	}
}

// AbortCheckpoint tells every subtask that checkpoint id was given up:
// alignments of it end and its barriers are ignored.
func (r *Run) AbortCheckpoint(id uint64) {
	for _, t := range r.subtasks {
		t.mail.post(mail{kind: mailAbort, id: id})
	}
}

// ckptState is a subtask's part of one checkpoint in progress.
type ckptState struct {
	id        uint64
	mode      barrier.Mode
	nodes     []ckptmeta.NodeAck
	snaps     []*state.Snapshot // by node, nil for nodes without one
	blobs     []blob
	inflight  bytes.Buffer // unaligned: entries persisted, by input
	waitDone  bool         // the in-flight data are not complete yet
	ended     bool         // the subtask had ended its input: its final state
	done      chan struct{}
	closeOnce sync.Once
	// An incremental checkpoint: the native checkpoint of the subtask's
	// key groups, the backend it is of, the completed checkpoint it is
	// relative to, and the operator nodes whose state it holds.
	pebble      *state.PebbleCheckpoint
	db          *state.Pebble
	base        *uploadedCheckpoint
	pebbleNodes []int
}

type blob struct {
	node int // index in ckptState.nodes
	role string
	b    []byte
}

// checkpointing says whether the subtask's job takes checkpoints.
func (t *subtask) checkpointing() *Checkpointing { return t.job.Checkpoints }

// handleMail carries out the mail posted to t.
func (t *subtask) handleMail() error {
	t.mailBuf = t.mail.take(t.mailBuf[:0])
	for _, m := range t.mailBuf {
		switch m.kind {
		case mailTrigger:
			switch {
			case m.id <= t.lastSnap:
			case t.ended || t.nodes[0].spec.Kind == NodeSource:
				t.barrierInjected = wallMillis()
				if err := t.snapshot(m.id, m.mode, m.savepoint); err != nil {
					return err
				}
			default:
				t.note(m)
			}
		case mailNotify:
			t.incr.completed(m.id)
			for _, n := range t.nodes {
				if tp, ok := n.sink.(connector.TwoPhaseSink); ok {
					if err := tp.Commit(m.id); err != nil {
						return fmt.Errorf("sink %s subtask %d: committing checkpoint %d: %w", n.spec.UID, t.index, m.id, err)
					}
				}
			}
			t.final = t.final || m.final && t.ended
		case mailAbort:
			t.incr.aborted(m.id)
			t.noted = slices.DeleteFunc(t.noted, func(n mail) bool { return n.id == m.id })
			if t.aligner != nil {
				acts, err := t.aligner.Step(barrier.Abort{Checkpoint: m.id})
				if err != nil {
					return err
				}
				if err := t.barrierActions(acts); err != nil {
					return err
				}
			}
			if c := t.ckpt; c != nil && c.id == m.id {
				t.finishInFlight(c)
				t.ckpt = nil
			}
		}
	}
	return nil
}

// awaitFinal keeps a subtask that ended its input, in a checkpointed
// job, until the job's final checkpoint completed: it tells the
// coordinator it ended, snapshots the checkpoint it was told of whose
// barrier its ended inputs no longer bring, then every checkpoint
// triggered, and commits them as they complete.
func (t *subtask) awaitFinal() error {
	cp := t.checkpointing()
	if cp == nil {
		return nil
	}
	if cp.OnAck != nil {
		cp.OnAck(ckptmeta.Ack{Attempt: t.job.Attempt, Vertex: t.v.ID, Index: t.index, Ended: true})
	}
	for _, n := range t.noted {
		if n.id > t.lastSnap {
			if err := t.snapshot(n.id, n.mode, n.savepoint); err != nil {
				return err
			}
		}
	}
	t.noted = nil
	for !t.final {
		if t.mail.has.Load() {
			if err := t.handleMail(); err != nil {
				return err
			}
			continue
		}
		select {
		case <-t.mail.wake:
		case <-t.ctx.Done():
			return context.Cause(t.ctx)
		}
	}
	return nil
}

// note keeps trigger m of a subtask that is not a source and has not
// ended: its barrier is on the way, unless every input ends first.
// Every noted trigger is kept (a savepoint and a periodic checkpoint may
// be pending at once), in id order; those snapshotted since are dropped.
func (t *subtask) note(m mail) {
	t.noted = slices.DeleteFunc(t.noted, func(n mail) bool { return n.id <= t.lastSnap })
	i, found := slices.BinarySearchFunc(t.noted, m.id, func(n mail, id uint64) int { return cmp.Compare(n.id, id) })
	if !found {
		t.noted = slices.Insert(t.noted, i, m)
	}
}

// now is the monotonic time the aligner works with.
func (t *subtask) now() time.Duration { return time.Since(t.run.start) }

// onBarrier handles a barrier from input channel ch; ahead is how many
// messages of ch it overtook (a priority barrier), which are the
// checkpoint's in-flight data.
func (t *subtask) onBarrier(ch int, v int64, ahead int) error {
	id, mode, sp, injected, err := parseBarrier(v)
	if err != nil {
		return fmt.Errorf("task %s subtask %d: input channel %d: %w", t.v.Name, t.index, ch, err)
	}
	if t.aligner == nil {
		return fmt.Errorf("task %s subtask %d: a checkpoint barrier on input channel %d, and the job takes no checkpoints", t.v.Name, t.index, ch)
	}
	timeout := time.Duration(0)
	if mode == barrier.Aligned && !sp {
		timeout = t.checkpointing().AlignmentTimeout
	}
	t.barrierSavepoint, t.barrierAhead, t.barrierInjected = sp, ahead, injected
	acts, err := t.aligner.Step(barrier.Barrier{Channel: ch, Checkpoint: id, Mode: mode, AlignmentTimeout: timeout, Now: t.now(), Age: barrierAge(injected)})
	if err != nil {
		return fmt.Errorf("task %s subtask %d: input channel %d: %w", t.v.Name, t.index, ch, err)
	}
	return t.barrierActions(acts)
}

// barrierActions carries out what the aligner decided.
func (t *subtask) barrierActions(acts []barrier.Action) error {
	for _, a := range acts {
		switch a := a.(type) {
		case barrier.Block:
			t.gate.Block(a.Channel)
		case barrier.Unblock:
			t.gate.Unblock(a.Channel)
		case barrier.Snapshot:
			if err := t.snapshot(a.Checkpoint, a.Mode, t.barrierSavepoint); err != nil {
				return err
			}
		case barrier.PersistInFlight:
			if c := t.ckpt; c != nil && c.id == a.Checkpoint {
				in := t.inputs[a.Channel].input
				t.gate.Peek(a.Channel, t.barrierAhead, func(b *netstack.Buffer) { appendInFlight(&c.inflight, in, b.B, b.Count) })
			}
		case barrier.Done:
			if c := t.ckpt; c != nil && c.id == a.Checkpoint {
				t.finishInFlight(c)
				t.ckpt = nil
			}
		case barrier.AbortCheckpoint:
			if c := t.ckpt; c != nil && c.id == a.ID {
				t.finishInFlight(c)
				t.ckpt = nil
			}
			t.decline(a.ID, a.Reason)
		case barrier.SwitchToUnaligned:
			t.run.log.Info("checkpoint switched to unaligned", "checkpoint", a.Checkpoint, "task", t.v.Name, "subtask", t.index, "reason", a.Reason)
		}
	}
	return nil
}

// persist appends a buffer processed after the snapshot, from a channel
// whose barrier has not arrived yet, to checkpoint id's in-flight data.
func (t *subtask) persist(id uint64, input int, entries []byte, count int) {
	if c := t.ckpt; c != nil && c.id == id {
		appendInFlight(&c.inflight, input, entries, count)
	}
}

// appendInFlight appends one buffer of in-flight data: input (u16),
// count (u32), length (u32), the entries.
func appendInFlight(b *bytes.Buffer, input int, entries []byte, count int) {
	var h [10]byte
	binary.LittleEndian.PutUint16(h[0:], uint16(input))
	binary.LittleEndian.PutUint32(h[2:], uint32(count))
	binary.LittleEndian.PutUint32(h[6:], uint32(len(entries)))
	b.Write(h[:])
	b.Write(entries)
}

// finishInFlight releases the upload of c waiting for its in-flight data.
func (t *subtask) finishInFlight(c *ckptState) {
	c.closeOnce.Do(func() { close(c.done) })
}

// decline tells the coordinator the subtask gives checkpoint id up.
func (t *subtask) decline(id uint64, reason string) {
	if cp := t.checkpointing(); cp != nil && cp.OnAck != nil {
		cp.OnAck(ckptmeta.Ack{Checkpoint: id, Attempt: t.job.Attempt, Vertex: t.v.ID, Index: t.index, Declined: reason})
	}
}

// snapshot takes the synchronous part of the subtask's snapshot for
// checkpoint id, sends the barrier downstream and starts the upload.
func (t *subtask) snapshot(id uint64, mode barrier.Mode, savepoint bool) error {
	cp := t.checkpointing()
	if cp == nil {
		return nil
	}
	if old := t.ckpt; old != nil {
		t.finishInFlight(old) // a newer checkpoint subsumes it
		t.ckpt = nil
	}
	t.lastSnap = max(t.lastSnap, id)
	c := &ckptState{id: id, mode: mode, done: make(chan struct{}), snaps: make([]*state.Snapshot, len(t.nodes)), ended: t.ended}
	c.waitDone = mode == barrier.Unaligned && t.aligner != nil && !t.ended
	c.db = t.incrementalBackend(savepoint)
	release := func() {
		for _, s := range c.snaps {
			if s != nil {
				s.Release()
			}
		}
		if c.pebble != nil {
			_ = os.RemoveAll(c.pebble.Dir) // hard links and copies: the upload is done with them
		}
	}
	for i, n := range t.nodes {
		c.nodes = append(c.nodes, ckptmeta.NodeAck{UID: n.spec.UID})
		var err error
		switch n.spec.Kind {
		case NodeSource:
			ss, ok := n.src.(connector.SplitSource)
			if !ok {
				err = fmt.Errorf("source %s cannot be checkpointed: it has no splits", n.spec.UID)
				break
			}
			c.blobs = append(c.blobs, blob{i, ckptmeta.RoleSplits, splits.Encode(ss.Snapshot())})
		case NodeOperator:
			if n.svc != nil {
				c.nodes[i].States = slices.Clone(n.svc.declared)
			}
			if c.db != nil { // one native checkpoint for every operator, below
				c.pebbleNodes = append(c.pebbleNodes, i)
				break
			}
			var s *state.Snapshot
			s, err = t.job.State.Snapshot(t.stateJob(), n.spec.UID, t.snapshotSubtask())
			c.snaps[i] = s
		case NodeSink:
			if tp, ok := n.sink.(connector.TwoPhaseSink); ok {
				var b []byte
				if b, err = tp.PreCommit(id); err == nil {
					c.blobs = append(c.blobs, blob{i, ckptmeta.RoleSink, b})
				}
			}
		}
		if err != nil {
			release()
			t.decline(id, fmt.Sprintf("%s subtask %d: %v", n.spec.UID, t.index, err))
			return nil
		}
	}
	if len(c.pebbleNodes) > 0 {
		if err := t.checkpointPebble(c); err != nil {
			release()
			t.decline(id, fmt.Sprintf("task %s subtask %d: %v", t.v.Name, t.index, err))
			return nil
		}
	}
	// The barrier goes on behind everything written before the snapshot;
	// unaligned, it overtakes what is queued downstream. After the end of
	// input there is no downstream to tell: every subtask there ended too,
	// and snapshots when triggered.
	ev := netstack.Event{Kind: evBarrier, Value: barrierValue(id, mode, savepoint, t.barrierInjected), Priority: mode == barrier.Unaligned}
	if err := t.sendBarrier(ev); err != nil {
		release()
		return err
	}
	if c.waitDone {
		t.ckpt = c
	} else {
		close(c.done)
	}
	t.run.wg.Add(1)
	go func() {
		defer t.run.wg.Done()
		defer release()
		t.upload(c)
	}()
	return nil
}

// sendBarrier sends a barrier on every output, after what is buffered;
// nothing after the end of input.
func (t *subtask) sendBarrier(ev netstack.Event) error {
	if t.ended {
		return nil
	}
	for _, w := range t.writers {
		if err := w.flush(); err != nil {
			return err
		}
		for _, sp := range w.subs {
			if err := sp.SendEvent(ev); err != nil {
				return err
			}
		}
	}
	return nil
}

// upload writes the snapshot's files and acknowledges the checkpoint.
func (t *subtask) upload(c *ckptState) {
	cp := t.checkpointing()
	ack := ckptmeta.Ack{Checkpoint: c.id, Attempt: t.job.Attempt, Vertex: t.v.ID, Index: t.index, Ended: c.ended}
	write := func(node int, role string, wt func(io.Writer) error) error {
		uid := c.nodes[node].UID
		name := ckptmeta.FileName(uid, t.index, role)
		w, err := cp.Storage.Create(cp.StorageJob, c.id, name)
		if err != nil {
			return err
		}
		if err := wt(w); err != nil {
			w.Abort()
			return err
		}
		fi, err := w.Close()
		if err != nil {
			return err
		}
		c.nodes[node].Files = append(c.nodes[node].Files, ckptmeta.AckFile{Role: role, Name: fi.Name, Size: fi.Size, CRC32: fi.CRC32})
		return nil
	}
	err := func() error {
		if c.pebble != nil {
			files, err := t.uploadPebble(c)
			if err != nil {
				return err
			}
			for _, i := range c.pebbleNodes {
				c.nodes[i].Files = append(c.nodes[i].Files, files...)
			}
		}
		for i, s := range c.snaps {
			if s == nil {
				continue
			}
			if err := write(i, ckptmeta.RoleState, func(w io.Writer) error { _, err := s.WriteTo(w); return err }); err != nil {
				return err
			}
		}
		for _, b := range c.blobs {
			if err := write(b.node, b.role, func(w io.Writer) error { _, err := w.Write(b.b); return err }); err != nil {
				return err
			}
		}
		select {
		case <-c.done:
		case <-t.run.ctx.Done():
			return errors.New("the run ended first")
		}
		if c.inflight.Len() > 0 {
			if err := write(0, ckptmeta.RoleInFlight, func(w io.Writer) error { _, err := w.Write(c.inflight.Bytes()); return err }); err != nil {
				return err
			}
		}
		return nil
	}()
	if err != nil {
		t.decline(c.id, fmt.Sprintf("task %s subtask %d: writing its snapshot: %v", t.v.Name, t.index, err))
		return
	}
	for _, n := range c.nodes {
		if len(n.Files) > 0 || len(n.States) > 0 {
			ack.Nodes = append(ack.Nodes, n)
		}
	}
	if cp.OnAck != nil {
		cp.OnAck(ack)
	}
}

// stateJob is the job name state is registered under.
func (t *subtask) stateJob() string {
	if t.job.ID != "" {
		return t.job.ID
	}
	return t.job.Name
}

func (t *subtask) snapshotSubtask() snapshot.Subtask {
	return snapshot.Subtask{Index: t.index, Parallelism: t.v.Parallelism, MaxParallelism: t.job.MaxParallelism}
}

// restoreFiles returns the files of role of operator uid in the restore,
// read and checked, by old subtask index (nil where there is none); nil
// when the checkpoint has no such operator.
func (r *Restore) restoreFiles(uid, role string) ([][]byte, error) {
	op := r.Payload.Operator(uid)
	if op == nil {
		return nil, nil
	}
	files := op.Files(role)
	out := make([][]byte, len(files))
	for i, f := range files {
		if f == nil {
			continue
		}
		fi, ok := r.fileInfo(f.Name, f.Shared)
		if !ok {
			return nil, fmt.Errorf("restoring %s: checkpoint %d names file %s in its payload but not in its file list", uid, r.Meta.Checkpoint, f.Name)
		}
		b, err := r.Storage.Read(r.Meta.Job, r.Meta.Checkpoint, fi)
		if err != nil {
			return nil, fmt.Errorf("restoring %s from checkpoint %d: %w", uid, r.Meta.Checkpoint, err)
		}
		out[i] = b
	}
	return out, nil
}

func (r *Restore) fileInfo(name string, shared bool) (ckptstore.FileInfo, bool) {
	for _, f := range r.Meta.Files {
		if f.Name == name && f.Shared == shared {
			return f, true
		}
	}
	return ckptstore.FileInfo{}, false
}

// restoreSource sets sub.Restore to the splits this source subtask takes
// over.
func (n *node) restoreSource(r *Restore, sub *connector.Subtask) error {
	files, err := r.restoreFiles(n.spec.UID, ckptmeta.RoleSplits)
	if err != nil || files == nil {
		return err
	}
	var old []splits.Snapshot
	for i, b := range files {
		if b == nil {
			continue
		}
		s, err := splits.Decode(b)
		if err != nil {
			return fmt.Errorf("restoring source %s: splits of old subtask %d: %w", n.spec.UID, i, err)
		}
		old = append(old, s)
	}
	if len(old) == 0 {
		return nil
	}
	mine, err := splits.Assign(old, sub.Index, sub.Parallelism)
	if err != nil {
		return fmt.Errorf("restoring source %s: %w", n.spec.UID, err)
	}
	sub.Restore = &mine
	return nil
}

// restoreSink sets the sink states this sink subtask takes over.
func (n *node) restoreSink(r *Restore, sub *connector.Subtask) error {
	sub.Restoring = true
	files, err := r.restoreFiles(n.spec.UID, ckptmeta.RoleSink)
	if err != nil {
		return err
	}
	var all []connector.SinkState
	for i, b := range files {
		if b != nil {
			all = append(all, connector.SinkState{Index: i, State: b})
		}
	}
	sub.SinkRestore = connector.RestoreStates(all, sub.Index, sub.Parallelism)
	return nil
}

// restoreOperator loads the operator's state for this subtask from the
// restore, before its module opens: from canonical snapshot files, or
// canonical snapshots taken of incremental checkpoints (restoreIncremental),
// through the one Backend.Restore either way.
func (n *node) restoreOperator(r *Restore) error {
	files, err := r.restoreFiles(n.spec.UID, ckptmeta.RoleState)
	if err != nil || files == nil {
		return err
	}
	var readers []*snapshot.Reader
	for i, b := range files {
		if b == nil {
			continue
		}
		rd, err := snapshot.Open(bytes.NewReader(b), int64(len(b)), ckptmeta.FileName(n.spec.UID, i, ckptmeta.RoleState))
		if err != nil {
			return fmt.Errorf("restoring %s: %w", n.spec.UID, err)
		}
		readers = append(readers, rd)
	}
	more, cleanup, err := r.restoreIncremental(n.spec.UID, n.t.snapshotSubtask())
	defer cleanup()
	if err != nil {
		return err
	}
	readers = append(readers, more...)
	if len(readers) == 0 {
		return nil
	}
	if err := n.t.job.State.Restore(n.t.stateJob(), n.t.snapshotSubtask(), readers); err != nil {
		return fmt.Errorf("restoring %s subtask %d: %w", n.spec.UID, n.t.index, err)
	}
	return nil
}

// checkUpgrade refuses a module whose declared states differ from those
// the operator had in the checkpoint restored from.
func (n *node) checkUpgrade(r *Restore) error {
	op := r.Payload.Operator(n.spec.UID)
	if op == nil || n.svc == nil || len(op.States) == 0 && len(n.svc.declared) == 0 {
		return nil
	}
	if diff := ckptmeta.StateDiff(op.States, n.svc.declared); len(diff) > 0 {
		return fmt.Errorf("restoring %s: its module declares other states than in checkpoint %d, so its state cannot be restored: %s; keep the state names and kinds, or give the operator a new uid (and --allow-non-restored-state)", n.spec.UID, r.Meta.Checkpoint, joinLines(diff))
	}
	return nil
}

func joinLines(s []string) string {
	var b bytes.Buffer
	for i, x := range s {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(x)
	}
	return b.String()
}

// replayInFlight feeds the in-flight data of an unaligned checkpoint to
// the head, before anything from the gate.
func (t *subtask) replayInFlight() error {
	cp := t.checkpointing()
	if cp == nil || cp.Restore == nil {
		return nil
	}
	head := t.nodes[0]
	files, err := cp.Restore.restoreFiles(head.spec.UID, ckptmeta.RoleInFlight)
	if err != nil || files == nil {
		return err
	}
	if len(files) == t.v.Parallelism {
		if t.index >= len(files) || files[t.index] == nil {
			return nil
		}
		return t.inFlightBuffers(files[t.index], t.index, head.receive)
	}
	// Restored at another parallelism: each record goes to the subtask
	// that would receive it now (ckptmeta.InFlightByKey), in the order
	// its old subtask had it.
	var kept []byte
	for old, b := range files {
		if b == nil {
			continue
		}
		err := t.inFlightBuffers(b, old, func(input int, entries []byte, count int) error {
			byKey, ok := ckptmeta.InFlightByKey(string(t.v.Inputs[input].Partition))
			switch {
			case !ok:
				return fmt.Errorf("restoring the in-flight data of %s at parallelism %d: input %d is a %s edge, whose in-flight data restore only at their parallelism %d", head.spec.UID, t.v.Parallelism, input, t.v.Inputs[input].Partition, len(files))
			case !byKey:
				if old%t.v.Parallelism != t.index {
					return nil
				}
				return head.receive(input, entries, count)
			}
			kept, count = kept[:0], 0
			for off := 0; off < len(entries); {
				size := entrySize(entries[off:])
				e := entries[off : off+size]
				off += size
				if t.keyGroups.Contains(keygroup.Of(entryKey(e), t.job.MaxParallelism)) {
					kept = append(kept, e...)
					count++
				}
			}
			if count == 0 {
				return nil
			}
			return head.receive(input, kept, count)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// inFlightBuffers calls receive for each buffer of one old subtask's
// in-flight data b, checking its framing (appendInFlight) and that each
// buffer holds whole entries.
func (t *subtask) inFlightBuffers(b []byte, old int, receive func(input int, entries []byte, count int) error) error {
	uid := t.nodes[0].spec.UID
	for len(b) > 0 {
		if len(b) < 10 {
			return fmt.Errorf("restoring the in-flight data of %s old subtask %d: truncated", uid, old)
		}
		input := int(binary.LittleEndian.Uint16(b))
		count := int(binary.LittleEndian.Uint32(b[2:]))
		size := int(binary.LittleEndian.Uint32(b[6:]))
		if size > len(b)-10 {
			return fmt.Errorf("restoring the in-flight data of %s old subtask %d: truncated", uid, old)
		}
		if input >= len(t.v.Inputs) {
			return fmt.Errorf("restoring the in-flight data of %s: old subtask %d has data of input %d, and the operator has %d inputs", uid, old, input, len(t.v.Inputs))
		}
		entries := b[10 : 10+size]
		n := 0
		for off := 0; off < len(entries); n++ {
			if len(entries)-off < wasmabi.EntryHeaderSize {
				return fmt.Errorf("restoring the in-flight data of %s old subtask %d: a partial entry", uid, old)
			}
			s := entrySize(entries[off:])
			if s < wasmabi.EntryHeaderSize || s > len(entries)-off {
				return fmt.Errorf("restoring the in-flight data of %s old subtask %d: an entry of %d bytes overruns its buffer", uid, old, s)
			}
			off += s
		}
		if n != count {
			return fmt.Errorf("restoring the in-flight data of %s old subtask %d: a buffer of %d entries says %d", uid, old, n, count)
		}
		if err := receive(input, entries, count); err != nil {
			return err
		}
		b = b[10+size:]
	}
	return nil
}
