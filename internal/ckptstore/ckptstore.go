// Package ckptstore keeps checkpoints: a folder per job, chk-<n>/ per
// checkpoint with its files, and _metadata, written last and atomically
// (write, fsync, rename, fsync of the folder), naming every file with its
// size and CRC-32C. A checkpoint without _metadata was never completed and
// is never used; a file that fails its checksum makes the checkpoint
// invalid, and Latest falls back to the previous one, saying why.
//
// Storage is the interface the checkpoint coordinator and the tasks use;
// Dir keeps checkpoints in a local or shared folder, Memory is a fast test
// double beside it, and the high-availability work adds an object store.
// The package imports neither coordinator/ nor worker/.
package ckptstore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"strings"
)

// Errors.
var (
	ErrNotFound = errors.New("ckptstore: not found")
	ErrCorrupt  = errors.New("ckptstore: corrupt")
	ErrInvalid  = errors.New("ckptstore: invalid name")
)

// MetadataVersion is the version of the _metadata format.
const MetadataVersion = 1

// MaxMetadata bounds a _metadata file.
const MaxMetadata = 64 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// FileInfo is one file of a checkpoint as its metadata names it.
type FileInfo struct {
	Name  string `json:"name"`
	Size  int64  `json:"size"`
	CRC32 uint32 `json:"crc32c"`
	// Shared says the file lives in the job's shared area (CreateShared),
	// not in the checkpoint's folder: an incremental checkpoint's
	// sstable, which later checkpoints may name too.
	Shared bool `json:"shared,omitempty"`
}

// Metadata describes a completed checkpoint: its files, and what the
// checkpoint coordinator put in Payload (operators, handles, digests).
type Metadata struct {
	Version    int             `json:"version"`
	Job        string          `json:"job"`
	Checkpoint uint64          `json:"checkpoint"`
	Files      []FileInfo      `json:"files"`
	Payload    json.RawMessage `json:"payload,omitempty"`
}

// Writer is a file of a checkpoint being written.
type Writer interface {
	io.Writer
	// Close flushes and syncs the file and returns what the metadata
	// must say of it.
	Close() (FileInfo, error)
	// Abort drops the file.
	Abort()
}

// Storage keeps the checkpoints of jobs.
type Storage interface {
	// Create starts file name of checkpoint n of job.
	Create(job string, n uint64, name string) (Writer, error)
	// Commit writes the checkpoint's metadata last and atomically: once
	// it returns, the checkpoint is complete.
	Commit(m Metadata) error
	// Completed lists the job's completed checkpoints, oldest first.
	Completed(job string) ([]uint64, error)
	// Metadata reads and checks a completed checkpoint's metadata.
	Metadata(job string, n uint64) (Metadata, error)
	// Read returns a file's bytes, checked against the metadata's size
	// and checksum; a Shared file is read from the job's shared area.
	Read(job string, n uint64, f FileInfo) ([]byte, error)
	// Discard deletes a checkpoint, complete or not; the shared files it
	// names stay (DiscardShared deletes those no checkpoint names).
	Discard(job string, n uint64) error

	// CreateShared starts file name of the job's shared area, which
	// holds the files several checkpoints name (pebble sstables). A
	// name is written once: its writer makes it visible on Close.
	CreateShared(job, name string) (Writer, error)
	// ListShared lists the job's shared files (name and size), by name.
	ListShared(job string) ([]FileInfo, error)
	// DiscardShared deletes one shared file; one that is not there is
	// no error.
	DiscardShared(job, name string) error
}

// Skipped is a completed checkpoint Latest could not use.
type Skipped struct {
	Checkpoint uint64
	Reason     string
}

// Latest returns the newest completed checkpoint of job whose metadata
// and files all pass their checks, and the newer ones it skipped with
// why. ErrNotFound when none is usable.
func Latest(s Storage, job string) (Metadata, []Skipped, error) {
	ns, err := s.Completed(job)
	if err != nil {
		return Metadata{}, nil, err
	}
	var skipped []Skipped
	for i := len(ns) - 1; i >= 0; i-- {
		m, err := Verify(s, job, ns[i])
		if err == nil {
			return m, skipped, nil
		}
		skipped = append(skipped, Skipped{Checkpoint: ns[i], Reason: err.Error()})
	}
	return Metadata{}, skipped, fmt.Errorf("%w: job %s has no usable checkpoint", ErrNotFound, job)
}

// Verify reads a checkpoint's metadata and checks every file it names.
func Verify(s Storage, job string, n uint64) (Metadata, error) {
	m, err := s.Metadata(job, n)
	if err != nil {
		return Metadata{}, err
	}
	for _, f := range m.Files {
		if _, err := s.Read(job, n, f); err != nil {
			return Metadata{}, err
		}
	}
	return m, nil
}

// encodeMetadata writes m as JSON followed by its CRC-32C (4 bytes, big
// endian), so a truncated or altered _metadata is detected.
func encodeMetadata(m Metadata) ([]byte, error) {
	m.Version = MetadataVersion
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

func decodeMetadata(b []byte, job string, n uint64) (Metadata, error) {
	bad := func(why string) (Metadata, error) {
		return Metadata{}, fmt.Errorf("%w: checkpoint %d of job %s: _metadata %s", ErrCorrupt, n, job, why)
	}
	if len(b) < 4 || len(b) > MaxMetadata {
		return bad(fmt.Sprintf("has %d bytes", len(b)))
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return bad("fails its checksum")
	}
	var m Metadata
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return bad("does not decode: " + err.Error())
	}
	if m.Version != MetadataVersion {
		return bad(fmt.Sprintf("is version %d; this build reads %d", m.Version, MetadataVersion))
	}
	if m.Job != job || m.Checkpoint != n {
		return bad(fmt.Sprintf("names checkpoint %d of job %s", m.Checkpoint, m.Job))
	}
	return m, nil
}

// checkFile checks a file's bytes against what the metadata says.
func checkFile(job string, n uint64, f FileInfo, b []byte) error {
	if int64(len(b)) != f.Size {
		return fmt.Errorf("%w: checkpoint %d of job %s: %s has %d bytes, the metadata says %d", ErrCorrupt, n, job, f.Name, len(b), f.Size)
	}
	if crc32.Checksum(b, castagnoli) != f.CRC32 {
		return fmt.Errorf("%w: checkpoint %d of job %s: %s fails its checksum", ErrCorrupt, n, job, f.Name)
	}
	return nil
}

// SharedNames returns the names of the shared files m names.
func SharedNames(m Metadata) []string {
	var out []string
	for _, f := range m.Files {
		if f.Shared {
			out = append(out, f.Name)
		}
	}
	return out
}

// checkName refuses names that could leave their folder.
func checkName(what, s string) error {
	if s == "" || len(s) > 255 || s == "." || s == ".." || strings.ContainsAny(s, "/\\\x00") || strings.HasPrefix(s, "_") && what == "file" {
		return fmt.Errorf("%w: %s %q", ErrInvalid, what, s)
	}
	return nil
}

// sortedUnique sorts ns.
func sortedUnique(ns []uint64) []uint64 {
	slices.Sort(ns)
	return slices.Compact(ns)
}
