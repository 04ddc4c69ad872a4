package connector

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"syscall"
	"time"
)

// The file sink has two modes.
//
// Without Subtask.Exactly (a job without checkpoints) each subtask writes
// one file, SubtaskPath(path, sub), through a hidden temporary file beside
// it, ".<name>.tmp-<attempt>", renamed into place by the first Flush (end
// of input): a job that fails or is cancelled before its end leaves any
// earlier output at that path as it was.
//
// With Subtask.Exactly the sink is a TwoPhaseSink. What a subtask writes
// between two checkpoints is one transaction, a hidden pending file in the
// sink's folder,
//
//	.<name>.inprogress-<index>-<attempt>-<n>
//
// written and fsynced at PreCommit, and renamed by Commit to its final,
// visible name,
//
//	<name>.part-<index>-<seq>-<attempt>
//
// where <name> is the base name of the sink's path option (the same for
// every subtask and parallelism, so "<path>.part-*" is every committed part
// of the sink), <index> the writing subtask's index (5 digits or more),
// <seq> 20 digits, the checkpoint the transaction was pre-committed at (or
// one more than the subtask's previous part when that is not above it), so
// that name order is output order per subtask, and <attempt> 16 hex
// digits drawn when the sink is made, so that no two attempts ever write
// the same name and a commit never replaces a committed part. <n> counts
// the transactions of one attempt. A transaction that received no record
// has no file.

// Names of the file sink's files.
const (
	partInfix    = ".part-"
	pendingInfix = ".inprogress-"
	tmpInfix     = ".tmp-"
	attemptLen   = 16 // hex digits
)

var (
	// ErrFileSinkState is the error of a PreCommit state the file sink
	// cannot restore from: corrupt, truncated, of another sink, of another
	// version or handed to the wrong subtask.
	ErrFileSinkState = errors.New("connector: file sink: bad state")
	// ErrFileSinkLost is the error of a commit whose pending file and
	// final part are both missing: the transaction's records are lost
	// (the files were removed by hand, or the folder is not the one the
	// checkpoint was taken with).
	ErrFileSinkLost = errors.New("connector: file sink: transaction lost")
	// ErrFileSinkMode is the error of a two-phase call on a file sink made
	// without Subtask.Exactly.
	ErrFileSinkMode = errors.New("connector: file sink: not in exactly-once mode")
)

// fileSinkBuffer is how many formatted bytes a file sink gathers before it
// writes them.
const fileSinkBuffer = 256 << 10

// sinkTxn is one pre-committed transaction of the exactly-once file sink:
// names (in the sink's folder) of its pending file and its final part.
type sinkTxn struct {
	checkpoint     uint64
	pending, final string
}

// fileSink is one subtask of the file sink.
type fileSink struct {
	dir     string // the folder every file of this subtask is in
	base    string // exactly: the base name of the path option; else of SubtaskPath
	path    string // exactly: the path option; else SubtaskPath, published at Flush
	index   int
	exactly bool
	attempt string // attemptLen hex digits, new for every sink made
	names   *fileSinkNames

	format  lineFormat
	rawJSON bool
	buf     []byte
	// rate limits records per second (0: none): start and written pace it.
	rate    int64
	start   time.Time
	written int64

	// f is the file being written: the temporary file (or, once
	// published, path) without exactly; the open transaction's pending
	// file with it, nil until the transaction's first record.
	f         *os.File
	fname     string // f's path
	published bool   // not exactly: the temporary file was renamed to path
	closed    bool
	ended     bool // exactly: Flush ended the input; the open transaction waits for its PreCommit

	nextTxn  int       // exactly: <n> of the next pending file
	pending  []sinkTxn // exactly: pre-committed, not yet committed, in checkpoint order
	havePre  bool      // exactly: lastCkpt is set
	lastCkpt uint64    // exactly: the checkpoint of this attempt's last PreCommit
	lastSeq  uint64    // exactly: the highest <seq> this subtask's parts have had
	dirDirty bool      // a file was created in dir since the last sync of dir
}

