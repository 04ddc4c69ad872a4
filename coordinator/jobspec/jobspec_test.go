package jobspec

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/connspec"
)

// Test-only connectors: test-src emits keys when its "key" option is set.
func init() {
	connspec.Register(&connspec.Spec{
		Name: "test-src", Kind: connspec.KindSource, Help: "test source",
		Options: []connspec.Option{
			{Name: "key", Type: connspec.TypeString, Help: "key field"},
			{Name: "n", Type: connspec.TypeInt, Default: "10", Help: "records"},
		},
		Keyed: func(o connspec.Options) bool { return o.String("key") != "" },
	})
	connspec.Register(&connspec.Spec{
		Name: "test-sink", Kind: connspec.KindSink, Help: "test sink",
		Options: []connspec.Option{
			{Name: "path", Type: connspec.TypeString, Required: true, Help: "where"},
		},
	})
}

// parse writes a module file and parses src as DIR/job.yaml.
func parse(t *testing.T, src string) (*Job, error, string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "m.wasm"), []byte("\x00asm"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "op"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "job.yaml")
	j, err := Parse([]byte(src), file)
	return j, err, file
}

// wantRE marks, in a test spec, a line where an error is expected: its
// message (file:line:col: field: msg) must contain the text.
var wantRE = regexp.MustCompile(`#\s*want:\s*(.*)$`)

// checkWants parses src and checks that the errors are exactly those the
// "# want: text" comments mark, each at its line.
func checkWants(t *testing.T, src string) {
	t.Helper()
	j, err, file := parse(t, src)
	wants := map[int][]string{}
	n := 0
	for i, line := range strings.Split(src, "\n") {
		if m := wantRE.FindStringSubmatch(line); m != nil {
			for _, w := range strings.Split(m[1], " && ") {
				wants[i+1] = append(wants[i+1], strings.TrimSpace(w))
				n++
			}
		}
	}
	if n == 0 {
		t.Fatal("test spec marks no errors")
	}
	if err == nil {
		t.Fatalf("no error; want %d", n)
	}
	if j != nil {
		t.Errorf("Parse returned a Job with an error")
	}
	errs := Errors(err)
	if len(errs) == 0 {
		t.Fatalf("error is not a *jobspec.Error: %v", err)
	}
	matched := map[string]bool{}
	for _, e := range errs {
		prefix := file + ":"
		if !strings.HasPrefix(e.Error(), prefix) || e.File != file || e.Col < 1 {
			t.Errorf("error without file:line:col: %q", e)
		}
		found := false
		for _, w := range wants[e.Line] {
			if strings.Contains(e.Error(), w) {
				found = true
				matched[w] = true
			}
		}
		if !found {
			t.Errorf("unexpected error at line %d: %v", e.Line, e)
		}
	}
	for line, ws := range wants {
		for _, w := range ws {
			if !matched[w] {
				t.Errorf("line %d: no error containing %q; got:\n%v", line, w, err)
			}
		}
	}
}

const header = `name: t
modules: {m: m.wasm}
`

