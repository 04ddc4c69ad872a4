package jobspec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/weirstream/weir/internal/barrier"
	"github.com/weirstream/weir/internal/connspec"
	"github.com/weirstream/weir/internal/keygroup"
)

var (
	// nameRE is the job name and slot sharing group syntax.
	nameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
	// uidRE is the uid, module and side output syntax: no '.', which
	// separates a uid from a side output in "from".
	uidRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// maxNameLen bounds names and uids.
const maxNameLen = 128

// errorAt reports a problem with field, unless field (or a field it is
// part of) already had one.
func (p *parser) errorAt(field, format string, args ...any) {
	for f := field; f != ""; f = parentField(f) {
		if p.bad[f] {
			return
		}
	}
	p.errs = append(p.errs, p.spec.Errorf(field, format, args...))
	p.bad[field] = true
}

// validate checks the decoded job and applies the defaults that depend on
// other fields.
func (p *parser) validate(j *Job) {
	p.checkName("name", j.Name, nameRE, "the job name", "letters, digits, '_', '-' and '.'")
	if j.MaxParallelism < 1 || j.MaxParallelism > keygroup.MaxMaxParallelism {
		p.errorAt("max_parallelism", "%d is out of range; want 1 to %d (the number of key groups)", j.MaxParallelism, keygroup.MaxMaxParallelism)
		j.MaxParallelism = DefaultMaxParallelism
	}
	if j.Parallelism < 1 || j.Parallelism > j.MaxParallelism {
		p.errorAt("parallelism", "%d is out of range; want 1 to max_parallelism (%d)", j.Parallelism, j.MaxParallelism)
		j.Parallelism = DefaultParallelism
	}
	p.validateState(j)
	p.validateRestart(j)
	p.validateCheckpoints(j)
	p.validateModules(j)
	p.validateNodes(j)
	if len(j.Sources) == 0 {
		p.errorAt("sources", "a job needs at least one source; add one under sources:")
	}
	if len(j.Sinks) == 0 {
		p.errorAt("sinks", "a job needs at least one sink; add one under sinks: (e.g. connector: stdout)")
	}
	p.validateEdges(j)
	p.validateCycles(j)
}

// checkName reports a missing or malformed name.
func (p *parser) checkName(field, s string, re *regexp.Regexp, what, allowed string) bool {
	switch {
	case s == "":
		p.errorAt(field, "%s is required", what)
	case len(s) > maxNameLen:
		p.errorAt(field, "%s is %d characters long; the limit is %d", what, len(s), maxNameLen)
	case !re.MatchString(s):
		p.errorAt(field, "%s %q has characters other than %s", what, s, allowed)
	default:
		return true
	}
	return false
}

func (p *parser) validateState(j *Job) {
	switch j.State.Backend {
	case BackendHeap:
		if j.State.Dir != "" {
			p.errorAt("state.dir", "the heap backend keeps state in memory; remove dir or set backend: pebble")
		}
	case BackendPebble:
		if j.State.Dir != "" && !filepath.IsAbs(j.State.Dir) {
			j.State.Dir = filepath.Join(j.Dir, j.State.Dir)
		}
	default:
		p.errorAt("state.backend", "unknown state backend %q; want heap or pebble", j.State.Backend)
	}
}

// restartFieldsOf lists the fields each restart strategy takes, besides
// strategy.
var restartFieldsOf = map[RestartStrategy][]string{
	RestartNone:             {},
	RestartFixedDelay:       {"attempts", "delay"},
	RestartExponentialDelay: {"attempts", "initial_delay", "max_delay", "multiplier", "reset_after", "jitter"},
	RestartFailureRate:      {"max_failures", "interval", "delay"},
}

// maxRestartMultiplier bounds exponential-delay's multiplier: past it the
// second delay is already the maximum, which is what a fixed delay does.
const maxRestartMultiplier = 100

func (p *parser) validateRestart(j *Job) {
	r := &j.Restart
	fields, ok := restartFieldsOf[r.Strategy]
	if !ok {
		p.errorAt("restart.strategy", "unknown restart strategy %q; want none, fixed-delay, exponential-delay or failure-rate", r.Strategy)
		return
	}
	set := func(name string) bool {
		_, ok := j.pos["restart."+name]
		return ok
	}
	// A field of another strategy is a mistake (most likely a forgotten
	// strategy: line, which leaves the default none): say whose it is.
	for _, name := range restartFields[1:] {
		if !set(name) || contains(fields, name) {
			continue
		}
		var owners []string
		for _, s := range []RestartStrategy{RestartFixedDelay, RestartExponentialDelay, RestartFailureRate} {
			if contains(restartFieldsOf[s], name) {
				owners = append(owners, string(s))
			}
		}
		p.errorAt("restart."+name, "restart strategy %s has no %s (it is a field of %s); remove it or set strategy:", r.Strategy, name, strings.Join(owners, " and "))
	}
	switch r.Strategy {
	case RestartNone:
	case RestartFixedDelay:
		if r.Attempts < 1 {
			p.errorAt("restart.attempts", "%d restart attempts; want 1 or more", r.Attempts)
		}
	case RestartExponentialDelay:
		if !set("attempts") {
			r.Attempts = 0
		} else if r.Attempts < 0 {
			p.errorAt("restart.attempts", "%d restart attempts; want 0 (no limit) or more", r.Attempts)
		}
		r.Delay = 0
		if !set("initial_delay") {
			r.InitialDelay = DefaultRestartInitialDelay
		}
		if !set("max_delay") {
			r.MaxDelay = max(DefaultRestartMaxDelay, r.InitialDelay)
		}
		if !set("multiplier") {
			r.Multiplier = DefaultRestartMultiplier
		}
		if !set("reset_after") {
			r.ResetAfter = DefaultRestartResetAfter
		}
		if !set("jitter") {
			r.Jitter = DefaultRestartJitter
		}
		switch {
		case r.InitialDelay <= 0:
			p.errorAt("restart.initial_delay", "the initial delay must be more than 0 (default %s)", DefaultRestartInitialDelay)
		case r.MaxDelay < r.InitialDelay:
			p.errorAt("restart.max_delay", "max_delay %s is shorter than initial_delay %s", r.MaxDelay, r.InitialDelay)
		}
		if r.Multiplier < 1 || r.Multiplier > maxRestartMultiplier {
			p.errorAt("restart.multiplier", "multiplier %g is out of range; want 1 to %d (each delay is the previous one times it)", r.Multiplier, maxRestartMultiplier)
		}
		if r.ResetAfter <= 0 {
			p.errorAt("restart.reset_after", "reset_after must be more than 0: how long the job runs without failing before the delay starts over (default %s)", DefaultRestartResetAfter)
		}
		if r.Jitter < 0 || r.Jitter > 1 {
			p.errorAt("restart.jitter", "jitter %g is out of range; want 0 to 1 (a fraction of the delay)", r.Jitter)
		}
	case RestartFailureRate:
		r.Attempts = 0
		if !set("max_failures") {
			r.MaxFailures = DefaultRestartMaxFailures
		}
		if !set("interval") {
			r.Interval = DefaultRestartInterval
		}
		if r.MaxFailures < 1 {
			p.errorAt("restart.max_failures", "%d failures per interval; want 1 or more", r.MaxFailures)
		}
		if r.Interval <= 0 {
			p.errorAt("restart.interval", "the interval must be more than 0 (default %s)", DefaultRestartInterval)
		}
	}
}

func (p *parser) validateCheckpoints(j *Job) {
	if !p.checkpoints {
		return // no block, or an empty one: no checkpoints
	}
	c := &j.Checkpoints
	_, intervalSet := j.pos["checkpoints.interval"]
	switch {
	case !intervalSet:
		p.errorAt("checkpoints", "interval is required: how often a checkpoint starts (e.g. interval: 10s); leave the checkpoints block out for no checkpoints")
	case c.Interval < MinCheckpointInterval:
		p.errorAt("checkpoints.interval", "interval %s is shorter than the minimum of %s", c.Interval, MinCheckpointInterval)
	}
	if c.Timeout <= 0 {
		p.errorAt("checkpoints.timeout", "the timeout must be more than 0 (default %s)", DefaultCheckpointTimeout)
	}
	if c.MaxConcurrent < 1 || c.MaxConcurrent > MaxCheckpointConcurrent {
		p.errorAt("checkpoints.max_concurrent", "%d concurrent checkpoints is out of range; want 1 to %d", c.MaxConcurrent, MaxCheckpointConcurrent)
	} else if c.MinPause > 0 && c.MaxConcurrent > 1 {
		p.errorAt("checkpoints.min_pause", "min_pause %s implies one checkpoint at a time, but max_concurrent is %d; set one of them to its default (min_pause: 0s or max_concurrent: 1)", c.MinPause, c.MaxConcurrent)
	}
	if c.TolerableFailures < 0 {
		p.errorAt("checkpoints.tolerable_failures", "%d tolerable failures; want 0 (the first failed checkpoint fails the job) or more", c.TolerableFailures)
	}
	if !c.Mode.Valid() {
		names := make([]string, len(barrier.Modes))
		for i, m := range barrier.Modes {
			names[i] = string(m)
		}
		p.errorAt("checkpoints.mode", "unknown checkpoint mode %q%s; want aligned, unaligned or at-least-once", c.Mode, didYouMean(string(c.Mode), names))
	} else if _, set := j.pos["checkpoints.alignment_timeout"]; set && c.Mode != barrier.Aligned {
		p.errorAt("checkpoints.alignment_timeout", "alignment_timeout switches aligned checkpoints to unaligned, but mode is %s; remove it or set mode: aligned", c.Mode)
	}
	if c.Retained < 1 || c.Retained > MaxCheckpointsRetained {
		p.errorAt("checkpoints.retained", "%d retained checkpoints is out of range; want 1 to %d", c.Retained, MaxCheckpointsRetained)
	}
	if _, set := j.pos["checkpoints.dir"]; set && c.Dir == "" {
		p.errorAt("checkpoints.dir", "empty dir; leave it out to let the runtime choose the folder")
	} else if c.Dir != "" && !filepath.IsAbs(c.Dir) {
		c.Dir = filepath.Join(j.Dir, c.Dir)
	}
}

func (p *parser) validateModules(j *Job) {
	sort.Slice(j.Modules, func(a, b int) bool { return j.Modules[a].Name < j.Modules[b].Name })
	for _, m := range j.Modules {
		if !p.checkName(m.Field, m.Name, uidRE, "module name", "letters, digits, '_' and '-'") || m.Path == "" || m.Registry != nil {
			continue
		}
		if p.remote {
			p.errorAt(m.Field, "%s is a local path; a job for a cluster names registry modules, NAME@VERSION (`weir job submit` uploads local modules and rewrites the spec for you; or upload with `weir module upload FILE --name N --version V`)", m.Path)
			continue
		}
		m.Resolved = m.Path
		if !filepath.IsAbs(m.Resolved) {
			m.Resolved = filepath.Join(j.Dir, m.Path)
		}
		st, err := os.Stat(m.Resolved)
		switch {
		case err != nil && errors.Is(err, os.ErrNotExist):
			p.errorAt(m.Field, "%s does not exist; give a .wasm file or a folder with a Go or C operator (relative paths start at %s)", m.Resolved, j.Dir)
		case err != nil:
			p.errorAt(m.Field, "%v", err)
		case st.IsDir():
			m.IsDir = true
		case !strings.HasSuffix(m.Resolved, ".wasm"):
			p.errorAt(m.Field, "%s is neither a .wasm file nor a folder", m.Resolved)
		}
	}
}

func (p *parser) validateNodes(j *Job) {
	byUID := map[string]*Node{}
	for _, r := range p.raws {
		n := r.node
		if p.checkName(n.Field+".uid", n.UID, uidRE, "uid", "letters, digits, '_' and '-'") {
			if prev, dup := byUID[n.UID]; dup {
				p.errorAt(n.Field+".uid", "uid %q is already used by %s (%s); uids are unique among all nodes", n.UID, prev.Field, j.Pos(prev.Field))
			} else {
				byUID[n.UID] = n
			}
		}
		if !r.parallelismSet {
			n.Parallelism = j.Parallelism
		} else if n.Parallelism < 1 || n.Parallelism > j.MaxParallelism {
			p.errorAt(n.Field+".parallelism", "%d is out of range; want 1 to max_parallelism (%d)", n.Parallelism, j.MaxParallelism)
			n.Parallelism = j.Parallelism
		}
		if n.SlotSharingGroup == "" {
			if _, set := j.pos[n.Field+".slot_sharing_group"]; set {
				p.errorAt(n.Field+".slot_sharing_group", "empty slot sharing group; leave it out for %q", DefaultSlotSharingGroup)
			}
			n.SlotSharingGroup = DefaultSlotSharingGroup
		} else {
			p.checkName(n.Field+".slot_sharing_group", n.SlotSharingGroup, nameRE, "slot sharing group", "letters, digits, '_', '-' and '.'")
		}
		switch n.Kind {
		case KindSource:
			p.validateSource(r)
		case KindOperator:
			p.validateOperator(j, r)
		case KindSink:
			p.validateSink(r)
		}
	}
	j.nodes = byUID
}

// lookupConnector finds the named connector of a kind and validates its
// options, reporting problems at the spec's fields.
func (p *parser) lookupConnector(n *Node, kind connspec.Kind, name string, raw map[string]any) (*connspec.Spec, connspec.Options) {
	f := n.Field + ".connector"
	if name == "" {
		p.errorAt(f, "connector is required (%ss: %s)", kind, nameList(connspec.Names(kind)))
		return nil, nil
	}
	spec, ok := connspec.LookupKind(kind, name)
	if !ok {
		names := connspec.Names(kind)
		other := connspec.KindSink
		if kind == connspec.KindSink {
			other = connspec.KindSource
		}
		if _, isOther := connspec.LookupKind(other, name); isOther {
			p.errorAt(f, "%q is a %s connector, not a %s (%ss: %s)", name, other, kind, kind, nameList(names))
		} else {
			p.errorAt(f, "no %s connector %q%s (%ss: %s)", kind, name, didYouMean(name, names), kind, nameList(names))
		}
		return nil, nil
	}
	if p.bad[n.Field+".options"] {
		return spec, nil
	}
	if raw == nil {
		raw = map[string]any{}
	}
	opts, err := spec.ParseOptions(raw)
	if err != nil {
		for _, e := range leaves(err) {
			field, msg := n.Field+".options", e.Error()
			if m := optionRE.FindStringSubmatch(msg); m != nil {
				if _, given := raw[m[1]]; given {
					// The field path names the option already.
					field += "." + m[1]
					msg = strings.TrimPrefix(msg[len(m[0]):], ": ")
				}
			}
			p.errorAt(field, "%s", msg)
		}
		return spec, nil
	}
	return spec, opts
}

// optionRE finds the option an error of connspec.Spec.ParseOptions is
// about.
var optionRE = regexp.MustCompile(`^option "([^"]+)"`)

// leaves flattens an errors.Join tree.
func leaves(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leaves(e)...)
		}
		return out
	}
	return []error{err}
}

