package state

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/wasmabi"
)

// What an incremental checkpoint needs of the pebble backend besides the
// native checkpoint itself: the timers, which both backends keep in
// memory, written beside the checkpoint's sstables; an identity per open
// database, since sstable numbers repeat across databases; and opening a
// downloaded checkpoint so that canonical snapshots can be taken of it.

// TimersFile is the file of a PebbleCheckpoint that holds the timers of
// its key groups; OpenCheckpoint reads it.
const TimersFile = "WEIR-TIMERS"

// timersMagic starts a TimersFile: format version 1.
var timersMagic = []byte("weir-timers-1\n")

// maxTimersFile bounds a TimersFile read back.
const maxTimersFile = 1 << 30

// Instance is a name of this open database, unique with high probability
// among every database any process opens: the prefix that makes sstable
// names unique in a job's shared checkpoint area.
func (p *Pebble) Instance() string {
	p.instanceOnce.Do(func() {
		var b [6]byte
		_, _ = rand.Read(b[:]) // crypto/rand does not fail on supported platforms
		p.instance = hex.EncodeToString(b[:])
	})
	return p.instance
}

// writeTimers writes the timers in the key groups r of o's operators
// (nil: of every operator) to path. It runs on the goroutine that owns
// them.
func (p *Pebble) writeTimers(path string, r keygroup.Range, own *Owner) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	w.Write(timersMagic)
	var buf []byte
	p.timerStore.table.each(func(o *timerOp) {
		if own != nil && (o.job != own.Job || !slices.Contains(own.Operators, o.operator)) {
			return
		}
		for kg := r.Start; kg <= r.End; kg++ {
			sh := o.shards[kg]
			if sh == nil {
				continue
			}
			for d := range sh.set {
				for _, k := range slices.Sorted(mapKeys(sh.set[d])) {
					buf = appendString(buf[:0], o.job)
					buf = appendString(buf, o.operator)
					buf = binary.BigEndian.AppendUint16(buf, uint16(kg))
					buf = append(buf, byte(d))
					buf = appendString(buf, k)
					w.Write(buf)
				}
			}
		}
	})
	err = w.Flush()
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

func mapKeys(m map[string]struct{}) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func appendString(dst []byte, s string) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(s))), s...)
}

// loadTimers reads a TimersFile into the backend's timers.
func (p *Pebble) loadTimers(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTimersFile+1))
	if err != nil {
		return err
	}
	if len(b) > maxTimersFile || !bytes.HasPrefix(b, timersMagic) {
		return fmt.Errorf("state: %s is not a timers file of this version", path)
	}
	b = b[len(timersMagic):]
	str := func() (string, bool) {
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			return "", false
		}
		s := string(b[w : w+int(n)])
		b = b[w+int(n):]
		return s, true
	}
	for len(b) > 0 {
		job, ok1 := str()
		op, ok2 := str()
		if !ok1 || !ok2 || len(b) < 3 {
			return fmt.Errorf("state: %s: truncated", path)
		}
		kg, d := binary.BigEndian.Uint16(b), wasmabi.TimeDomain(b[2])
		b = b[3:]
		k, ok := str()
		if !ok || checkKeyGroup(kg) != nil || checkDomain(d) != nil || len(k) < 9 {
			return fmt.Errorf("state: %s: bad timer entry", path)
		}
		id, err := p.RegisterTimers(job, op)
		if err != nil {
			return err
		}
		o, err := p.op(id)
		if err != nil {
			return err
		}
		if err := o.shard(kg).add(d, k); err != nil {
			return err
		}
	}
	return nil
}

// OpenCheckpoint opens a PebbleCheckpoint directory (as Checkpoint wrote
// it, or downloaded from checkpoint storage) for reading it: its states
// are registered as recorded and its timers loaded, so Snapshot gives the
// canonical snapshot of any of its operators' key groups. The caller
// Closes it.
func OpenCheckpoint(dir string, opts PebbleOptions) (*Pebble, error) {
	p, err := OpenPebble(dir, nil, opts)
	if err != nil {
		return nil, err
	}
	err = func() error {
		p.reg.mu.Lock()
		var names []Name
		var decls []decl
		for n, id := range p.reg.byName {
			names, decls = append(names, n), append(decls, p.reg.entries[id].decl)
		}
		p.reg.mu.Unlock()
		for i, n := range names {
			if _, err := p.RegisterState(n, decls[i].declared, Options{TTL: decls[i].ttl}); err != nil {
				return err
			}
		}
		return p.loadTimers(filepath.Join(dir, TimersFile))
	}()
	if err != nil {
		return nil, errors.Join(fmt.Errorf("state: opening checkpoint %s: %w", dir, err), p.Close())
	}
	return p, nil
}

// JobsOf returns the jobs that have states or timers of operator in the
// database, sorted: a checkpoint's database belongs to one job, whose name
// a canonical snapshot of it needs.
func (p *Pebble) JobsOf(operator string) []string {
	var out []string
	p.reg.mu.Lock()
	for n := range p.reg.byName {
		if n.Operator == operator {
			out = append(out, n.Job)
		}
	}
	p.reg.mu.Unlock()
	p.timerStore.mu.Lock()
	for k := range p.timerStore.byOp {
		if k[1] == operator {
			out = append(out, k[0])
		}
	}
	p.timerStore.mu.Unlock()
	slices.Sort(out)
	return slices.Compact(out)
}
