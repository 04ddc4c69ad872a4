// Package bench carries the source of the operators `weir bench abi`
// measures (go/: the Go SDK module, c/: the C SDK module), so the weir binary
// can build and run them wherever it is installed.
package bench

import "embed"

// Source holds go/*.go and c/*.c.
//
//go:embed go/*.go c/*.c
var Source embed.FS