func (p *parser) validateSource(r *rawNode) {
	n, s := r.node, r.node.Source
	s.Spec, s.Options = p.lookupConnector(n, connspec.KindSource, s.Connector, s.RawOptions)
	wm, f := &s.Watermark, n.Field+".watermark"
	switch wm.Strategy {
	case WatermarkBounded:
		if r.ascending && r.maxOOOSet && wm.MaxOutOfOrderness != 0 {
			p.errorAt(f+".max_out_of_orderness", "ascending means no out-of-orderness; use strategy: bounded to allow %s", wm.MaxOutOfOrderness)
		}
		if wm.Interval <= 0 {
			p.errorAt(f+".interval", "the interval of periodic watermarks must be more than 0 (default %s)", DefaultWatermarkInterval)
		}
	case WatermarkPunctuated, WatermarkNone:
		if r.maxOOOSet {
			p.errorAt(f+".max_out_of_orderness", "only bounded watermarks have an out-of-orderness; remove it or use strategy: bounded")
		}
	default:
		p.errorAt(f+".strategy", "unknown watermark strategy %q; want bounded, ascending, punctuated or none", wm.Strategy)
	}
}

func (p *parser) validateSink(r *rawNode) {
	n, s := r.node, r.node.Sink
	s.Spec, s.Options = p.lookupConnector(n, connspec.KindSink, s.Connector, s.RawOptions)
	if r.hasInput && r.hasInputs {
		p.errorAt(n.Field+".inputs", "give input or inputs, not both")
	} else if len(n.Inputs) != 1 && !p.bad[n.Field+".inputs"] {
		p.errorAt(n.Field+".input", "a sink has exactly one input, got %d; set input: UID", len(n.Inputs))
	}
}