func TestErrors(t *testing.T) {
	cases := map[string]string{
		"unknown field with suggestion": header + `paralelism: 2 # want: unknown field "paralelism"; did you mean "parallelism"?
sources:
  - uid: src
    connector: test-src
    paralellism: 2 # want: sources[0].paralellism: unknown field && did you mean "parallelism"?
    watermark: {strategi: none} # want: sources[0].watermark.strategi: unknown field && did you mean "strategy"?
sinks:
  - {uid: out, connector: test-sink, options: {path: x}, input: src}
`,
		"unknown field far from any": header + `colour: blue # want: unknown field "colour" (fields of the job:
sources: [{uid: src, connector: test-src}]
sinks: [{uid: out, connector: test-sink, options: {path: x}, input: src}]
`,
		"required fields": `modules: {m: m.wasm} # want: name: the job name is required
sources:
  - connector: test-src # want: sources[0].uid: uid is required
  - uid: s2 # want: sources[1].connector: connector is required (sources: && test-src
operators:
  - uid: op # want: operators[0].module: module is required (modules: m) && operators[0].operator: operator is required && operators[0].inputs: an operator has one input
sinks:
  - {uid: out, connector: test-sink, options: {}, input: s2} # want: sinks[0].options: option "path": required
`,
		"no sources or sinks": `name: t # want: sources: a job needs at least one source && sinks: a job needs at least one sink
`,
		"names": `name: "a b" # want: name: the job name "a b" has characters other than
modules:
  m.x: m.wasm # want: modules.m.x: module name "m.x" has characters
sources:
  - uid: s.1 # want: sources[0].uid: uid "s.1" has characters other than letters, digits, '_' and '-'
    connector: test-src
    slot_sharing_group: "g g" # want: slot sharing group "g g" has characters
sinks: [{uid: out, connector: test-sink, options: {path: x}, input: s.1}] # want: sinks[0].input: no node "s"
`,
		"duplicate uid": header + `sources:
  - {uid: a, connector: test-src}
operators:
  - {uid: a, module: m, operator: x, input: a} # want: operators[0].uid: uid "a" is already used by sources[0]
sinks:
  - {uid: out, connector: test-sink, options: {path: x}, input: a}
`,
		"references": header + `sources: [{uid: src, connector: test-src}]
operators:
  - uid: split
    module: m
    operator: x
    inputs:
      - from: splt # want: operators[0].inputs[0].from: no node "splt"; did you mean "split"? (nodes: src, split, b, c, d, out)
  - uid: b
    module: m
    operator: x
    input: out # want: operators[1].input: "out" is a sink, and sinks have no outputs
  - uid: c
    module: m
    operator: x
    input: src.late # want: "src" is a source, and sources have no side outputs
  - uid: d
    module: mm # want: operators[3].module: no module "mm"; did you mean "m"?
    operator: x
    inputs:
      - {} # want: operators[3].inputs[0].from: from is required
sinks: [{uid: out, connector: test-sink, options: {path: x}, input: src}]
`,
		"cycle": header + `sources: [{uid: src, connector: test-src}]
operators:
  - {uid: a, module: m, operator: x, input: c}
  - {uid: b, module: m, operator: x, input: a} # want: cycle: b -> c -> a -> b
  - {uid: c, module: m, operator: x, input: b}
  - {uid: d, module: m, operator: x, input: d} # want: operators[3].input: cycle: d -> d
sinks: [{uid: out, connector: test-sink, options: {path: x}, input: src}]
`,
		"parallelism": `name: t
max_parallelism: 40000 # want: max_parallelism: 40000 is out of range; want 1 to 32768
parallelism: 0 # want: parallelism: 0 is out of range
sources:
  - uid: src
    connector: test-src
    parallelism: 129 # want: sources[0].parallelism: 129 is out of range; want 1 to max_parallelism (128)
  - uid: s2
    connector: test-src
    parallelism: two # want: sources[1].parallelism: want an integer, got "two"
sinks: [{uid: out, connector: test-sink, options: {path: x}, input: src}]
`,
		"forward between different parallelisms": header + `sources: [{uid: src, connector: test-src, parallelism: 2}]
sinks:
  - uid: out
    connector: test-sink
    options: {path: x}
    inputs:
      - from: src
        partition: forward # want: sinks[0].inputs[0].partition: forward needs equal parallelism, but src has 2 and out has 1
`,
		"partitions": header + `sources: [{uid: src, connector: test-src, options: {key: k}}]
sinks:
  - uid: out
    connector: test-sink
    options: {path: x}
    inputs:
      - from: src
        partition: hash # want: unknown partition "hash"; want forward, key_by, rebalance or broadcast
`,
		"key_by on keyless source": header + `sources:
  - {uid: src, connector: test-src}
operators:
  - uid: count
    module: m
    operator: count
    inputs:
      - from: src
        partition: key_by # want: operators[0].inputs[0].partition: key_by on source src, which emits no keys: set its key option or add an operator that sets keys
sinks: [{uid: out, connector: test-sink, options: {path: x}, input: count}]
`,
		"windows": header + `sources: [{uid: src, connector: test-src}]
operators:
  - uid: a
    module: m
    operator: x
    input: src
    window: {type: tumbling} # want: operators[0].window.size: a tumbling window needs size
  - uid: b
    module: m
    operator: x
    input: src
    window:
      type: sliding
      size: 10s # want: operators[1].window.size: size 10s is not a multiple of slide 3s
      slide: 3s
  - uid: c
    module: m
    operator: x
    input: src
    window:
      type: session
      gap: 0s # want: operators[2].window.gap: gap must be more than 0
      size: 1s # want: operators[2].window.size: a session window has no size; remove it
  - uid: d
    module: m
    operator: x
    input: src
    window: {type: hopping} # want: unknown window type "hopping"
  - uid: e
    module: m
    operator: x
    input: src
    window: {type: global, slide: 1s, late_output: errors} # want: a global window has no slide && "errors" is the side output of on_error
  - uid: f
    module: m
    operator: x
    input: src
    window: {size: 1s} # want: operators[5].window.type: window type is required
sinks: [{uid: out, connector: test-sink, options: {path: x}, input: src}]
`,
		"connectors": header + `sources:
  - uid: src
    connector: test-sorce # want: sources[0].connector: no source connector "test-sorce"; did you mean "test-src"?
  - uid: s2
    connector: test-sink # want: "test-sink" is a sink connector, not a source
  - uid: s3
    connector: test-src
    options:
      n: ten # want: sources[2].options.n: want integer, got string "ten"
      colour: red # want: sources[2].options.colour: unknown option of source "test-src"
sinks:
  - uid: out
    connector: test-sink
    input: s3
    options: {} # want: sinks[0].options: option "path": required by sink "test-sink"
`,
		"modules": `name: t
modules:
  a: missing.wasm # want: modules.a: && missing.wasm does not exist
  b: notes.txt # want: modules.b: && notes.txt is neither a .wasm file nor a folder
  c: # want: modules.c: no path
sources: [{uid: src, connector: test-src}]
sinks: [{uid: out, connector: test-sink, options: {path: x}, input: src}]
`,
		"input counts": header + `sources:
  - uid: src
    connector: test-src
    input: x # want: sources[0].input: a source has no inputs
operators:
  - {uid: a, module: m, operator: x, inputs: [src, src, src]} # want: an operator has one input (two for co_process), got 3
  - uid: b
    module: m
    operator: x
    input: src
    inputs: [src] # want: operators[1].inputs: give input or inputs, not both
sinks:
  - {uid: out, connector: test-sink, options: {path: x}, inputs: [src, a]} # want: sinks[0].input: a sink has exactly one input, got 2
  - {uid: out2, connector: test-sink, options: {path: x}} # want: sinks[1].input: a sink has exactly one input, got 0
`,
		"durations and enums": header + `state:
  backend: rocks # want: state.backend: unknown state backend "rocks"
  ttl: -5 # want: state.ttl: negative duration -5ms
restart:
  strategy: fixed-delay
  attempts: 0 # want: restart.attempts: 0 restart attempts
  delay: soon # want: restart.delay: "soon" is not a duration
sources:
  - uid: src
    connector: test-src
    watermark:
      strategy: ascending
      max_out_of_orderness: 2s # want: ascending means no out-of-orderness
  - uid: s2
    connector: test-src
    watermark: {strategy: random} # want: unknown watermark strategy "random"
operators:
  - uid: a
    module: m
    operator: x
    input: src
    on_error: ignore # want: operators[0].on_error: unknown error policy "ignore"
    chain: maybe # want: operators[0].chain: want true or false, got "maybe"
    state_ttl: [1] # want: operators[0].state_ttl: want a duration
sinks: [{uid: out, connector: test-sink, options: {path: x}, input: src}]
`,
		"restart strategy": header + `restart: {strategy: always} # want: restart.strategy: unknown restart strategy "always"
state: {dir: x} # want: state.dir: the heap backend keeps state in memory
sources: [{uid: src, connector: test-src}]
sinks: [{uid: out, connector: test-sink, options: {path: x}, input: src}]
`,
		"params": header + `sources: [{uid: src, connector: test-src}]
operators:
  - uid: a
    module: m
    operator: x
    input: src
    params:
      ok: {nested: [1, 2]}
      bad: {1: one} # want: operators[0].params.bad: map keys must be strings, got 1
      inf: .inf # want: operators[0].params.inf: .inf has no JSON form
sinks: [{uid: out, connector: test-sink, options: {path: x}, input: src}]
`,
		"duplicate field": header + `sources: [{uid: src, connector: test-src}]
sinks: [{uid: out, connector: test-sink, options: {path: x}, input: src}]
sinks: [] # want: sinks: field given twice
`,
		"wrong shapes": header + `sources: {uid: src} # want: sources: want a list of sources, got a map
sinks:
  - just-a-string # want: sinks[0]: want a map of fields, got "just-a-string"
`,
		"yaml syntax": header + `sources: [{uid: src, connector: test-src}]
sinks: [{uid: out # want: did not find expected
  connector: stdout
`,
	}
	for name, src := range cases {
		t.Run(name, func(t *testing.T) { checkWants(t, src) })
	}
}

