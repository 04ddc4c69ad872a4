package task

import (
	"errors"
	"fmt"

	"github.com/weirstream/weir/wasmabi"
	"github.com/weirstream/weir/worker/wasmhost"
)

// This file is the node-level path around a call into an operator: the
// output contract check, naming the failing operator, subtask and record in
// errors, and the error policy (on_error) for records that fail or trap.

// contractChecker is an Operator that checks its kind's output contract
// (*wasmhost.Instance). Native operators are compiled into weir and trusted.
type contractChecker interface {
	CheckOutput(method wasmabi.Method, in []byte, count int, out []byte) error
}

// metered is an Operator whose usage is measured (*wasmhost.Instance).
type metered interface {
	Meter() *wasmhost.Meter
}

// checked finishes a call of method over entries: it checks the output
// against the kind's contract and names the operator and subtask in an
// error.
func (n *node) checked(method wasmabi.Method, entries []byte, count int, out []byte, err error) ([]byte, error) {
	if err == nil {
		if c, ok := n.op.(contractChecker); ok {
			err = c.CheckOutput(method, entries, count, out)
		}
	}
	if err != nil {
		return nil, n.annotate(err)
	}
	return out, nil
}

// annotate names the node and subtask in a module's error, once.
func (n *node) annotate(err error) error {
	var werr *wasmhost.Error
	if errors.As(err, &werr) {
		if werr.Node == "" {
			werr.Node, werr.Subtask = n.spec.UID, n.t.index
		}
		return err
	}
	return fmt.Errorf("operator %s subtask %d: %w", n.spec.UID, n.t.index, err)
}

// locate names the failing record idx of a batch of count entries, the
// first at offset first of the subtask's input, in err: its offset and key.
func (n *node) locate(err error, entries []byte, count, idx int, first int64) error {
	var werr *wasmhost.Error
	if !errors.As(err, &werr) {
		return err
	}
	if idx >= 0 && idx < count {
		off := 0
		for range idx {
			off += entrySize(entries[off:])
		}
		var e wasmabi.Entry
		if _, rerr := wasmabi.ReadEntry(entries[off:], &e); rerr == nil && len(e.Key) > 0 {
			werr.Key = append([]byte{}, e.Key...)
		}
		werr.Record, werr.Offset = idx, first+int64(idx)
	} else if count > 0 {
		werr.Record = -1
		werr.Records = fmt.Sprintf("one of records %d-%d of the subtask's input", first, first+int64(count)-1)
	}
	return err
}

// stateless reports whether records of this node may be run again: a
// map, filter or flat_map without operator state. The planner allows skip
// and divert on these only; one that declared operator state would change
// it twice.
func (n *node) stateless() (ok bool, why string) {
	kind := n.spec.Desc.Kind
	if n.svc != nil && len(n.svc.ids) > 0 {
		return false, "an operator with operator state fails"
	}
	if !kind.Stateless() {
		return false, fmt.Sprintf("a %s fails", kind)
	}
	return true, ""
}

// retryable reports whether a failure of a batch may be narrowed down to
// one record by running the records again one at a time: any failure of
// the module's code, but not a job that is ending or a closed instance.
func retryable(werr *wasmhost.Error) bool {
	return !errors.Is(werr, wasmhost.ErrCanceled) && !errors.Is(werr, wasmhost.ErrClosed) && !errors.Is(werr, wasmhost.ErrBudget)
}

// recordError handles a failed process call over a batch of count entries
// of input (the last count records the node has seen): it names the
// failing record and applies the node's error policy.
//
// A trap (or a timeout, a limit, a broken contract) says nothing of which
// record caused it. For a stateless operator the host finds out: a fresh
// instance runs the batch again one record at a time, and the record that
// fails is the one named, skipped or diverted; the records before it have
// then been processed once, the rest go on as a batch.
func (n *node) recordError(err error, input int, entries []byte, count int) error {
	return n.recordErrorAt(err, input, entries, count, n.seen-int64(count))
}

