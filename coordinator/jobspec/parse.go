package jobspec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/weirstream/weir/internal/api"
	"github.com/weirstream/weir/internal/barrier"
)

// MaxSpecBytes bounds the size of a job spec file.
const MaxSpecBytes = 4 << 20

// MaxNodes bounds the number of sources, of operators and of sinks.
const MaxNodes = 10_000

// maxValues bounds the values options and params may expand to, aliases
// included, so a small hostile spec cannot make Parse allocate without
// bound ("billion laughs").
const maxValues = 100_000

// Load reads and parses the job spec at path; relative paths in it are
// resolved against path's folder.
func Load(path string) (*Job, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading job spec: %w", err)
	}
	return Parse(data, path)
}

// Parse parses and validates a job spec (YAML, or JSON, which is YAML).
// filename is used in errors and its folder resolves the spec's relative
// paths (modules, state.dir); "" means the current folder.
//
// On any problem Parse returns a nil Job and every problem it found, each
// an *Error, joined with errors.Join and sorted by position (see Errors).
func Parse(data []byte, filename string) (*Job, error) {
	return parseWith(&parser{file: filename}, data)
}

// ParseRemote parses a spec that arrived over the network (a job
// submitted to a coordinator): filename is only a name for errors,
// relative paths resolve against dir (the submitter's folder; "" means
// the current one), and every module must name a registry module: a local
// path is an error, never looked up, since the coordinator's filesystem is
// not the submitter's.
func ParseRemote(data []byte, filename, dir string) (*Job, error) {
	return parseWith(&parser{file: filename, dir: dir, remote: true}, data)
}

func parseWith(p *parser, data []byte) (*Job, error) {
	filename := p.file
	p.bad, p.pos, p.budget = map[string]bool{}, map[string]Pos{}, maxValues
	root, err := p.document(data)
	if err != nil {
		return nil, err
	}
	j := p.decodeJob(root)
	p.validate(j)
	if len(p.errs) > 0 {
		sortErrors(p.errs)
		return nil, errors.Join(truncate(p.errs, filename)...)
	}
	return j, nil
}

// parser decodes the YAML node tree into a Job, recording positions and
// collecting errors.
type parser struct {
	file string
	dir  string // resolves relative paths; "" means file's folder
	// remote is true for specs from the network (ParseRemote).
	remote bool
	errs   []error
	// bad holds the field paths that had an error, so validation does not
	// pile a second error ("required") on a field already reported.
	bad    map[string]bool
	pos    map[string]Pos
	budget int // values options and params may still expand to
	spec   *Job
	raws   []*rawNode
	// checkpoints is true when the spec has a checkpoints block.
	checkpoints bool
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// document parses data into its single YAML document's root node.
func (p *parser) document(data []byte) (*yaml.Node, error) {
	if len(data) > MaxSpecBytes {
		return nil, &Error{File: p.file, Msg: fmt.Sprintf("job spec is %d bytes, more than the limit of %d", len(data), MaxSpecBytes)}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: p.file, Msg: "empty job spec; see docs/jobspec.md for the format"}
		}
		return nil, p.yamlError(err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		return nil, &Error{File: p.file, Line: next.Line, Col: next.Column, Msg: "more than one YAML document; a job spec is one document"}
	} else if !errors.Is(err, io.EOF) {
		return nil, p.yamlError(err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, &Error{File: p.file, Msg: "empty job spec; see docs/jobspec.md for the format"}
	}
	return doc.Content[0], nil
}

func (p *parser) yamlError(err error) error {
	msg := err.Error()
	var errs []error
	for _, line := range strings.Split(msg, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line == "yaml: unmarshal errors:" {
			continue
		}
		e := &Error{File: p.file, Msg: line}
		if m := yamlLineRE.FindStringSubmatch(line); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			e.Col = 1
			e.Msg = m[2]
			if strings.HasPrefix(e.Msg, "did not find expected") {
				// yaml reports these at the 0-based line of the block or
				// flow they are in; +1 names that line or the bad one.
				e.Line++
			}
		}
		errs = append(errs, e)
	}
	if len(errs) == 0 {
		return &Error{File: p.file, Msg: msg}
	}
	return errors.Join(errs...)
}

func (p *parser) at(n *yaml.Node) Pos { return Pos{File: p.file, Line: n.Line, Col: n.Column} }

