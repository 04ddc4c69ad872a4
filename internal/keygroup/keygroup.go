// Package keygroup maps record keys to key groups and key groups to the
// parallel subtasks of an operator. A key group is the unit in which keyed
// state is partitioned, checkpointed and moved when a job is rescaled: a job
// has MaxParallelism key groups, and subtask i of an operator with
// parallelism p owns one contiguous range of them.
//
// The functions here decide where state lives, in checkpoints and savepoints
// too, so their results are part of weir's storage format: they must never
// change for a given key and max parallelism.
package keygroup

import (
	"fmt"
	"math/bits"
)

// DefaultMaxParallelism is the number of key groups of a job that does not
// set one.
const DefaultMaxParallelism = 128

// MaxMaxParallelism bounds the number of key groups (as Flink does, 2^15).
const MaxMaxParallelism = 1 << 15

// Hash is the 64-bit hash of a key from which its key group is taken:
// FNV-1a, then a finalizer that spreads its bits (FNV alone clusters short
// keys that differ in their last byte). It allocates nothing.
func Hash(key []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range key {
		h ^= uint64(c)
		h *= 1099511628211
	}
	// The 64-bit finalizer of MurmurHash3.
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// Of returns the key group of key among maxParallelism key groups.
func Of(key []byte, maxParallelism int) int {
	hi, _ := bits.Mul64(Hash(key), uint64(maxParallelism))
	return int(hi) // a multiply-shift range reduction: no division
}

// Range is an inclusive range of key groups.
type Range struct {
	Start, End int
}

// Contains reports whether kg is in r.
func (r Range) Contains(kg int) bool { return kg >= r.Start && kg <= r.End }

// Len is the number of key groups in r.
func (r Range) Len() int { return r.End - r.Start + 1 }

func (r Range) String() string { return fmt.Sprintf("%d-%d", r.Start, r.End) }

// Validate checks a parallelism against a max parallelism.
func Validate(parallelism, maxParallelism int) error {
	if maxParallelism < 1 || maxParallelism > MaxMaxParallelism {
		return fmt.Errorf("keygroup: max parallelism %d: want 1 to %d", maxParallelism, MaxMaxParallelism)
	}
	if parallelism < 1 || parallelism > maxParallelism {
		return fmt.Errorf("keygroup: parallelism %d: want 1 to the max parallelism %d", parallelism, maxParallelism)
	}
	return nil
}

// RangeFor returns the key groups owned by subtask index of an operator with
// the given parallelism. The ranges of all subtasks cover every key group
// once, and differ in size by at most one.
func RangeFor(index, parallelism, maxParallelism int) Range {
	return Range{
		Start: (index*maxParallelism + parallelism - 1) / parallelism,
		End:   ((index+1)*maxParallelism - 1) / parallelism,
	}
}

// Subtask returns the index of the subtask that owns key group kg.
func Subtask(kg, parallelism, maxParallelism int) int {
	return kg * parallelism / maxParallelism
}
