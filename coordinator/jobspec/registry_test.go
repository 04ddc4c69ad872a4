package jobspec

import (
	"path/filepath"
	"strings"
	"testing"
)

const registrySpec = `name: rj
modules:
  wc: wordcount@1.0.2
  local: m.wasm
sources:
  - {uid: src, connector: test-src}
operators:
  - {uid: a, module: wc, operator: split, input: src}
  - {uid: b, module: local, operator: id, input: a}
sinks:
  - {uid: out, connector: test-sink, options: {path: out.txt}, input: b}
state: {backend: pebble, dir: st}
`

func TestRegistryModules(t *testing.T) {
	j, err, file := parse(t, registrySpec)
	if err != nil {
		t.Fatal(err)
	}
	wc := j.Module("wc")
	if wc.Registry == nil || *wc.Registry != (ModuleRef{Name: "wordcount", Version: "1.0.2"}) || wc.Path != "" || wc.Resolved != "" {
		t.Errorf("wc = %+v", wc)
	}
	if l := j.Module("local"); l.Registry != nil || l.Resolved != filepath.Join(filepath.Dir(file), "m.wasm") {
		t.Errorf("local = %+v", l)
	}
	// weir run refuses the registry module, at its line.
	err = j.LocalOnly()
	es := Errors(err)
	if len(es) != 1 || es[0].Line != 3 || es[0].Field != "modules.wc" || !strings.Contains(es[0].Msg, "wordcount@1.0.2") {
		t.Errorf("LocalOnly = %v", err)
	}
}

func TestRegistryModuleErrors(t *testing.T) {
	for _, c := range []struct{ ref, want string }{
		{"wc@1..2", `".."`},
		{"wc@", "empty version"},
		{"@1", "empty name"},
		{"w c@1", "only letters"},
		{"by-digest@1", "reserved"},
		{"wc@1@2", "only letters"},
	} {
		src := strings.Replace(registrySpec, "wordcount@1.0.2", `"`+c.ref+`"`, 1)
		_, err, _ := parse(t, src)
		es := Errors(err)
		if len(es) != 1 || es[0].Line != 3 || !strings.Contains(es[0].Msg, c.want) {
			t.Errorf("%s: %v; want one error at line 3 containing %q", c.ref, err, c.want)
		}
	}
	// A path with a separator stays a path, even with an '@'.
	src := strings.Replace(registrySpec, "wordcount@1.0.2", "./w@1.wasm", 1)
	_, err, _ := parse(t, src)
	if es := Errors(err); len(es) != 1 || !strings.Contains(es[0].Msg, "does not exist") {
		t.Errorf("./w@1.wasm: %v", err)
	}
}

func TestParseRemote(t *testing.T) {
	dir := t.TempDir()
	// A local path is refused without looking at the filesystem.
	_, err := ParseRemote([]byte(strings.Replace(registrySpec, "m.wasm", "/etc/passwd", 1)), "job.yaml", dir)
	if es := Errors(err); len(es) != 1 || es[0].Line != 4 || !strings.Contains(es[0].Msg, "local path") {
		t.Errorf("local path: %v", err)
	}
	src := strings.Replace(registrySpec, "  local: m.wasm\n", "  local: other@2\n", 1)
	j, err := ParseRemote([]byte(src), "job.yaml", dir)
	if err != nil {
		t.Fatal(err)
	}
	if j.Dir != dir || j.State.Dir != filepath.Join(dir, "st") || j.File != "job.yaml" {
		t.Errorf("Dir %q, State.Dir %q, File %q", j.Dir, j.State.Dir, j.File)
	}
}