// errorf reports a problem with field at node n.
func (p *parser) errorf(n *yaml.Node, field, format string, args ...any) {
	pos := p.at(n)
	p.errs = append(p.errs, &Error{File: pos.File, Line: pos.Line, Col: pos.Col, Field: field, Msg: fmt.Sprintf(format, args...)})
	p.bad[field] = true
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func join(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a map"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		v := n.Value
		if len(v) > 40 {
			v = v[:37] + "..."
		}
		switch n.Tag {
		case "!!str":
			return strconv.Quote(v)
		case "!!null":
			return "nothing"
		}
		return v
	}
	return "a " + n.Tag
}

// fields walks mapping n at path field. It records each key's position,
// reports keys that are not strings, repeated, or not in known (with the
// closest known one), and calls set for each known key whose value is not
// null. It returns false when n is not a mapping.
func (p *parser) fields(n *yaml.Node, field string, known []string, set func(key string, v *yaml.Node, f string)) bool {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		what := field
		if what == "" {
			what = "a job spec"
		}
		p.errorf(n, field, "want a map of fields, got %s (%s is a map: see docs/jobspec.md)", describe(n), what)
		return false
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.errorf(k, field, "a field name must be a string, got %s", describe(k))
			continue
		}
		f := join(field, k.Value)
		if seen[k.Value] {
			p.errorf(k, f, "field given twice; keep one")
			continue
		}
		seen[k.Value] = true
		if !contains(known, k.Value) {
			where := field
			if where == "" {
				where = "the job"
			}
			p.errorf(k, f, "unknown field %q%s (fields of %s: %s)", k.Value, didYouMean(k.Value, known), where, strings.Join(known, ", "))
			continue
		}
		p.pos[f] = p.at(k)
		if isNull(resolve(v)) {
			continue
		}
		set(k.Value, resolve(v), f)
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (p *parser) str(v *yaml.Node, f string, dst *string) bool {
	if v.Kind != yaml.ScalarNode {
		p.errorf(v, f, "want a string, got %s", describe(v))
		return false
	}
	*dst = v.Value
	return true
}

func (p *parser) integer(v *yaml.Node, f string, dst *int) bool {
	if v.Kind != yaml.ScalarNode || v.Tag != "!!int" {
		p.errorf(v, f, "want an integer, got %s", describe(v))
		return false
	}
	n, err := strconv.ParseInt(strings.ReplaceAll(v.Value, "_", ""), 0, 64)
	if err != nil || n < math.MinInt32 || n > math.MaxInt32 {
		p.errorf(v, f, "integer %s is out of range", v.Value)
		return false
	}
	*dst = int(n)
	return true
}

// number reads an integer or a finite decimal number.
func (p *parser) number(v *yaml.Node, f string, dst *float64) bool {
	if v.Kind != yaml.ScalarNode || (v.Tag != "!!int" && v.Tag != "!!float") {
		p.errorf(v, f, "want a number, got %s", describe(v))
		return false
	}
	x, err := strconv.ParseFloat(strings.ReplaceAll(v.Value, "_", ""), 64)
	if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
		p.errorf(v, f, "want a finite number, got %s", v.Value)
		return false
	}
	*dst = x
	return true
}

func (p *parser) boolean(v *yaml.Node, f string, dst *bool) bool {
	if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" {
		p.errorf(v, f, "want true or false, got %s", describe(v))
		return false
	}
	b, err := strconv.ParseBool(strings.ToLower(v.Value))
	if err != nil {
		p.errorf(v, f, "want true or false, got %s", describe(v))
		return false
	}
	*dst = b
	return true
}

// duration reads a Go duration string ("250ms", "1m30s") or an integer
// number of milliseconds; negative durations are refused.
func (p *parser) duration(v *yaml.Node, f string, dst *time.Duration) bool {
	d, err := parseDuration(v)
	if err != nil {
		p.errorf(v, f, "%v", err)
		return false
	}
	*dst = d
	return true
}

