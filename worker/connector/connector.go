// Package connector defines how records enter and leave a job: sources that
// read records into batches and sinks that write them out. Connectors
// register themselves with a Spec (name, kind, options with defaults and
// help) so job specs can be validated against them and `weir connectors`
// can list them.
package connector

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/weirstream/weir/wasmabi"
)

// Kind says whether a connector reads or writes.
type Kind string

const (
	KindSource Kind = "source"
	KindSink   Kind = "sink"
)

// OptionType is the type of an option's value in a job spec.
type OptionType string

const (
	TypeString   OptionType = "string"
	TypeInt      OptionType = "int"
	TypeBool     OptionType = "bool"
	TypeDuration OptionType = "duration" // "250ms", "10s", or an int in ms
)

// Option describes one option of a connector.
type Option struct {
	Name     string     `json:"name"`
	Type     OptionType `json:"type"`
	Default  string     `json:"default,omitempty"`
	Required bool       `json:"required,omitempty"`
	Enum     []string   `json:"enum,omitempty"` // allowed values of a string option
	Help     string     `json:"help"`
}

// Spec describes a connector.
type Spec struct {
	Name    string   `json:"name"`
	Kind    Kind     `json:"kind"`
	Help    string   `json:"help"`
	Options []Option `json:"options"`
	// Keyed reports whether a source with these (validated, defaulted)
	// options emits records with keys, so key_by edges from it make sense.
	Keyed func(o Options) bool `json:"-"`
	// Bounded reports whether a source with these options ends by itself.
	Bounded func(o Options) bool `json:"-"`
	// Check, when set, validates option values beyond their types (ranges,
	// combinations). ParseOptions calls it after applying defaults, so job
	// spec validation catches these mistakes before the job runs.
	Check func(o Options) error `json:"-"`

	NewSource func(o Options, sub Subtask) (Source, error) `json:"-"`
	NewSink   func(o Options, sub Subtask) (Sink, error)   `json:"-"`
}

// Subtask says which parallel instance a connector runs as.
type Subtask struct {
	Index       int // 0-based
	Parallelism int
	// Dir is a directory the job may write under (relative sink paths are
	// resolved against the job spec's directory by the caller).
	Dir string
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
	// records read so far (a byte offset, an event number). Opaque.
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

// Options are a connector's options after validation, by name, with
// defaults applied.
type Options map[string]any

// String returns a string option ("" when absent).
func (o Options) String(name string) string { s, _ := o[name].(string); return s }

// Int returns an int option (0 when absent).
func (o Options) Int(name string) int64 { n, _ := o[name].(int64); return n }

// Bool returns a bool option.
func (o Options) Bool(name string) bool { b, _ := o[name].(bool); return b }

// Duration returns a duration option.
func (o Options) Duration(name string) time.Duration { d, _ := o[name].(time.Duration); return d }

var (
	mu sync.RWMutex
	// registry holds the connectors by kind and name: a source and a sink
	// may share a name (the "file" source and the "file" sink).
	registry = map[regKey]*Spec{}
)

type regKey struct {
	kind Kind
	name string
}

// Register adds a connector; it panics on a duplicate kind and name, like
// database/sql.Register. A source and a sink may share a name.
func Register(s *Spec) {
	mu.Lock()
	defer mu.Unlock()
	k := regKey{s.Kind, s.Name}
	if _, dup := registry[k]; dup {
		panic(fmt.Sprintf("connector: %s %q registered twice", s.Kind, s.Name))
	}
	registry[k] = s
}

// Lookup returns the named connector. When a source and a sink share the
// name it returns the source; use LookupKind to say which one you mean.
func Lookup(name string) (*Spec, bool) {
	if s, ok := LookupKind(KindSource, name); ok {
		return s, true
	}
	return LookupKind(KindSink, name)
}

// LookupKind returns the connector of the given kind and name: job specs
// look sources up with KindSource and sinks with KindSink.
func LookupKind(kind Kind, name string) (*Spec, bool) {
	mu.RLock()
	defer mu.RUnlock()
	s, ok := registry[regKey{kind, name}]
	return s, ok
}

// All returns every registered connector, sorted by kind then name.
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
