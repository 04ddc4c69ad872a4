// Package sdk carries the source of the guest SDKs (sdk/go for Go operators,
// sdk/c for C operators) inside the weir binary, so `weir module init` and
// `weir module build` work for operator authors outside this repository.
package sdk

import "embed"

// Source holds sdk/go/*.go and sdk/c/*.h and *.c.
//
//go:embed go/*.go c/*.h
var Source embed.FS
