package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"

	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/wasmabi"
)

// PebbleOptions configure the pebble backend. The zero value is usable:
// every zero field takes its default.
type PebbleOptions struct {
	// CacheSize is the size in bytes of the block cache (default 64 MiB).
	CacheSize int64
	// MemTableSize is the size in bytes of a memtable (default 64 MiB,
	// below 4 GiB). Larger memtables absorb more overwrites before a flush.
	MemTableSize uint64
	// BloomBitsPerKey sets the bloom filter of every sstable level, which
	// saves reads of tables that do not hold a key a Get asks for (default
	// 10, about 1% false positives; negative: no filters).
	BloomBitsPerKey int
	// MaxCompactions bounds the compactions pebble runs at once (default:
	// half of GOMAXPROCS, at least 1, at most 4).
	MaxCompactions int
	// DisableWAL turns pebble's write-ahead log off: writes are cheaper,
	// but what was not flushed is lost in a crash (not on Close, which
	// flushes). Durability comes from checkpoints either way.
	DisableWAL bool
	// WriteCache bounds the bytes of state writes held in memory before
	// they go to pebble in one batch (default 32 MiB;
	// negative: every write goes to pebble at once). Each key group keeps
	// its own pending writes, so a key updated again and again (a window's
	// accumulator) costs a Go map update, not a pebble commit, and is read
	// back from memory.
	WriteCache int64
	// Logger receives pebble's errors; its informational messages are
	// dropped. Nil drops the errors too.
	Logger *slog.Logger
}

const (
	defaultWriteCache   = 32 << 20
	defaultCacheSize    = 64 << 20
	defaultMemTableSize = 64 << 20
	defaultBloomBits    = 10
)

// Validate checks the options.
func (o PebbleOptions) Validate() error {
	switch {
	case o.CacheSize < 0:
		return fmt.Errorf("state: pebble cache size %d: want 0 (default) or more", o.CacheSize)
	case o.MemTableSize >= 4<<30:
		return fmt.Errorf("state: pebble memtable size %d: want below 4 GiB", o.MemTableSize)
	case o.MaxCompactions < 0:
		return fmt.Errorf("state: pebble max compactions %d: want 0 (default) or more", o.MaxCompactions)
	}
	return nil
}

func (o PebbleOptions) withDefaults() PebbleOptions {
	if o.CacheSize == 0 {
		o.CacheSize = defaultCacheSize
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = defaultMemTableSize
	}
	if o.BloomBitsPerKey == 0 {
		o.BloomBitsPerKey = defaultBloomBits
	}
	if o.WriteCache == 0 {
		o.WriteCache = defaultWriteCache
	}
	if o.MaxCompactions == 0 {
		o.MaxCompactions = min(max(runtime.GOMAXPROCS(0)/2, 1), 4)
	}
	return o
}

// Pebble is a Backend that keeps state in a pebble database on local disk,
// one per worker, shared by all its operators. See keys.go for the storage
// layout. Writes do not sync: durability comes from checkpoints.
type Pebble struct {
	timerStore
	db     *pebble.DB
	dir    string
	clock  Clock
	reg    *registry
	states table[pebbleReg]
	closed atomic.Bool
	noWAL  bool

	// Pending writes (see PebbleOptions.WriteCache): their bytes over all
	// shards, and the bound.
	pending    atomic.Int64
	maxPending int64

	closeMu sync.Mutex // serialises Close
	ckptMu  sync.Mutex // serialises Checkpoint

	flushedFor flushRound // the last checkpoint that flushed; ckptMu

	instanceOnce sync.Once
	instance     string // see Instance
}

var _ Backend = (*Pebble)(nil)

// pebbleReg is one registered state; its scratch lives in one pebbleState
// per key group, since the subtasks of an operator use the same ID from
// different goroutines, each on its own key groups.
type pebbleReg struct {
	decl
	id     ID
	shards []*pebbleState // by key group, made on first use
}

