package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeJob writes a job spec into a fresh folder and returns its path.
func writeJob(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "job.yaml")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestJobValidate(t *testing.T) {
	wc := filepath.Join(repoRoot, "examples", "wordcount")
	path := writeJob(t, fmt.Sprintf(`name: v
modules: {wc: %q}
sources:
  - {uid: a, connector: datagen, options: {count: 10, keys: 3}}
  - {uid: b, connector: datagen, options: {count: 10}}
operators:
  - {uid: s, module: wc, operator: split, input: b}
sinks:
  - {uid: o1, connector: stdout, input: a}
  - {uid: o2, connector: stdout, input: s}
  - {uid: o3, connector: stdout, input: a}
`, wc))
	r := mustWeir(t, "job", "validate", path)
	if want := path + ": ok (2 sources, 1 operators, 3 sinks)\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
	r = mustWeir(t, "job", "validate", "-o", "json", path)
	var res struct {
		OK                        bool
		Sources, Operators, Sinks int
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || !res.OK || res.Sources != 2 || res.Operators != 1 || res.Sinks != 3 {
		t.Errorf("json %q: %+v %v", r.stdout, res, err)
	}
}

func TestJobValidateErrors(t *testing.T) {
	src := `name: bad
paralelism: 2
sources:
  - {uid: a, connector: datagen, options: {cnt: 1}}
sinks:
  - {uid: o, connector: stdout, input: x}
`
	path := writeJob(t, src)
	lines := strings.Split(src, "\n")
	col := func(line int, s string) int { return strings.Index(lines[line-1], s) + 1 }
	r := weir(t, "job", "validate", path)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", r.code, r.stderr)
	}
	for _, want := range []string{
		path + `:2:1: paralelism: unknown field "paralelism"; did you mean "parallelism"?`,
		fmt.Sprintf(`%s:4:%d: sources[0].options.cnt: unknown option`, path, col(4, "cnt")),
		fmt.Sprintf(`%s:6:%d: sinks[0].input: no node "x"`, path, col(6, "input")),
		"weir: " + path + ": 3 problems",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if r.stdout != "" {
		t.Errorf("stdout %q", r.stdout)
	}
	r = weir(t, "job", "validate", filepath.Join(t.TempDir(), "none.yaml"))
	if r.code != 1 || !strings.Contains(r.stderr, "no such file") {
		t.Errorf("missing file: exit %d %s", r.code, r.stderr)
	}
}

func TestJobPlan(t *testing.T) {
	e2e(t) // builds the wordcount module
	spec := filepath.Join(repoRoot, "examples", "wordcount", "job.yaml")
	r := mustWeir(t, "job", "plan", spec, "-o", "json")
	var p struct {
		Slots    int
		Vertices []struct {
			Name        string
			Parallelism int
			Keyed       bool
		}
		Edges []struct{ Partition string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	// The spec: lines (1) -> split (1) forward, -> count (2) key_by, -> out (1).
	if len(p.Vertices) != 3 || p.Vertices[0].Name != "lines -> split" || !p.Vertices[1].Keyed || p.Vertices[1].Parallelism != 2 || p.Slots != 2 {
		t.Errorf("plan %+v", p)
	}
	if len(p.Edges) != 2 || p.Edges[0].Partition != "key_by" || p.Edges[1].Partition != "rebalance" {
		t.Errorf("edges %+v", p.Edges)
	}
	r = mustWeir(t, "job", "plan", spec, "--format", "dot")
	if !strings.HasPrefix(r.stdout, `digraph "wordcount" {`) || strings.Count(r.stdout, "{") != strings.Count(r.stdout, "}") {
		t.Errorf("dot:\n%s", r.stdout)
	}
	r = mustWeir(t, "job", "plan", spec)
	if !strings.Contains(r.stdout, "subtasks: 0[0-63] 1[64-127]") {
		t.Errorf("text:\n%s", r.stdout)
	}
	if r := weir(t, "job", "plan", spec, "--format", "svg"); r.code != 2 {
		t.Errorf("--format svg: exit %d", r.code)
	}

	bad := writeJob(t, fmt.Sprintf(`name: p
modules: {wc: %q}
sources: [{uid: a, connector: datagen, options: {count: 1}}]
operators:
  - uid: s
    module: wc
    operator: splitt
    input: a
sinks: [{uid: o, connector: stdout, input: s}]
`, filepath.Join(repoRoot, "examples", "wordcount")))
	r = weir(t, "job", "plan", bad)
	if r.code != 1 || !strings.Contains(r.stderr, bad+`:7:5: operators[0].operator: module wc has no operator "splitt"`) {
		t.Errorf("exit %d\n%s", r.code, r.stderr)
	}
}
