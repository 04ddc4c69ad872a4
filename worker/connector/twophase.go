package connector

// TwoPhaseSink is a Sink whose output is exactly-once end to end: what it
// writes between two checkpoints is one transaction, pre-committed (durable,
// not yet visible) at the checkpoint's barrier and committed (made visible)
// when the checkpoint coordinator reports the checkpoint complete. After a
// failure the job restarts from the latest completed checkpoint; the sink is
// handed the states it returned from PreCommit then (Subtask.SinkRestore),
// commits again what they name (idempotently: a commit that had happened is
// a no-op) and aborts what no completed checkpoint names, so records the
// restart replays are written once.
//
// Every method is called on the subtask's goroutine, between Writes.
// Flush is the end of input: no Write follows, and what is still open
// waits for the next PreCommit, that of the job's final checkpoint, taken
// once every subtask ended its input. Close (after a failure, a cancel or
// the final commit) aborts only the open transaction; pre-committed ones
// stay for a Commit or a restore. The file sink (see CommittedParts) is
// one.
type TwoPhaseSink interface {
	Sink
	// PreCommit ends the open transaction at the barrier of checkpoint:
	// it makes what was written since the last PreCommit durable but not
	// visible, starts a new transaction, and returns the sink's state for
	// the checkpoint: every transaction pre-committed and not yet
	// committed, enough for Commit after a restart in another process.
	PreCommit(checkpoint uint64) (state []byte, err error)
	// Commit makes visible every transaction pre-committed at
	// checkpoint or before. Committing again, or a checkpoint whose
	// transactions were committed already, is a no-op; a notification
	// that never comes is covered by the next one.
	Commit(checkpoint uint64) error
}

// SinkState is one subtask's PreCommit state in the checkpoint a job
// restores from, with the index of the subtask that returned it.
type SinkState struct {
	Index int
	State []byte
}

// RestoreStates returns the sink states subtask index of parallelism takes
// over on restore: those of the old subtasks whose index is index modulo
// parallelism, so each old subtask's transactions are committed (or
// aborted) by exactly one new subtask at any parallelism.
func RestoreStates(all []SinkState, index, parallelism int) []SinkState {
	var out []SinkState
	for _, s := range all {
		if s.Index%parallelism == index {
			out = append(out, s)
		}
	}
	return out
}