func parseDuration(v *yaml.Node) (time.Duration, error) {
	if v.Kind != yaml.ScalarNode {
		return 0, fmt.Errorf("want a duration (\"250ms\", \"10s\", or an integer of milliseconds), got %s", describe(v))
	}
	s := strings.TrimSpace(v.Value)
	if ms, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 64); err == nil {
		if ms < 0 {
			return 0, fmt.Errorf("negative duration %dms; want 0 or more", ms)
		}
		if ms > math.MaxInt64/int64(time.Millisecond) {
			return 0, fmt.Errorf("duration %dms is too long", ms)
		}
		return time.Duration(ms) * time.Millisecond, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s is not a duration; want e.g. \"250ms\", \"10s\", \"1m\", or an integer of milliseconds", describe(v))
	}
	if d < 0 {
		return 0, fmt.Errorf("negative duration %s; want 0 or more", s)
	}
	return d, nil
}

// value converts a YAML value to plain Go values for options and params:
// map[string]any, []any, string, int64, float64, bool and nil. Map keys
// must be strings (JSON has no other kind).
func (p *parser) value(v *yaml.Node, f string) (any, bool) {
	v = resolve(v)
	p.budget--
	if p.budget < 0 {
		if p.budget == -1 {
			p.errorf(v, f, "more than %d values (aliases included); make it smaller", maxValues)
		}
		return nil, false
	}
	switch v.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(v.Content)/2)
		ok := true
		for i := 0; i+1 < len(v.Content); i += 2 {
			k := resolve(v.Content[i])
			if k.Kind != yaml.ScalarNode || (k.Tag != "!!str" && k.Tag != "!!merge") {
				p.errorf(k, f, "map keys must be strings, got %s (quote it: \"%s\")", describe(k), k.Value)
				ok = false
				continue
			}
			kf := join(f, k.Value)
			if _, dup := m[k.Value]; dup {
				p.errorf(k, kf, "key given twice; keep one")
				ok = false
				continue
			}
			p.pos[kf] = p.at(k)
			x, good := p.value(v.Content[i+1], kf)
			ok = ok && good
			m[k.Value] = x
		}
		return m, ok
	case yaml.SequenceNode:
		s := make([]any, 0, len(v.Content))
		ok := true
		for i, c := range v.Content {
			x, good := p.value(c, fmt.Sprintf("%s[%d]", f, i))
			ok = ok && good
			s = append(s, x)
		}
		return s, ok
	case yaml.ScalarNode:
		switch v.Tag {
		case "!!null":
			return nil, true
		case "!!bool":
			var b bool
			if err := v.Decode(&b); err != nil {
				p.errorf(v, f, "%v", err)
				return nil, false
			}
			return b, true
		case "!!int":
			var n int64
			if err := v.Decode(&n); err != nil {
				p.errorf(v, f, "integer %s does not fit in 64 bits", v.Value)
				return nil, false
			}
			return n, true
		case "!!float":
			var x float64
			if err := v.Decode(&x); err != nil {
				p.errorf(v, f, "%v", err)
				return nil, false
			}
			if math.IsInf(x, 0) || math.IsNaN(x) {
				p.errorf(v, f, "%s has no JSON form; use a string", v.Value)
				return nil, false
			}
			return x, true
		}
		// !!str, !!timestamp, !!binary and custom tags: the text.
		return v.Value, true
	}
	p.errorf(v, f, "unsupported YAML value %s", describe(v))
	return nil, false
}

func (p *parser) options(v *yaml.Node, f string) map[string]any {
	if v.Kind != yaml.MappingNode {
		p.errorf(v, f, "want a map of options, got %s", describe(v))
		return nil
	}
	m, ok := p.value(v, f)
	if !ok {
		return nil
	}
	return m.(map[string]any)
}

var (
	jobFields      = []string{"name", "max_parallelism", "parallelism", "chaining", "state", "restart", "checkpoints", "modules", "sources", "operators", "sinks"}
	ckptFields     = []string{"interval", "timeout", "min_pause", "max_concurrent", "tolerable_failures", "mode", "alignment_timeout", "retained", "dir", "incremental"}
	stateFields    = []string{"backend", "dir", "ttl"}
	restartFields  = []string{"strategy", "attempts", "delay", "initial_delay", "max_delay", "multiplier", "reset_after", "jitter", "max_failures", "interval"}
	commonFields   = []string{"uid", "parallelism", "chain", "slot_sharing_group"}
	sourceFields   = append(commonFields[:len(commonFields):len(commonFields)], "connector", "options", "watermark")
	operatorFields = append(commonFields[:len(commonFields):len(commonFields)], "module", "operator", "params", "state_ttl", "on_error", "input", "inputs", "window")
	sinkFields     = append(commonFields[:len(commonFields):len(commonFields)], "connector", "options", "input", "inputs")
	inputFields    = []string{"from", "partition"}
	wmFields       = []string{"strategy", "max_out_of_orderness", "interval", "idle_timeout"}
	windowFields   = []string{"type", "size", "slide", "gap", "allowed_lateness", "late_output"}
)

