package bench

import "embed"

// AssemblyScript holds assemblyscript/*.ts, the AssemblyScript module.
//
//go:embed assemblyscript/*.ts
var AssemblyScript embed.FS
