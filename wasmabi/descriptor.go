package wasmabi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Descriptor is what a module says about itself from weir_describe, as JSON:
//
//	{"sdk": "go/0.1",
//	 "operators": [{"name": "split", "kind": "flat_map"},
//	               {"name": "count", "kind": "process", "side_outputs": ["late"]}]}
//
// The operator's position in Operators is the op argument of weir_call.
type Descriptor struct {
	SDK       string         `json:"sdk,omitempty"`
	Operators []OperatorDesc `json:"operators"`
}

// OperatorDesc describes one exported operator.
type OperatorDesc struct {
	Name        string   `json:"name"`
	Kind        Kind     `json:"kind"`
	SideOutputs []string `json:"side_outputs,omitempty"`
}

// Limits on a descriptor, so a hostile module cannot make the host allocate
// without bound.
const (
	MaxDescriptorBytes = 64 << 10
	MaxOperators       = 256
	MaxNameLen         = 128
	MaxSideOutputs     = 64
)

// ErrDescriptor is wrapped by every descriptor validation error.
var ErrDescriptor = errors.New("wasmabi: invalid descriptor")

// ParseDescriptor decodes and validates a descriptor.
func ParseDescriptor(b []byte) (*Descriptor, error) {
	if len(b) > MaxDescriptorBytes {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrDescriptor, len(b), MaxDescriptorBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var d Descriptor
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDescriptor, err)
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return &d, nil
}

// Validate checks names, kinds and limits.
func (d *Descriptor) Validate() error {
	if len(d.Operators) == 0 {
		return fmt.Errorf("%w: no operators", ErrDescriptor)
	}
	if len(d.Operators) > MaxOperators {
		return fmt.Errorf("%w: %d operators, more than %d", ErrDescriptor, len(d.Operators), MaxOperators)
	}
	seen := make(map[string]bool, len(d.Operators))
	for i, op := range d.Operators {
		if err := validName(op.Name); err != nil {
			return fmt.Errorf("%w: operator %d: %v", ErrDescriptor, i, err)
		}
		if seen[op.Name] {
			return fmt.Errorf("%w: operator %q declared twice", ErrDescriptor, op.Name)
		}
		seen[op.Name] = true
		if !op.Kind.Valid() {
			return fmt.Errorf("%w: operator %q: unknown kind %q (want map, filter, flat_map, process, aggregate or co_process)", ErrDescriptor, op.Name, op.Kind)
		}
		if len(op.SideOutputs) > MaxSideOutputs {
			return fmt.Errorf("%w: operator %q: %d side outputs, more than %d", ErrDescriptor, op.Name, len(op.SideOutputs), MaxSideOutputs)
		}
		for _, s := range op.SideOutputs {
			if err := validName(s); err != nil {
				return fmt.Errorf("%w: operator %q: side output: %v", ErrDescriptor, op.Name, err)
			}
		}
	}
	return nil
}

// Operator returns the index and description of the named operator.
func (d *Descriptor) Operator(name string) (int, *OperatorDesc, bool) {
	for i := range d.Operators {
		if d.Operators[i].Name == name {
			return i, &d.Operators[i], true
		}
	}
	return -1, nil, false
}

// Names lists the operator names, in order.
func (d *Descriptor) Names() []string {
	out := make([]string, len(d.Operators))
	for i, op := range d.Operators {
		out[i] = op.Name
	}
	return out
}

func validName(s string) error {
	if s == "" {
		return errors.New("empty name")
	}
	if len(s) > MaxNameLen {
		return fmt.Errorf("name of %d bytes, more than %d", len(s), MaxNameLen)
	}
	for _, c := range []byte(s) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
		if !ok {
			return fmt.Errorf("name %q: only letters, digits, '_', '-' and '.' are allowed", s)
		}
	}
	return nil
}