// rawNode carries what validation needs beyond the Node: which optional
// fields the spec set.
type rawNode struct {
	node           *Node
	parallelismSet bool
	stateTTLSet    bool
	ascending      bool // watermark strategy "ascending"
	maxOOOSet      bool
	window         *yaml.Node // the window map, when given
	windowSet      map[string]bool
	hasInput       bool // the shorthand "input" was given
	hasInputs      bool
}

// decodeJob decodes the root mapping.
func (p *parser) decodeJob(root *yaml.Node) *Job {
	dir := "."
	switch {
	case p.dir != "":
		dir = p.dir
	case p.file != "":
		dir = filepath.Dir(p.file)
	}
	j := &Job{
		File: p.file, Dir: dir,
		MaxParallelism: DefaultMaxParallelism, Parallelism: DefaultParallelism, Chaining: true,
		State:   State{Backend: BackendHeap},
		Restart: Restart{Strategy: RestartNone, Attempts: DefaultRestartAttempts, Delay: DefaultRestartDelay},
		Checkpoints: Checkpoints{Timeout: DefaultCheckpointTimeout, MaxConcurrent: DefaultCheckpointMaxConcurrent,
			Mode: DefaultCheckpointMode, Retained: DefaultCheckpointRetained},
		pos: p.pos, nodes: map[string]*Node{},
	}
	p.spec = j
	p.pos[""] = p.at(root)
	var raws []*rawNode
	var modulesNode *yaml.Node
	p.fields(root, "", jobFields, func(key string, v *yaml.Node, f string) {
		switch key {
		case "name":
			p.str(v, f, &j.Name)
		case "max_parallelism":
			p.integer(v, f, &j.MaxParallelism)
		case "parallelism":
			p.integer(v, f, &j.Parallelism)
		case "chaining":
			p.boolean(v, f, &j.Chaining)
		case "state":
			p.fields(v, f, stateFields, func(key string, v *yaml.Node, f string) {
				switch key {
				case "backend":
					var s string
					p.str(v, f, &s)
					j.State.Backend = StateBackend(s)
				case "dir":
					p.str(v, f, &j.State.Dir)
				case "ttl":
					p.duration(v, f, &j.State.TTL)
				}
			})
		case "restart":
			p.fields(v, f, restartFields, func(key string, v *yaml.Node, f string) {
				switch key {
				case "strategy":
					var s string
					p.str(v, f, &s)
					j.Restart.Strategy = RestartStrategy(s)
				case "attempts":
					p.integer(v, f, &j.Restart.Attempts)
				case "delay":
					p.duration(v, f, &j.Restart.Delay)
				case "initial_delay":
					p.duration(v, f, &j.Restart.InitialDelay)
				case "max_delay":
					p.duration(v, f, &j.Restart.MaxDelay)
				case "multiplier":
					p.number(v, f, &j.Restart.Multiplier)
				case "reset_after":
					p.duration(v, f, &j.Restart.ResetAfter)
				case "jitter":
					p.number(v, f, &j.Restart.Jitter)
				case "max_failures":
					p.integer(v, f, &j.Restart.MaxFailures)
				case "interval":
					p.duration(v, f, &j.Restart.Interval)
				}
			})
		case "checkpoints":
			c := &j.Checkpoints
			p.checkpoints = true
			p.fields(v, f, ckptFields, func(key string, v *yaml.Node, f string) {
				switch key {
				case "interval":
					p.duration(v, f, &c.Interval)
				case "timeout":
					p.duration(v, f, &c.Timeout)
				case "min_pause":
					p.duration(v, f, &c.MinPause)
				case "max_concurrent":
					p.integer(v, f, &c.MaxConcurrent)
				case "tolerable_failures":
					p.integer(v, f, &c.TolerableFailures)
				case "mode":
					var s string
					p.str(v, f, &s)
					c.Mode = barrier.Mode(s)
				case "alignment_timeout":
					p.duration(v, f, &c.AlignmentTimeout)
				case "retained":
					p.integer(v, f, &c.Retained)
				case "dir":
					p.str(v, f, &c.Dir)
				case "incremental":
					p.boolean(v, f, &c.Incremental)
				}
			})
		case "modules":
			modulesNode = v
		case "sources", "operators", "sinks":
			if v.Kind != yaml.SequenceNode {
				p.errorf(v, f, "want a list of %s, got %s", key, describe(v))
				return
			}
			if len(v.Content) > MaxNodes {
				p.errorf(v, f, "%d %s, more than the limit of %d", len(v.Content), key, MaxNodes)
				return
			}
			for i, item := range v.Content {
				item = resolve(item)
				r := p.node(NodeKind(strings.TrimSuffix(key, "s")), item, fmt.Sprintf("%s[%d]", key, i))
				raws = append(raws, r)
				switch r.node.Kind {
				case KindSource:
					j.Sources = append(j.Sources, r.node)
				case KindOperator:
					j.Operators = append(j.Operators, r.node)
				case KindSink:
					j.Sinks = append(j.Sinks, r.node)
				}
			}
		}
	})
	if modulesNode != nil {
		p.modules(modulesNode)
	}
	p.raws = raws
	return j
}

