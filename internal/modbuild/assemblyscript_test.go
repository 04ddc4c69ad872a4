package modbuild

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weirstream/weir/worker/modtest"
	"github.com/weirstream/weir/worker/wasmhost"
)

func TestDetectAssemblyScript(t *testing.T) {
	cases := []struct {
		files map[string]string
		want  Lang
		err   string
	}{
		{map[string]string{"assembly/index.ts": ""}, LangAssemblyScript, ""},
		{map[string]string{"op.ts": "", "README.md": ""}, LangAssemblyScript, ""},
		{map[string]string{"op.ts": "", "main.go": "package main"}, "", "more than one language"},
		{map[string]string{"types.d.ts": ""}, "", "no operator sources"},
	}
	for i, c := range cases {
		dir := t.TempDir()
		write(t, dir, c.files)
		got, err := Detect(dir)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("case %d: err = %v, want %q", i, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("case %d: Detect = %q, %v; want %q", i, got, err, c.want)
		}
	}
}

// TestInitBuildAssemblyScript makes the AssemblyScript template, builds it
// with the real compiler (cached the second time, rebuilt after a change)
// and runs its upper operator over the template's sample through the host.
func TestInitBuildAssemblyScript(t *testing.T) {
	ctx := context.Background()
	cache := filepath.Join(os.TempDir(), "weir-modbuild-as-test-cache")
	dir := filepath.Join(t.TempDir(), "asop")
	files, err := Init(dir, LangAssemblyScript, cache)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 3 || !strings.HasSuffix(files[0], filepath.Join("assembly", "index.ts")) {
		t.Fatalf("wrote %v", files)
	}
	res, err := Build(ctx, Options{Dir: dir, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if res.Lang != LangAssemblyScript || res.Out != filepath.Join(dir, "asop.wasm") {
		t.Fatalf("result %+v", res)
	}
	again, err := Build(ctx, Options{Dir: dir, CacheDir: cache})
	if err != nil || !again.Cached || again.Hash != res.Hash {
		t.Fatalf("second build: %+v, %v; want it from the cache", again, err)
	}
	src := filepath.Join(dir, "assembly", "index.ts")
	b, _ := os.ReadFile(src)
	if err := os.WriteFile(src, append(b, "\n// changed\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if changed, err := hashInputs(ctx, dir, LangAssemblyScript, res.Out, nil); err != nil || changed == res.Hash {
		t.Fatalf("hash after a change: %s, %v; want a new one", changed, err)
	}

	wasm, err := os.ReadFile(res.Out)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := wasmhost.NewRuntime(ctx, wasmhost.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	mod, err := rt.Load(ctx, "asop.wasm", wasm)
	if err != nil {
		t.Fatal(err)
	}
	sample, _ := os.ReadFile(filepath.Join(dir, "sample.jsonl"))
	out, err := modtest.Run(ctx, modtest.Options{Module: mod, Operators: []string{"upper"}, Input: bytes.NewReader(sample), InputName: "sample.jsonl", Format: "jsonl"})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	sc := bufio.NewScanner(bytes.NewReader(sample))
	for sc.Scan() {
		var r struct {
			Value string `json:"value"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		want = append(want, strings.ToUpper(r.Value))
	}
	var got []string
	for _, r := range out.Records {
		got = append(got, r.Value)
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("upper: got %q, want %q", got, want)
	}
}

// TestGoBuildSettingsInHash: GOWASM and the wasm-opt flags change what a
// Go build produces, so they are part of its cache key.
func TestGoBuildSettingsInHash(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"main.go": "package main\n\nfunc main() {}\n"})
	ctx := context.Background()
	hash := func() string {
		t.Helper()
		h, err := hashInputs(ctx, dir, LangGo, filepath.Join(dir, "x.wasm"), nil)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	t.Setenv("GOWASM", "")
	t.Setenv("WEIR_GO_WASM_OPT", "off")
	base := hash()
	t.Setenv("GOWASM", "satconv")
	if hash() == base {
		t.Error("GOWASM left the hash as it was")
	}
	t.Setenv("GOWASM", "")
	t.Setenv("WEIR_GO_WASM_OPT", "-O2")
	if hash() == base {
		t.Error("WEIR_GO_WASM_OPT left the hash as it was")
	}
}
