package ckptstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// OpenPath opens the checkpoint or savepoint folder at path, as a Dir
// keeps it (<root>/<job>/chk-<n>), and returns its storage, job and
// number. It checks the folder holds a completed checkpoint (_metadata).
func OpenPath(path string) (s Storage, job string, n uint64, err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, "", 0, fmt.Errorf("ckptstore: opening %s: %w", path, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, "", 0, fmt.Errorf("ckptstore: %s does not exist: give the folder of a checkpoint or savepoint, <dir>/<job>/chk-<n>, as `weir job savepoint` printed it: %w", path, ErrNotFound)
		}
		return nil, "", 0, fmt.Errorf("ckptstore: opening %s: %w", path, err)
	}
	num, ok := strings.CutPrefix(filepath.Base(abs), "chk-")
	if ok {
		n, err = strconv.ParseUint(num, 10, 64)
	}
	if !fi.IsDir() || !ok || err != nil || n == 0 {
		return nil, "", 0, fmt.Errorf("ckptstore: %s is not a checkpoint folder: want <dir>/<job>/chk-<n>, the path `weir job savepoint` printed: %w", path, ErrInvalid)
	}
	if _, err := os.Stat(filepath.Join(abs, "_metadata")); err != nil {
		return nil, "", 0, fmt.Errorf("ckptstore: %s has no _metadata: the checkpoint was never completed, use an earlier one: %w", path, ErrNotFound)
	}
	jobDir := filepath.Dir(abs)
	return &Dir{Root: filepath.Dir(jobDir)}, filepath.Base(jobDir), n, nil
}
