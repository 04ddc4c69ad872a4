package state

import (
	"encoding/binary"
	"fmt"

	"github.com/weirstream/weir/internal/keygroup"
	"github.com/weirstream/weir/wasmabi"
)

// Storage keys of the pebble backend. A keyed entry is stored under
//
//	[key group u16 BE][state tag u64 BE][uvarint len(key)][key][suffix]
//
// where suffix is empty for value state, the user key for map state and the
// item's sequence number (u64 BE) for list state. The key group comes first so
// the entries of a key-group range are one contiguous range of the keyspace;
// the record key is length-prefixed so no slot's prefix is a prefix of
// another's, and a slot's entries are contiguous too. The tag is a hash of
// the state's Name (see tagOf), not its ID, so keys mean the same in every
// database and process.
//
// Key groups are below keygroup.MaxMaxParallelism (0x8000), so the two-byte
// prefixes 0x8000 to 0xFFFF never hold keyed state; the backend keeps its
// own records under metaPrefix there.

// kgLen, tagLen and seqLen are the sizes of the fixed-width key fields.
const (
	kgLen  = 2
	tagLen = 8
	seqLen = 8
	tsLen  = 8 // the write-time prefix of a value of a state with TTL
)

// metaPrefix starts every key the backend keeps for itself: 0xFFFF is no key
// group. The next byte says what follows.
var metaPrefix = []byte{0xFF, 0xFF}

const (
	metaRegistry byte = 'r' // [meta]['r'][appendName] -> registry record
	metaLayout   byte = 'v' // [meta]['v'] -> layout version, one byte
)

// layoutVersion is the version of the storage layout described above,
// written once when a database is created and checked on every open.
// Version 1 keyed entries by a registration-order ID and named states
// without their job; it is refused.
const layoutVersion = 2

// checkKeyGroup rejects key groups that no job can have.
func checkKeyGroup(kg uint16) error {
	if kg >= keygroup.MaxMaxParallelism {
		return fmt.Errorf("state: key group %d: want below %d", kg, keygroup.MaxMaxParallelism)
	}
	return nil
}

// appendSlot appends the storage prefix of the slot (tag, kg, key): every
// entry of that slot's state starts with it.
func appendSlot(dst []byte, tag uint64, kg uint16, key []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, kg)
	dst = binary.BigEndian.AppendUint64(dst, tag)
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	return append(dst, key...)
}

// appendPrefixEnd appends the smallest key greater than every key that
// starts with prefix, or nothing if there is none (prefix all 0xFF).
func appendPrefixEnd(dst, prefix []byte) []byte {
	for i := len(prefix) - 1; i >= 0; i-- {
		if prefix[i] != 0xFF {
			dst = append(dst, prefix[:i]...)
			return append(dst, prefix[i]+1)
		}
	}
	return dst
}

// keyGroupBounds returns the half-open key range [lo, hi) that holds the
// keyed entries of the key groups in r.
func keyGroupBounds(r keygroup.Range) (lo, hi []byte, err error) {
	if r.Start < 0 || r.End < r.Start || r.End >= keygroup.MaxMaxParallelism {
		return nil, nil, fmt.Errorf("state: key-group range %v: want 0 <= start <= end < %d", r, keygroup.MaxMaxParallelism)
	}
	lo = binary.BigEndian.AppendUint16(nil, uint16(r.Start))
	hi = binary.BigEndian.AppendUint16(nil, uint16(r.End+1)) // at most 0x8000: still below metaPrefix
	return lo, hi, nil
}

// registryKey is the key of the registry record of n.
func registryKey(n Name) []byte {
	k := append(append([]byte(nil), metaPrefix...), metaRegistry)
	return appendName(k, n)
}

// parseRegistryKey is the inverse of registryKey.
func parseRegistryKey(k []byte) (Name, error) {
	p := len(metaPrefix) + 1
	if len(k) < p || string(k[:p]) != string(registryKey(Name{})[:p]) {
		return Name{}, fmt.Errorf("state: registry key %x: wrong prefix", k)
	}
	rest := k[p:]
	var parts [2]string
	for i := range parts {
		n, w := binary.Uvarint(rest)
		if w <= 0 || n > uint64(len(rest)-w) {
			return Name{}, fmt.Errorf("state: registry key %x: bad length", k)
		}
		parts[i] = string(rest[w : w+int(n)])
		rest = rest[w+int(n):]
	}
	return Name{Job: parts[0], Operator: parts[1], State: string(rest)}, nil
}

// The registry record: [version 2][declared kind u32 BE][ttl i64 BE].
const registryRecordLen = 1 + 4 + 8

func encodeRegistryRecord(d decl) []byte {
	b := make([]byte, 0, registryRecordLen)
	b = append(b, 2)
	b = binary.BigEndian.AppendUint32(b, uint32(d.declared))
	return binary.BigEndian.AppendUint64(b, uint64(d.ttl))
}

func decodeRegistryRecord(b []byte) (d decl, err error) {
	if len(b) != registryRecordLen || b[0] != 2 {
		return decl{}, fmt.Errorf("state: registry record %x: want version 2 and %d bytes", b, registryRecordLen)
	}
	d.declared = wasmabi.StateKind(binary.BigEndian.Uint32(b[1:]))
	d.ttl = int64(binary.BigEndian.Uint64(b[5:]))
	if err := validKind(d.declared); err != nil {
		return decl{}, fmt.Errorf("state: registry record: %w", err)
	}
	d.kind = d.declared.Storage()
	if d.ttl < 0 {
		return decl{}, fmt.Errorf("state: registry record: negative TTL %d", d.ttl)
	}
	return d, nil
}
