package ckptstore

import (
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// metadataFile is written last: its presence makes a checkpoint complete.
const metadataFile = "_metadata"

// sharedFolder is the folder of a job's shared files, beside its
// checkpoints.
const sharedFolder = "shared"

// Dir keeps checkpoints under Root: Root/<job>/chk-<n>/, and the files
// several checkpoints share in Root/<job>/shared/.
type Dir struct {
	Root string
}

var _ Storage = (*Dir)(nil)

func (d *Dir) chk(job string, n uint64) (string, error) {
	if err := checkName("job", job); err != nil {
		return "", err
	}
	return filepath.Join(d.Root, job, "chk-"+strconv.FormatUint(n, 10)), nil
}

// Create starts a file of a checkpoint.
func (d *Dir) Create(job string, n uint64, name string) (Writer, error) {
	dir, err := d.chk(job, n)
	if err != nil {
		return nil, err
	}
	if err := checkName("file", name); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("ckptstore: creating checkpoint %d of job %s: %w", n, job, err)
	}
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		return nil, fmt.Errorf("ckptstore: creating %s of checkpoint %d: %w", name, n, err)
	}
	return &dirWriter{f: f, name: name, crc: crc32.New(castagnoli)}, nil
}

func (d *Dir) shared(job string) (string, error) {
	if err := checkName("job", job); err != nil {
		return "", err
	}
	return filepath.Join(d.Root, job, sharedFolder), nil
}

// CreateShared starts a shared file: written under a temporary name and
// renamed into place on Close, so a listing never shows half a file.
func (d *Dir) CreateShared(job, name string) (Writer, error) {
	dir, err := d.shared(job)
	if err != nil {
		return nil, err
	}
	if err := checkName("file", name); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("ckptstore: creating the shared folder of job %s: %w", job, err)
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("ckptstore: creating shared file %s of job %s: %w", name, job, err)
	}
	return &dirWriter{f: f, name: name, crc: crc32.New(castagnoli), publish: filepath.Join(dir, name)}, nil
}

// ListShared lists the job's shared files.
func (d *Dir) ListShared(job string) ([]FileInfo, error) {
	dir, err := d.shared(job)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ckptstore: listing the shared files of job %s: %w", job, err)
	}
	var out []FileInfo
	for _, e := range ents {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // deleted meanwhile
		}
		out = append(out, FileInfo{Name: e.Name(), Size: info.Size(), Shared: true})
	}
	return out, nil
}

// DiscardShared deletes a shared file.
func (d *Dir) DiscardShared(job, name string) error {
	dir, err := d.shared(job)
	if err != nil {
		return err
	}
	if err := checkName("file", name); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ckptstore: deleting shared file %s of job %s: %w", name, job, err)
	}
	return nil
}

type dirWriter struct {
	f    *os.File
	name string
	crc  hash.Hash32
	size int64
	// publish, for a shared file, is the path Close renames it to.
	publish string
}

func (w *dirWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.crc.Write(p[:n])
	w.size += int64(n)
	if err != nil {
		return n, fmt.Errorf("ckptstore: writing %s: %w", w.name, err)
	}
	return n, nil
}

func (w *dirWriter) Close() (FileInfo, error) {
	if err := w.f.Sync(); err != nil {
		w.f.Close()
		return FileInfo{}, fmt.Errorf("ckptstore: syncing %s: %w", w.name, err)
	}
	if err := w.f.Close(); err != nil {
		return FileInfo{}, fmt.Errorf("ckptstore: closing %s: %w", w.name, err)
	}
	fi := FileInfo{Name: w.name, Size: w.size, CRC32: w.crc.Sum32()}
	if w.publish != "" {
		if err := os.Rename(w.f.Name(), w.publish); err != nil {
			os.Remove(w.f.Name())
			return FileInfo{}, fmt.Errorf("ckptstore: publishing shared file %s: %w", w.name, err)
		}
		if err := syncDir(filepath.Dir(w.publish)); err != nil {
			return FileInfo{}, fmt.Errorf("ckptstore: syncing the shared folder: %w", err)
		}
		fi.Shared = true
	}
	return fi, nil
}

