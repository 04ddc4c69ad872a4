// Package bench carries the source of the operators `weir bench abi`
// measures (go/: the Go SDK module, c/: the C SDK module, rust/: the Rust
// SDK module), so the weir binary
// can build and run them wherever it is installed.
package bench

import "embed"

// Source holds go/*.go, c/*.c and rust/*.rs.
//
//go:embed go/*.go c/*.c rust/*.rs
var Source embed.FS
