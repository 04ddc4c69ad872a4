// Package sdk carries the source of the guest SDKs (sdk/go for Go operators,
// sdk/c for C operators, sdk/rust for Rust operators) inside the weir binary, so `weir module init` and
// `weir module build` work for operator authors outside this repository.
package sdk

import "embed"

// Source holds sdk/go (with its weirtest harness), sdk/c/weir.h and
// sdk/rust/lib.rs.
//
//go:embed go/*.go go/weirtest/*.go c/*.h rust/*.rs
var Source embed.FS