func (w *dirWriter) Abort() {
	w.f.Close()
	os.Remove(w.f.Name())
}

// Commit writes _metadata: to a temporary file, synced, renamed into
// place, and the folder synced, so a crash leaves either no metadata or
// all of it.
func (d *Dir) Commit(m Metadata) error {
	dir, err := d.chk(m.Job, m.Checkpoint)
	if err != nil {
		return err
	}
	for _, f := range m.Files {
		if err := checkName("file", f.Name); err != nil {
			return err
		}
	}
	b, err := encodeMetadata(m)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("ckptstore: committing checkpoint %d of job %s: %w", m.Checkpoint, m.Job, err)
	}
	tmp, err := os.CreateTemp(dir, ".metadata-*")
	if err != nil {
		return fmt.Errorf("ckptstore: committing checkpoint %d of job %s: %w", m.Checkpoint, m.Job, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("ckptstore: writing the metadata of checkpoint %d: %w", m.Checkpoint, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("ckptstore: syncing the metadata of checkpoint %d: %w", m.Checkpoint, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, metadataFile)); err != nil {
		return fmt.Errorf("ckptstore: publishing the metadata of checkpoint %d: %w", m.Checkpoint, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// Completed lists the checkpoints that have their metadata.
func (d *Dir) Completed(job string) ([]uint64, error) {
	if err := checkName("job", job); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(filepath.Join(d.Root, job))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ckptstore: listing the checkpoints of job %s: %w", job, err)
	}
	var out []uint64
	for _, e := range ents {
		num, ok := strings.CutPrefix(e.Name(), "chk-")
		if !ok || !e.IsDir() {
			continue
		}
		n, err := strconv.ParseUint(num, 10, 64)
		if err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(d.Root, job, e.Name(), metadataFile)); err == nil {
			out = append(out, n)
		}
	}
	return sortedUnique(out), nil
}

// Metadata reads and checks a checkpoint's metadata.
func (d *Dir) Metadata(job string, n uint64) (Metadata, error) {
	dir, err := d.chk(job, n)
	if err != nil {
		return Metadata{}, err
	}
	b, err := readBounded(filepath.Join(dir, metadataFile), MaxMetadata+4)
	if errors.Is(err, fs.ErrNotExist) {
		return Metadata{}, fmt.Errorf("%w: checkpoint %d of job %s is not complete", ErrNotFound, n, job)
	}
	if err != nil {
		return Metadata{}, err
	}
	return decodeMetadata(b, job, n)
}

// Read returns a file of a checkpoint, checked.
func (d *Dir) Read(job string, n uint64, f FileInfo) ([]byte, error) {
	dir, err := d.chk(job, n)
	if err != nil {
		return nil, err
	}
	if err := checkName("file", f.Name); err != nil {
		return nil, err
	}
	if f.Shared {
		if dir, err = d.shared(job); err != nil {
			return nil, err
		}
	}
	b, err := readBounded(filepath.Join(dir, f.Name), f.Size+1)
	if err != nil {
		return nil, fmt.Errorf("%w: checkpoint %d of job %s: %s: %v", ErrCorrupt, n, job, f.Name, err)
	}
	return b, checkFile(job, n, f, b)
}

// readBounded reads at most limit bytes of a file (more is reported by
// the size check that follows).
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	n := min(st.Size(), limit)
	b := make([]byte, n)
	_, err = f.ReadAt(b, 0)
	if err != nil && n > 0 {
		return nil, err
	}
	return b, nil
}

// Discard deletes a checkpoint's folder.
func (d *Dir) Discard(job string, n uint64) error {
	dir, err := d.chk(job, n)
	if err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// PathOf says where checkpoint n of job is kept in s, for messages and
// for restoring from it: the folder of a Dir, "memory:<job>/chk-<n>"
// otherwise.
func PathOf(s Storage, job string, n uint64) string {
	if d, ok := s.(*Dir); ok {
		if p, err := d.chk(job, n); err == nil {
			return p
		}
	}
	return "memory:" + job + "/chk-" + strconv.FormatUint(n, 10)
}
