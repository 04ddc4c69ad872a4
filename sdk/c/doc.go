// Package csdk holds the C SDK of weir: weir.h, a header-only library for
// writing operator modules in C (map, filter, flat_map and keyed process
// operators; docs/sdk-c.md is the guide), and the one clang invocation that
// turns C sources into a module, shared by its tests and `weir module build`.
//
// The header is embedded as [Header] so the weir binary can write it out for
// authors who build outside this repository. [Build] and [BuildCommand] run
// clang with [Flags]:
//
//	clang --target=wasm32-wasi [--sysroot=DIR] -O2 -nostartfiles -Wl,--no-entry
//	      -mbulk-memory -msign-ext -mnontrapping-fptoint -mmutable-globals
//	      -Wl,--stack-first -Wl,--strip-debug -I<dir of weir.h> -o OUT SRC...
//
// -nostartfiles -Wl,--no-entry make a library-style WASI reactor without
// crt1: no _start, and no libc start-up code pulling in WASI imports. The
// header defines _initialize itself (and runs the C constructors once, also
// when a host skips _initialize), which also stops wasm-ld from wrapping
// every export in constructor and destructor calls as it does for commands.
// The -m flags enable WebAssembly 2.0 features that wazero supports, chiefly
// bulk memory, which turns memcpy into one memory.copy instruction.
// --stack-first puts the 64 KiB stack below the data, so that a stack
// overflow traps instead of overwriting globals. --strip-debug drops DWARF
// but keeps the name section for readable traps.
//
// The toolchain is clang with wasm-ld (lld) and wasi-libc: on Debian and
// Ubuntu the packages clang lld wasi-libc libclang-rt-14-dev-wasm32 (clang
// then finds the WASI sysroot itself), or a WASI SDK named by $WASI_SDK_PATH.
package csdk