func (p *parser) validateOperator(j *Job, r *rawNode) {
	n, op := r.node, r.node.Operator
	switch {
	case op.Module == "":
		names := moduleNames(j)
		if len(names) == 0 {
			p.errorAt(n.Field+".module", "module is required, and the job declares no modules: add modules: {NAME: PATH} and module: NAME")
		} else {
			p.errorAt(n.Field+".module", "module is required (modules: %s)", nameList(names))
		}
	case j.Module(op.Module) == nil:
		names := moduleNames(j)
		p.errorAt(n.Field+".module", "no module %q%s (modules: %s); declare it under modules:", op.Module, didYouMean(op.Module, names), nameList(names))
	}
	if op.Operator == "" {
		p.errorAt(n.Field+".operator", "operator is required: the name of an operator the module exports (see `weir module inspect`)")
	}
	if !r.stateTTLSet {
		op.StateTTL = j.State.TTL
	}
	switch op.OnError {
	case OnErrorFail, OnErrorSkip, OnErrorDivert:
	default:
		p.errorAt(n.Field+".on_error", "unknown error policy %q; want fail, skip or divert", op.OnError)
	}
	if r.hasInput && r.hasInputs {
		p.errorAt(n.Field+".inputs", "give input or inputs, not both")
	} else if !p.bad[n.Field+".inputs"] && (len(n.Inputs) < 1 || len(n.Inputs) > 2) {
		p.errorAt(n.Field+".inputs", "an operator has one input (two for co_process), got %d; set input: UID", len(n.Inputs))
	}
	if op.Window != nil {
		p.validateWindow(n, r)
	}
}