func newFileSink(o Options, sub Subtask) (*fileSink, error) {
	if err := checkSubtask("file", sub); err != nil {
		return nil, err
	}
	p := o.String("path")
	s := &fileSink{index: sub.Index, exactly: sub.Exactly, format: formatJSONL, rawJSON: o.Bool("raw_json"), rate: o.Int("rate")}
	if o.String("format") == "lines" {
		s.format = formatLines
	}
	s.path = p
	if !sub.Exactly {
		s.path = SubtaskPath(p, sub)
	}
	s.dir, s.base = filepath.Dir(s.path), filepath.Base(s.path)
	if err := checkSinkBase(p); err != nil {
		return nil, err
	}
	if st, err := os.Stat(s.path); err == nil && st.IsDir() {
		return nil, fmt.Errorf("connector: file sink: path %q names a folder, not a file", s.path)
	}
	var rnd [attemptLen / 2]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("connector: file sink: drawing an attempt id: %w", err)
	}
	s.attempt = hex.EncodeToString(rnd[:])
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("connector: file sink: %w", err)
	}
	s.buf = make([]byte, 0, fileSinkBuffer+64<<10)
	if !sub.Exactly {
		if len(sub.SinkRestore) > 0 {
			return nil, fmt.Errorf("connector: file sink %s: %d restore states handed to a sink without Subtask.Exactly: %w", p, len(sub.SinkRestore), ErrFileSinkMode)
		}
		s.fname = filepath.Join(s.dir, "."+s.base+tmpInfix+s.attempt)
		f, err := os.OpenFile(s.fname, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return nil, fmt.Errorf("connector: file sink: %w", err)
		}
		s.f = f
		return s, nil
	}
	// The longest name is a part's: <name>.part- and 5+1+20+1+16 more.
	if longest := len(s.base) + len(partInfix) + 43; longest > maxSinkName {
		return nil, fmt.Errorf("connector: file sink: the file name of path %q is %d bytes, too long for its part names: at most %d", p, len(s.base), maxSinkName-len(partInfix)-43)
	}
	s.names = newFileSinkNames(s.base)
	if err := s.open(sub); err != nil {
		return nil, err
	}
	return s, nil
}