// pebbleState is the scratch of one state in one key group, used by the
// one goroutine that owns the key group, so it needs no lock.
type pebbleState struct {
	*pebbleReg
	key  []byte // scratch: the storage key (or slot prefix) of the call
	end  []byte // scratch: the upper bound of an iteration
	val  []byte // scratch: a value with its write time
	iter pebble.IterOptions
	// seqs holds the next list sequence number by slot prefix. It is a
	// cache: a slot not in it is recovered with a reverse seek, and it is
	// emptied when it reaches maxSeqCache slots.
	seqs map[string]*uint64
	// cache holds the writes not yet given to pebble, by storage key;
	// point reads look here first, and scans (lists, map entries, clears)
	// flush it first, so pebble alone answers them. A snapshot copies it
	// rather than flushing it (pebble_snapshot.go).
	cache      map[string]*pendingWrite
	cacheBytes int64
	// appends holds pending list items: each has a key of its own, so a
	// batch takes them without a map entry (and without allocating).
	appends     *pebble.Batch
	appendBytes int64
}

// pendingWrite is a write held in a shard's cache: a stored value, or a
// deletion.
type pendingWrite struct {
	v   []byte
	del bool
}

const (
	maxSeqCache = 1 << 16
	// maxDirty bounds the cached writes of one shard, so that a flush
	// stays short.
	maxDirty = 4096
)

// OpenPebble opens (creating if needed) the pebble database in dir. clock
// gives the processing time for TTL; nil means the wall clock. States
// registered in an earlier run keep their IDs.
func OpenPebble(dir string, clock Clock, opts PebbleOptions) (*Pebble, error) {
	if dir == "" {
		return nil, errors.New("state: opening pebble: no directory")
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if clock == nil {
		clock = wallClock
	}
	o := opts.withDefaults()
	po := &pebble.Options{
		CacheSize:          o.CacheSize,
		MemTableSize:       o.MemTableSize,
		DisableWAL:         o.DisableWAL,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             quietLogger{o.Logger},
		CompactionConcurrencyRange: func() (int, int) {
			return 1, o.MaxCompactions
		},
	}
	if o.BloomBitsPerKey > 0 {
		for i := range po.Levels {
			po.Levels[i].FilterPolicy = bloom.FilterPolicy(o.BloomBitsPerKey)
		}
	}
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("state: opening pebble in %s: %w", dir, err)
	}
	p := &Pebble{db: db, dir: dir, clock: clock, reg: newRegistry(), noWAL: o.DisableWAL, maxPending: max(o.WriteCache, 0)}
	if err := p.load(); err != nil {
		return nil, errors.Join(fmt.Errorf("state: opening pebble in %s: %w", dir, err), db.Close())
	}
	return p, nil
}

// load checks the layout version, writing it into a new database, and
// reads the registry.
func (p *Pebble) load() error {
	layoutKey := append(append([]byte(nil), metaPrefix...), metaLayout)
	v, closer, err := p.db.Get(layoutKey)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		it, err := p.db.NewIter(nil)
		if err != nil {
			return err
		}
		used := it.First()
		if err := it.Close(); err != nil {
			return err
		}
		if used {
			return errors.New("the database has data but no layout record: not a weir state database")
		}
		if err := p.setDurably(layoutKey, []byte{layoutVersion}); err != nil {
			return fmt.Errorf("writing the layout record: %w", err)
		}
	case err != nil:
		return fmt.Errorf("reading the layout record: %w", err)
	default:
		ok := len(v) == 1 && v[0] == layoutVersion
		got := append([]byte(nil), v...)
		if err := closer.Close(); err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("layout record %x: this build reads version %d", got, layoutVersion)
		}
	}

	lo := append(append([]byte(nil), metaPrefix...), metaRegistry)
	hi := appendPrefixEnd(nil, lo)
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	for valid := it.First(); valid; valid = it.Next() {
		if err = p.loadRecord(it); err != nil {
			break
		}
	}
	return errors.Join(err, it.Error(), it.Close())
}

