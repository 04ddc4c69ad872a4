package splits

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// The encoding of a Snapshot, what a source's Offset returns and what a
// checkpoint stores per source subtask:
//
//	magic "weirsplt" | version u8 | connector (uvarint length, bytes) |
//	count uvarint | states... | crc32c u32 (big-endian)
//
// a state being kind u8, id, of (uvarints), path (uvarint length, bytes;
// length 0 repeats the previous state's path, as a file's splits share
// one), start, end, stride, line, next, next line (varints). The checksum
// covers every byte before it.
const (
	magic        = "weirsplt"
	codecVersion = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Encode returns the bytes of s.
func Encode(s Snapshot) []byte {
	b := make([]byte, 0, 32+len(s.Connector)+len(s.States)*12)
	b = append(b, magic...)
	b = append(b, codecVersion)
	b = appendString(b, s.Connector)
	b = binary.AppendUvarint(b, uint64(len(s.States)))
	prev := ""
	for i := range s.States {
		st := &s.States[i]
		sp := &st.Split
		b = append(b, byte(sp.Kind))
		b = binary.AppendUvarint(b, uint64(sp.ID))
		b = binary.AppendUvarint(b, uint64(sp.Of))
		if sp.Path == prev {
			b = appendString(b, "")
		} else {
			b = appendString(b, sp.Path)
		}
		prev = sp.Path
		for _, v := range [...]int64{sp.Start, sp.End, sp.Stride, sp.Line, st.Next, st.NextLine} {
			b = binary.AppendVarint(b, v)
		}
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// Decode parses the bytes Encode wrote and validates the snapshot. It
// refuses a damaged, truncated or oversized input with ErrInvalid before
// allocating for it.
func Decode(b []byte) (Snapshot, error) {
	fail := func(what string) (Snapshot, error) {
		return Snapshot{}, fmt.Errorf("decoding split snapshot of %d bytes: %w: %s", len(b), ErrInvalid, what)
	}
	if len(b) < len(magic)+1+4 || string(b[:len(magic)]) != magic {
		return fail("not a split snapshot")
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return fail("checksum mismatch (corrupted or truncated)")
	}
	if v := body[len(magic)]; v != codecVersion {
		return fail(fmt.Sprintf("version %d, this build reads %d", v, codecVersion))
	}
	d := decoder{b: body[len(magic)+1:]}
	var s Snapshot
	s.Connector = d.string()
	n := d.uvarint()
	// Each state takes at least 10 bytes: a bound before allocating.
	if d.err || n > MaxSplits || n > uint64(len(d.b))/10 {
		return fail("bad header")
	}
	s.States = make([]State, n)
	prev := ""
	for i := range s.States {
		st := &s.States[i]
		sp := &st.Split
		sp.Kind = Kind(d.byte())
		sp.ID, sp.Of = int(d.uvarint()), int(d.uvarint())
		if sp.Path = d.string(); sp.Path == "" {
			sp.Path = prev
		}
		prev = sp.Path
		for _, v := range [...]*int64{&sp.Start, &sp.End, &sp.Stride, &sp.Line, &st.Next, &st.NextLine} {
			*v = d.varint()
		}
		if d.err {
			return fail(fmt.Sprintf("state %d truncated", i))
		}
		if sp.Kind == KindSequence {
			sp.Path, prev = "", ""
		}
	}
	if len(d.b) != 0 {
		return fail(fmt.Sprintf("%d bytes after the last state", len(d.b)))
	}
	if err := s.Validate(); err != nil {
		return Snapshot{}, fmt.Errorf("decoding split snapshot: %w", err)
	}
	return s, nil
}

// decoder reads fields until the first error, which sticks.
type decoder struct {
	b   []byte
	err bool
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.err = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 || v > 1<<62 {
		d.err = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err || n > MaxNameLen || n > uint64(len(d.b)) {
		d.err = true
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
