// Package assdk holds the AssemblyScript SDK of weir: weir/index.ts, the
// library operator authors import as "weir" (map, filter, flat_map, keyed
// process and co_process operators with state and timers, window
// aggregates; docs/sdk-assemblyscript.md is the guide), weir/exports.ts,
// the ABI's exports, and the one asc invocation that turns an operator
// folder into a module, shared by its tests and `weir module build`.
//
// The compiler is the assemblyscript package of the npm registry, pinned in
// toolchain/package.json and package-lock.json and installed there by
// `go tool task deps:asc` (npm ci). [Asc] finds it; [Build] runs
//
//	asc SDK/weir/exports.ts ENTRY... --path SDK -o OUT --runtime minimal
//	    -O3 --noAssert --use abort=~lib/weir/index/_abort
//	    --exportStart _initialize --noColors
//
// --runtime minimal is AssemblyScript's allocator with a garbage collector
// that runs only when asked: the SDK asks between calls, so nothing is
// collected while an operator runs, and records never allocate. The custom
// abort keeps the module's imports to weir's own (the default abort is an
// import from "env"). --exportStart makes the top-level registrations the
// WASI-style _initialize that the host calls first.
package assdk

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// Source holds weir/index.ts and weir/exports.ts, and the pinned toolchain's
// package files.
//
//go:embed weir/*.ts toolchain/package.json toolchain/package-lock.json
var Source embed.FS

// Flags are the asc flags of every operator module besides the entry files,
// --path and -o.
var Flags = []string{
	"--runtime", "minimal",
	"-O3",
	"--noAssert",
	"--use", "abort=~lib/weir/index/_abort",
	"--exportStart", "_initialize",
	"--noColors",
}

// InstallHint says how to get the compiler.
const InstallHint = "AssemblyScript operators need Node.js and the assemblyscript compiler: " +
	"`apt-get install nodejs npm` and then, in a weir checkout, `go tool task deps:asc`; " +
	"elsewhere `npm install assemblyscript` in the operator folder, or set WEIR_ASC to an asc binary"

// ErrNoAsc is returned when no compiler can be found.
var ErrNoAsc = errors.New("assdk: the AssemblyScript compiler (asc) was not found")

