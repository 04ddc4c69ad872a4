package snapshot

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"

	"github.com/weirstream/weir/wasmabi"
)

// magic starts every snapshot file.
const magic = "weirsnap"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Writer writes one snapshot file. Records must come in the canonical
// order (see the package doc); the Writer checks what it cheaply can (key
// groups ascending and inside the subtask's range, operator state last,
// each record's type matching its state's kind) and fails the first record
// that breaks it. Close writes the end and the checksum; the file is
// complete only after Close returned nil.
type Writer struct {
	w      *bufio.Writer
	crc    hash.Hash32
	h      Header
	n      int64
	buf    []byte
	lastKG int
	opDone bool // an operator-state record was written: no keyed ones may follow
	err    error
}

// NewWriter writes the magic, version and header of a snapshot to w.
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	if err := h.Validate(); err != nil {
		return nil, err
	}
	sw := &Writer{crc: crc32.New(castagnoli), h: h, lastKG: -1}
	sw.w = bufio.NewWriterSize(io.MultiWriter(w, sw.crc), 64<<10)
	b := append([]byte(magic), 0, Version)
	b = appendBytes(b, []byte(h.Job))
	b = appendBytes(b, []byte(h.Operator))
	b = binary.AppendUvarint(b, uint64(h.Subtask.MaxParallelism))
	b = binary.AppendUvarint(b, uint64(h.Subtask.Parallelism))
	b = binary.AppendUvarint(b, uint64(h.Subtask.Index))
	b = binary.AppendUvarint(b, uint64(len(h.States)))
	for _, s := range h.States {
		b = appendBytes(b, []byte(s.Name))
		b = append(b, byte(s.Kind))
		b = binary.AppendVarint(b, s.TTL)
	}
	sw.emit(b)
	return sw, sw.err
}

// Header is the header the Writer was made with.
func (w *Writer) Header() *Header { return &w.h }

// Size is the number of bytes written so far.
func (w *Writer) Size() int64 { return w.n }

func (w *Writer) emit(b []byte) {
	if w.err != nil {
		return
	}
	n, err := w.w.Write(b)
	w.n += int64(n)
	if err != nil {
		w.err = fmt.Errorf("snapshot: writing: %w", err)
	}
}

func (w *Writer) fail(format string, args ...any) error {
	if w.err == nil {
		w.err = fmt.Errorf("snapshot: writing "+format, args...)
	}
	return w.err
}

// keyed checks a keyed or timer record of key group kg (and, for a
// state's record, that the state's kind is one of kinds).
func (w *Writer) check(t RecordType, state, kg int, kinds ...wasmabi.StateKind) error {
	if w.err != nil {
		return w.err
	}
	if t != OperatorList && t != Broadcast {
		if w.opDone {
			return w.fail("a %s record after operator state", t)
		}
		if r := w.h.Subtask.Range(); !r.Contains(kg) {
			return w.fail("a %s record of key group %d, outside %s", t, kg, r)
		}
		if kg < w.lastKG {
			return w.fail("a %s record of key group %d after key group %d", t, kg, w.lastKG)
		}
		w.lastKG = kg
	} else {
		w.opDone = true
	}
	if t == Timer {
		return nil
	}
	if state < 0 || state >= len(w.h.States) {
		return w.fail("a %s record of state %d: the header has %d", t, state, len(w.h.States))
	}
	k := w.h.States[state].Kind
	for _, want := range kinds {
		if k == want {
			return nil
		}
	}
	return w.fail("a %s record of state %q, which is of kind %d", t, w.h.States[state].Name, k)
}

func (w *Writer) slotHead(t RecordType, state, kg int, key []byte) []byte {
	b := append(w.buf[:0], byte(t))
	b = binary.AppendUvarint(b, uint64(state))
	b = binary.BigEndian.AppendUint16(b, uint16(kg))
	return appendBytes(b, key)
}

