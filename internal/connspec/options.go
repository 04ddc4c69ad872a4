package connspec

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/weirstream/weir/internal/suggest"
)

// ParseOptions validates the options a job spec gives a connector and
// returns them typed, with defaults applied: TypeString values are string,
// TypeInt int64, TypeBool bool and TypeDuration time.Duration.
//
// raw comes from YAML or JSON: strings, any Go integer type, float64 (a
// whole number is accepted where an int or a duration is expected, as JSON
// decoders produce them), json.Number (as Raw decodes numbers) and bool. A duration is a Go duration string
// ("250ms", "10s") or an integer number of milliseconds; negative durations
// are refused.
//
// It reports every problem it finds, joined, each as a plain
// `option "name": what is wrong` message (the job spec adds file:line):
// unknown options (with the known ones listed), wrong types, values outside
// an Enum, missing Required options, and whatever the Spec's Check says.
func (s *Spec) ParseOptions(raw map[string]any) (Options, error) {
	var errs []error
	names := make([]string, 0, len(raw))
	for name := range raw {
		names = append(names, name)
	}
	sort.Strings(names)
	out := make(Options, len(s.Options))
	for _, name := range names {
		opt := s.option(name)
		if opt == nil {
			errs = append(errs, s.unknownOption(name))
			continue
		}
		v, err := convert(opt, raw[name])
		if err != nil {
			errs = append(errs, fmt.Errorf("option %q: %w", name, err))
			continue
		}
		out[name] = v
	}
	for i := range s.Options {
		opt := &s.Options[i]
		if _, given := raw[opt.Name]; given {
			continue
		}
		if opt.Required {
			errs = append(errs, fmt.Errorf("option %q: required by %s %q (%s)", opt.Name, s.Kind, s.Name, opt.Help))
			continue
		}
		v, err := opt.defaultValue()
		if err != nil {
			// A bug in the connector, not in the job spec.
			errs = append(errs, fmt.Errorf("option %q: connector %q has a bad default: %w", opt.Name, s.Name, err))
			continue
		}
		out[opt.Name] = v
	}
	if len(errs) == 0 && s.Check != nil {
		if err := s.Check(out); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// Validate checks the Spec itself: a name, a known kind, well-formed
// options whose defaults parse and belong to their Enum. Tests call it on
// every registered connector.
func (s *Spec) Validate() error {
	var errs []error
	if s.Name == "" {
		errs = append(errs, errors.New("connspec: spec without a name"))
	}
	switch s.Kind {
	case KindSource, KindSink:
	default:
		errs = append(errs, fmt.Errorf("connector %q: unknown kind %q", s.Name, s.Kind))
	}
	seen := map[string]bool{}
	for i := range s.Options {
		o := &s.Options[i]
		if seen[o.Name] {
			errs = append(errs, fmt.Errorf("connector %q: option %q listed twice", s.Name, o.Name))
		}
		seen[o.Name] = true
		switch o.Type {
		case TypeString, TypeInt, TypeBool, TypeDuration:
		default:
			errs = append(errs, fmt.Errorf("connector %q: option %q has unknown type %q", s.Name, o.Name, o.Type))
			continue
		}
		if o.Help == "" {
			errs = append(errs, fmt.Errorf("connector %q: option %q has no help", s.Name, o.Name))
		}
		if !o.Required {
			if _, err := o.defaultValue(); err != nil {
				errs = append(errs, fmt.Errorf("connector %q: option %q: default: %w", s.Name, o.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (s *Spec) option(name string) *Option {
	for i := range s.Options {
		if s.Options[i].Name == name {
			return &s.Options[i]
		}
	}
	return nil
}

func (s *Spec) unknownOption(name string) error {
	known := make([]string, len(s.Options))
	for i, o := range s.Options {
		known[i] = o.Name
	}
	sort.Strings(known)
	if len(known) == 0 {
		return fmt.Errorf("option %q: unknown; %s %q takes no options", name, s.Kind, s.Name)
	}
	hint := ""
	if best, d := suggest.Closest(name, known); best != "" && d <= max(2, len(name)/3) && d < len(name) {
		hint = fmt.Sprintf("did you mean %q? ", best)
	}
	return fmt.Errorf("option %q: unknown option of %s %q; %s(known: %s)", name, s.Kind, s.Name, hint, strings.Join(known, ", "))
}

// defaultValue is the typed default of o: its Default parsed, or the zero
// value of its type when Default is empty.
func (o *Option) defaultValue() (any, error) {
	var v any
	if o.Default == "" {
		switch o.Type {
		case TypeString:
			v = ""
		case TypeInt:
			v = int64(0)
		case TypeBool:
			v = false
		case TypeDuration:
			v = time.Duration(0)
		}
	} else {
		var err error
		switch o.Type {
		case TypeString:
			v = o.Default
		case TypeInt:
			v, err = strconv.ParseInt(o.Default, 10, 64)
		case TypeBool:
			v, err = strconv.ParseBool(o.Default)
		case TypeDuration:
			v, err = parseDuration(o.Default)
		}
		if err != nil {
			return nil, err
		}
	}
	if o.Type == TypeString && len(o.Enum) > 0 && !contains(o.Enum, v.(string)) {
		return nil, fmt.Errorf("%q is not one of %s", v, strings.Join(o.Enum, ", "))
	}
	return v, nil
}

// convert checks raw against o's type and returns the typed value.
func convert(o *Option, raw any) (any, error) {
	switch o.Type {
	case TypeString:
		s, ok := raw.(string)
		if !ok {
			return nil, wrongType(o, raw)
		}
		if len(o.Enum) > 0 && !contains(o.Enum, s) {
			return nil, fmt.Errorf("%q is not one of %s", s, strings.Join(o.Enum, ", "))
		}
		return s, nil
	case TypeInt:
		n, ok, err := toInt64(raw)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, wrongType(o, raw)
		}
		return n, nil
	case TypeBool:
		b, ok := raw.(bool)
		if !ok {
			return nil, wrongType(o, raw)
		}
		return b, nil
	case TypeDuration:
		var d time.Duration
		if s, ok := raw.(string); ok {
			var err error
			if d, err = parseDuration(s); err != nil {
				return nil, err
			}
		} else {
			ms, ok, err := toInt64(raw)
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, wrongType(o, raw)
			}
			if ms < 0 {
				return nil, fmt.Errorf("negative duration %dms", ms)
			}
			if ms > math.MaxInt64/int64(time.Millisecond) {
				return nil, fmt.Errorf("duration %dms is too long", ms)
			}
			d = time.Duration(ms) * time.Millisecond
		}
		return d, nil
	}
	return nil, fmt.Errorf("option of unknown type %q", o.Type)
}

func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		// An integer in a string is still milliseconds.
		if ms, err2 := strconv.ParseInt(s, 10, 64); err2 == nil && ms >= 0 && ms <= math.MaxInt64/int64(time.Millisecond) {
			return time.Duration(ms) * time.Millisecond, nil
		}
		return 0, fmt.Errorf("%q is not a duration (want e.g. \"250ms\", \"10s\", or an integer of ms)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("negative duration %s", s)
	}
	return d, nil
}

// toInt64 converts any Go integer, or a float64/float32 holding a whole
// number, to int64. ok is false for other types; err reports a value of a
// numeric type that does not fit.
func toInt64(raw any) (n int64, ok bool, err error) {
	switch v := raw.(type) {
	case int:
		return int64(v), true, nil
	case int8:
		return int64(v), true, nil
	case int16:
		return int64(v), true, nil
	case int32:
		return int64(v), true, nil
	case int64:
		return v, true, nil
	case uint:
		return fromUint(uint64(v))
	case uint8:
		return int64(v), true, nil
	case uint16:
		return int64(v), true, nil
	case uint32:
		return int64(v), true, nil
	case uint64:
		return fromUint(v)
	case float32:
		return fromFloat(float64(v))
	case float64:
		return fromFloat(v)
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n, true, nil
		}
		f, err := v.Float64()
		if err != nil {
			return 0, true, fmt.Errorf("%s is out of the int64 range", v)
		}
		return fromFloat(f)
	}
	return 0, false, nil
}

func fromUint(v uint64) (int64, bool, error) {
	if v > math.MaxInt64 {
		return 0, true, fmt.Errorf("%d is too large (max %d)", v, int64(math.MaxInt64))
	}
	return int64(v), true, nil
}

func fromFloat(f float64) (int64, bool, error) {
	if f != math.Trunc(f) || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, true, fmt.Errorf("want an integer, got %v", f)
	}
	if f < -(1<<63) || f >= 1<<63 {
		return 0, true, fmt.Errorf("%v is out of the int64 range", f)
	}
	return int64(f), true, nil
}

func wrongType(o *Option, raw any) error {
	want := string(o.Type)
	switch o.Type {
	case TypeDuration:
		want = `duration (a string like "250ms" or an integer of ms)`
	case TypeInt:
		want = "integer"
	}
	return fmt.Errorf("want %s, got %s %s", want, typeName(raw), shortValue(raw))
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "bool"
	case float32, float64, json.Number:
		return "number"
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return "integer"
	case []any:
		return "list"
	case map[string]any, map[any]any:
		return "map"
	}
	return fmt.Sprintf("%T", v)
}

func shortValue(v any) string {
	s := fmt.Sprintf("%#v", v)
	if _, ok := v.(string); ok {
		s = strconv.Quote(v.(string))
	}
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	return s
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
