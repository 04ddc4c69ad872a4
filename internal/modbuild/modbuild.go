// Package modbuild compiles an operator folder (Go, C, Rust or AssemblyScript) to a WebAssembly
// module, caching results by the content of the sources and the SDK, and
// writes the SDKs out of the weir binary for authors who work outside the
// weir repository.
package modbuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/weirstream/weir/sdk"
	assdk "github.com/weirstream/weir/sdk/assemblyscript"
	csdk "github.com/weirstream/weir/sdk/c"
	rustsdk "github.com/weirstream/weir/sdk/rust"
	"github.com/weirstream/weir/wasmabi"
)

// WeirModule is the Go module path of weir; the Go SDK is its sdk/go package.
const WeirModule = "github.com/weirstream/weir"

// Lang is the source language of an operator folder.
type Lang string

const (
	LangGo   Lang = "go"
	LangC    Lang = "c"
	LangRust Lang = "rust"
	// LangAssemblyScript is a folder with assembly/index.ts or *.ts files.
	LangAssemblyScript Lang = "assemblyscript"
)

// Options say what to build.
type Options struct {
	Dir      string // the operator folder
	Out      string // the .wasm to write; default DIR/<folder name>.wasm
	CacheDir string // default: the user cache folder
	Log      io.Writer
}

// Result is what Build did.
type Result struct {
	Out    string
	Lang   Lang
	Cached bool // the module came from the cache
	Hash   string
}

// ErrNoSources is returned for a folder with neither Go nor C sources.
var ErrNoSources = errors.New("modbuild: no operator sources")

// DefaultCacheDir is $WEIR_CACHE_DIR or the user cache folder's weir/.
func DefaultCacheDir() string {
	if d := os.Getenv("WEIR_CACHE_DIR"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "weir")
	}
	return filepath.Join(os.TempDir(), "weir-cache")
}

// Detect tells the language of the operator folder dir.
func Detect(dir string) (Lang, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("modbuild: reading %s: %w", dir, err)
	}
	var goFiles, cFiles, rsFiles, tsFiles int
	for _, e := range ents {
		switch {
		case strings.HasSuffix(e.Name(), "_test.go"):
		case strings.HasSuffix(e.Name(), ".go"):
			goFiles++
		case strings.HasSuffix(e.Name(), ".c"):
			cFiles++
		case strings.HasSuffix(e.Name(), ".rs"):
			rsFiles++
		case strings.HasSuffix(e.Name(), ".ts") && !strings.HasSuffix(e.Name(), ".d.ts"):
			tsFiles++
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "assembly", "index.ts")); err == nil {
		tsFiles++
	}
	langs := 0
	for _, n := range []int{goFiles, cFiles, rsFiles, tsFiles} {
		if n > 0 {
			langs++
		}
	}
	switch {
	case langs > 1:
		return "", fmt.Errorf("modbuild: %s has sources in more than one language (%d Go, %d C, %d Rust, %d AssemblyScript); keep one operator module per folder", dir, goFiles, cFiles, rsFiles, tsFiles)
	case tsFiles > 0:
		return LangAssemblyScript, nil
	case goFiles > 0:
		return LangGo, nil
	case cFiles > 0:
		return LangC, nil
	case rsFiles > 0:
		if _, err := os.Stat(filepath.Join(dir, rustsdk.CrateRoot)); err != nil {
			return "", fmt.Errorf("modbuild: %s has Rust sources but no %s, the crate root; `weir module init --lang rust DIR` makes a template", dir, rustsdk.CrateRoot)
		}
		return LangRust, nil
	}
	return "", fmt.Errorf("%w in %s: expected *.go (with package main), *.c, lib.rs, or AssemblyScript (assembly/index.ts or *.ts) files; `weir module init --lang go|c|rust|assemblyscript DIR` makes a template", ErrNoSources, dir)
}