func TestErrorFormat(t *testing.T) {
	src := header + `sources: [{uid: lines, connector: test-src}]
operators:
  - {uid: split, module: m, operator: split, input: lines}
  - uid: count
    module: m
    operator: count
    inputs:
      - from: splt
sinks: [{uid: out, connector: test-sink, options: {path: x}, input: count}]
`
	_, err, file := parse(t, src)
	want := file + `:10:9: operators[1].inputs[0].from: no node "splt"; did you mean "split"? (nodes: lines, split, count, out)`
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
	errs := Errors(err)
	if len(errs) != 1 || errs[0].Line != 10 || errs[0].Col != 9 || errs[0].Field != "operators[1].inputs[0].from" {
		t.Fatalf("Errors = %+v", errs)
	}
}

func TestErrorsSorted(t *testing.T) {
	src := header + `sources:
  - {uid: a, connector: nope}
  - {uid: a, connector: test-src}
sinks: [{uid: out, connector: test-sink, options: {path: x}, input: zz}]
`
	_, err, _ := parse(t, src)
	errs := Errors(err)
	if len(errs) != 3 {
		t.Fatalf("want 3 errors, got %v", err)
	}
	for i := 1; i < len(errs); i++ {
		if errs[i].Line < errs[i-1].Line {
			t.Fatalf("errors not sorted by line: %v", err)
		}
	}
}