// open starts the exactly-once sink. Restoring, it commits every
// transaction the states handed to it name and aborts what no completed
// checkpoint names (see restore). It numbers its parts after every part of
// its index already in the folder, so that name order stays output order
// across restores at any parallelism (a subtask handed no state does not
// learn the checkpoint otherwise).
func (s *fileSink) open(sub Subtask) error {
	var abort func(index int, name string) bool
	if sub.Restoring {
		var err error
		if abort, err = s.restore(sub); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("connector: file sink %s subtask %d: listing its folder: %w", s.path, sub.Index, err)
	}
	for _, e := range entries {
		if idx, seq, _, ok := s.names.parsePart(e.Name()); ok && idx == s.index {
			s.lastSeq = max(s.lastSeq, seq)
			continue
		}
		idx, attempt, ok := s.names.parsePending(e.Name())
		if !ok || abort == nil || attempt == s.attempt || !abort(idx, e.Name()) {
			continue
		}
		if err := os.Remove(filepath.Join(s.dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("restoring file sink %s subtask %d: aborting %s: %w", s.path, sub.Index, e.Name(), err)
		}
		s.dirDirty = true
	}
	if err := s.syncDir(); err != nil {
		return fmt.Errorf("restoring file sink %s subtask %d: %w", s.path, sub.Index, err)
	}
	return nil
}

// checkSinkBase refuses a path that names no file.
func checkSinkBase(p string) error {
	if p == "" {
		return errors.New("connector: file sink: empty path")
	}
	if b := filepath.Base(p); b == "." || b == ".." || b == string(filepath.Separator) || os.IsPathSeparator(p[len(p)-1]) {
		return fmt.Errorf("connector: file sink: path %q names a folder, not a file", p)
	}
	return nil
}

// Path is, without exactly, the file this subtask writes; with it, the
// sink's path, which its committed parts extend (see CommittedParts).
func (s *fileSink) Path() string { return s.path }

// Write formats the batch into the buffer, writing it out when full.
func (s *fileSink) Write(entries []byte, count int) error {
	if s.closed {
		return errSinkClosed
	}
	if s.ended {
		return fmt.Errorf("connector: file sink %s subtask %d: write after the end of input (Flush)", s.path, s.index)
	}
	var err error
	if s.buf, err = appendLines(s.buf, entries, s.format, s.rawJSON); err != nil {
		return err
	}
	if s.rate > 0 {
		s.pace(count)
	}
	if len(s.buf) >= fileSinkBuffer {
		return s.writeOut()
	}
	return nil
}

// writeOut writes the buffer to f, first opening the transaction's pending
// file in exactly mode.
func (s *fileSink) writeOut() error {
	if len(s.buf) == 0 {
		return nil
	}
	if s.f == nil {
		if err := s.openTxn(); err != nil {
			return err
		}
	}
	_, err := s.f.Write(s.buf)
	s.buf = s.buf[:0]
	if err != nil {
		return fmt.Errorf("connector: file sink: writing %s: %w", s.fname, err)
	}
	return nil
}

// openTxn creates the open transaction's pending file.
func (s *fileSink) openTxn() error {
	name := s.names.pending(s.index, s.attempt, s.nextTxn)
	s.nextTxn++
	s.fname = filepath.Join(s.dir, name)
	f, err := os.OpenFile(s.fname, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("connector: file sink: opening a transaction: %w", err)
	}
	s.f, s.dirDirty = f, true
	return nil
}

// pace sleeps so that the records written so far took at least
// written/rate seconds.
func (s *fileSink) pace(count int) {
	if s.start.IsZero() {
		s.start = time.Now()
	}
	s.written += int64(count)
	due := s.start.Add(time.Duration(s.written * int64(time.Second) / s.rate))
	if d := time.Until(due); d > 0 {
		time.Sleep(d)
	}
}

// endTxn makes the open transaction's file durable and closes it, and
// returns it as a transaction to commit, with its final name; ok is false
// when the transaction received no record.
func (s *fileSink) endTxn(checkpoint uint64) (t sinkTxn, ok bool, err error) {
	if err := s.writeOut(); err != nil {
		return t, false, err
	}
	if s.f == nil {
		return t, false, nil
	}
	f := s.f
	s.f = nil
	if err := f.Sync(); err != nil {
		f.Close()
		return t, false, fmt.Errorf("connector: file sink: syncing %s: %w", s.fname, err)
	}
	if err := f.Close(); err != nil {
		return t, false, fmt.Errorf("connector: file sink: closing %s: %w", s.fname, err)
	}
	seq := checkpoint
	if seq <= s.lastSeq {
		seq = s.lastSeq + 1
	}
	s.lastSeq = seq
	return sinkTxn{checkpoint: checkpoint, pending: filepath.Base(s.fname), final: s.names.part(s.index, seq, s.attempt)}, true, nil
}

// PreCommit ends the open transaction at checkpoint's barrier: its pending
// file is written out, fsynced and its folder entry synced, and it joins
// the transactions Commit will make visible. The state returned names
// every transaction pre-committed and not committed yet (see
// encodeFileSinkState). Checkpoints must increase from one PreCommit to
// the next. After the end of input (Flush) the first PreCommit ends the
// last transaction: the job's final checkpoint commits it.
func (s *fileSink) PreCommit(checkpoint uint64) ([]byte, error) {
	if s.closed {
		return nil, errSinkClosed
	}
	if !s.exactly {
		return nil, fmt.Errorf("pre-committing checkpoint %d of %s: %w (the task runtime must set Subtask.Exactly when the job takes checkpoints)", checkpoint, s.path, ErrFileSinkMode)
	}
	if s.havePre && checkpoint <= s.lastCkpt {
		return nil, fmt.Errorf("connector: file sink %s subtask %d: pre-committing checkpoint %d after %d: checkpoints must increase", s.path, s.index, checkpoint, s.lastCkpt)
	}
	if len(s.pending) >= maxFileSinkTxns {
		return nil, fmt.Errorf("connector: file sink %s subtask %d: pre-committing checkpoint %d: %d transactions are waiting for a completed checkpoint: checkpoints are not completing (see the job's checkpoint failures)", s.path, s.index, checkpoint, len(s.pending))
	}
	t, ok, err := s.endTxn(checkpoint)
	if err != nil {
		return nil, fmt.Errorf("pre-committing checkpoint %d: %w", checkpoint, err)
	}
	if ok {
		s.pending = append(s.pending, t)
	}
	if err := s.syncDir(); err != nil {
		return nil, fmt.Errorf("pre-committing checkpoint %d: %w", checkpoint, err)
	}
	s.havePre, s.lastCkpt = true, checkpoint
	return encodeFileSinkState(fileSinkState{index: s.index, takenAt: checkpoint, lastSeq: s.lastSeq, txns: s.pending}), nil
}

// Commit renames every transaction pre-committed at checkpoint or before
// to its final part and syncs the folder. It is idempotent, and it may be
// called after Close (it only renames files).
func (s *fileSink) Commit(checkpoint uint64) error {
	n := 0
	for n < len(s.pending) && s.pending[n].checkpoint <= checkpoint {
		n++
	}
	if err := s.commitFirst(n); err != nil {
		return fmt.Errorf("committing checkpoint %d: %w", checkpoint, err)
	}
	return nil
}

// commitFirst commits the first n pending transactions, in order, and
// forgets them; on an error it keeps those not committed.
func (s *fileSink) commitFirst(n int) error {
	if n == 0 {
		return nil
	}
	var err error
	done := 0
	for ; done < n; done++ {
		if err = commitTxn(s.dir, s.pending[done]); err != nil {
			break
		}
	}
	s.pending = append(s.pending[:0], s.pending[done:]...)
	s.dirDirty = s.dirDirty || done > 0
	if serr := s.syncDir(); err == nil {
		err = serr
	}
	return err
}

// commitTxn renames t's pending file to its final name; a pending file
// already renamed (gone, with the final part present) was committed
// before.
func commitTxn(dir string, t sinkTxn) error {
	pending, final := filepath.Join(dir, t.pending), filepath.Join(dir, t.final)
	err := os.Rename(pending, final)
	if err == nil {
		return nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Lstat(final); serr == nil {
			return nil
		}
		return fmt.Errorf("%w: the transaction of checkpoint %d has neither its pending file %s nor its part %s (removed by hand, or not the folder the checkpoint was taken with)", ErrFileSinkLost, t.checkpoint, pending, final)
	}
	return fmt.Errorf("connector: file sink: committing %s: %w", final, err)
}

// syncDir fsyncs the folder when a file was created or renamed in it, so
// that the names survive a crash. A filesystem that cannot sync a folder
// (EINVAL) is taken as one that needs no such sync.
func (s *fileSink) syncDir() error {
	if !s.dirDirty {
		return nil
	}
	d, err := os.Open(s.dir)
	if err != nil {
		return fmt.Errorf("connector: file sink: syncing folder: %w", err)
	}
	err = d.Sync()
	d.Close()
	if err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("connector: file sink: syncing folder %s: %w", s.dir, err)
	}
	s.dirDirty = false
	return nil
}