func moduleNames(j *Job) []string {
	names := make([]string, len(j.Modules))
	for i, m := range j.Modules {
		names[i] = m.Name
	}
	return names
}

// validateWindow checks that a window sets exactly the fields of its type.
func (p *parser) validateWindow(n *Node, r *rawNode) {
	w, f := n.Operator.Window, n.Field+".window"
	need := map[WindowType][]string{
		WindowTumbling: {"size"},
		WindowSliding:  {"size", "slide"},
		WindowSession:  {"gap"},
		WindowGlobal:   {},
	}
	fields, ok := need[w.Type]
	if !ok {
		if w.Type == "" {
			p.errorAt(f+".type", "window type is required: tumbling, sliding, session or global")
		} else {
			p.errorAt(f+".type", "unknown window type %q; want tumbling, sliding, session or global", w.Type)
		}
		return
	}
	values := map[string]int64{"size": int64(w.Size), "slide": int64(w.Slide), "gap": int64(w.Gap)}
	for _, name := range []string{"size", "slide", "gap"} {
		wanted := contains(fields, name)
		switch {
		case wanted && !r.windowSet[name]:
			p.errorAt(f+"."+name, "a %s window needs %s", w.Type, name)
		case wanted && values[name] <= 0:
			p.errorAt(f+"."+name, "%s must be more than 0", name)
		case !wanted && r.windowSet[name]:
			p.errorAt(f+"."+name, "a %s window has no %s; remove it", w.Type, name)
		}
	}
	if w.Type == WindowSliding && w.Slide > 0 && w.Size > 0 && w.Size%w.Slide != 0 {
		p.errorAt(f+".size", "size %s is not a multiple of slide %s", w.Size, w.Slide)
	}
	if w.LateOutput != "" {
		p.checkName(f+".late_output", w.LateOutput, uidRE, "side output name", "letters, digits, '_' and '-'")
		if w.LateOutput == ErrorsOutput {
			p.errorAt(f+".late_output", "%q is the side output of on_error: divert; pick another name", ErrorsOutput)
		}
	}
}

