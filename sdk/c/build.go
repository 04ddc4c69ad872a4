package csdk

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Header is weir.h, the whole C SDK.
//
//go:embed weir.h
var Header []byte

// HeaderName is the file name authors include.
const HeaderName = "weir.h"

// Flags are the clang flags of every C operator module, besides the target,
// the sysroot, -I, -o and the sources (see the package documentation).
var Flags = []string{
	"-O2",
	"-nostartfiles",
	"-Wl,--no-entry",
	"-mbulk-memory",
	"-msign-ext",
	"-mnontrapping-fptoint",
	"-mmutable-globals",
	"-Wl,--stack-first",
	"-Wl,--strip-debug",
}

// Target is clang's target triple for operator modules.
const Target = "wasm32-wasi"

// InstallHint says how to get the toolchain.
const InstallHint = "install clang, lld and wasi-libc: on Debian/Ubuntu `apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32`; " +
	"elsewhere a WASI SDK (https://github.com/WebAssembly/wasi-sdk) with WASI_SDK_PATH set to it"

// ErrNoClang is returned when no clang can be found.
var ErrNoClang = errors.New("csdk: clang not found")

// Clang finds the compiler: $WEIR_CLANG, then $WASI_SDK_PATH/bin/clang, then
// /opt/wasi-sdk/bin/clang, then clang and clang-N on PATH.
func Clang() (string, error) {
	if c := os.Getenv("WEIR_CLANG"); c != "" {
		p, err := exec.LookPath(c)
		if err != nil {
			return "", fmt.Errorf("%w: WEIR_CLANG=%s: %v; %s", ErrNoClang, c, err, InstallHint)
		}
		return p, nil
	}
	var cands []string
	if sdk := os.Getenv("WASI_SDK_PATH"); sdk != "" {
		cands = append(cands, filepath.Join(sdk, "bin", "clang"))
	}
	cands = append(cands, "/opt/wasi-sdk/bin/clang", "clang")
	for v := 22; v >= 14; v-- {
		cands = append(cands, fmt.Sprintf("clang-%d", v))
	}
	for _, c := range cands {
		if p, err := exec.LookPath(c); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w; %s", ErrNoClang, InstallHint)
}

// Sysroot finds a WASI sysroot to pass to clang: $WASI_SYSROOT, then the
// share/wasi-sysroot of $WASI_SDK_PATH or /opt/wasi-sdk, then
// /usr/share/wasi-sysroot. It returns "" when there is none, which is right
// for Debian's clang: it finds the wasi-libc package (/usr/lib/wasm32-wasi)
// on its own.
func Sysroot() string {
	if s := os.Getenv("WASI_SYSROOT"); s != "" {
		return s
	}
	var cands []string
	if sdk := os.Getenv("WASI_SDK_PATH"); sdk != "" {
		cands = append(cands, filepath.Join(sdk, "share", "wasi-sysroot"))
	}
	cands = append(cands, "/opt/wasi-sdk/share/wasi-sysroot", "/usr/share/wasi-sysroot")
	for _, c := range cands {
		if fi, err := os.Stat(c); err == nil && fi.IsDir() {
			return c
		}
	}
	return ""
}

// Args are the clang arguments that compile srcs into the module out, with
// weir.h found in includeDir.
func Args(srcs []string, out, includeDir string) []string {
	args := []string{"--target=" + Target}
	if s := Sysroot(); s != "" {
		args = append(args, "--sysroot="+s)
	}
	args = append(args, Flags...)
	if includeDir != "" {
		args = append(args, "-I", includeDir)
	}
	args = append(args, "-o", out)
	return append(args, srcs...)
}

// BuildCommand is the clang command that compiles srcs into the module out,
// with weir.h found in includeDir. When no clang is found it names plain
// "clang", so running it fails with exec's not-found error; Build says more.
func BuildCommand(srcs []string, out, includeDir string) *exec.Cmd {
	return buildCommand(context.Background(), srcs, out, includeDir)
}

func buildCommand(ctx context.Context, srcs []string, out, includeDir string) *exec.Cmd {
	clang, err := Clang()
	if err != nil {
		clang = "clang"
	}
	return exec.CommandContext(ctx, clang, Args(srcs, out, includeDir)...)
}

// Build compiles srcs into the module out. includeDir is the folder of
// weir.h; "" writes Header to a temporary folder for the build. Compiler
// output goes to log (nil: discarded) and, on failure, into the error, with
// a hint when the toolchain looks incomplete.
func Build(ctx context.Context, srcs []string, out, includeDir string, log io.Writer) error {
	if len(srcs) == 0 {
		return errors.New("csdk: no C sources to build")
	}
	clang, err := Clang()
	if err != nil {
		return err
	}
	if includeDir == "" {
		tmp, err := os.MkdirTemp("", "weir-csdk-")
		if err != nil {
			return fmt.Errorf("csdk: %w", err)
		}
		defer os.RemoveAll(tmp)
		if err := os.WriteFile(filepath.Join(tmp, HeaderName), Header, 0o644); err != nil {
			return fmt.Errorf("csdk: %w", err)
		}
		includeDir = tmp
	}
	if log == nil {
		log = io.Discard
	}
	cmd := exec.CommandContext(ctx, clang, Args(srcs, out, includeDir)...)
	var stderr bytes.Buffer
	cmd.Stdout = log
	cmd.Stderr = io.MultiWriter(&stderr, log)
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		return fmt.Errorf("csdk: %s failed: %v\n%s%s", strings.Join(cmd.Args, " "), err, msg, toolchainHint(msg))
	}
	return nil
}

// toolchainHint recognises clang's complaints about a missing linker, libc
// or compiler runtime, and the one usual mistake with the SDK.
func toolchainHint(msg string) string {
	if strings.Contains(msg, "duplicate symbol: weir_call") {
		return "\nWEIR_OPERATORS is expanded in more than one file: keep it in one .c file of the module"
	}
	for _, s := range []string{
		"unable to execute command", "doesn't exist", "stdint.h' file not found", "stddef.h' file not found",
		"string.h' file not found", "stdlib.h' file not found", "unable to find library -lc",
		"libclang_rt.builtins", "No available targets are compatible", "unknown target triple",
	} {
		if strings.Contains(msg, s) {
			return "\nthe WebAssembly toolchain looks incomplete: " + InstallHint
		}
	}
	return ""
}