// Build compiles opts.Dir to a .wasm module.
func Build(ctx context.Context, opts Options) (*Result, error) {
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	lang, err := Detect(dir)
	if err != nil {
		return nil, err
	}
	out := opts.Out
	if out == "" {
		out = filepath.Join(dir, filepath.Base(dir)+".wasm")
	}
	cacheDir := opts.CacheDir
	if cacheDir == "" {
		cacheDir = DefaultCacheDir()
	}
	logw := opts.Log
	if logw == nil {
		logw = io.Discard
	}
	var rustTC *rustsdk.Toolchain
	if lang == LangRust {
		// Found before hashing: the toolchain is part of the build's identity.
		if rustTC, err = rustsdk.Find(); err != nil {
			return nil, err
		}
	}
	hash, err := hashInputs(ctx, dir, lang, out, rustTC)
	if err != nil {
		return nil, err
	}
	res := &Result{Out: out, Lang: lang, Hash: hash}
	cached := filepath.Join(cacheDir, "build", hash+".wasm")
	if _, err := os.Stat(cached); err == nil {
		res.Cached = true
		return res, copyFile(cached, out)
	}
	tmp := cached + ".tmp" + fmt.Sprint(os.Getpid())
	if err := os.MkdirAll(filepath.Dir(cached), 0o755); err != nil {
		return nil, fmt.Errorf("modbuild: making cache folder: %w", err)
	}
	switch lang {
	case LangGo:
		err = buildGo(ctx, dir, tmp, cacheDir, logw)
	case LangC:
		err = buildC(ctx, dir, tmp, cacheDir, logw)
	case LangRust:
		err = rustsdk.Build(ctx, dir, tmp, cacheDir, logw)
	case LangAssemblyScript:
		err = assdk.Build(ctx, dir, tmp, filepath.Join(cacheDir, "sdk", "as-"+assdk.Hash()), logw)
	}
	if err != nil {
		os.Remove(tmp)
		return nil, err
	}
	if err := os.Rename(tmp, cached); err != nil {
		return nil, fmt.Errorf("modbuild: caching module: %w", err)
	}
	return res, copyFile(cached, out)
}

// hashInputs hashes everything that decides the output: the sources in dir
// (not the module it writes), the SDKs, the toolchain and the language.
func hashInputs(ctx context.Context, dir string, lang Lang, out string, rust *rustsdk.Toolchain) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "lang=%s go=%s abi=%d sdk=%s\n", lang, runtime.Version(), wasmabi.Version, SDKHash())
	if rust != nil {
		fmt.Fprintf(h, "rustc=%s target=%s features=%s crate=%s\n%s\n", rust.Rustc, rust.Target, rustsdk.Features, rustsdk.CrateName(dir), rust.Version)
	}
	if lang == LangAssemblyScript {
		fmt.Fprintf(h, "assemblyscript-sdk=%s\n", assdk.Hash())
	}
	if lang == LangGo {
		gowasm, opt := goWasmFeatures(), goWasmOpt()
		fmt.Fprintf(h, "gowasm=%s wasm-opt=%q\n", gowasm, opt)
		if len(opt) > 0 {
			fmt.Fprintf(h, "wasm-opt-version=%s\n", wasmOptVersion(ctx))
		}
	}
	if lang == LangRust {
		// A crate is its .rs files; job specs, samples and a job's output
		// beside lib.rs (examples/wordcount-rust) must not force a rebuild.
		if err := hashRustSources(h, dir); err != nil {
			return "", err
		}
	} else if err := hashTree(h, dir, out, true); err != nil {
		return "", err
	}
	if root, inRepo := weirRoot(dir); inRepo && lang == LangGo {
		// Inside the weir repository the build uses the repository's
		// packages (the SDK, and any other the operator imports), which
		// may differ from the ones embedded in this binary.
		deps, err := repoDeps(ctx, root, dir)
		if err != nil {
			return "", err
		}
		for _, d := range deps {
			if err := hashTree(h, d, out, false); err != nil {
				return "", err
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}

// wasmEnv is the environment of every go command run for a module.
var wasmEnv = []string{"GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0"}

// repoDeps lists the folders of the packages under root that the Go
// package in dir imports, directly or not, when built for WebAssembly.
func repoDeps(ctx context.Context, root, dir string) ([]string, error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{end}}", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), wasmEnv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("modbuild: listing the imports of %s: %v\n%s", dir, err, strings.TrimSpace(stderr.String()))
	}
	var deps []string
	for _, d := range strings.Fields(string(b)) {
		if rel, err := filepath.Rel(root, d); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			deps = append(deps, d)
		}
	}
	return deps, nil
}

// hashTree adds the names and contents of the files under dir to h, in a
// fixed order, leaving out built modules, hidden folders and testdata, and
// all subfolders unless deep.
func hashTree(h io.Writer, dir, out string, deep bool) error {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != dir && (!deep || strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".wasm") && p != out {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("modbuild: reading %s: %w", dir, err)
	}
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("modbuild: %w", err)
		}
		fmt.Fprintf(h, "%s %d\n", f, len(b))
		h.Write(b)
	}
	return nil
}