// fromField is the path of an input's "from".
func fromField(in *Input) string {
	if strings.HasSuffix(in.Field, ".input") {
		return in.Field
	}
	return in.Field + ".from"
}

// validateEdges resolves every input's reference and partition.
func (p *parser) validateEdges(j *Job) {
	var all []string
	for _, n := range j.Nodes() {
		if n.UID != "" {
			all = append(all, n.UID)
		}
	}
	for _, n := range j.Nodes() {
		for _, in := range n.Inputs {
			ff := fromField(in)
			if in.From == "" {
				p.errorAt(ff, "from is required: the uid of the node to read (nodes: %s)", nameList(all))
				continue
			}
			in.Node, in.Output, _ = strings.Cut(in.From, ".")
			up := j.nodes[in.Node]
			if up == nil {
				p.errorAt(ff, "no node %q%s (nodes: %s)", in.Node, didYouMean(in.Node, all), nameList(all))
				continue
			}
			switch {
			case up.Kind == KindSink:
				p.errorAt(ff, "%q is a sink, and sinks have no outputs", in.Node)
				continue
			case in.Output != "" && up.Kind == KindSource:
				p.errorAt(ff, "%q is a source, and sources have no side outputs; read %q", in.Node, in.Node)
				continue
			case in.Output != "" && !uidRE.MatchString(in.Output):
				p.errorAt(ff, "bad side output name %q; want letters, digits, '_' and '-'", in.Output)
				continue
			}
			p.validatePartition(j, n, up, in)
		}
	}
}

