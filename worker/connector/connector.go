// Package connector holds the worker's side of connectors: the sources
// that read records into batches and the sinks that write them out, and
// the factories that make them. What a job spec may say about a connector
// (its name, kind and option schema) lives in internal/connspec, which the
// coordinator uses without importing this package; each factory here is
// registered under the kind and name of a spec there.
package connector

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/weirstream/weir/internal/connspec"
	"github.com/weirstream/weir/internal/splits"
	"github.com/weirstream/weir/wasmabi"
)

// Options are a connector's validated, typed options (connspec.Options):
// an alias, so factories and the task runtime name them from here.
type Options = connspec.Options

// Kind says whether a connector reads or writes (connspec.Kind).
type Kind = connspec.Kind

const (
	KindSource = connspec.KindSource
	KindSink   = connspec.KindSink
)

// Spec is a connector the worker can run: the kind and name of its spec in
// internal/connspec and the factory that makes its subtasks (NewSource for
// a source, NewSink for a sink). Tests may build one without registering
// it, as a double for the task runtime.
type Spec struct {
	Name string
	Kind Kind

	NewSource func(o Options, sub Subtask) (Source, error)
	NewSink   func(o Options, sub Subtask) (Sink, error)
}

// Subtask says which parallel instance a connector runs as.
type Subtask struct {
	Index       int // 0-based
	Parallelism int
	// Dir is a directory the job may write under (relative sink paths are
	// resolved against the job spec's directory by the caller).
	Dir string
	// Restore, for a source, is the state of the splits this subtask
	// resumes: splits.Assign over the Snapshots of every subtask of the
	// source in the checkpoint, at whatever parallelism they ran. It may
	// hold no split at all (more subtasks than splits). nil starts
	// afresh: the source enumerates its splits from its options
	// (splits.Enumerate) and reads those splits.Owner gives this subtask.
	Restore *splits.Snapshot
	// SinkRestore, for a TwoPhaseSink, is the PreCommit states it takes
	// over from the checkpoint the job restores from (see RestoreStates);
	// Restoring is true whenever the job restores from one, even if no
	// state is handed to this subtask, so that the sink aborts leftover
	// transactions of its own that no checkpoint names.
	SinkRestore []SinkState
	Restoring   bool
	// Exactly, for a sink, says the job takes checkpoints: a
	// TwoPhaseSink writes transactions committed by Commit; without it
	// a sink writes as it did before (committing at end of input).
	Exactly bool
}

// Source produces records. One Source per source subtask; the task calls
// it from one goroutine.
type Source interface {
	// Read appends up to max records to b and returns how many it
	// appended. It returns io.EOF (with n >= 0) after the last record of a
	// bounded source. It may block, but must return when ctx is done. A
	// source with nothing to give yet returns 0 and nil after at most
	// about 100 ms, so the task can emit watermarks and check idleness.
	Read(ctx context.Context, b *Batch, max int) (n int, err error)
	// Offset is the source's position: the state to resume from after the
	// records read so far, opaque (for a SplitSource, its encoded
	// Snapshot).
	Offset() []byte
	// Close releases the source.
	Close() error
}

// Sink consumes records.
type Sink interface {
	// Write consumes the entries of one batch body (wasmabi entries, no
	// batch header; only EntryRecord entries reach a sink). The bytes are
	// only valid during the call.
	Write(entries []byte, count int) error
	// Flush makes written records durable/visible (end of job, later
	// checkpoints).
	Flush() error
	Close() error
}

// Batch is a growing buffer of encoded record entries.
type Batch struct {
	Buf   []byte // wasmabi entries
	Count int
}

// Reset empties b, keeping its memory.
func (b *Batch) Reset() { b.Buf, b.Count = b.Buf[:0], 0 }

// Append adds one record.
func (b *Batch) Append(key, value []byte, ts int64) {
	e := wasmabi.Entry{Kind: wasmabi.EntryRecord, Key: key, Value: value, Timestamp: ts}
	b.Buf = wasmabi.AppendEntry(b.Buf, &e)
	b.Count++
}

var (
	mu sync.RWMutex
	// registry holds the factories by kind and name, as connspec holds
	// the specs.
	registry = map[regKey]*Spec{}
)

type regKey struct {
	kind Kind
	name string
}

// Register adds a connector's factory. It panics, like
// database/sql.Register, on a duplicate kind and name, on a factory that
// does not match its kind, and on a name internal/connspec has no spec of
// that kind for: the coordinator validates job specs against connspec, so
// a factory without a spec could never be named.
func Register(s *Spec) {
	if _, ok := connspec.LookupKind(s.Kind, s.Name); !ok {
		panic(fmt.Sprintf("connector: %s %q has no spec in internal/connspec", s.Kind, s.Name))
	}
	if (s.Kind == KindSource) != (s.NewSource != nil) || (s.Kind == KindSink) != (s.NewSink != nil) {
		panic(fmt.Sprintf("connector: %s %q: want exactly the constructor of its kind", s.Kind, s.Name))
	}
	mu.Lock()
	defer mu.Unlock()
	k := regKey{s.Kind, s.Name}
	if _, dup := registry[k]; dup {
		panic(fmt.Sprintf("connector: %s %q registered twice", s.Kind, s.Name))
	}
	registry[k] = s
}

// LookupKind returns the factory of the connector of the given kind and
// name.
func LookupKind(kind Kind, name string) (*Spec, bool) {
	mu.RLock()
	defer mu.RUnlock()
	s, ok := registry[regKey{kind, name}]
	return s, ok
}

// All returns every registered factory, sorted by kind then name.
func All() []*Spec {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]*Spec, 0, len(registry))
	for _, s := range registry {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// ErrUnknown is returned by Open for a connector this worker has no spec
// or no factory for.
var ErrUnknown = errors.New("connector: unknown connector")

// Open finds the connector of the given kind and name and decodes its
// options from the serialisable form a deployment descriptor carries,
// checking them against the connector's spec in internal/connspec (the
// same check the coordinator made). The returned Spec's constructor takes
// the returned Options.
func Open(kind Kind, name string, raw connspec.Raw) (*Spec, Options, error) {
	cs, ok := connspec.LookupKind(kind, name)
	if !ok {
		return nil, nil, fmt.Errorf("opening %s %q: %w (this worker knows: %s)", kind, name, ErrUnknown, strings.Join(connspec.Names(kind), ", "))
	}
	f, ok := LookupKind(kind, name)
	if !ok {
		return nil, nil, fmt.Errorf("opening %s %q: %w: no factory in this worker", kind, name, ErrUnknown)
	}
	o, err := cs.Decode(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("opening %s %q: %w", kind, name, err)
	}
	return f, o, nil
}
