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

// Errors of OpenPath, besides ErrNotFound for a path that does not exist.
var (
	// ErrNotCheckpoint: the path exists but is not <root>/<job>/chk-<n>.
	ErrNotCheckpoint = errors.New("ckptstore: not a checkpoint folder")
	// ErrIncomplete: the folder has no _metadata, so the checkpoint was
	// never completed.
	ErrIncomplete = errors.New("ckptstore: not completed")
)

// pathShape says what OpenPath wants, for its errors.
const pathShape = "want <root>/<job>/chk-<n>, the folder holding _metadata, as `weir job savepoint` prints it"

// OpenPath opens one checkpoint or savepoint folder given its path,
// <root>/<job>/chk-<n> as Dir keeps them (the path of its _metadata file
// works too), and returns a Dir over <root> with the job and n, for
// Metadata and Read. The folder may have been copied anywhere, as long as
// its last two names stay. It checks the folder is complete (_metadata is
// there), not that its files pass their checksums: Read does that.
func OpenPath(path string) (s Storage, job string, n uint64, err error) {
	if path == "" {
		return nil, "", 0, fmt.Errorf("%w: no path given; %s", ErrNotCheckpoint, pathShape)
	}
	p := filepath.Clean(path)
	if filepath.Base(p) == metadataFile {
		p = filepath.Dir(p)
	}
	st, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, "", 0, fmt.Errorf("%w: %s does not exist; %s", ErrNotFound, path, pathShape)
	case err != nil:
		return nil, "", 0, fmt.Errorf("ckptstore: opening %s: %w", path, err)
	case !st.IsDir():
		return nil, "", 0, fmt.Errorf("%w: %s is a file; %s", ErrNotCheckpoint, path, pathShape)
	}
	n, ok := chkNumber(filepath.Base(p))
	if !ok {
		if done := completedIn(p); len(done) > 0 {
			return nil, "", 0, fmt.Errorf("%w: %s holds the checkpoints of job %s: name one, e.g. %s (completed: %s)", ErrNotCheckpoint, path,
				filepath.Base(p), filepath.Join(p, "chk-"+strconv.FormatUint(done[len(done)-1], 10)), numbers(done))
		}
		return nil, "", 0, fmt.Errorf("%w: %s is not named chk-<n>; %s", ErrNotCheckpoint, path, pathShape)
	}
	jobDir := filepath.Dir(p)
	job = filepath.Base(jobDir)
	if checkName("job", job) != nil || jobDir == p {
		return nil, "", 0, fmt.Errorf("%w: %s is not inside a job's folder; %s", ErrNotCheckpoint, path, pathShape)
	}
	if _, err := os.Stat(filepath.Join(p, metadataFile)); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, "", 0, fmt.Errorf("ckptstore: opening %s: %w", path, err)
		}
		hint := "take another"
		if done := completedIn(jobDir); len(done) > 0 {
			hint = "use a completed one (" + numbers(done) + " in " + jobDir + ")"
		}
		return nil, "", 0, fmt.Errorf("%w: checkpoint %d of job %s at %s has no _metadata: it was interrupted before it completed and is never used; %s", ErrIncomplete, n, job, path, hint)
	}
	return &Dir{Root: filepath.Dir(jobDir)}, job, n, nil
}

// chkNumber parses a folder name chk-<n>, refusing other spellings of n
// (chk-07 is not the folder Dir would name chk-7).
func chkNumber(name string) (uint64, bool) {
	num, ok := strings.CutPrefix(name, "chk-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || strconv.FormatUint(n, 10) != num {
		return 0, false
	}
	return n, true
}

// completedIn lists the completed checkpoints in a job's folder, if dir
// is one (nil when it cannot tell).
func completedIn(dir string) []uint64 {
	d := &Dir{Root: filepath.Dir(dir)}
	ns, err := d.Completed(filepath.Base(dir))
	if err != nil {
		return nil
	}
	return ns
}

// numbers lists ns, the last few when there are many.
func numbers(ns []uint64) string {
	const most = 5
	var parts []string
	if len(ns) > most {
		parts = append(parts, "...")
		ns = ns[len(ns)-most:]
	}
	for _, n := range ns {
		parts = append(parts, "chk-"+strconv.FormatUint(n, 10))
	}
	return strings.Join(parts, ", ")
}