// Value writes the value state of key.
func (w *Writer) Value(state, kg int, key []byte, ts int64, v []byte) error {
	if err := w.check(Value, state, kg, wasmabi.StateValue); err != nil {
		return err
	}
	b := w.slotHead(Value, state, kg, key)
	b = binary.AppendVarint(b, ts)
	w.buf = appendBytes(b, v)
	w.emit(w.buf)
	return w.err
}

// List writes the list state of key (items in insertion order).
func (w *Writer) List(state, kg int, key []byte, items []Item) error {
	if err := w.check(List, state, kg, wasmabi.StateList); err != nil {
		return err
	}
	w.buf = appendItems(w.slotHead(List, state, kg, key), items)
	w.emit(w.buf)
	return w.err
}

// Map writes the map state of key (entries sorted by user key).
func (w *Writer) Map(state, kg int, key []byte, entries []Entry) error {
	if err := w.check(Map, state, kg, wasmabi.StateMap); err != nil {
		return err
	}
	w.buf = appendEntries(w.slotHead(Map, state, kg, key), entries)
	w.emit(w.buf)
	return w.err
}

// OperatorList writes the subtask's operator list or union list state.
func (w *Writer) OperatorList(state int, items []Item) error {
	if err := w.check(OperatorList, state, 0, wasmabi.StateOperatorList, wasmabi.StateUnionList); err != nil {
		return err
	}
	b := append(w.buf[:0], byte(OperatorList))
	w.buf = appendItems(binary.AppendUvarint(b, uint64(state)), items)
	w.emit(w.buf)
	return w.err
}

// Broadcast writes the subtask's broadcast state (entries sorted by key).
func (w *Writer) Broadcast(state int, entries []Entry) error {
	if err := w.check(Broadcast, state, 0, wasmabi.StateBroadcast); err != nil {
		return err
	}
	b := append(w.buf[:0], byte(Broadcast))
	w.buf = appendEntries(binary.AppendUvarint(b, uint64(state)), entries)
	w.emit(w.buf)
	return w.err
}

// Timer writes one timer of key group kg.
func (w *Writer) Timer(kg int, d wasmabi.TimeDomain, ts int64, key, ns []byte) error {
	if err := w.check(Timer, 0, kg); err != nil {
		return err
	}
	if d != wasmabi.EventTime && d != wasmabi.ProcessingTime {
		return w.fail("a timer of domain %d", d)
	}
	b := append(w.buf[:0], byte(Timer))
	b = binary.BigEndian.AppendUint16(b, uint16(kg))
	b = append(b, byte(d))
	b = binary.AppendVarint(b, ts)
	b = appendBytes(b, key)
	w.buf = appendBytes(b, ns)
	w.emit(w.buf)
	return w.err
}

// Close writes the end record and the checksum and flushes. It does not
// close the underlying writer.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	w.emit([]byte{byte(recEnd)})
	if w.err == nil {
		if err := w.w.Flush(); err != nil {
			w.err = fmt.Errorf("snapshot: writing: %w", err)
			return w.err
		}
	}
	sum := binary.BigEndian.AppendUint32(nil, w.crc.Sum32())
	w.emit(sum) // goes through the CRC too, which no longer matters
	if w.err == nil {
		if err := w.w.Flush(); err != nil {
			w.err = fmt.Errorf("snapshot: writing: %w", err)
		}
	}
	if w.err == nil {
		w.err = errors.New("snapshot: writer closed")
		return nil
	}
	return w.err
}

func appendBytes(b, v []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(v))), v...)
}

func appendItems(b []byte, items []Item) []byte {
	b = binary.AppendUvarint(b, uint64(len(items)))
	for _, it := range items {
		b = binary.AppendVarint(b, it.TS)
		b = appendBytes(b, it.Value)
	}
	return b
}

func appendEntries(b []byte, entries []Entry) []byte {
	b = binary.AppendUvarint(b, uint64(len(entries)))
	for _, e := range entries {
		b = appendBytes(b, e.Key)
		b = binary.AppendVarint(b, e.TS)
		b = appendBytes(b, e.Value)
	}
	return b
}