// hashRustSources adds the names and contents of the .rs files under dir
// to h, in a fixed order, leaving out hidden folders, testdata and cargo's
// target folder.
func hashRustSources(h io.Writer, dir string) error {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != dir && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "target") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(p, ".rs") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("modbuild: reading %s: %w", dir, err)
	}
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("modbuild: %w", err)
		}
		rel, _ := filepath.Rel(dir, f)
		fmt.Fprintf(h, "%s %d\n", rel, len(b))
		h.Write(b)
	}
	return nil
}

// SDKHash identifies the embedded SDK sources.
func SDKHash() string {
	h := sha256.New()
	for _, fsys := range []fs.FS{sdk.Source, wasmabi.Source} {
		fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, _ := fs.ReadFile(fsys, p)
			fmt.Fprintf(h, "%s %d\n", p, len(b))
			h.Write(b)
			return nil
		})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// weirRoot reports whether dir lies inside a checkout of the weir module
// itself, and returns the checkout's root.
func weirRoot(dir string) (string, bool) {
	for d := dir; ; {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil {
			first, _, _ := strings.Cut(string(b), "\n")
			return d, strings.TrimSpace(first) == "module "+WeirModule
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", false
		}
		d = parent
	}
}

// WriteGoSDK writes the Go SDK, as a Go module named WeirModule that holds
// only the SDK and the ABI package, to a folder under cacheDir named by its
// content, and returns the folder. It is idempotent.
func WriteGoSDK(cacheDir string) (string, error) {
	root := filepath.Join(cacheDir, "sdk", "go-"+SDKHash())
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
		return root, nil
	}
	tmp := root + ".tmp" + fmt.Sprint(os.Getpid())
	os.RemoveAll(tmp)
	write := func(fsys fs.FS, from, to string) error {
		return fs.WalkDir(fsys, from, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			b, err := fs.ReadFile(fsys, p)
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(from, p)
			if err != nil {
				return err
			}
			dst := filepath.Join(tmp, to, rel)
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			return os.WriteFile(dst, b, 0o644)
		})
	}
	if err := write(sdk.Source, "go", filepath.Join("sdk", "go")); err != nil {
		return "", fmt.Errorf("modbuild: writing the Go SDK: %w", err)
	}
	if err := write(wasmabi.Source, ".", "wasmabi"); err != nil {
		return "", fmt.Errorf("modbuild: writing the Go SDK: %w", err)
	}
	gomod := "// The weir Go SDK, written by the weir binary for operator builds.\nmodule " + WeirModule + "\n\ngo 1.25\n"
	if err := os.WriteFile(filepath.Join(tmp, "go.mod"), []byte(gomod), 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, root); err != nil {
		os.RemoveAll(tmp)
		if _, serr := os.Stat(filepath.Join(root, "go.mod")); serr == nil {
			return root, nil // another process won the race
		}
		return "", fmt.Errorf("modbuild: writing the Go SDK: %w", err)
	}
	return root, nil
}

// WriteCSDK writes the C SDK header under cacheDir and returns its folder,
// for clang's -I.
func WriteCSDK(cacheDir string) (string, error) {
	root := filepath.Join(cacheDir, "sdk", "c-"+SDKHash())
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	err := fs.WalkDir(sdk.Source, "c", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sdk.Source, p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(root, filepath.Base(p)), b, 0o644)
	})
	if err != nil {
		return "", fmt.Errorf("modbuild: writing the C SDK: %w", err)
	}
	return root, nil
}

func buildGo(ctx context.Context, dir, out, cacheDir string, logw io.Writer) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("modbuild: building a Go operator needs the go command on PATH: %w", err)
	}
	args := []string{"build", "-buildmode=c-shared", "-trimpath", "-o", out}
	env := append(os.Environ(), wasmEnv...)
	if _, inRepo := weirRoot(dir); !inRepo {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
			return fmt.Errorf("modbuild: %s has no go.mod; `weir module init --lang go %s` makes one", dir, dir)
		}
		modfile, err := sdkModfile(dir, cacheDir)
		if err != nil {
			return err
		}
		defer os.Remove(modfile)
		defer os.Remove(strings.TrimSuffix(modfile, ".mod") + ".sum")
		args = append(args, "-modfile="+modfile, "-mod=mod")
		env = append(env, "GOWORK=off", "GOFLAGS=")
	}
	args = append(args, ".")
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Dir = dir
	cmd.Env = append(env, "GOWASM="+goWasmFeatures())
	var stderr bytes.Buffer
	cmd.Stdout = logw
	cmd.Stderr = io.MultiWriter(&stderr, logw)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("modbuild: go build in %s failed: %v\n%s", dir, err, strings.TrimSpace(stderr.String()))
	}
	if opt := goWasmOpt(); len(opt) > 0 {
		return runWasmOpt(ctx, out, opt, logw)
	}
	return nil
}