// Flush is the end of input. Without exactly it writes out the buffer,
// syncs the file and, the first time, renames it into place; later Writes
// append to it there. With exactly it only ends the input: Write fails
// after it, and what was written since the last PreCommit stays the open
// transaction until the next one, the job's final checkpoint, which
// commits it like any other.
func (s *fileSink) Flush() error {
	if s.closed {
		return errSinkClosed
	}
	if s.exactly {
		s.ended = true
		return nil
	}
	if err := s.writeOut(); err != nil {
		return err
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("connector: file sink: syncing %s: %w", s.fname, err)
	}
	if s.published {
		return nil
	}
	if err := os.Rename(s.fname, s.path); err != nil {
		return fmt.Errorf("connector: file sink: publishing %s: %w", s.path, err)
	}
	s.fname, s.published, s.dirDirty = s.path, true, true
	return s.syncDir()
}

// Close releases the sink; it is idempotent. Without Flush it aborts what
// was not published: without exactly the temporary file is removed and
// the path keeps its earlier content (once published, Close writes out
// and syncs what is buffered, as Flush); with exactly the open
// transaction's file is removed, and pre-committed transactions stay for
// Commit or a restore to commit or abort.
func (s *fileSink) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if s.f == nil {
		return nil
	}
	var err error
	keep := !s.exactly && s.published
	if keep {
		if err = s.writeOut(); err == nil {
			err = s.f.Sync()
		}
	}
	if cerr := s.f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	s.f = nil
	if !keep {
		if rerr := os.Remove(s.fname); err == nil && rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = rerr
		}
	}
	if err != nil {
		return fmt.Errorf("connector: file sink: closing %s: %w", s.fname, err)
	}
	return nil
}