func (p *parser) validatePartition(j *Job, n, up *Node, in *Input) {
	pf := in.Field + ".partition"
	if !in.PartitionSet {
		in.Partition = Forward
		if up.Parallelism != n.Parallelism {
			in.Partition = Rebalance
		}
		return
	}
	switch in.Partition {
	case Forward:
		if up.Parallelism != n.Parallelism {
			p.errorAt(pf, "forward needs equal parallelism, but %s has %d and %s has %d; use rebalance or make them equal", up.UID, up.Parallelism, n.UID, n.Parallelism)
		}
	case KeyBy:
		if up.Kind == KindSource {
			s := up.Source
			if s.Spec != nil && s.Options != nil && (s.Spec.Keyed == nil || !s.Spec.Keyed(s.Options)) {
				p.errorAt(pf, "key_by on source %s, which emits no keys: set its key option or add an operator that sets keys", up.UID)
			}
		}
	case Rebalance, Broadcast:
	default:
		p.errorAt(pf, "unknown partition %q; want forward, key_by, rebalance or broadcast", in.Partition)
	}
}

// validateCycles reports each cycle of the graph once, by name:
// "a -> b -> a".
func (p *parser) validateCycles(j *Job) {
	const (
		unseen = iota
		active
		done
	)
	state := map[*Node]int{}
	var stack []*Node
	var visit func(n *Node)
	// Walk from each node to its inputs: a cycle found through input in
	// is reported at in.
	visit = func(n *Node) {
		state[n] = active
		stack = append(stack, n)
		for _, in := range n.Inputs {
			up := j.nodes[in.Node]
			if up == nil || up.Kind == KindSink {
				continue
			}
			switch state[up] {
			case unseen:
				visit(up)
			case active:
				// stack[k+1] feeds stack[k], and up feeds n: from n back
				// down the stack to up reads downstream, n -> ... -> up -> n.
				i := len(stack) - 1
				for stack[i] != up {
					i--
				}
				names := make([]string, 0, len(stack)-i+1)
				for k := len(stack) - 1; k >= i; k-- {
					names = append(names, stack[k].UID)
				}
				names = append(names, names[0])
				p.errorAt(fromField(in), "cycle: %s; a job is a directed acyclic graph", strings.Join(names, " -> "))
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = done
	}
	for _, n := range j.Nodes() {
		if state[n] == unseen {
			visit(n)
		}
	}
}

// String summarizes a job: "wordcount (1 sources, 2 operators, 1 sinks)".
func (j *Job) String() string {
	return fmt.Sprintf("%s (%d sources, %d operators, %d sinks)", j.Name, len(j.Sources), len(j.Operators), len(j.Sinks))
}
