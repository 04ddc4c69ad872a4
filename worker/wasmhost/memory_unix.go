//go:build unix

package wasmhost

import (
	"syscall"

	"github.com/tetratelabs/wazero/experimental"
)

// mmapMemory is a linear memory reserved up front at its maximum size with
// an anonymous private mapping: the kernel backs a page only when the module
// first touches it, growing never copies, and the bytes live outside the Go
// heap, so the garbage collector neither scans them nor lets a grown
// memory's old copy linger. What an instance's memory costs the process is
// then exactly the pages it touched, at most its limit (see docs/abi.md,
// "What a module can cost a worker").
type mmapMemory struct{ buf []byte }

// newLinearMemory returns nil when the mapping fails; wazero then falls back
// to its own allocation.
func newLinearMemory(capBytes, maxBytes uint64) experimental.LinearMemory {
	if maxBytes == 0 {
		maxBytes = 65536
	}
	b, err := syscall.Mmap(-1, 0, int(maxBytes), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
	if err != nil {
		return nil
	}
	return &mmapMemory{buf: b[:0]}
}

func (m *mmapMemory) Reallocate(size uint64) []byte {
	if size > uint64(cap(m.buf)) {
		return nil
	}
	m.buf = m.buf[:size]
	return m.buf
}

func (m *mmapMemory) Free() {
	if m.buf != nil {
		syscall.Munmap(m.buf[:cap(m.buf)])
		m.buf = nil
	}
}

var memoryAllocator experimental.MemoryAllocator = experimental.MemoryAllocatorFunc(func(capBytes, maxBytes uint64) experimental.LinearMemory {
	if lm := newLinearMemory(capBytes, maxBytes); lm != nil {
		return lm
	}
	return &heapMemory{max: maxBytes}
})

// heapMemory is the fallback when a mapping fails: Go heap, copied on growth.
type heapMemory struct {
	buf []byte
	max uint64
}

func (m *heapMemory) Reallocate(size uint64) []byte {
	if size > m.max {
		return nil
	}
	if size > uint64(cap(m.buf)) {
		nb := make([]byte, size)
		copy(nb, m.buf)
		m.buf = nb
	}
	m.buf = m.buf[:size]
	return m.buf
}

func (m *heapMemory) Free() { m.buf = nil }
