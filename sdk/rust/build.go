// Package rustsdk holds the Rust SDK of weir: lib.rs, a crate named weir
// with no dependencies but the standard library (docs/sdk-rust.md is the
// guide), and the plain rustc invocations that turn an operator crate into
// a module, shared by its tests and `weir module build`. No cargo, and no
// crates from a registry, are needed.
//
// A build runs rustc twice, the first time only once per SDK and toolchain
// (the rlib is cached):
//
//	rustc --edition 2021 --crate-type rlib --crate-name weir --target T
//	      -C opt-level=3 -C panic=abort -C codegen-units=1 -C target-feature=F
//	      -o CACHE/libweir.rlib lib.rs
//	rustc --edition 2021 --crate-type cdylib --crate-name NAME --target T
//	      -C opt-level=3 -C lto -C panic=abort -C codegen-units=1 -C target-feature=F
//	      -C link-arg=--strip-debug --extern weir=CACHE/libweir.rlib -o OUT DIR/lib.rs
//
// T is wasm32-wasip1 or wasm32-wasi, whichever the toolchain's sysroot has
// (newer toolchains renamed the target). F enables the WebAssembly
// features wazero supports beyond 1.0 (bulk memory: memcpy becomes one
// memory.copy). Fat LTO inlines the SDK's record loop and the operator into
// one function per operator. panic=abort is the only strategy WebAssembly
// has; a panic traps and the host reports the message the standard library
// writes to stderr.
//
// The toolchain: Debian's rustc with libstd-rust-dev-wasm32 (rustc 1.63,
// target wasm32-wasi), or rustup with `rustup target add wasm32-wasip1`.
// $WEIR_RUSTC names a rustc to use.
package rustsdk

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

// Source is lib.rs, the whole Rust SDK.
//
//go:embed lib.rs
var Source []byte

// CrateRoot is the file an operator folder must have.
const CrateRoot = "lib.rs"

// Targets are the WebAssembly targets a build may use, preferred first.
var Targets = []string{"wasm32-wasip1", "wasm32-wasi"}

// Features are the target features of every build.
const Features = "+bulk-memory,+nontrapping-fptoint,+mutable-globals"

// InstallHint says how to get a toolchain with the target.
const InstallHint = "install a Rust toolchain with the WebAssembly WASI target: on Debian/Ubuntu " +
	"`apt-get install rustc libstd-rust-dev-wasm32`; with rustup `rustup target add wasm32-wasip1`"

// ErrNoToolchain is returned when no rustc with a WASI target is found.
var ErrNoToolchain = errors.New("rustsdk: no rustc with the wasm32-wasi target")

// Toolchain is a rustc whose sysroot has a WASI target.
type Toolchain struct {
	Rustc   string // path of rustc
	Target  string // wasm32-wasip1 or wasm32-wasi
	Version string // `rustc -vV` output, for cache keys
}

var found struct {
	sync.Mutex
	tc  *Toolchain
	env string
}

// Find finds the toolchain: $WEIR_RUSTC, else every rustc on PATH, then
// /usr/bin/rustc and ~/.cargo/bin/rustc, the first whose sysroot has one of
// Targets. A rustup toolchain without the target often comes first on PATH;
// it is skipped, and named in the error when nothing fits.
func Find() (*Toolchain, error) {
	env := os.Getenv("WEIR_RUSTC") + "\x00" + os.Getenv("PATH")
	found.Lock()
	defer found.Unlock()
	if found.tc != nil && found.env == env {
		return found.tc, nil
	}
	var cands []string
	if c := os.Getenv("WEIR_RUSTC"); c != "" {
		p, err := exec.LookPath(c)
		if err != nil {
			return nil, fmt.Errorf("%w: WEIR_RUSTC=%s: %v; %s", ErrNoToolchain, c, err, InstallHint)
		}
		cands = []string{p}
	} else {
		for _, d := range filepath.SplitList(os.Getenv("PATH")) {
			if d != "" {
				cands = append(cands, filepath.Join(d, "rustc"))
			}
		}
		cands = append(cands, "/usr/bin/rustc")
		if home, err := os.UserHomeDir(); err == nil {
			cands = append(cands, filepath.Join(home, ".cargo", "bin", "rustc"))
		}
	}
	seen := map[string]bool{}
	var without []string
	for _, c := range cands {
		real, err := filepath.EvalSymlinks(c)
		if err != nil || seen[real] {
			continue
		}
		seen[real] = true
		if fi, err := os.Stat(c); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			continue
		}
		out, err := exec.Command(c, "--print", "sysroot").Output()
		if err != nil {
			continue
		}
		sysroot := strings.TrimSpace(string(out))
		for _, t := range Targets {
			if fi, err := os.Stat(filepath.Join(sysroot, "lib", "rustlib", t, "lib")); err == nil && fi.IsDir() {
				v, err := exec.Command(c, "-vV").Output()
				if err != nil {
					continue
				}
				found.tc = &Toolchain{Rustc: c, Target: t, Version: strings.TrimSpace(string(v))}
				found.env = env
				return found.tc, nil
			}
		}
		without = append(without, c)
	}
	if len(without) > 0 {
		return nil, fmt.Errorf("%w (%s: no wasm32-wasip1 or wasm32-wasi in the sysroot); %s", ErrNoToolchain, strings.Join(without, ", "), InstallHint)
	}
	return nil, fmt.Errorf("%w (no rustc found); %s", ErrNoToolchain, InstallHint)
}