// setDurably writes a record the backend's own bookkeeping needs on disk
// at once: synced through the WAL, or flushed without one.
func (p *Pebble) setDurably(k, v []byte) error {
	if !p.noWAL {
		return p.db.Set(k, v, pebble.Sync)
	}
	if err := p.db.Set(k, v, pebble.NoSync); err != nil {
		return err
	}
	return p.db.Flush()
}

func (p *Pebble) loadRecord(it *pebble.Iterator) error {
	n, err := parseRegistryKey(it.Key())
	if err != nil {
		return err
	}
	v, err := it.ValueAndErr()
	if err != nil {
		return err
	}
	d, err := decodeRegistryRecord(v)
	if err != nil {
		return fmt.Errorf("%s: %w", n, err)
	}
	return p.reg.load(n, d)
}

// Register implements Backend.
func (p *Pebble) Register(uid, name string, kind wasmabi.StateKind, opts Options) (ID, error) {
	return p.RegisterState(Name{Operator: uid, State: name}, kind, opts)
}

// RegisterState implements Backend. A new registration is written to the
// database (synced) before it is used.
func (p *Pebble) RegisterState(n Name, kind wasmabi.StateKind, opts Options) (ID, error) {
	if p.closed.Load() {
		return 0, ErrClosed
	}
	return p.reg.register(n, kind, opts, func(id ID, d decl) error {
		if err := p.setDurably(registryKey(n), encodeRegistryRecord(d)); err != nil {
			return fmt.Errorf("state: recording %s: %w", n, err)
		}
		p.states.set(id, &pebbleReg{decl: d, id: id, shards: make([]*pebbleState, keygroup.MaxMaxParallelism)})
		return nil
	})
}

func (p *Pebble) state(id ID, kg uint16) (*pebbleState, error) {
	if p.closed.Load() {
		return nil, ErrClosed
	}
	r := p.states.get(id)
	if r == nil {
		return nil, fmt.Errorf("state: id %d: %w", id, ErrUnknownID)
	}
	if err := checkKeyGroup(kg); err != nil {
		return nil, err
	}
	s := r.shards[kg]
	if s == nil {
		s = &pebbleState{pebbleReg: r, seqs: map[string]*uint64{}, cache: map[string]*pendingWrite{}}
		r.shards[kg] = s
	}
	return s, nil
}

// write sets (or, with del, deletes) the storage key s.key to v: pending in
// the shard when the write cache is on, else in pebble at once.
func (p *Pebble) write(s *pebbleState, v []byte, del bool) error {
	if p.maxPending == 0 {
		if del {
			return p.db.Delete(s.key, pebble.NoSync)
		}
		return p.db.Set(s.key, v, pebble.NoSync)
	}
	if s.kind == wasmabi.StateList && !del {
		if s.appends == nil {
			s.appends = p.db.NewBatch()
		}
		if err := s.appends.Set(s.key, v, nil); err != nil {
			return err
		}
		s.appendBytes += int64(len(s.key) + len(v) + 16)
		p.pending.Add(int64(len(s.key) + len(v) + 16))
		if s.appends.Count() >= maxDirty || p.pending.Load() > p.maxPending {
			return p.flush(s)
		}
		return nil
	}
	w := s.cache[string(s.key)]
	if w == nil {
		w = &pendingWrite{}
		s.cache[string(s.key)] = w
		s.addCached(p, int64(len(s.key)+48))
	}
	s.addCached(p, int64(len(v)-len(w.v)))
	w.v, w.del = append(w.v[:0], v...), del
	if len(s.cache) >= maxDirty || p.pending.Load() > p.maxPending {
		return p.flush(s)
	}
	return nil
}

func (s *pebbleState) addCached(p *Pebble, n int64) {
	s.cacheBytes += n
	p.pending.Add(n)
}

