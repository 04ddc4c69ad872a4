package wasmabi

import "embed"

// Source is this package's own source, so the weir binary can hand the Go SDK
// (which imports this package) to operator authors building outside the weir
// repository. The linker drops it from binaries that never reference it, such
// as operator modules.
//
//go:embed *.go
var Source embed.FS