// SourceHash identifies lib.rs.
func SourceHash() string {
	h := sha256.Sum256(Source)
	return hex.EncodeToString(h[:8])
}

func (tc *Toolchain) key() string {
	h := sha256.Sum256([]byte(tc.Rustc + "\x00" + tc.Target + "\x00" + tc.Version + "\x00" + Features))
	return hex.EncodeToString(h[:8])
}

// common are the flags of both compilations.
func (tc *Toolchain) common() []string {
	return []string{"--edition", "2021", "--target", tc.Target, "-C", "opt-level=3", "-C", "panic=abort",
		"-C", "codegen-units=1", "-C", "target-feature=" + Features}
}

var rlibMu sync.Mutex

// SDK returns the SDK rlib for tc, compiling lib.rs into a folder under
// cacheDir named by the SDK's and toolchain's identity when it is not there.
func (tc *Toolchain) SDK(ctx context.Context, cacheDir string) (string, error) {
	rlibMu.Lock()
	defer rlibMu.Unlock()
	dir := filepath.Join(cacheDir, "sdk", "rust-"+SourceHash()+"-"+tc.key())
	rlib := filepath.Join(dir, "libweir.rlib")
	if _, err := os.Stat(rlib); err == nil {
		return rlib, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("rustsdk: %w", err)
	}
	src := filepath.Join(dir, "lib.rs")
	if err := os.WriteFile(src, Source, 0o644); err != nil {
		return "", fmt.Errorf("rustsdk: %w", err)
	}
	tmp := rlib + ".tmp" + fmt.Sprint(os.Getpid())
	args := append(tc.common(), "--crate-type", "rlib", "--crate-name", "weir", "-o", tmp, src)
	cmd := exec.CommandContext(ctx, tc.Rustc, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("rustsdk: compiling the SDK (%s): %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	if err := os.Rename(tmp, rlib); err != nil {
		return "", fmt.Errorf("rustsdk: %w", err)
	}
	return rlib, nil
}

// Args are the rustc arguments that compile the crate whose root is root
// into the module out, against the SDK rlib.
func (tc *Toolchain) Args(root, crateName, out, rlib string) []string {
	args := append(tc.common(), "--crate-type", "cdylib", "--crate-name", crateName, "-C", "lto",
		"-C", "link-arg=--strip-debug", "--extern", "weir="+rlib, "-L", "dependency="+filepath.Dir(rlib), "-o", out, root)
	return args
}

// CompileError is a crate that does not compile: the compiler's first
// error, located, and its whole output.
type CompileError struct {
	First  string // "src/lib.rs:3:5: error[E0308]: mismatched types"
	Output string
}

func (e *CompileError) Error() string { return e.First + "\n" + e.Output }

var (
	errLine = regexp.MustCompile(`^error(\[E\d+\])?: (.*)$`)
	atLine  = regexp.MustCompile(`^\s*--> (.+:\d+:\d+)\s*$`)
)

// firstError finds the first error and its location in rustc's human
// output.
func firstError(out string) string {
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		m := errLine.FindStringSubmatch(l)
		if m == nil || strings.HasPrefix(m[2], "aborting due to") {
			continue
		}
		for j := i + 1; j < len(lines) && j < i+4; j++ {
			if at := atLine.FindStringSubmatch(lines[j]); at != nil {
				return at[1] + ": " + l
			}
		}
		return l
	}
	return strings.TrimSpace(out)
}

// Build compiles the crate in dir (its root dir/lib.rs) into the module out.
// Compiler output goes to log (nil: discarded); a crate that does not
// compile returns a *CompileError.
func Build(ctx context.Context, dir, out, cacheDir string, log io.Writer) error {
	tc, err := Find()
	if err != nil {
		return err
	}
	root := filepath.Join(dir, CrateRoot)
	if _, err := os.Stat(root); err != nil {
		return fmt.Errorf("rustsdk: %s has no %s, the crate root; `weir module init --lang rust DIR` makes a template", dir, CrateRoot)
	}
	rlib, err := tc.SDK(ctx, cacheDir)
	if err != nil {
		return err
	}
	if log == nil {
		log = io.Discard
	}
	cmd := exec.CommandContext(ctx, tc.Rustc, tc.Args(root, CrateName(dir), out, rlib)...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stdout = log
	cmd.Stderr = io.MultiWriter(&stderr, log)
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if ctx.Err() != nil {
			return fmt.Errorf("rustsdk: rustc: %w", ctx.Err())
		}
		return &CompileError{First: relPath(firstError(msg), dir), Output: msg}
	}
	return nil
}

// relPath shortens an absolute location inside dir.
func relPath(s, dir string) string {
	return strings.TrimPrefix(s, dir+string(filepath.Separator))
}

// CrateName is the crate name rustc gets for the folder dir: its name with
// '-' as '_' (crate names are identifiers).
func CrateName(dir string) string {
	name := filepath.Base(filepath.Clean(dir))
	var b strings.Builder
	for i, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c >= '0' && c <= '9' && i > 0:
			b.WriteRune(c)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "operators"
	}
	return b.String()
}