// modules decodes the modules map: name -> path.
func (p *parser) modules(v *yaml.Node) {
	if v.Kind != yaml.MappingNode {
		p.errorf(v, "modules", "want a map of module name to path (or registry name@version), got %s", describe(v))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := resolve(v.Content[i]), resolve(v.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			p.errorf(k, "modules", "a module name must be a string, got %s", describe(k))
			continue
		}
		f := "modules." + k.Value
		if seen[k.Value] {
			p.errorf(k, f, "module given twice; keep one")
			continue
		}
		seen[k.Value] = true
		p.pos[f] = p.at(k)
		m := &Module{Name: k.Value, Field: f}
		if isNull(val) {
			p.errorf(k, f, "no path; give the path of a .wasm file or of an operator folder")
		} else if p.str(val, f, &m.Path) && api.IsModuleRef(m.Path) {
			name, version, err := api.ParseModuleRef(m.Path)
			if err != nil {
				p.errorf(val, f, "%q looks like a registry module name@version, but: %v (a local path holding '@' is written ./%s)", m.Path, strings.TrimPrefix(err.Error(), api.ErrInvalidName.Error()+": "), m.Path)
			}
			m.Registry, m.Path = &ModuleRef{Name: name, Version: version}, ""
		}
		p.spec.Modules = append(p.spec.Modules, m)
	}
}