func TestDefaults(t *testing.T) {
	src := `name: wc
modules:
  m: m.wasm
  d: op
sources: [{uid: src, connector: test-src}]
operators:
  - {uid: a, module: m, operator: x, input: src, window: {type: tumbling, size: 1000}}
sinks: [{uid: out, connector: test-sink, options: {path: x}, input: a}]
`
	j, err, file := parse(t, src)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(file)
	if j.File != file || j.Dir != dir || j.Name != "wc" || j.MaxParallelism != 128 || j.Parallelism != 1 || !j.Chaining {
		t.Errorf("job defaults: %+v", j)
	}
	if (j.State != State{Backend: BackendHeap}) {
		t.Errorf("state = %+v", j.State)
	}
	if (j.Restart != Restart{Strategy: RestartNone, Attempts: 3, Delay: time.Second}) {
		t.Errorf("restart = %+v", j.Restart)
	}
	wantMods := []*Module{
		{Name: "d", Path: "op", Resolved: filepath.Join(dir, "op"), IsDir: true, Field: "modules.d"},
		{Name: "m", Path: "m.wasm", Resolved: filepath.Join(dir, "m.wasm"), Field: "modules.m"},
	}
	if !reflect.DeepEqual(j.Modules, wantMods) {
		t.Errorf("modules = %+v", j.Modules)
	}
	src0 := j.Sources[0]
	if src0.Parallelism != 1 || !src0.Chain || src0.SlotSharingGroup != "default" || src0.Inputs != nil {
		t.Errorf("source = %+v", src0)
	}
	if (src0.Source.Watermark != Watermark{Strategy: WatermarkBounded, Interval: 200 * time.Millisecond}) {
		t.Errorf("watermark = %+v", src0.Source.Watermark)
	}
	if src0.Source.Spec == nil || src0.Source.Options.Int("n") != 10 {
		t.Errorf("connector options not parsed with defaults: %+v", src0.Source.Options)
	}
	op := j.Node("a")
	if op == nil || op.Kind != KindOperator || op.Operator.OnError != OnErrorFail || op.Operator.Params != nil {
		t.Fatalf("operator = %+v", op)
	}
	if (*op.Operator.Window != Window{Type: WindowTumbling, Size: time.Second}) {
		t.Errorf("window = %+v", op.Operator.Window)
	}
	if in := op.Inputs[0]; in.Node != "src" || in.Output != "" || in.Partition != Forward || in.PartitionSet {
		t.Errorf("input = %+v", in)
	}
	if got := len(j.Nodes()); got != 3 {
		t.Errorf("Nodes() = %d", got)
	}
}