// cached returns the cached write of s.key, if any.
func (s *pebbleState) cached() *pendingWrite {
	if len(s.cache) == 0 {
		return nil
	}
	return s.cache[string(s.key)]
}

// hasPending reports whether the shard holds writes pebble does not have.
func (s *pebbleState) hasPending() bool {
	return len(s.cache) > 0 || (s.appends != nil && !s.appends.Empty())
}

// flush gives the shard's pending writes to pebble in one batch.
func (p *Pebble) flush(s *pebbleState) error {
	if !s.hasPending() {
		return nil
	}
	if s.appends == nil {
		s.appends = p.db.NewBatch()
	}
	err := s.addPending(s.appends)
	if err == nil {
		err = p.db.Apply(s.appends, pebble.NoSync)
	}
	p.forget(s) // pebble refusing a batch fails the job: nothing to retry
	if err != nil {
		return fmt.Errorf("state: writing id %d: %w", s.id, err)
	}
	return nil
}

// addPending adds the shard's cached writes to b.
func (s *pebbleState) addPending(b *pebble.Batch) error {
	for k, w := range s.cache {
		var err error
		if w.del {
			err = b.Delete([]byte(k), nil)
		} else {
			err = b.Set([]byte(k), w.v, nil)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// flushShards gives the pending writes of several shards to pebble in one
// batch: one commit instead of one per shard (a snapshot flushes every
// shard of its key groups).
func (p *Pebble) flushShards(shards []*pebbleState) error {
	b := p.db.NewBatch()
	var err error
	for _, s := range shards {
		if s.appends != nil && !s.appends.Empty() {
			if err = b.Apply(s.appends, nil); err != nil {
				break
			}
		}
		if err = s.addPending(b); err != nil {
			break
		}
	}
	if err == nil && !b.Empty() {
		err = p.db.Apply(b, pebble.NoSync)
	}
	for _, s := range shards {
		p.forget(s) // pebble refusing a batch fails the job: nothing to retry
	}
	if err = errors.Join(err, b.Close()); err != nil {
		return fmt.Errorf("state: writing pending writes: %w", err)
	}
	return nil
}

// forget drops the shard's pending writes.
func (p *Pebble) forget(s *pebbleState) {
	if s.appends != nil {
		s.appends.Reset()
	}
	clear(s.cache)
	p.pending.Add(-s.cacheBytes - s.appendBytes)
	s.cacheBytes, s.appendBytes = 0, 0
}

// Flush gives every pending write to pebble. No other call may be in
// flight: the shards belong to the tasks' goroutines.
func (p *Pebble) Flush() error {
	if p.closed.Load() {
		return ErrClosed
	}
	return p.flushAll(keygroup.Range{Start: 0, End: keygroup.MaxMaxParallelism - 1}, false)
}

// flushAll flushes the shards of the key groups in r, or with drop forgets
// their pending writes.
func (p *Pebble) flushAll(r keygroup.Range, drop bool) error {
	var err error
	p.states.each(func(reg *pebbleReg) {
		for kg := r.Start; kg <= r.End && kg < len(reg.shards); kg++ {
			s := reg.shards[kg]
			if s == nil {
				continue
			}
			if drop {
				p.forget(s)
			} else {
				err = errors.Join(err, p.flush(s))
			}
		}
	})
	return err
}

// live reports whether an entry written at ts is still there at now.
func (s *pebbleState) live(ts, now int64) bool { return s.ttl == 0 || now-ts < s.ttl }

// stored returns value as it is stored: with TTL, behind its write time.
func (s *pebbleState) stored(c Clock, value []byte) []byte {
	if s.ttl == 0 {
		return value
	}
	s.val = binary.BigEndian.AppendUint64(s.val[:0], uint64(c()))
	s.val = append(s.val, value...)
	return s.val
}

// unwrap returns a stored value without its write time, and whether it is
// live at now.
func (s *pebbleState) unwrap(v []byte, now int64) ([]byte, bool, error) {
	if s.ttl == 0 {
		return v, true, nil
	}
	if len(v) < tsLen {
		return nil, false, fmt.Errorf("state: value of id %d has %d bytes, no write time", s.id, len(v))
	}
	return v[tsLen:], s.live(int64(binary.BigEndian.Uint64(v)), now), nil
}

func (s *pebbleState) now(c Clock) int64 {
	if s.ttl == 0 {
		return 0
	}
	return c()
}

// Get implements Backend.
func (p *Pebble) Get(id ID, kg uint16, key, userKey, dst []byte) ([]byte, bool, error) {
	s, err := p.state(id, kg)
	if err != nil {
		return dst, false, err
	}
	s.key = appendSlot(s.key[:0], s.tag, kg, key)
	switch s.kind {
	case wasmabi.StateList:
		return p.listItems(s, dst)
	case wasmabi.StateMap:
		s.key = append(s.key, userKey...)
	}
	now := s.now(p.clock)
	if w := s.cached(); w != nil {
		if w.del {
			return dst, false, nil
		}
		v, ok, err := s.unwrap(w.v, now)
		if err != nil {
			return dst, false, err
		}
		if !ok { // expired: drop it now
			return dst, false, p.write(s, nil, true)
		}
		return append(dst, v...), true, nil
	}
	v, closer, err := p.db.Get(s.key)
	if err == pebble.ErrNotFound {
		return dst, false, nil
	}
	if err != nil {
		return dst, false, fmt.Errorf("state: reading id %d: %w", id, err)
	}
	v, ok, err := s.unwrap(v, now)
	if ok {
		dst = append(dst, v...)
	}
	if cerr := closer.Close(); err == nil {
		err = cerr
	}
	if err == nil && !ok { // expired: drop it now
		err = p.db.Delete(s.key, pebble.NoSync)
	}
	return dst, ok && err == nil, err
}

// Put implements Backend.
func (p *Pebble) Put(id ID, kg uint16, key, userKey, value []byte) error {
	s, err := p.state(id, kg)
	if err != nil {
		return err
	}
	s.key = appendSlot(s.key[:0], s.tag, kg, key)
	switch s.kind {
	case wasmabi.StateList:
		seq, err := p.nextSeq(s)
		if err != nil {
			return err
		}
		s.key = binary.BigEndian.AppendUint64(s.key, seq)
	case wasmabi.StateMap:
		s.key = append(s.key, userKey...)
	}
	if err := p.write(s, s.stored(p.clock, value), false); err != nil {
		return fmt.Errorf("state: writing id %d: %w", id, err)
	}
	return nil
}

// nextSeq returns the sequence number of the next item of the list slot
// whose prefix is s.key.
func (p *Pebble) nextSeq(s *pebbleState) (uint64, error) {
	if n := s.seqs[string(s.key)]; n != nil {
		*n++
		return *n - 1, nil
	}
	next := uint64(0)
	it, err := p.iterate(s)
	if err != nil {
		return 0, err
	}
	if it.Last() {
		k := it.Key()
		if len(k) != len(s.key)+seqLen {
			err = fmt.Errorf("state: list item key %x of id %d: want a %d-byte sequence number", k, s.id, seqLen)
		} else {
			next = binary.BigEndian.Uint64(k[len(s.key):]) + 1
		}
	}
	if err = errors.Join(err, it.Error(), it.Close()); err != nil {
		return 0, fmt.Errorf("state: recovering the list sequence of id %d: %w", s.id, err)
	}
	s.cacheSeq(next + 1)
	return next, nil
}

// cacheSeq records next as the next sequence number of the slot s.key.
func (s *pebbleState) cacheSeq(next uint64) {
	if n := s.seqs[string(s.key)]; n != nil {
		*n = next
		return
	}
	if len(s.seqs) >= maxSeqCache {
		clear(s.seqs)
	}
	n := new(uint64)
	*n = next
	s.seqs[string(s.key)] = n
}

// iterate returns an iterator over the entries that start with s.key,
// after giving the shard's pending writes to pebble.
func (p *Pebble) iterate(s *pebbleState) (*pebble.Iterator, error) {
	if err := p.flush(s); err != nil {
		return nil, err
	}
	s.end = appendPrefixEnd(s.end[:0], s.key)
	s.iter.LowerBound, s.iter.UpperBound = s.key, s.end
	it, err := p.db.NewIter(&s.iter)
	if err != nil {
		return nil, fmt.Errorf("state: iterating id %d: %w", s.id, err)
	}
	return it, nil
}

// Delete implements Backend.
func (p *Pebble) Delete(id ID, kg uint16, key, userKey []byte) error {
	s, err := p.state(id, kg)
	if err != nil {
		return err
	}
	s.key = appendSlot(s.key[:0], s.tag, kg, key)
	switch s.kind {
	case wasmabi.StateList:
		return p.clearSlot(s)
	case wasmabi.StateMap:
		s.key = append(s.key, userKey...)
	}
	if err := p.write(s, nil, true); err != nil {
		return fmt.Errorf("state: deleting from id %d: %w", id, err)
	}
	return nil
}

// Clear implements Backend.
func (p *Pebble) Clear(id ID, kg uint16, key []byte) error {
	s, err := p.state(id, kg)
	if err != nil {
		return err
	}
	s.key = appendSlot(s.key[:0], s.tag, kg, key)
	if s.kind == wasmabi.StateValue {
		if err := p.write(s, nil, true); err != nil {
			return fmt.Errorf("state: clearing id %d: %w", id, err)
		}
		return nil
	}
	return p.clearSlot(s)
}

// clearSlot deletes every entry of the list or map slot s.key, one point
// tombstone each: range tombstones would be cheaper to write, but every
// new one in the memtable makes the next reads re-fragment them all.
func (p *Pebble) clearSlot(s *pebbleState) error {
	it, err := p.iterate(s)
	if err != nil {
		return err
	}
	var b *pebble.Batch
	for valid := it.First(); valid; valid = it.Next() {
		if b == nil {
			b = p.db.NewBatch()
		}
		if err = b.Delete(it.Key(), nil); err != nil {
			break
		}
	}
	err = errors.Join(err, it.Error(), it.Close())
	if b != nil {
		if err == nil {
			err = p.db.Apply(b, pebble.NoSync)
		}
		err = errors.Join(err, b.Close())
	}
	if err != nil {
		return fmt.Errorf("state: clearing id %d: %w", s.id, err)
	}
	if s.kind == wasmabi.StateList {
		s.cacheSeq(0)
	}
	return nil
}

// List implements Backend.
func (p *Pebble) List(id ID, kg uint16, key, dst []byte) ([]byte, bool, error) {
	s, err := p.state(id, kg)
	if err != nil {
		return dst, false, err
	}
	if s.kind != wasmabi.StateList {
		return dst, false, fmt.Errorf("state: list of id %d, which is %s state: %w", id, kindName(s.kind), ErrKind)
	}
	s.key = appendSlot(s.key[:0], s.tag, kg, key)
	return p.listItems(s, dst)
}

// listItems appends the live items of the list slot s.key.
func (p *Pebble) listItems(s *pebbleState, dst []byte) ([]byte, bool, error) {
	return p.scan(s, dst, func(dst, _, v []byte) []byte { return wasmabi.AppendItem(dst, v) })
}

// Entries implements Backend.
func (p *Pebble) Entries(id ID, kg uint16, key, dst []byte) ([]byte, bool, error) {
	s, err := p.state(id, kg)
	if err != nil {
		return dst, false, err
	}
	if s.kind != wasmabi.StateMap {
		return dst, false, fmt.Errorf("state: entries of id %d, which is %s state: %w", id, kindName(s.kind), ErrKind)
	}
	s.key = appendSlot(s.key[:0], s.tag, kg, key)
	return p.scan(s, dst, appendEntry)
}

func appendEntry(dst, suffix, v []byte) []byte {
	return wasmabi.AppendItem(wasmabi.AppendItem(dst, suffix), v)
}

// scan appends, with add, every live entry of the slot s.key in key order
// (suffix is the storage key after the slot prefix), and deletes the
// expired ones it passes.
func (p *Pebble) scan(s *pebbleState, dst []byte, add func(dst, suffix, v []byte) []byte) ([]byte, bool, error) {
	it, err := p.iterate(s)
	if err != nil {
		return dst, false, err
	}
	now := s.now(p.clock)
	n := len(dst)
	found := false
	var expired *pebble.Batch
	for valid := it.First(); valid; valid = it.Next() {
		var v []byte
		if v, err = it.ValueAndErr(); err != nil {
			break
		}
		var live bool
		if v, live, err = s.unwrap(v, now); err != nil {
			break
		}
		if !live {
			if expired == nil {
				expired = p.db.NewBatch()
			}
			if err = expired.Delete(it.Key(), nil); err != nil {
				break
			}
			continue
		}
		dst = add(dst, it.Key()[len(s.key):], v)
		found = true
	}
	err = errors.Join(err, it.Error(), it.Close())
	if expired != nil {
		if err == nil {
			err = p.db.Apply(expired, pebble.NoSync)
		}
		err = errors.Join(err, expired.Close())
	}
	if err != nil {
		return dst[:n], false, fmt.Errorf("state: reading id %d: %w", s.id, err)
	}
	return dst, found, nil
}

// DeleteKeyGroups removes every keyed entry and timer of every state and
// operator in the key groups of r, the entries with one range deletion: the storage key starts with the key
// group, so they are one contiguous range. A worker calls it for key groups
// it no longer owns after a rescale. It may run while tasks use other key
// groups.
func (p *Pebble) DeleteKeyGroups(r keygroup.Range) error {
	if p.closed.Load() {
		return ErrClosed
	}
	lo, hi, err := keyGroupBounds(r)
	if err != nil {
		return err
	}
	// The key groups have no task any more: their pending writes go too.
	if err := p.flushAll(r, true); err != nil {
		return err
	}
	if err := p.db.DeleteRange(lo, hi, pebble.NoSync); err != nil {
		return fmt.Errorf("state: deleting key groups %v: %w", r, err)
	}
	p.dropTimers(r)
	// Cached list sequence numbers of deleted slots stay valid: they are
	// above every item the slot can still have.
	return nil
}

// Dir is the directory of the database.
func (p *Pebble) Dir() string { return p.dir }

// Close implements Backend: it flushes the memtables and closes the
// database. No call may be in flight; Close again returns nil.
func (p *Pebble) Close() error {
	p.closeMu.Lock()
	defer p.closeMu.Unlock()
	if p.closed.Load() {
		return nil
	}
	err := p.flushAll(keygroup.Range{Start: 0, End: keygroup.MaxMaxParallelism - 1}, false)
	p.closed.Store(true)
	p.states.each(func(reg *pebbleReg) {
		for _, s := range reg.shards {
			if s != nil && s.appends != nil {
				err = errors.Join(err, s.appends.Close())
			}
		}
	})
	p.states.p.Store(nil)
	err = errors.Join(err, p.db.Flush())
	if err != nil {
		err = fmt.Errorf("state: flushing pebble in %s: %w", p.dir, err)
	}
	if cerr := p.db.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("state: closing pebble in %s: %w", p.dir, cerr))
	}
	return err
}

// quietLogger drops pebble's informational messages and passes its errors
// to a slog.Logger, if any.
type quietLogger struct{ l *slog.Logger }

func (q quietLogger) Infof(string, ...any) {}

func (q quietLogger) Errorf(format string, args ...any) {
	if q.l != nil {
		q.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
	}
}

// Fatalf must not return: pebble calls it on broken invariants.
func (q quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}
