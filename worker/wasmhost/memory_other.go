//go:build !unix

package wasmhost

import "github.com/tetratelabs/wazero/experimental"

// memoryAllocator is nil where there is no mmap: wazero allocates linear
// memory on the Go heap, where growth copies (see memory_unix.go).
var memoryAllocator experimental.MemoryAllocator