func TestResolved(t *testing.T) {
	src := `name: r
parallelism: 2
state: {backend: pebble, dir: st, ttl: 1m}
restart: {strategy: fixed-delay, attempts: 5, delay: 250}
modules: {m: m.wasm}
sources:
  - uid: src
    connector: test-src
    options: {key: k}
    parallelism: 4
    watermark: {strategy: ascending, interval: 1s, idle_timeout: 5s}
operators:
  - uid: a
    module: m
    operator: x
    state_ttl: 10s
    on_error: divert
    params: {words: [a, b], n: 3, f: 1.5, ok: true, none: null, s: "x"}
    inputs:
      - {from: src, partition: key_by}
  - {uid: b, module: m, operator: x, input: a.errors, parallelism: 2, chain: false, slot_sharing_group: g2}
  - {uid: c, module: m, operator: x, input: src}
sinks: [{uid: out, connector: test-sink, options: {path: x}, input: b}]
`
	j, err, file := parse(t, src)
	if err != nil {
		t.Fatal(err)
	}
	if j.State.Dir != filepath.Join(filepath.Dir(file), "st") || j.State.TTL != time.Minute {
		t.Errorf("state = %+v", j.State)
	}
	if (j.Restart != Restart{Strategy: RestartFixedDelay, Attempts: 5, Delay: 250 * time.Millisecond}) {
		t.Errorf("restart = %+v", j.Restart)
	}
	if wm := j.Node("src").Source.Watermark; (wm != Watermark{Strategy: WatermarkBounded, Interval: time.Second, IdleTimeout: 5 * time.Second}) {
		t.Errorf("watermark = %+v", wm)
	}
	a := j.Node("a")
	var params, want any
	if err := json.Unmarshal(a.Operator.Params, &params); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal([]byte(`{"words":["a","b"],"n":3,"f":1.5,"ok":true,"none":null,"s":"x"}`), &want)
	if !reflect.DeepEqual(params, want) {
		t.Errorf("params = %s", a.Operator.Params)
	}
	if a.Operator.StateTTL != 10*time.Second || a.Operator.OnError != OnErrorDivert || a.Parallelism != 2 {
		t.Errorf("a = %+v %+v", a, a.Operator)
	}
	if in := a.Inputs[0]; in.Partition != KeyBy || !in.PartitionSet {
		t.Errorf("a input = %+v", in)
	}
	b := j.Node("b")
	if in := b.Inputs[0]; in.Node != "a" || in.Output != "errors" || in.Partition != Forward {
		t.Errorf("b input = %+v", in)
	}
	if b.Chain || b.SlotSharingGroup != "g2" || b.Operator.StateTTL != time.Minute {
		t.Errorf("b = %+v", b)
	}
	// c (parallelism 2) reads src (4): the default partition is rebalance.
	if in := j.Node("c").Inputs[0]; in.Partition != Rebalance || in.PartitionSet {
		t.Errorf("c input = %+v", in)
	}
}

func TestJSON(t *testing.T) {
	src := `{"name": "j", "modules": {"m": "m.wasm"},
 "sources": [{"uid": "src", "connector": "test-src", "watermark": {"interval": 100}}],
 "sinks": [{"uid": "out", "connector": "test-sink", "options": {"path": "x"}, "input": "src"}]}`
	j, err, _ := parse(t, src)
	if err != nil {
		t.Fatal(err)
	}
	if j.Name != "j" || j.Sources[0].Source.Watermark.Interval != 100*time.Millisecond || j.Sinks[0].Sink.Options.String("path") != "x" {
		t.Errorf("job = %+v", j)
	}
	_, err, _ = parse(t, `{"name": "j", "sources": [], "sinkz": []}`)
	if err == nil || !strings.Contains(err.Error(), `did you mean "sinks"`) {
		t.Errorf("JSON typo: %v", err)
	}
}

func TestPos(t *testing.T) {
	src := header + `sources:
  - uid: src
    connector: test-src
    options:
      n: 5
operators:
  - uid: a
    module: m
    operator: x
    inputs:
      - from: src
sinks: [{uid: out, connector: test-sink, options: {path: x}, input: a}]
`
	j, err, file := parse(t, src)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]Pos{
		"name":                        {file, 1, 1},
		"sources[0]":                  {file, 4, 5},
		"sources[0].options.n":        {file, 7, 7},
		"operators[0]":                {file, 9, 5},
		"operators[0].inputs[0]":      {file, 13, 9},
		"operators[0].inputs[0].from": {file, 13, 9},
		// Not in the spec: the closest enclosing field.
		"operators[0].parallelism":         {file, 9, 5},
		"operators[0].inputs[0].partition": {file, 13, 9},
		"sinks[0].input":                   {file, 14, strings.Index(src[strings.LastIndex(src, "\nsinks")+1:], "input") + 1},
		"nothing.here":                     {file, 1, 1},
	}
	for field, want := range cases {
		if got := j.Pos(field); got != want {
			t.Errorf("Pos(%q) = %v, want %v", field, got, want)
		}
	}
	e := j.Errorf(j.Node("a").Field+".operator", "module %q has no operator %q", "m", "x")
	if want := file + `:11:5: operators[0].operator: module "m" has no operator "x"`; e.Error() != want {
		t.Errorf("Errorf = %q, want %q", e, want)
	}
}

func TestDocuments(t *testing.T) {
	for name, src := range map[string]string{
		"empty":     "",
		"comment":   "# nothing\n",
		"two":       header + "---\nname: u\n",
		"scalar":    "hello\n",
		"too large": strings.Repeat(" ", MaxSpecBytes+1),
	} {
		_, err, _ := parse(t, src)
		if len(Errors(err)) == 0 {
			t.Errorf("%s: want a *jobspec.Error, got %v", name, err)
		}
	}
}

func TestAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString(header + "sources: [{uid: src, connector: test-src}]\nsinks: [{uid: out, connector: test-sink, options: {path: x}, input: src}]\n")
	b.WriteString("operators:\n  - uid: op\n    module: m\n    operator: x\n    input: src\n    params:\n")
	b.WriteString("      a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n")
	for i := 1; i < 9; i++ {
		refs := strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 10), ", ")
		fmt.Fprintf(&b, "      a%d: &a%d [%s]\n", i, i, refs)
	}
	done := make(chan error, 1)
	go func() { _, err, _ := parse(t, b.String()); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "more than 100000 values") {
			t.Fatalf("alias bomb: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("alias bomb took too long")
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "job.yaml")
	src := "name: l\nsources: [{uid: src, connector: test-src}]\nsinks: [{uid: out, connector: test-sink, options: {path: x}, input: src}]\n"
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	j, err := Load(file)
	if err != nil || j.Name != "l" || j.Dir != dir {
		t.Fatalf("Load = %+v, %v", j, err)
	}
	if _, err := Load(filepath.Join(dir, "none.yaml")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load of a missing file: %v", err)
	}
}

func TestDidYouMean(t *testing.T) {
	for _, c := range []struct{ s, want string }{
		{"paralelism", "parallelism"},
		{"Parallelism", "parallelism"},
		{"slot_sharing", ""},
		{"xyz", ""},
	} {
		got := didYouMean(c.s, []string{"parallelism", "chain", "slot_sharing_group"})
		if c.want == "" && got != "" || c.want != "" && !strings.Contains(got, `"`+c.want+`"`) {
			t.Errorf("didYouMean(%q) = %q, want %q", c.s, got, c.want)
		}
	}
}

// FuzzParse checks that Parse never panics and reports only *Error values,
// each with a position.
func FuzzParse(f *testing.F) {
	f.Add([]byte(header + "sources: [{uid: src, connector: test-src}]\nsinks: [{uid: out, connector: test-sink, options: {path: x}, input: src}]\n"))
	f.Add([]byte("name: a\noperators: [{uid: a, input: a.b, window: {type: sliding, size: 1, slide: 0}}]\n"))
	f.Add([]byte(`{"name": "x", "sources": [{"uid": "s", "options": {"a": [1, {"b": null}]}}]}`))
	f.Add([]byte("a: &x [*x]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := Parse(data, "fuzz.yaml")
		if err == nil {
			if j == nil || j.Name == "" || len(j.Sources) == 0 || len(j.Sinks) == 0 {
				t.Fatalf("accepted an incomplete job: %+v", j)
			}
			return
		}
		errs := Errors(err)
		if len(errs) == 0 {
			t.Fatalf("error is not a *jobspec.Error: %v", err)
		}
		for _, e := range errs {
			if e.File != "fuzz.yaml" || e.Msg == "" {
				t.Fatalf("bad error: %#v", e)
			}
		}
	})
}

func BenchmarkParse(b *testing.B) {
	var s strings.Builder
	s.WriteString(header + "sources: [{uid: o0, connector: test-src, options: {key: k}}]\noperators:\n")
	for i := 1; i <= 200; i++ {
		fmt.Fprintf(&s, "  - {uid: o%d, module: m, operator: x, params: {n: %d}, inputs: [{from: o%d, partition: key_by}]}\n", i, i, i-1)
	}
	s.WriteString("sinks: [{uid: out, connector: test-sink, options: {path: x}, input: o200}]\n")
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "m.wasm"), nil, 0o644); err != nil {
		b.Fatal(err)
	}
	data, file := []byte(s.String()), filepath.Join(dir, "job.yaml")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data, file); err != nil {
			b.Fatal(err)
		}
	}
}

const restartTail = `sources: [{uid: src, connector: test-src}]
sinks: [{uid: out, connector: test-sink, options: {path: x}, input: src}]
`