// Reader reads a snapshot file whose checksum Open verified.
type Reader struct {
	ra   io.ReaderAt
	size int64 // without the checksum
	h    Header
	body int64 // offset of the first record
}

// Open checks the checksum of the snapshot in r (size bytes) and decodes
// its header. name says in errors which file it is.
func Open(r io.ReaderAt, size int64, name string) (*Reader, error) {
	if size < int64(len(magic))+2+4+1 {
		return nil, fmt.Errorf("snapshot: opening %s: %d bytes is too short for a snapshot: %w", name, size, ErrCorrupt)
	}
	body := size - 4
	crc := crc32.New(castagnoli)
	if _, err := io.Copy(crc, io.NewSectionReader(r, 0, body)); err != nil {
		return nil, fmt.Errorf("snapshot: opening %s: reading: %w", name, err)
	}
	var sum [4]byte
	if _, err := r.ReadAt(sum[:], body); err != nil {
		return nil, fmt.Errorf("snapshot: opening %s: reading the checksum: %w", name, err)
	}
	if got, want := crc.Sum32(), binary.BigEndian.Uint32(sum[:]); got != want {
		return nil, fmt.Errorf("snapshot: opening %s: checksum %08x, the file says %08x (truncated or damaged; use another checkpoint): %w", name, got, want, ErrCorrupt)
	}
	d := newDecoder(io.NewSectionReader(r, 0, body), body)
	m := d.fixed(len(magic) + 2)
	if d.err == nil && (string(m[:len(magic)]) != magic || binary.BigEndian.Uint16(m[len(magic):]) != Version) {
		return nil, fmt.Errorf("snapshot: opening %s: not a weir snapshot of version %d (starts %q): %w", name, Version, m, ErrCorrupt)
	}
	rd := &Reader{ra: r, size: body}
	h := &rd.h
	h.Job = string(d.bytes(MaxNameLen))
	h.Operator = string(d.bytes(MaxNameLen))
	h.Subtask.MaxParallelism = d.count(1 << 15)
	h.Subtask.Parallelism = d.count(1 << 15)
	h.Subtask.Index = d.count(1 << 15)
	n := d.count(maxStates)
	for i := 0; i < n && d.err == nil; i++ {
		s := State{Name: string(d.bytes(MaxNameLen))}
		s.Kind = wasmabi.StateKind(d.byte())
		s.TTL = d.varint()
		h.States = append(h.States, s)
	}
	if d.err == nil {
		d.err = h.Validate()
	}
	if d.err != nil {
		return nil, fmt.Errorf("snapshot: opening %s: header: %w", name, errors.Join(d.err, ErrCorrupt))
	}
	rd.body = d.off
	return rd, nil
}

// Header is the snapshot's header.
func (r *Reader) Header() *Header { return &r.h }

