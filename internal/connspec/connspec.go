// Package connspec describes the connectors a job can name: their names,
// kinds, option schemas (type, default, required, allowed values, help),
// the validation of a job spec's options against them, and the
// serialisable form options travel in from the coordinator to a worker.
//
// It is a leaf shared by both sides: the coordinator validates job specs
// and lists connectors with it, the worker decodes a deployment
// descriptor's options with it, and only the worker (worker/connector)
// holds the factories that make sources and sinks. It imports neither
// coordinator/ nor worker/.
package connspec

import (
	"fmt"
	"sort"
	"sync"
	"time"
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

// Spec describes a connector: what a job spec may say about it. The
// functions are pure functions of the options, so the coordinator can ask
// them without any of the worker's code.
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
}

// Options are a connector's options after validation, by name, with
// defaults applied and typed: TypeString values are string, TypeInt
// int64, TypeBool bool and TypeDuration time.Duration. They are what
// factories take; they do not survive JSON (see Raw for that).
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
	// registry holds the specs by kind and name: a source and a sink may
	// share a name (the "file" source and the "file" sink).
	registry = map[regKey]*Spec{}
)

type regKey struct {
	kind Kind
	name string
}

// Register adds a connector spec; it panics on a duplicate kind and name,
// like database/sql.Register. The built-in connectors register themselves
// in this package; tests and embedders may add their own.
func Register(s *Spec) {
	mu.Lock()
	defer mu.Unlock()
	k := regKey{s.Kind, s.Name}
	if _, dup := registry[k]; dup {
		panic(fmt.Sprintf("connspec: %s %q registered twice", s.Kind, s.Name))
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

// Names returns the names of the registered connectors of a kind, sorted.
func Names(kind Kind) []string {
	var names []string
	for _, s := range All() {
		if s.Kind == kind {
			names = append(names, s.Name)
		}
	}
	return names
}