func TestRestartErrors(t *testing.T) {
	cases := map[string]string{
		"fields of another strategy": header + `restart:
  attempts: 5 # want: restart.attempts: restart strategy none has no attempts (it is a field of fixed-delay and exponential-delay)
` + restartTail,
		"fixed-delay with exponential fields": header + `restart:
  strategy: fixed-delay
  multiplier: 2 # want: restart.multiplier: restart strategy fixed-delay has no multiplier (it is a field of exponential-delay)
  interval: 1m # want: restart.interval: restart strategy fixed-delay has no interval (it is a field of failure-rate)
` + restartTail,
		"exponential-delay ranges": header + `restart:
  strategy: exponential-delay
  attempts: -1 # want: restart.attempts: -1 restart attempts; want 0 (no limit) or more
  initial_delay: 10s
  max_delay: 5s # want: restart.max_delay: max_delay 5s is shorter than initial_delay 10s
  multiplier: 0.5 # want: restart.multiplier: multiplier 0.5 is out of range; want 1 to 100
  reset_after: 0s # want: restart.reset_after: reset_after must be more than 0
  jitter: 1.5 # want: restart.jitter: jitter 1.5 is out of range; want 0 to 1
  delay: 1s # want: restart.delay: restart strategy exponential-delay has no delay (it is a field of fixed-delay and failure-rate)
` + restartTail,
		"exponential-delay types": header + `restart:
  strategy: exponential-delay
  initial_delay: 0 # want: restart.initial_delay: the initial delay must be more than 0
  multiplier: twice # want: restart.multiplier: want a number, got "twice"
  jitter: .nan # want: restart.jitter: want a finite number, got .nan
` + restartTail,
		"failure-rate ranges": header + `restart:
  strategy: failure-rate
  max_failures: 0 # want: restart.max_failures: 0 failures per interval; want 1 or more
  interval: 0s # want: restart.interval: the interval must be more than 0
  attempts: 2 # want: restart.attempts: restart strategy failure-rate has no attempts
` + restartTail,
		"unknown strategy lists the new ones": header + `restart: {strategy: backoff} # want: restart.strategy: unknown restart strategy "backoff"; want none, fixed-delay, exponential-delay or failure-rate
` + restartTail,
	}
	for name, src := range cases {
		t.Run(name, func(t *testing.T) { checkWants(t, src) })
	}
}

func TestRestartResolved(t *testing.T) {
	cases := []struct {
		name, block string
		want        Restart
	}{
		{"fixed-delay defaults", `{strategy: fixed-delay}`,
			Restart{Strategy: RestartFixedDelay, Attempts: 3, Delay: time.Second}},
		{"exponential-delay defaults", `{strategy: exponential-delay}`,
			Restart{Strategy: RestartExponentialDelay, InitialDelay: time.Second, MaxDelay: time.Minute,
				Multiplier: 2, ResetAfter: time.Hour, Jitter: 0.1}},
		{"exponential-delay set", `{strategy: exponential-delay, attempts: 4, initial_delay: 2m, multiplier: 1.5, reset_after: 10m, jitter: 0}`,
			// max_delay defaults to at least the initial delay.
			Restart{Strategy: RestartExponentialDelay, Attempts: 4, InitialDelay: 2 * time.Minute, MaxDelay: 2 * time.Minute,
				Multiplier: 1.5, ResetAfter: 10 * time.Minute}},
		{"failure-rate defaults", `{strategy: failure-rate}`,
			Restart{Strategy: RestartFailureRate, Delay: time.Second, MaxFailures: 1, Interval: time.Minute}},
		{"failure-rate set", `{strategy: failure-rate, max_failures: 3, interval: 5m, delay: 10s}`,
			Restart{Strategy: RestartFailureRate, Delay: 10 * time.Second, MaxFailures: 3, Interval: 5 * time.Minute}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j, err, _ := parse(t, header+"restart: "+c.block+"\n"+restartTail)
			if err != nil {
				t.Fatal(err)
			}
			if j.Restart != c.want {
				t.Errorf("restart = %+v\nwant %+v", j.Restart, c.want)
			}
		})
	}
}