// node decodes one source, operator or sink.
func (p *parser) node(kind NodeKind, v *yaml.Node, field string) *rawNode {
	n := &Node{Kind: kind, Chain: true, Field: field}
	r := &rawNode{node: n, windowSet: map[string]bool{}}
	p.pos[field] = p.at(v)
	var known []string
	switch kind {
	case KindSource:
		n.Source = &Source{Watermark: Watermark{Strategy: WatermarkBounded, Interval: DefaultWatermarkInterval}}
		known = sourceFields
	case KindOperator:
		n.Operator = &Operator{OnError: OnErrorFail}
		known = operatorFields
	case KindSink:
		n.Sink = &Sink{}
		known = sinkFields
	}
	if kind == KindSource && v.Kind == yaml.MappingNode {
		// Say why rather than "unknown field".
		for i := 0; i+1 < len(v.Content); i += 2 {
			if k := resolve(v.Content[i]); k.Value == "input" || k.Value == "inputs" {
				p.errorf(k, join(field, k.Value), "a source has no inputs; remove it (a source reads from its connector)")
				v = withoutKey(v, i)
				break
			}
		}
	}
	p.fields(v, field, known, func(key string, v *yaml.Node, f string) {
		switch key {
		case "uid":
			p.str(v, f, &n.UID)
		case "parallelism":
			r.parallelismSet = p.integer(v, f, &n.Parallelism)
		case "chain":
			p.boolean(v, f, &n.Chain)
		case "slot_sharing_group":
			p.str(v, f, &n.SlotSharingGroup)
		case "connector":
			if n.Source != nil {
				p.str(v, f, &n.Source.Connector)
			} else {
				p.str(v, f, &n.Sink.Connector)
			}
		case "options":
			if n.Source != nil {
				n.Source.RawOptions = p.options(v, f)
			} else {
				n.Sink.RawOptions = p.options(v, f)
			}
		case "watermark":
			p.watermark(r, v, f)
		case "module":
			p.str(v, f, &n.Operator.Module)
		case "operator":
			p.str(v, f, &n.Operator.Operator)
		case "params":
			p.params(n.Operator, v, f)
		case "state_ttl":
			r.stateTTLSet = p.duration(v, f, &n.Operator.StateTTL)
		case "on_error":
			var s string
			p.str(v, f, &s)
			n.Operator.OnError = ErrorPolicy(s)
		case "window":
			p.window(r, v, f)
		case "input":
			r.hasInput = true
			in := &Input{Field: f}
			p.str(v, f, &in.From)
			n.Inputs = append(n.Inputs, in)
		case "inputs":
			r.hasInputs = true
			if v.Kind != yaml.SequenceNode {
				p.errorf(v, f, "want a list of inputs ({from: uid, partition: key_by}), got %s", describe(v))
				return
			}
			for i, item := range v.Content {
				n.Inputs = append(n.Inputs, p.input(resolve(item), fmt.Sprintf("%s[%d]", f, i)))
			}
		}
	})
	return r
}

// withoutKey returns a copy of mapping v without its i-th pair.
func withoutKey(v *yaml.Node, i int) *yaml.Node {
	c := *v
	c.Content = append(append([]*yaml.Node{}, v.Content[:i]...), v.Content[i+2:]...)
	return &c
}

// input decodes one item of inputs: {from, partition}, or a bare uid.
func (p *parser) input(v *yaml.Node, f string) *Input {
	in := &Input{Field: f}
	p.pos[f] = p.at(v)
	if v.Kind == yaml.ScalarNode {
		p.str(v, f, &in.From)
		return in
	}
	p.fields(v, f, inputFields, func(key string, v *yaml.Node, kf string) {
		switch key {
		case "from":
			p.str(v, kf, &in.From)
		case "partition":
			var s string
			if p.str(v, kf, &s) {
				in.Partition, in.PartitionSet = Partition(s), true
			}
		}
	})
	return in
}

func (p *parser) watermark(r *rawNode, v *yaml.Node, f string) {
	wm := &r.node.Source.Watermark
	p.fields(v, f, wmFields, func(key string, v *yaml.Node, f string) {
		switch key {
		case "strategy":
			var s string
			p.str(v, f, &s)
			if s == "ascending" {
				r.ascending = true
				s = string(WatermarkBounded)
			}
			wm.Strategy = WatermarkStrategy(s)
		case "max_out_of_orderness":
			r.maxOOOSet = p.duration(v, f, &wm.MaxOutOfOrderness)
		case "interval":
			p.duration(v, f, &wm.Interval)
		case "idle_timeout":
			p.duration(v, f, &wm.IdleTimeout)
		}
	})
}

func (p *parser) window(r *rawNode, v *yaml.Node, f string) {
	w := &Window{}
	r.window = v
	r.node.Operator.Window = w
	p.fields(v, f, windowFields, func(key string, v *yaml.Node, f string) {
		r.windowSet[key] = true
		switch key {
		case "type":
			var s string
			p.str(v, f, &s)
			w.Type = WindowType(s)
		case "size":
			p.duration(v, f, &w.Size)
		case "slide":
			p.duration(v, f, &w.Slide)
		case "gap":
			p.duration(v, f, &w.Gap)
		case "allowed_lateness":
			p.duration(v, f, &w.AllowedLateness)
		case "late_output":
			p.str(v, f, &w.LateOutput)
		}
	})
}

// params converts an operator's params to the JSON its open receives.
func (p *parser) params(op *Operator, v *yaml.Node, f string) {
	x, ok := p.value(v, f)
	if !ok {
		return
	}
	b, err := json.Marshal(x)
	if err != nil {
		p.errorf(v, f, "cannot be written as JSON: %v", err)
		return
	}
	op.Params = b
}
