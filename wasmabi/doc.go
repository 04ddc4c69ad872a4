// Package wasmabi is the contract between the weir host and an operator
// module compiled to WebAssembly: the version, the names of the exported and
// imported functions, the method and state codes, and the byte layout of the
// record batches that cross the boundary, with a codec for both sides.
//
// It is a leaf: it imports only the standard library, so the host (worker/),
// the Go SDK (sdk/go) and tools can all share it. docs/abi.md is the full
// specification, written for someone porting the ABI to a language weir has no
// SDK for; this comment is its summary.
//
// # Version handshake
//
// A module exports weir_abi_version() -> i32. The host instantiates the module
// only if every import it names is one the host offers (module "weir" below,
// or "wasi_snapshot_preview1"), then calls weir_abi_version and refuses the
// module unless the answer is [Version].
//
// # Exports (module -> host)
//
//	weir_abi_version() -> i32               must return Version
//	weir_describe()                         writes the Descriptor (JSON) with weir.output
//	weir_buffer(size i32) -> i32            address of a module-owned buffer of >= size bytes
//	weir_call(op, method, len i32) -> i32   run method of operator op over the
//	                                        len input bytes in the buffer;
//	                                        0 = ok, non-zero = failed (see weir.fail)
//
// # Imports (module "weir", host -> module)
//
//	output(ptr, len i32)                       append output entries of this call
//	fail(ptr, len i32)                         set the error message of this call
//	log(level, ptr, len i32)                   a log line
//	counter(ptr, len i32, delta i64)           add delta to the named counter
//	state_register(ptr, len, kind i32) -> i32  declare a state by name (during MethodOpen)
//	state(op, id, kptr, klen, uptr, ulen, vptr, vlen i32) -> i64
//	timer(op, domain i32, ts i64, kptr, klen i32)
//
// # Batches
//
// Records move in batches: one weir_call carries any number of records in and
// out, so the stateless path makes one guest call per batch and no host call
// per record. An input batch is a 24-byte header (count, flags, watermark,
// processing time) followed by count entries; output is a plain sequence of
// entries. Every entry is a 24-byte little-endian header followed by its key,
// value and headers bytes; see [EntryHeaderSize] and [Entry].
package wasmabi