// recordErrorAt is recordError for entries whose first is at offset first
// of the subtask's input.
func (n *node) recordErrorAt(err error, input int, entries []byte, count int, first int64) error {
	var werr *wasmhost.Error
	if !errors.As(err, &werr) {
		return n.annotate(err)
	}
	stateless, why := n.stateless()
	policy := n.spec.OnError
	if policy == "" {
		policy = OnErrorFail
	}
	if policy != OnErrorFail && !stateless {
		werr.Policy = fmt.Sprintf("on_error: %s applies to map, filter and flat_map operators without state only; %s", policy, why)
	}
	idx := werr.Record
	if idx < 0 || idx >= count {
		if !stateless || !retryable(werr) || count <= 1 {
			return n.locate(err, entries, count, -1, first)
		}
		return n.isolate(err, input, entries, count, first)
	}
	if policy == OnErrorFail || !stateless {
		return n.locate(err, entries, count, idx, first)
	}
	// The operator named the record: the instance is healthy (or replaced
	// below). Run the records before it again, then apply the policy.
	off := 0
	for range idx {
		off += entrySize(entries[off:])
	}
	if werr.Poisoning() {
		if err := n.freshInstance(); err != nil {
			return err
		}
	}
	if idx > 0 {
		if err := n.receivePart(input, entries[:off], idx, first); err != nil {
			return err
		}
	}
	return n.applyPolicy(err, input, entries[off:], count-idx, first+int64(idx))
}

// isolate runs a failed batch again on a fresh instance, one record at a
// time, until one fails.
func (n *node) isolate(batchErr error, input int, entries []byte, count int, first int64) error {
	if err := n.freshInstance(); err != nil {
		return err
	}
	off := 0
	for i := range count {
		size := entrySize(entries[off:])
		out, err := n.invoke(wasmabi.MethodProcess, entries[off:off+size], 1, input)
		if err != nil {
			var werr *wasmhost.Error
			if !errors.As(err, &werr) || !retryable(werr) {
				return err
			}
			if n.spec.OnError == "" || n.spec.OnError == OnErrorFail {
				werr.Policy = ""
				return n.locate(err, entries, count, i, first)
			}
			if werr.Poisoning() {
				if ferr := n.freshInstance(); ferr != nil {
					return ferr
				}
			}
			n.locate(err, entries[off:], 1, 0, first+int64(i))
			return n.applyPolicy(err, input, entries[off:], count-i, first+int64(i))
		}
		if err := n.route(out); err != nil {
			return err
		}
		off += size
	}
	// Record by record, nothing failed: the batch's failure was the
	// batch's (its output as a whole, a time limit over all of it).
	n.t.run.log.Warn("a failed batch succeeded record by record", "operator", n.spec.UID, "subtask", n.t.index, "error", batchErr)
	return nil
}

// applyPolicy skips or diverts the first of count entries (at offset first
// of the input), which failed with err, and processes the rest.
func (n *node) applyPolicy(err error, input int, entries []byte, count int, first int64) error {
	size := entrySize(entries)
	bad := entries[:size]
	if n.spec.OnError == OnErrorDivert {
		if p := n.portOf("errors"); p > 0 {
			if err := n.deliver(p, bad, 1); err != nil {
				return err
			}
		}
	}
	n.t.run.counters.add(n.spec.UID+".records_failed", 1)
	n.t.run.log.Warn("record failed", "operator", n.spec.UID, "subtask", n.t.index, "offset", first, "error", err, "policy", string(n.spec.OnError))
	if rest := entries[size:]; len(rest) > 0 {
		return n.receivePart(input, rest, count-1, first+1)
	}
	return nil
}

// receivePart processes count entries the node has seen already, the
// first at offset first (part of a batch being retried).
func (n *node) receivePart(input int, entries []byte, count int, first int64) error {
	out, err := n.invoke(wasmabi.MethodProcess, entries, count, input)
	if err != nil {
		return n.recordErrorAt(err, input, entries, count, first)
	}
	return n.route(out)
}

// freshInstance replaces the node's instance with a new one, opened.
func (n *node) freshInstance() error {
	if n.op != nil {
		n.op.Close()
	}
	n.op, n.direct = nil, nil
	op, err := n.spec.New(n.t.ctx, n.t.index, n.svc)
	if err != nil {
		return n.annotate(err)
	}
	n.op = op
	n.direct, _ = op.(directOperator)
	n.meter()
	if err := op.Open(n.spec.Params); err != nil {
		return n.annotate(err)
	}
	return nil
}
