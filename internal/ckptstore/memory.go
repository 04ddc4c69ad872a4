package ckptstore

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"
	"sync"
)

// Memory keeps checkpoints in memory: a test double of Dir with the same
// checks. It is safe for concurrent use.
type Memory struct {
	mu     sync.Mutex
	jobs   map[string]map[uint64]*memCheckpoint
	shared map[string]map[string][]byte // by job, by name
}

var _ Storage = (*Memory)(nil)

type memCheckpoint struct {
	files map[string][]byte
	meta  []byte
}

// NewMemory returns an empty store.
func NewMemory() *Memory {
	return &Memory{jobs: map[string]map[uint64]*memCheckpoint{}, shared: map[string]map[string][]byte{}}
}

func (m *Memory) chk(job string, n uint64, create bool) (*memCheckpoint, error) {
	if err := checkName("job", job); err != nil {
		return nil, err
	}
	cs := m.jobs[job]
	if cs == nil {
		if !create {
			return nil, fmt.Errorf("%w: no checkpoint %d of job %s", ErrNotFound, n, job)
		}
		cs = map[uint64]*memCheckpoint{}
		m.jobs[job] = cs
	}
	c := cs[n]
	if c == nil {
		if !create {
			return nil, fmt.Errorf("%w: no checkpoint %d of job %s", ErrNotFound, n, job)
		}
		c = &memCheckpoint{files: map[string][]byte{}}
		cs[n] = c
	}
	return c, nil
}

// Create starts a file.
func (m *Memory) Create(job string, n uint64, name string) (Writer, error) {
	if err := checkName("file", name); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.chk(job, n, true); err != nil {
		return nil, err
	}
	return &memWriter{m: m, job: job, n: n, name: name}, nil
}

type memWriter struct {
	m      *Memory
	job    string
	n      uint64
	name   string
	buf    bytes.Buffer
	shared bool
}

func (w *memWriter) Write(p []byte) (int, error) { return w.buf.Write(p) }

func (w *memWriter) Close() (FileInfo, error) {
	w.m.mu.Lock()
	defer w.m.mu.Unlock()
	if w.shared {
		b := bytes.Clone(w.buf.Bytes())
		if w.m.shared[w.job] == nil {
			w.m.shared[w.job] = map[string][]byte{}
		}
		w.m.shared[w.job][w.name] = b
		return FileInfo{Name: w.name, Size: int64(len(b)), CRC32: crc32.Checksum(b, castagnoli), Shared: true}, nil
	}
	c, err := w.m.chk(w.job, w.n, true)
	if err != nil {
		return FileInfo{}, err
	}
	b := bytes.Clone(w.buf.Bytes())
	c.files[w.name] = b
	return FileInfo{Name: w.name, Size: int64(len(b)), CRC32: crc32.Checksum(b, castagnoli)}, nil
}

func (w *memWriter) Abort() {}

// Commit stores the metadata.
func (m *Memory) Commit(md Metadata) error {
	for _, f := range md.Files {
		if err := checkName("file", f.Name); err != nil {
			return err
		}
	}
	b, err := encodeMetadata(md)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.chk(md.Job, md.Checkpoint, true)
	if err != nil {
		return err
	}
	c.meta = b
	return nil
}

// Completed lists the checkpoints with metadata.
func (m *Memory) Completed(job string) ([]uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []uint64
	for n, c := range m.jobs[job] {
		if c.meta != nil {
			out = append(out, n)
		}
	}
	return sortedUnique(out), nil
}

// Metadata reads and checks a checkpoint's metadata.
func (m *Memory) Metadata(job string, n uint64) (Metadata, error) {
	m.mu.Lock()
	c, err := m.chk(job, n, false)
	var b []byte
	if err == nil {
		b = c.meta
	}
	m.mu.Unlock()
	if err != nil {
		return Metadata{}, err
	}
	if b == nil {
		return Metadata{}, fmt.Errorf("%w: checkpoint %d of job %s is not complete", ErrNotFound, n, job)
	}
	return decodeMetadata(b, job, n)
}

// CreateShared starts a shared file.
func (m *Memory) CreateShared(job, name string) (Writer, error) {
	if err := firstError(checkName("job", job), checkName("file", name)); err != nil {
		return nil, err
	}
	return &memWriter{m: m, job: job, name: name, shared: true}, nil
}

// ListShared lists the job's shared files, by name.
func (m *Memory) ListShared(job string) ([]FileInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []FileInfo
	for name, b := range m.shared[job] {
		out = append(out, FileInfo{Name: name, Size: int64(len(b)), Shared: true})
	}
	slices.SortFunc(out, func(a, b FileInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// DiscardShared deletes a shared file.
func (m *Memory) DiscardShared(job, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.shared[job], name)
	return nil
}

func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Read returns a file, checked.
func (m *Memory) Read(job string, n uint64, f FileInfo) ([]byte, error) {
	if f.Shared {
		m.mu.Lock()
		b, ok := m.shared[job][f.Name]
		m.mu.Unlock()
		if !ok {
			return nil, fmt.Errorf("%w: job %s has no shared file %s (checkpoint %d names it)", ErrCorrupt, job, f.Name, n)
		}
		return bytes.Clone(b), checkFile(job, n, f, b)
	}
	m.mu.Lock()
	c, err := m.chk(job, n, false)
	var b []byte
	var ok bool
	if err == nil {
		b, ok = c.files[f.Name]
	}
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: checkpoint %d of job %s has no file %s", ErrCorrupt, n, job, f.Name)
	}
	return bytes.Clone(b), checkFile(job, n, f, b)
}

// Discard deletes a checkpoint.
func (m *Memory) Discard(job string, n uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.jobs[job], n)
	return nil
}

// Tamper changes a stored file (or, with name "_metadata", the metadata)
// as damage would, for tests of corruption.
func (m *Memory) Tamper(job string, n uint64, name string, damage func([]byte) []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.jobs[job][n]
	if c == nil {
		return
	}
	if name == metadataFile {
		c.meta = damage(c.meta)
		return
	}

	c.files[name] = damage(c.files[name])
}

// TamperShared changes a stored shared file as damage would.
func (m *Memory) TamperShared(job, name string, damage func([]byte) []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if b, ok := m.shared[job][name]; ok {
		m.shared[job][name] = damage(b)
	}
}
