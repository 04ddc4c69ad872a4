package snapshot

import (
	"fmt"

	"github.com/weirstream/weir/wasmabi"
)

// Operator state is one value per subtask, not per key, so restoring it at
// another parallelism is a choice per kind. These functions make it: given
// the state of every subtask of the earlier run (by subtask index), they
// return what subtask index of parallelism gets. They are pure: the result
// shares value bytes with the input but no slice.

// SplitList splits operator list state: the items of all the lists, in
// subtask order, are dealt round-robin, item j to subtask j mod parallelism,
// so every item goes to exactly one subtask and the shares differ by at
// most one item.
func SplitList(lists [][]Item, index, parallelism int) []Item {
	var out []Item
	j := 0
	for _, l := range lists {
		for _, it := range l {
			if j%parallelism == index {
				out = append(out, it)
			}
			j++
		}
	}
	return out
}

// UnionList gives every subtask the union of union list state: all the
// items, in subtask order.
func UnionList(lists [][]Item) []Item {
	var out []Item
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// BroadcastCopy gives every subtask a copy of broadcast state. Broadcast
// state is written alike in every subtask from a broadcast input, so the
// first subtask's copy stands for all.
func BroadcastCopy(maps [][]Entry) []Entry {
	for _, m := range maps {
		if m != nil {
			return append([]Entry(nil), m...)
		}
	}
	return nil
}

// RedistributeItems is SplitList or UnionList by kind.
func RedistributeItems(kind wasmabi.StateKind, lists [][]Item, index, parallelism int) ([]Item, error) {
	switch kind {
	case wasmabi.StateOperatorList:
		return SplitList(lists, index, parallelism), nil
	case wasmabi.StateUnionList:
		return UnionList(lists), nil
	}
	return nil, fmt.Errorf("snapshot: redistributing items of kind %d: want operator list (%d) or union list (%d)", kind, wasmabi.StateOperatorList, wasmabi.StateUnionList)
}