func TestCheckpointErrors(t *testing.T) {
	cases := map[string]string{
		"interval is required": header + `checkpoints: {mode: unaligned} # want: checkpoints: interval is required
` + restartTail,
		"ranges": header + `checkpoints:
  interval: 5ms # want: checkpoints.interval: interval 5ms is shorter than the minimum of 10ms
  timeout: 0s # want: checkpoints.timeout: the timeout must be more than 0 (default 10m0s)
  max_concurrent: 101 # want: checkpoints.max_concurrent: 101 concurrent checkpoints is out of range; want 1 to 100
  tolerable_failures: -1 # want: checkpoints.tolerable_failures: -1 tolerable failures; want 0
  retained: 0 # want: checkpoints.retained: 0 retained checkpoints is out of range; want 1 to 100
  dir: "" # want: checkpoints.dir: empty dir
` + restartTail,
		"types": header + `checkpoints:
  interval: often # want: checkpoints.interval: "often" is not a duration
  max_concurrent: two # want: checkpoints.max_concurrent: want an integer, got "two"
  min_pause: -1s # want: checkpoints.min_pause: negative duration -1s
` + restartTail,
		"mode with suggestion": header + `checkpoints:
  interval: 10s
  mode: unalinged # want: checkpoints.mode: unknown checkpoint mode "unalinged"; did you mean "unaligned"?; want aligned, unaligned or at-least-once
` + restartTail,
		"unknown field with suggestion": header + `checkpoints:
  interval: 10s
  retain: 3 # want: checkpoints.retain: unknown field "retain"; did you mean "retained"?
` + restartTail,
		"min pause with concurrency": header + `checkpoints:
  interval: 10s
  max_concurrent: 2
  min_pause: 1s # want: checkpoints.min_pause: min_pause 1s implies one checkpoint at a time, but max_concurrent is 2
` + restartTail,
		"alignment timeout of another mode": header + `checkpoints:
  interval: 10s
  mode: at-least-once
  alignment_timeout: 1s # want: checkpoints.alignment_timeout: alignment_timeout switches aligned checkpoints to unaligned, but mode is at-least-once
` + restartTail,
		"not a map": header + `checkpoints: 10s # want: checkpoints: want a map of fields, got "10s"
` + restartTail,
	}
	for name, src := range cases {
		t.Run(name, func(t *testing.T) { checkWants(t, src) })
	}
}

func TestCheckpointResolved(t *testing.T) {
	defaults := Checkpoints{Timeout: 10 * time.Minute, MaxConcurrent: 1, Mode: "aligned", Retained: 1}
	cases := []struct {
		name, block string
		want        func(dir string) Checkpoints
	}{
		{"no block: none", ``, func(string) Checkpoints { return defaults }},
		{"an empty field is no block", `checkpoints:`, func(string) Checkpoints { return defaults }},
		{"interval only", `checkpoints: {interval: 10s}`, func(string) Checkpoints {
			c := defaults
			c.Interval = 10 * time.Second
			return c
		}},
		{"everything", `checkpoints: {interval: 1500, timeout: 1m, min_pause: 500ms, tolerable_failures: 3,
  mode: aligned, alignment_timeout: 2s, retained: 5, dir: ckpt, incremental: true}`, func(dir string) Checkpoints {
			return Checkpoints{Interval: 1500 * time.Millisecond, Timeout: time.Minute, MinPause: 500 * time.Millisecond,
				MaxConcurrent: 1, TolerableFailures: 3, Mode: "aligned", AlignmentTimeout: 2 * time.Second, Retained: 5,
				Dir: filepath.Join(dir, "ckpt"), Incremental: true}
		}},
		{"unaligned, concurrent, absolute dir", `checkpoints: {interval: 1m, mode: unaligned, max_concurrent: 3, dir: /var/ckpt}`, func(string) Checkpoints {
			return Checkpoints{Interval: time.Minute, Timeout: 10 * time.Minute, MaxConcurrent: 3, Mode: "unaligned", Retained: 1, Dir: "/var/ckpt"}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j, err, file := parse(t, header+c.block+"\n"+restartTail)
			if err != nil {
				t.Fatal(err)
			}
			if want := c.want(filepath.Dir(file)); j.Checkpoints != want {
				t.Errorf("checkpoints = %+v\nwant %+v", j.Checkpoints, want)
			}
			if j.Checkpoints.Enabled() != (j.Checkpoints.Interval > 0) {
				t.Errorf("Enabled() = %v with interval %s", j.Checkpoints.Enabled(), j.Checkpoints.Interval)
			}
		})
	}
}

// TestCheckpointDocExamples parses every checkpoints line that the
// checkpoints section of docs/jobspec.md shows, so the page cannot show a
// block the parser refuses.
func TestCheckpointDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../../docs/jobspec.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	start := strings.Index(s, "### `checkpoints`")
	end := strings.Index(s[start+1:], "\n## ") + start + 1
	if start < 0 || end <= start {
		t.Fatal("docs/jobspec.md has no checkpoints section")
	}
	n := 0
	for _, line := range strings.Split(s[start:end], "\n") {
		if !strings.HasPrefix(line, "checkpoints: {") {
			continue
		}
		n++
		j, err, _ := parse(t, header+line+"\n"+restartTail)
		if err != nil {
			t.Errorf("%s: %v", line, err)
		} else if !j.Checkpoints.Enabled() {
			t.Errorf("%s: checkpoints not enabled", line)
		}
	}
	if n < 2 {
		t.Fatalf("found %d examples in the checkpoints section", n)
	}
}