// Each calls fn with every record in file order; the Record and its slices
// are reused, so fn copies what it keeps. It stops at fn's first error.
func (r *Reader) Each(fn func(*Record) error) error {
	d := newDecoder(io.NewSectionReader(r.ra, r.body, r.size-r.body), r.size)
	d.off = r.body
	var rec Record
	// The order of keyed slots, checked so that no slot comes twice.
	lastKG, lastState, opSeen := -1, -1, false
	var lastKey []byte
	for {
		t := RecordType(d.byte())
		if d.err != nil {
			return d.corrupt()
		}
		if t == recEnd {
			if d.left() != 0 {
				d.err = fmt.Errorf("%d bytes after the end record", d.left())
				return d.corrupt()
			}
			return nil
		}
		rec.Type, rec.State, rec.KeyGroup, rec.TS, rec.Domain = t, 0, 0, 0, 0
		rec.Key, rec.Value, rec.Namespace = rec.Key[:0], rec.Value[:0], rec.Namespace[:0]
		rec.Items, rec.Entries = rec.Items[:0], rec.Entries[:0]
		switch t {
		case Value, List, Map:
			rec.State = d.count(len(r.h.States) - 1)
			rec.KeyGroup = int(d.u16())
			rec.Key = d.appendBytes(rec.Key)
			switch t {
			case Value:
				rec.TS = d.varint()
				rec.Value = d.appendBytes(rec.Value)
			case List:
				rec.Items = d.items(rec.Items)
			default:
				rec.Entries = d.entries(rec.Entries)
			}
		case OperatorList:
			rec.State = d.count(len(r.h.States) - 1)
			rec.Items = d.items(rec.Items)
		case Broadcast:
			rec.State = d.count(len(r.h.States) - 1)
			rec.Entries = d.entries(rec.Entries)
		case Timer:
			rec.KeyGroup = int(d.u16())
			rec.Domain = wasmabi.TimeDomain(d.byte())
			rec.TS = d.varint()
			rec.Key = d.appendBytes(rec.Key)
			rec.Namespace = d.appendBytes(rec.Namespace)
		default:
			d.err = fmt.Errorf("unknown record type %d", t)
		}
		if d.err == nil {
			d.err = r.checkRecord(&rec)
		}
		if d.err == nil {
			switch t {
			case OperatorList, Broadcast:
				opSeen = true
			default:
				switch {
				case opSeen:
					d.err = fmt.Errorf("a %s record after operator state", t)
				case rec.KeyGroup < lastKG:
					d.err = fmt.Errorf("a %s record of key group %d after key group %d", t, rec.KeyGroup, lastKG)
				case rec.KeyGroup > lastKG:
					lastKG, lastState, lastKey = rec.KeyGroup, -1, lastKey[:0]
				}
				if d.err == nil && t != Timer {
					if rec.State < lastState || (rec.State == lastState && CompareKeys(rec.Key, lastKey) <= 0) {
						d.err = fmt.Errorf("slot %q of state %d in key group %d out of order", rec.Key, rec.State, rec.KeyGroup)
					}
					lastState, lastKey = rec.State, append(lastKey[:0], rec.Key...)
				}
			}
		}
		if d.err != nil {
			return d.corrupt()
		}
		if err := fn(&rec); err != nil {
			return err
		}
	}
}

// checkRecord checks a decoded record against the header.
func (r *Reader) checkRecord(rec *Record) error {
	if rec.Type == Timer {
		if rec.Domain != wasmabi.EventTime && rec.Domain != wasmabi.ProcessingTime {
			return fmt.Errorf("timer of domain %d", rec.Domain)
		}
	} else {
		var want []wasmabi.StateKind
		switch rec.Type {
		case Value:
			want = []wasmabi.StateKind{wasmabi.StateValue}
		case List:
			want = []wasmabi.StateKind{wasmabi.StateList}
		case Map:
			want = []wasmabi.StateKind{wasmabi.StateMap}
		case OperatorList:
			want = []wasmabi.StateKind{wasmabi.StateOperatorList, wasmabi.StateUnionList}
		case Broadcast:
			want = []wasmabi.StateKind{wasmabi.StateBroadcast}
		}
		s := r.h.States[rec.State]
		ok := false
		for _, k := range want {
			ok = ok || s.Kind == k
		}
		if !ok {
			return fmt.Errorf("a %s record of state %q of kind %d", rec.Type, s.Name, s.Kind)
		}
		if rec.Type == OperatorList || rec.Type == Broadcast {
			return nil
		}
	}
	if sr := r.h.Subtask.Range(); !sr.Contains(rec.KeyGroup) {
		return fmt.Errorf("a %s record of key group %d, outside %s", rec.Type, rec.KeyGroup, sr)
	}
	return nil
}

// decoder reads the fields of a snapshot, bounding every length by the
// bytes left, and keeps the first error.
type decoder struct {
	r    *bufio.Reader
	off  int64
	size int64
	err  error
}