// DefaultGOWASM is the GOWASM setting of Go operator builds when the
// environment sets none: no features beyond WebAssembly 1.0, since
// satconv,signext measured no faster (docs/RATIONALE.md, "Why are Go
// modules built without GOWASM features and without wasm-opt?").
const DefaultGOWASM = ""

// DefaultGoWasmOpt are the wasm-opt (binaryen) flags run on every built Go
// module when WEIR_GO_WASM_OPT is unset: none, for the same reason.
var DefaultGoWasmOpt []string

// goWasmFeatures is $GOWASM, or DefaultGOWASM when unset.
func goWasmFeatures() string {
	if v, ok := os.LookupEnv("GOWASM"); ok {
		return v
	}
	return DefaultGOWASM
}

// goWasmOpt is $WEIR_GO_WASM_OPT split into flags ("off": none), or
// DefaultGoWasmOpt when unset.
func goWasmOpt() []string {
	v, ok := os.LookupEnv("WEIR_GO_WASM_OPT")
	if !ok {
		return DefaultGoWasmOpt
	}
	if v == "off" {
		return nil
	}
	return strings.Fields(v)
}

// wasmOptFeatures are the WebAssembly features wasm-opt may assume in a Go
// module (the ones wazero runs); a Go module has no target-features section
// for it to read them from.
var wasmOptFeatures = []string{"--enable-sign-ext", "--enable-bulk-memory", "--enable-nontrapping-float-to-int", "--enable-mutable-globals"}

func wasmOptVersion(ctx context.Context) string {
	b, err := exec.CommandContext(ctx, "wasm-opt", "--version").Output()
	if err != nil {
		return "missing"
	}
	return strings.TrimSpace(string(b))
}

// runWasmOpt optimizes the module at path in place with binaryen's wasm-opt.
func runWasmOpt(ctx context.Context, path string, flags []string, logw io.Writer) error {
	bin, err := exec.LookPath("wasm-opt")
	if err != nil {
		return fmt.Errorf("modbuild: optimizing the Go module needs binaryen's wasm-opt (apt-get install binaryen), or WEIR_GO_WASM_OPT=off: %w", err)
	}
	tmp := path + ".opt"
	args := append(append(append([]string{}, flags...), wasmOptFeatures...), path, "-o", tmp)
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stdout = logw
	cmd.Stderr = io.MultiWriter(&stderr, logw)
	if err := cmd.Run(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("modbuild: wasm-opt %s failed: %v\n%s", strings.Join(flags, " "), err, strings.TrimSpace(stderr.String()))
	}
	return os.Rename(tmp, path)
}

// sdkModfile copies dir/go.mod to a temporary file that points the weir
// module at the Go SDK written from this binary, whatever version the
// author's go.mod asks for, so the build needs no network.
func sdkModfile(dir, cacheDir string) (string, error) {
	sdkDir, err := WriteGoSDK(cacheDir)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return "", err
	}
	var kept []string
	for _, line := range strings.Split(string(b), "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "replace ") && strings.Contains(t, WeirModule+" ") {
			continue
		}
		kept = append(kept, line)
	}
	mod := strings.Join(kept, "\n")
	if !strings.Contains(mod, WeirModule+" ") {
		mod += "\nrequire " + WeirModule + " v0.0.0\n"
	}
	mod += "\nreplace " + WeirModule + " => " + sdkDir + "\n"
	f, err := os.CreateTemp(dir, ".weir-build-*.mod")
	if err != nil {
		return "", fmt.Errorf("modbuild: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(mod); err != nil {
		return "", err
	}
	// go reads the sum file next to the modfile; the SDK has no dependencies.
	if sum, err := os.ReadFile(filepath.Join(dir, "go.sum")); err == nil {
		os.WriteFile(strings.TrimSuffix(f.Name(), ".mod")+".sum", sum, 0o644)
	}
	return f.Name(), nil
}

func buildC(ctx context.Context, dir, out, cacheDir string, logw io.Writer) error {
	inc, err := WriteCSDK(cacheDir)
	if err != nil {
		return err
	}
	srcs, _ := filepath.Glob(filepath.Join(dir, "*.c"))
	return csdk.Build(ctx, srcs, out, inc, logw)
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return fmt.Errorf("modbuild: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return fmt.Errorf("modbuild: %w", err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		return fmt.Errorf("modbuild: writing %s: %w", to, err)
	}
	return nil
}
