package modbuild

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDetect(t *testing.T) {
	cases := []struct {
		files map[string]string
		want  Lang
		err   string
	}{
		{map[string]string{"main.go": "package main", "main_test.go": ""}, LangGo, ""},
		{map[string]string{"op.c": ""}, LangC, ""},
		{map[string]string{"main.go": "", "op.c": ""}, "", "more than one language"},
		{map[string]string{"lib.rs": "", "util.rs": ""}, LangRust, ""},
		{map[string]string{"main.rs": ""}, "", "no lib.rs"},
		{map[string]string{"lib.rs": "", "op.c": ""}, "", "more than one language"},
		{map[string]string{"only_test.go": "", "README.md": ""}, "", "no operator sources"},
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
	if _, err := Detect(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing folder was detected")
	}
}

func TestInitNeverOverwrites(t *testing.T) {
	cache := t.TempDir()
	dir := filepath.Join(t.TempDir(), "myop")
	files, err := Init(dir, LangGo, cache)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 4 {
		t.Fatalf("wrote %v", files)
	}
	gomod, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
	sdkDir, _ := WriteGoSDK(cache)
	if !strings.Contains(string(gomod), "module myop") || !strings.Contains(string(gomod), "=> "+sdkDir) {
		t.Errorf("go.mod:\n%s", gomod)
	}
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("// mine"), 0o644)
	if _, err := Init(dir, LangGo, cache); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second init: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "main.go")); string(b) != "// mine" {
		t.Fatal("init overwrote main.go")
	}
	if _, err := Init(filepath.Join(t.TempDir(), "bad name"), LangGo, cache); err == nil {
		t.Error("a folder name with a space became a module name")
	}
	if _, err := Init(filepath.Join(t.TempDir(), "x"), "cobol", cache); err == nil {
		t.Error("unknown language accepted")
	}
}

// TestGoSDKModule: the SDK written for authors outside the repository is a
// module with the SDK, its test harness and the ABI package, and no tests.
func TestGoSDKModule(t *testing.T) {
	dir, err := WriteGoSDK(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"go.mod", "sdk/go/register.go", "sdk/go/weirtest/harness.go", "wasmabi/abi.go"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	tests, _ := filepath.Glob(filepath.Join(dir, "*", "*", "*_test.go"))
	if len(tests) > 0 {
		t.Errorf("test files in the SDK module: %v", tests)
	}
	if _, err := Build(t.Context(), Options{Dir: t.TempDir()}); !errors.Is(err, ErrNoSources) {
		t.Errorf("building an empty folder: %v", err)
	}
}

// TestHashFollowsRepoImports: inside the weir repository an operator
// package may import any package of the repository, and a change there
// must change the build's cache key, or a stale module would be reused.
func TestHashFollowsRepoImports(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{
		"go.mod":           "module " + WeirModule + "\n\ngo 1.25\n",
		"op/op.go":         "package main\n\nimport \"github.com/weirstream/weir/helper\"\n\nfunc main() { helper.F() }\n",
		"helper/helper.go": "package helper\n\nfunc F() {}\n",
		"unrelated/u.go":   "package unrelated\n",
	})
	ctx := context.Background()
	dir := filepath.Join(root, "op")
	hash := func() string {
		t.Helper()
		h, err := hashInputs(ctx, dir, LangGo, filepath.Join(dir, "op.wasm"), nil)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	first := hash()
	if again := hash(); again != first {
		t.Fatalf("the hash of unchanged sources changed: %s then %s", first, again)
	}
	write(t, root, map[string]string{"unrelated/u.go": "package unrelated\n\nvar X = 1\n"})
	if h := hash(); h != first {
		t.Errorf("a package the operator does not import changed the hash")
	}
	write(t, root, map[string]string{"helper/helper.go": "package helper\n\nfunc F() { println() }\n"})
	if h := hash(); h == first {
		t.Errorf("changing an imported package of the repository left the hash as it was: a stale module would be used")
	}
}

// TestRustBuildCache: a Rust folder builds with the real rustc, a second
// build of the same sources comes from the cache, and any change of a
// source file (also one lib.rs includes as a module) builds again.
func TestRustBuildCache(t *testing.T) {
	cache := t.TempDir()
	dir := filepath.Join(t.TempDir(), "rop")
	if _, err := Init(dir, LangRust, cache); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	build := func() *Result {
		t.Helper()
		res, err := Build(ctx, Options{Dir: dir, CacheDir: cache})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	first := build()
	if first.Cached || first.Lang != LangRust {
		t.Fatalf("first build: %+v", first)
	}
	b, err := os.ReadFile(first.Out)
	if err != nil || len(b) < 8 || string(b[:4]) != "\x00asm" {
		t.Fatalf("%s is not a WebAssembly module (%v)", first.Out, err)
	}
	if again := build(); !again.Cached || again.Hash != first.Hash {
		t.Fatalf("second build: %+v", again)
	}
	// Files that are not Rust sources (a job's output, samples) do not
	// change the crate.
	write(t, dir, map[string]string{"out/counts.jsonl": "{}\n", "sample.jsonl": "changed\n"})
	if again := build(); !again.Cached || again.Hash != first.Hash {
		t.Fatalf("a non-Rust file changed the build: %+v", again)
	}
	write(t, dir, map[string]string{"helper.rs": "pub fn one() -> i64 { 1 }\n"})
	lib, _ := os.ReadFile(filepath.Join(dir, "lib.rs"))
	src := strings.Replace(string(lib), "\nuse weir::", "\nmod helper;\nuse weir::", 1)
	write(t, dir, map[string]string{"lib.rs": strings.Replace(src, ".unwrap_or(0) + 1", ".unwrap_or(0) + helper::one()", 1)})
	if changed := build(); changed.Cached || changed.Hash == first.Hash {
		t.Fatalf("a changed crate came from the cache: %+v", changed)
	}
	write(t, dir, map[string]string{"helper.rs": "pub fn one() -> i64 { 2 - 1 }\n"})
	if changed := build(); changed.Cached {
		t.Fatalf("a changed module file came from the cache: %+v", changed)
	}
}
