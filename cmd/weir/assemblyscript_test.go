package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildAssemblyScriptCompileError: a folder that does not compile makes
// `weir module build` exit non-zero with the compiler's first error and its
// file:line first.
func TestBuildAssemblyScriptCompileError(t *testing.T) {
	e2e(t)
	dir := filepath.Join(t.TempDir(), "broken")
	mustWeir(t, "module", "init", "--lang", "assemblyscript", dir)
	src := filepath.Join(dir, "assembly", "index.ts")
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	lines[3] = "const broken: i32 = \"not a number\";" // line 4
	if err := os.WriteFile(src, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	r := weir(t, "module", "build", dir)
	if r.code == 0 {
		t.Fatalf("a broken module built: %s", r.stdout)
	}
	if !strings.Contains(r.stderr, "assembly/index.ts:4:") || !strings.Contains(r.stderr, "ERROR TS") {
		t.Fatalf("stderr %q: want the first error with assembly/index.ts:4:", r.stderr)
	}
}
