package splits

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/weirstream/weir/internal/connspec"
)

// SequenceSplits is the number of splits of a generated stream: 720 = 6!,
// a multiple of every parallelism from 1 to 6 and of 8, 9, 10, 12, 15,
// 16, 18, 20, 24, ... Split k holds numbers k, k+720, k+1440, ..., so at
// such a parallelism p subtask i reads exactly the numbers i, i+p, i+2p,
// ... in order, as the sources did before splits, and the subtasks'
// numbers (hence their event times) advance together. At a parallelism
// above 720 the extra subtasks have no split. See docs/RATIONALE.md, "Why
// strided sequence splits?".
const SequenceSplits = 720

// FileSplits is the number of pieces a file is cut into before the cuts
// move to line starts (pieces of one line merge, so a short file has
// fewer), unless the pieces would be over MaxFileSplitBytes.
const (
	FileSplits        = 64
	MaxFileSplitBytes = 64 << 20
)

// Sequence returns the splits of a stream of count numbers 0..count-1
// (count 0: unbounded): SequenceSplits strided splits.
func Sequence(count int64) []Split {
	end := count
	if count <= 0 {
		end = Unbounded
	}
	out := make([]Split, SequenceSplits)
	for k := range out {
		out[k] = Split{ID: k, Of: SequenceSplits, Kind: KindSequence, Start: int64(k), End: end, Stride: SequenceSplits}
	}
	return out
}

// ErrNotSplittable is returned by Enumerate for a connector without splits.
var ErrNotSplittable = errors.New("splits: connector has no splits")

// Enumerate returns the splits of a built-in source from its validated
// options. It is deterministic: a file's splits depend on its content,
// which it reads once (to cut at line starts and number the lines), and
// nothing else.
func Enumerate(connector string, o connspec.Options) ([]Split, error) {
	switch connector {
	case "datagen", "nexmark":
		return Sequence(o.Int("count")), nil
	case "file":
		return Files(o.String("path"))
	}
	return nil, fmt.Errorf("enumerating splits of %q: %w", connector, ErrNotSplittable)
}

// Files returns the splits of a file: FileSplits (or more, for a file over
// FileSplits*MaxFileSplitBytes) byte ranges of about equal size, each
// moved forward to the next line start, with the number of the line each
// starts at. It reads the file once, counting newlines; an empty file has
// one empty split.
func Files(path string) ([]Split, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("enumerating splits: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("enumerating splits: %w", err)
	}
	size := st.Size()
	n := int64(FileSplits)
	if per := (size + n - 1) / n; per > MaxFileSplitBytes {
		n = (size + MaxFileSplitBytes - 1) / MaxFileSplitBytes
	}
	target := func(k int64) int64 {
		if size < 1<<40 { // then k < n <= 2^14: size*k < 2^54
			return size * k / n
		}
		return size / n * k
	}
	starts, lines := []int64{0}, []int64{0}
	buf := make([]byte, min(64<<10, max(size, 1)))
	var off, nl int64 // nl counts the '\n' in [0, off+i)
	k := int64(1)
	for off < size && k < n {
		m, err := io.ReadFull(f, buf[:min(int64(len(buf)), size-off)])
		if err != nil {
			return nil, fmt.Errorf("enumerating splits of %s: reading at byte %d: %w", path, off, err)
		}
		c := buf[:m]
		i := 0
		for k < n {
			// The cut for target t is after the first '\n' at or after
			// t-1: the first line start at or after t.
			from := max(target(k)-1-off, int64(i))
			if from >= int64(len(c)) {
				break
			}
			j := bytes.IndexByte(c[from:], '\n')
			if j < 0 {
				break
			}
			p := int(from) + j + 1
			nl += int64(bytes.Count(c[i:p], []byte{'\n'}))
			i = p
			cut := off + int64(p)
			if cut < size {
				starts, lines = append(starts, cut), append(lines, nl)
			}
			for k < n && target(k) <= cut {
				k++
			}
		}
		nl += int64(bytes.Count(c[i:], []byte{'\n'}))
		off += int64(m)
	}
	out := make([]Split, len(starts))
	for i := range starts {
		end := size
		if i+1 < len(starts) {
			end = starts[i+1]
		}
		out[i] = Split{ID: i, Of: len(starts), Kind: KindFile, Path: path, Start: starts[i], End: end, Line: lines[i]}
	}
	return out, nil
}