func newDecoder(r io.Reader, size int64) *decoder {
	return &decoder{r: bufio.NewReaderSize(r, 64<<10), size: size}
}

func (d *decoder) left() int64 { return d.size - d.off }

func (d *decoder) corrupt() error {
	return fmt.Errorf("snapshot: reading at byte %d: %w", d.off, errors.Join(d.err, ErrCorrupt))
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	c, err := d.r.ReadByte()
	if err != nil {
		d.err = fmt.Errorf("unexpected end: %w", err)
		return 0
	}
	d.off++
	return c
}

func (d *decoder) fixed(n int) []byte {
	if d.err != nil {
		return nil
	}
	if int64(n) > d.left() {
		d.err = fmt.Errorf("want %d bytes, %d left", n, d.left())
		return nil
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(d.r, b); err != nil {
		d.err = err
		return nil
	}
	d.off += int64(n)
	return b
}

func (d *decoder) u16() uint16 {
	hi, lo := d.byte(), d.byte()
	return uint16(hi)<<8 | uint16(lo)
}

func (d *decoder) uvarint() uint64 {
	var v uint64
	for shift := 0; d.err == nil; shift += 7 {
		c := d.byte()
		if shift == 63 && c > 1 {
			d.err = errors.New("uvarint overflows 64 bits")
			return 0
		}
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v
		}
	}
	return 0
}

func (d *decoder) varint() int64 {
	u := d.uvarint()
	v := int64(u >> 1)
	if u&1 != 0 {
		v = ^v
	}
	return v
}

// count reads a uvarint that must be at most limit.
func (d *decoder) count(limit int) int {
	v := d.uvarint()
	if d.err == nil && (limit < 0 || v > uint64(limit)) {
		d.err = fmt.Errorf("count %d: want at most %d", v, limit)
		return 0
	}
	return int(v)
}

// bytes reads a length-prefixed byte string of at most limit bytes.
func (d *decoder) bytes(limit int) []byte {
	n := d.uvarint()
	if d.err == nil && n > uint64(limit) {
		d.err = fmt.Errorf("a string of %d bytes: want at most %d", n, limit)
	}
	return d.fixed(int(n))
}

// appendBytes reads a length-prefixed byte string into dst, bounded by the
// bytes left.
func (d *decoder) appendBytes(dst []byte) []byte {
	n := d.uvarint()
	if d.err != nil {
		return dst
	}
	if n > uint64(d.left()) {
		d.err = fmt.Errorf("a string of %d bytes, %d left", n, d.left())
		return dst
	}
	start := len(dst)
	dst = append(dst, make([]byte, n)...)
	if _, err := io.ReadFull(d.r, dst[start:]); err != nil {
		d.err = err
		return dst[:start]
	}
	d.off += int64(n)
	return dst
}

// items reads a counted list of items; each takes at least 2 bytes, which
// bounds the count by the bytes left.
func (d *decoder) items(dst []Item) []Item {
	n := d.count(int(min(d.left()/2, 1<<40)))
	for i := 0; i < n && d.err == nil; i++ {
		ts := d.varint()
		dst = append(dst, Item{TS: ts, Value: d.appendBytes(nil)})
	}
	return dst
}

// entries reads a counted list of map entries (at least 3 bytes each).
func (d *decoder) entries(dst []Entry) []Entry {
	n := d.count(int(min(d.left()/3, 1<<40)))
	var prev []byte
	for i := 0; i < n && d.err == nil; i++ {
		k := d.appendBytes(nil)
		ts := d.varint()
		v := d.appendBytes(nil)
		if i > 0 && string(prev) >= string(k) {
			d.err = fmt.Errorf("map entries %q, %q: want sorted, distinct keys", prev, k)
		}
		prev = k
		dst = append(dst, Entry{Key: k, TS: ts, Value: v})
	}
	return dst
}