// restore checks the states handed to this subtask and commits every
// transaction they name. It returns which pending files open must abort
// (remove): those of this subtask's index and of the old subtasks whose
// states it took over that no state names, transactions after the
// checkpoint restored from, never to be committed. Pending files of other
// indexes belong to other new subtasks, or to old ones no new subtask
// takes over (left alone: hidden, never committed).
func (s *fileSink) restore(sub Subtask) (abort func(index int, name string) bool, err error) {
	indexes := map[int]bool{sub.Index: true}
	seen := map[int]bool{}
	named := map[string]bool{}
	var txns []sinkTxn
	for _, st := range sub.SinkRestore {
		where := fmt.Sprintf("restoring file sink %s subtask %d of %d from the state of old subtask %d", s.path, sub.Index, sub.Parallelism, st.Index)
		if st.Index < 0 {
			return nil, fmt.Errorf("%s: %w: negative subtask index", where, ErrFileSinkState)
		}
		if st.Index%sub.Parallelism != sub.Index {
			return nil, fmt.Errorf("%s: %w: that state belongs to subtask %d of %d (see RestoreStates)", where, ErrFileSinkState, st.Index%sub.Parallelism, sub.Parallelism)
		}
		if seen[st.Index] {
			return nil, fmt.Errorf("%s: %w: two states of that subtask", where, ErrFileSinkState)
		}
		seen[st.Index], indexes[st.Index] = true, true
		d, err := decodeFileSinkState(st.State, s.names)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if d.index != st.Index {
			return nil, fmt.Errorf("%s: %w: the state was written by subtask %d", where, ErrFileSinkState, d.index)
		}
		for _, t := range d.txns {
			if named[t.pending] {
				return nil, fmt.Errorf("%s: %w: transaction %s is named twice", where, ErrFileSinkState, t.pending)
			}
			named[t.pending] = true
		}
		txns = append(txns, d.txns...)
		s.lastSeq = max(s.lastSeq, d.lastSeq, d.takenAt)
	}
	for _, t := range txns {
		if err := commitTxn(s.dir, t); err != nil {
			return nil, fmt.Errorf("restoring file sink %s subtask %d: recommitting: %w", s.path, sub.Index, err)
		}
	}
	s.dirDirty = len(txns) > 0
	return func(index int, name string) bool { return indexes[index] && !named[name] }, nil
}

// fileSinkNames makes and recognises the names of one exactly-once file
// sink's files (see the top of this file).
type fileSinkNames struct {
	base              string
	pendingRE, partRE *regexp.Regexp
}

func newFileSinkNames(base string) *fileSinkNames {
	return &fileSinkNames{
		base: base,
		// Indexes have at most 9 digits and counters at most 18, so
		// they always parse as ints.
		pendingRE: regexp.MustCompile(`^` + regexp.QuoteMeta("."+base+pendingInfix) + `([0-9]{5,9})-([0-9a-f]{16})-([0-9]{6,18})$`),
		partRE:    regexp.MustCompile(`^` + regexp.QuoteMeta(base+partInfix) + `([0-9]{5,9})-([0-9]{20})-([0-9a-f]{16})$`),
	}
}

func (n *fileSinkNames) pending(index int, attempt string, txn int) string {
	return fmt.Sprintf(".%s%s%05d-%s-%06d", n.base, pendingInfix, index, attempt, txn)
}

func (n *fileSinkNames) part(index int, seq uint64, attempt string) string {
	return fmt.Sprintf("%s%s%05d-%020d-%s", n.base, partInfix, index, seq, attempt)
}

// parsePending returns the subtask index and attempt a pending file's name
// holds; ok is false for any other name.
func (n *fileSinkNames) parsePending(name string) (index int, attempt string, ok bool) {
	m := n.pendingRE.FindStringSubmatch(name)
	if m == nil {
		return 0, "", false
	}
	index, _ = strconv.Atoi(m[1])
	return index, m[2], true
}

// parsePart returns the subtask index, sequence and attempt a committed
// part's name holds; ok is false for any other name.
func (n *fileSinkNames) parsePart(name string) (index int, seq uint64, attempt string, ok bool) {
	m := n.partRE.FindStringSubmatch(name)
	if m == nil {
		return 0, 0, "", false
	}
	seq, err := strconv.ParseUint(m[2], 10, 64)
	if err != nil { // 20 digits above 1<<64-1
		return 0, 0, "", false
	}
	index, _ = strconv.Atoi(m[1])
	return index, seq, m[3], true
}

// CommittedParts returns every committed part of every subtask of the
// exactly-once file sink whose path option is path, sorted by name: by
// subtask index, then in the order the subtask wrote them. Pending
// (hidden) files are not parts. In a shell, the same files are
// "<path>.part-*". A folder that does not exist is an error.
func CommittedParts(path string) ([]string, error) {
	if err := checkSinkBase(path); err != nil {
		return nil, err
	}
	dir, names := filepath.Dir(path), newFileSinkNames(filepath.Base(path))
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("connector: file sink: listing parts of %s: %w", path, err)
	}
	var out []string
	for _, e := range entries {
		if _, _, _, ok := names.parsePart(e.Name()); ok && !e.IsDir() {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}
