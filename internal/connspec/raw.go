package connspec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"
)

// Raw are a connector's options in the form that travels: JSON-compatible
// values only, so a deployment descriptor can carry them and the worker
// can check them again against the same Spec. In the canonical form
// Normalize and Encode produce, a string option is a string, a bool a
// bool, an int a json.Number holding a decimal integer (exact for the
// whole int64 range, where a float64 would round above 2^53) and a
// duration a Go duration string ("1m30s"). Every option of the Spec is
// present, defaults applied, so the worker uses the coordinator's
// defaults even if its own build had others.
//
// Raw marshals with encoding/json as a plain object. Its UnmarshalJSON
// keeps numbers as json.Number, so canonical options decode to a Raw
// equal to the one encoded.
type Raw map[string]any

// UnmarshalJSON decodes a JSON object, keeping numbers exact.
func (r *Raw) UnmarshalJSON(b []byte) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return fmt.Errorf("connspec: decoding options: %w", err)
	}
	if m == nil && !bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		return fmt.Errorf("connspec: decoding options: want a JSON object")
	}
	*r = m
	return nil
}

// Normalize validates the options a job spec gives the connector, as
// ParseOptions does (every problem reported, each naming its option), and
// returns them in canonical Raw form with defaults applied. It is what the
// coordinator puts into a deployment descriptor.
func (s *Spec) Normalize(given map[string]any) (Raw, error) {
	o, err := s.ParseOptions(given)
	if err != nil {
		return nil, err
	}
	return s.Encode(o), nil
}

// Encode returns validated options (from ParseOptions or Decode) in
// canonical Raw form. Values of options the Spec does not list are left
// out; a value whose type does not match its option (a caller's bug) is
// kept as it is, so Decode reports it.
func (s *Spec) Encode(o Options) Raw {
	out := make(Raw, len(o))
	names := make([]string, 0, len(o))
	for name := range o {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		opt := s.option(name)
		if opt == nil {
			continue
		}
		v := o[name]
		switch opt.Type {
		case TypeInt:
			if n, ok := v.(int64); ok {
				v = json.Number(strconv.FormatInt(n, 10))
			}
		case TypeDuration:
			if d, ok := v.(time.Duration); ok {
				v = d.String()
			}
		}
		out[name] = v
	}
	return out
}

// Decode checks options received in Raw form (from a deployment
// descriptor: treat them as outside input) against the Spec and returns
// them typed. It accepts what ParseOptions accepts, so canonical Raw from
// Normalize decodes to exactly the Options ParseOptions gives for the same
// job spec options.
func (s *Spec) Decode(r Raw) (Options, error) {
	o, err := s.ParseOptions(r)
	if err != nil {
		return nil, fmt.Errorf("decoding options of %s %q: %w", s.Kind, s.Name, err)
	}
	return o, nil
}