// Hash identifies the embedded SDK and the pinned compiler version.
func Hash() string {
	h := sha256.New()
	fs.WalkDir(Source, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := fs.ReadFile(Source, p)
		fmt.Fprintf(h, "%s %d\n", p, len(b))
		h.Write(b)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Asc finds the compiler: $WEIR_ASC, then node_modules/.bin/asc in dir or a
// parent of it (the author's own install), then the pinned toolchain of a
// weir checkout holding dir or the working directory, then asc on PATH. It
// also checks that node is there, since asc is a Node.js program.
func Asc(dir string) (string, error) {
	if _, err := exec.LookPath("node"); err != nil {
		return "", fmt.Errorf("%w: node is not on PATH; %s", ErrNoAsc, InstallHint)
	}
	if c := os.Getenv("WEIR_ASC"); c != "" {
		p, err := exec.LookPath(c)
		if err != nil {
			return "", fmt.Errorf("%w: WEIR_ASC=%s: %v", ErrNoAsc, c, err)
		}
		return p, nil
	}
	var starts []string
	if dir != "" {
		starts = append(starts, dir)
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	for _, s := range starts {
		abs, err := filepath.Abs(s)
		if err != nil {
			continue
		}
		for d := abs; ; d = filepath.Dir(d) {
			for _, c := range []string{
				filepath.Join(d, "node_modules", ".bin", "asc"),
				filepath.Join(d, "sdk", "assemblyscript", "toolchain", "node_modules", ".bin", "asc"),
			} {
				if fi, err := os.Stat(c); err == nil && !fi.IsDir() {
					return c, nil
				}
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	if p, err := exec.LookPath("asc"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%w; %s", ErrNoAsc, InstallHint)
}

// WriteSDK writes weir/index.ts and weir/exports.ts under root (the folder
// to pass as --path) and returns the path of exports.ts.
func WriteSDK(root string) (string, error) {
	if err := os.MkdirAll(filepath.Join(root, "weir"), 0o755); err != nil {
		return "", fmt.Errorf("assdk: writing the SDK: %w", err)
	}
	for _, f := range []string{"index.ts", "exports.ts"} {
		b, err := fs.ReadFile(Source, "weir/"+f)
		if err != nil {
			return "", err
		}
		p := filepath.Join(root, "weir", f)
		if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, b) {
			continue
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return "", fmt.Errorf("assdk: writing the SDK: %w", err)
		}
	}
	return filepath.Join(root, "weir", "exports.ts"), nil
}

// Entries are the entry files of the operator folder dir: assembly/index.ts
// when there is one (the layout asinit makes), else the .ts files of dir
// itself (not .d.ts), sorted.
func Entries(dir string) ([]string, error) {
	idx := filepath.Join(dir, "assembly", "index.ts")
	if _, err := os.Stat(idx); err == nil {
		return []string{idx}, nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("assdk: reading %s: %w", dir, err)
	}
	var out []string
	for _, e := range ents {
		if n := e.Name(); !e.IsDir() && strings.HasSuffix(n, ".ts") && !strings.HasSuffix(n, ".d.ts") {
			out = append(out, filepath.Join(dir, n))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("assdk: %s has neither assembly/index.ts nor .ts files", dir)
	}
	return out, nil
}

// Args are the asc arguments that compile entries into out with the SDK
// written under sdkRoot.
func Args(sdkRoot string, entries []string, out string) []string {
	args := []string{filepath.Join(sdkRoot, "weir", "exports.ts")}
	args = append(args, entries...)
	args = append(args, "--path", sdkRoot, "-o", out)
	return append(args, Flags...)
}

// Build compiles the operator folder dir into the module out, with the SDK
// written under sdkRoot ("" for a temporary folder). Compiler output goes to
// log (nil: discarded); a compile error comes back as the compiler's first
// error with its file:line, then the whole output.
func Build(ctx context.Context, dir, out, sdkRoot string, log io.Writer) error {
	asc, err := Asc(dir)
	if err != nil {
		return err
	}
	entries, err := Entries(dir)
	if err != nil {
		return err
	}
	if sdkRoot == "" {
		tmp, err := os.MkdirTemp("", "weir-assdk-")
		if err != nil {
			return fmt.Errorf("assdk: %w", err)
		}
		defer os.RemoveAll(tmp)
		sdkRoot = tmp
	}
	if _, err := WriteSDK(sdkRoot); err != nil {
		return err
	}
	if log == nil {
		log = io.Discard
	}
	cmd := exec.CommandContext(ctx, asc, Args(sdkRoot, entries, out)...)
	cmd.Dir = dir
	var output bytes.Buffer
	cmd.Stdout = io.MultiWriter(&output, log)
	cmd.Stderr = io.MultiWriter(&output, log)
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(output.String())
		if first := FirstError(msg, dir); first != "" {
			return fmt.Errorf("assdk: %s\n(asc failed: %v)\n%s", first, err, msg)
		}
		return fmt.Errorf("assdk: asc failed: %v\n%s", err, msg)
	}
	return nil
}

// The location line asc prints under an error: "└─ in FILE(LINE,COL)".
var ascLocation = regexp.MustCompile(`in (\S+?)\((\d+),(\d+)\)\s*$`)

// FirstError returns asc's first error as "FILE:LINE:COL: ERROR ...", the
// file relative to dir when it lies inside it, or "" when the output has no
// error line.
func FirstError(output, dir string) string {
	sc := bufio.NewScanner(strings.NewReader(output))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	msg := ""
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if msg == "" {
			if strings.HasPrefix(line, "ERROR") {
				msg = line
			}
			continue
		}
		if m := ascLocation.FindStringSubmatch(line); m != nil {
			file := m[1]
			if rel, err := filepath.Rel(dir, file); err == nil && !strings.HasPrefix(rel, "..") {
				file = rel
			}
			return fmt.Sprintf("%s:%s:%s: %s", file, m[2], m[3], msg)
		}
		if strings.HasPrefix(line, "ERROR") || strings.HasPrefix(line, "FAILURE") {
			break
		}
	}
	return msg
}
