package wasmhost

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/weirstream/weir/wasmabi"
)

// The output contract of each operator kind, which the host checks after
// every process and finish call (docs/abi.md, "Output contract"):
//
//   - map: exactly one record on the main output per input record, and
//     none at finish. Side outputs and watermarks are free.
//   - filter: on the main output, a subsequence of its input, each record
//     byte for byte as it came in (key, value, timestamp, headers); none at
//     finish. Side outputs and watermarks are free.
//   - flat_map, process, co_process: any number of records.
//   - aggregate: the window checks one accumulator per group (agg_add),
//     per pair (agg_merge); agg_result is free.
//
// A map or filter that breaks it is a bug the author wants to hear about,
// not a pipeline that silently changes cardinality downstream.

// CheckOutput checks out, the output of method over the count input
// entries in (without the batch header), against the contract of the
// instance's operator kind. in must be the host's copy of the input: the
// module may have changed its own.
func (inst *Instance) CheckOutput(method wasmabi.Method, in []byte, count int, out []byte) error {
	if inst.opDesc == nil {
		return nil
	}
	if err := CheckOutput(inst.opDesc.Kind, method, in, count, out); err != nil {
		return inst.fail(method.String(), err)
	}
	return nil
}

// CheckOutput is the contract check without an instance, for native
// operators and tests; the error wraps ErrContract.
func CheckOutput(kind wasmabi.Kind, method wasmabi.Method, in []byte, count int, out []byte) error {
	if kind != wasmabi.KindMap && kind != wasmabi.KindFilter {
		return nil
	}
	if method != wasmabi.MethodProcess && method != wasmabi.MethodFinish {
		return nil
	}
	if method == wasmabi.MethodFinish {
		count, in = 0, nil
	}
	n, inOff := 0, 0
	for off := 0; off+wasmabi.EntryHeaderSize <= len(out); {
		e := out[off : off+entryLen(out[off:])]
		off += len(e)
		if wasmabi.EntryKind(e[0]) != wasmabi.EntryRecord || binary.LittleEndian.Uint16(e[2:]) != 0 {
			continue
		}
		n++
		if kind != wasmabi.KindFilter {
			continue
		}
		// A filter's record must be the next or a later input record.
		for {
			if inOff >= len(in) {
				return fmt.Errorf("%w: a filter emits a subsequence of its input, unchanged, in order; main-output record %d of this call is not (changed, repeated or out of order)", ErrContract, n-1)
			}
			cand := in[inOff : inOff+entryLen(in[inOff:])]
			inOff += len(cand)
			if bytes.Equal(cand, e) {
				break
			}
		}
	}
	if kind == wasmabi.KindMap && n != count {
		if method == wasmabi.MethodFinish {
			return fmt.Errorf("%w: a map emits nothing on its main output at finish, this one emitted %d records (use flat_map to emit at the end)", ErrContract, n)
		}
		return fmt.Errorf("%w: a map emits exactly one main-output record per input record; this call had %d inputs and emitted %d (use flat_map for any other number)", ErrContract, count, n)
	}
	if kind == wasmabi.KindFilter && method == wasmabi.MethodFinish && n > 0 {
		return fmt.Errorf("%w: a filter emits nothing on its main output at finish, this one emitted %d records", ErrContract, n)
	}
	return nil
}

// entryLen is the size of the validated entry at the start of b.
func entryLen(b []byte) int {
	le := binary.LittleEndian
	return wasmabi.EntryHeaderSize + int(le.Uint32(b[4:])) + int(le.Uint32(b[16:])) + int(le.Uint32(b[20:]))
}
