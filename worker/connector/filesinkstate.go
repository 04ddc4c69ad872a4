package connector

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/weirstream/weir/internal/keygroup"
)

// The state the exactly-once file sink returns from PreCommit, version 1:
//
//	magic "weirfsnk" | version u8 = 1 | index uvarint | takenAt uvarint |
//	lastSeq uvarint | count uvarint |
//	count × (checkpoint uvarint | len uvarint | pending name | len uvarint | final name) |
//	crc32c u32 little-endian of every byte before it
//
// index is the subtask that wrote it, takenAt the checkpoint of the
// PreCommit, lastSeq the highest <seq> of that subtask's parts so far (a
// restored subtask numbers its parts after it), and the transactions are
// those pre-committed and not committed, in checkpoint order. Names are
// base names in the sink's folder, never paths, so a state can only name
// this sink's files there; a decoder checks that each looks like this
// sink's pending file and part of that subtask and attempt.
type fileSinkState struct {
	index   int
	takenAt uint64
	lastSeq uint64
	txns    []sinkTxn
}

const (
	fileSinkStateMagic   = "weirfsnk"
	fileSinkStateVersion = 1
	// maxFileSinkState bounds a state's size; maxFileSinkTxns its
	// transactions (PreCommit refuses to add more: so many checkpoints
	// in a row did not complete).
	maxFileSinkState = 4 << 20
	maxFileSinkTxns  = 4096
	maxSinkName      = 255 // bytes of a file name on common filesystems
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func encodeFileSinkState(st fileSinkState) []byte {
	size := 64
	for _, t := range st.txns {
		size += 30 + len(t.pending) + len(t.final)
	}
	b := make([]byte, 0, size)
	b = append(b, fileSinkStateMagic...)
	b = append(b, fileSinkStateVersion)
	b = binary.AppendUvarint(b, uint64(st.index))
	b = binary.AppendUvarint(b, st.takenAt)
	b = binary.AppendUvarint(b, st.lastSeq)
	b = binary.AppendUvarint(b, uint64(len(st.txns)))
	for _, t := range st.txns {
		b = binary.AppendUvarint(b, t.checkpoint)
		b = binary.AppendUvarint(b, uint64(len(t.pending)))
		b = append(b, t.pending...)
		b = binary.AppendUvarint(b, uint64(len(t.final)))
		b = append(b, t.final...)
	}
	return appendStateCRC(b)
}

// appendStateCRC appends the checksum of the state body b.
func appendStateCRC(b []byte) []byte {
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// stateReader reads a state's fields, keeping the first error.
type stateReader struct {
	b   []byte
	off int
	err error
}

func (r *stateReader) fail(format string, args ...any) { r.failAt(r.off, format, args...) }

// failAt records an error about the field that starts at byte off.
func (r *stateReader) failAt(off int, format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: at byte %d: %s", ErrFileSinkState, off, fmt.Sprintf(format, args...))
	}
}

func (r *stateReader) uvarint(what string, limit uint64) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.fail("%s: truncated or overlong number", what)
		return 0
	}
	if v > limit {
		r.fail("%s %d is above %d", what, v, limit)
		return 0
	}
	r.off += n
	return v
}

func (r *stateReader) name(what string) string {
	n := int(r.uvarint(what+" length", maxSinkName))
	if r.err != nil {
		return ""
	}
	if n == 0 || n > len(r.b)-r.off {
		r.fail("%s: length %d, %d bytes left", what, n, len(r.b)-r.off)
		return ""
	}
	s := string(r.b[r.off : r.off+n])
	r.off += n
	return s
}

// decodeFileSinkState decodes and checks a state of the sink whose files
// names describes. Every error wraps ErrFileSinkState and says what is
// wrong and where.
func decodeFileSinkState(b []byte, names *fileSinkNames) (fileSinkState, error) {
	var st fileSinkState
	const head = len(fileSinkStateMagic) + 1
	switch {
	case len(b) > maxFileSinkState:
		return st, fmt.Errorf("%w: %d bytes, at most %d", ErrFileSinkState, len(b), maxFileSinkState)
	case len(b) < head+4:
		return st, fmt.Errorf("%w: truncated: %d bytes", ErrFileSinkState, len(b))
	case string(b[:len(fileSinkStateMagic)]) != fileSinkStateMagic:
		return st, fmt.Errorf("%w: not a file sink state (magic %q)", ErrFileSinkState, b[:len(fileSinkStateMagic)])
	case b[head-1] != fileSinkStateVersion:
		return st, fmt.Errorf("%w: version %d, this worker reads version %d", ErrFileSinkState, b[head-1], fileSinkStateVersion)
	}
	body := b[:len(b)-4]
	if got, want := crc32.Checksum(body, castagnoli), binary.LittleEndian.Uint32(b[len(b)-4:]); got != want {
		return st, fmt.Errorf("%w: checksum %08x, the state says %08x: corrupt or truncated", ErrFileSinkState, got, want)
	}
	r := &stateReader{b: body, off: head}
	st.index = int(r.uvarint("subtask index", keygroup.MaxMaxParallelism-1))
	st.takenAt = r.uvarint("checkpoint", 1<<64-1)
	st.lastSeq = r.uvarint("last part number", 1<<64-1)
	n := int(r.uvarint("transaction count", maxFileSinkTxns))
	seenPending := make(map[string]bool, n)
	for i := 0; i < n && r.err == nil; i++ {
		var t sinkTxn
		at := r.off
		t.checkpoint = r.uvarint(fmt.Sprintf("transaction %d: checkpoint", i), st.takenAt)
		t.pending = r.name(fmt.Sprintf("transaction %d: pending file name", i))
		t.final = r.name(fmt.Sprintf("transaction %d: part name", i))
		if r.err != nil {
			break
		}
		r.off, at = at, r.off // blame the transaction's first byte
		if i > 0 && t.checkpoint <= st.txns[i-1].checkpoint {
			r.fail("transaction %d: checkpoint %d does not follow %d", i, t.checkpoint, st.txns[i-1].checkpoint)
			break
		}
		pi, pa, ok := names.parsePending(t.pending)
		if !ok {
			r.fail("transaction %d: %q is not a pending file of the file sink %q (was the sink's path changed?)", i, t.pending, names.base)
			break
		}
		fi, seq, fa, ok := names.parsePart(t.final)
		if !ok {
			r.fail("transaction %d: %q is not a part of the file sink %q (was the sink's path changed?)", i, t.final, names.base)
			break
		}
		if pi != st.index || fi != st.index {
			r.fail("transaction %d: names subtask %d and %d, the state is subtask %d's", i, pi, fi, st.index)
			break
		}
		if pa != fa {
			r.fail("transaction %d: pending file of attempt %s, part of attempt %s", i, pa, fa)
			break
		}
		if seq > st.lastSeq {
			r.fail("transaction %d: part number %d above the last, %d", i, seq, st.lastSeq)
			break
		}
		if seenPending[t.pending] {
			r.fail("transaction %d: %s named twice", i, t.pending)
			break
		}
		seenPending[t.pending] = true
		st.txns = append(st.txns, t)
		r.off = at
	}
	if r.err == nil && r.off != len(body) {
		r.fail("%d bytes after the last transaction", len(body)-r.off)
	}
	if r.err != nil {
		return fileSinkState{}, r.err
	}
	return st, nil
}
