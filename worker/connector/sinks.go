package connector

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/weirstream/weir/internal/jsontext"
	"github.com/weirstream/weir/wasmabi"
)

// SubtaskPath is the file that subtask sub of a file sink writes for path:
// path itself at parallelism 1, else path with "-<index>" inserted before
// its extension.
func SubtaskPath(path string, sub Subtask) string {
	if sub.Parallelism <= 1 {
		return path
	}
	ext := filepath.Ext(path)
	if ext == filepath.Base(path) { // ".hidden": no extension
		ext = ""
	}
	return path[:len(path)-len(ext)] + "-" + strconv.Itoa(sub.Index) + ext
}

// lineFormat says how a sink writes a record.
type lineFormat uint8

const (
	formatText  lineFormat = iota // key<TAB>value, or value
	formatLines                   // value
	formatJSONL                   // {"key":..,"value":..,"timestamp":..}
)

// appendLines appends the records of entries to dst, one line each.
func appendLines(dst, entries []byte, f lineFormat, rawJSON bool) ([]byte, error) {
	var e wasmabi.Entry
	for i := 0; len(entries) > 0; i++ {
		var err error
		if entries, err = wasmabi.ReadEntry(entries, &e); err != nil {
			return dst, fmt.Errorf("connector: sink: entry %d: %w", i, err)
		}
		if e.Kind != wasmabi.EntryRecord {
			continue
		}
		switch f {
		case formatText:
			if len(e.Key) > 0 {
				dst = append(dst, e.Key...)
				dst = append(dst, '\t')
			}
			dst = append(dst, e.Value...)
		case formatLines:
			dst = append(dst, e.Value...)
		case formatJSONL:
			dst = appendJSONL(dst, e.Key, e.Value, e.Timestamp, rawJSON)
		}
		dst = append(dst, '\n')
	}
	return dst, nil
}

// appendJSONL appends {"key":..,"value":..,"timestamp":..} without the
// newline.
func appendJSONL(dst, key, value []byte, ts int64, rawJSON bool) []byte {
	dst = append(dst, `{"key":`...)
	if len(key) == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = jsontext.AppendString(dst, key)
	}
	dst = append(dst, `,"value":`...)
	if rawJSON && isJSONContainer(value) {
		dst = append(dst, value...)
	} else {
		dst = jsontext.AppendString(dst, value)
	}
	dst = append(dst, `,"timestamp":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	return append(dst, '}')
}

// isJSONContainer reports whether v is one valid JSON object or array on
// one line (a newline inside would break the one-record-per-line shape).
func isJSONContainer(v []byte) bool {
	i := skipSpace(v, 0)
	if i == len(v) || (v[i] != '{' && v[i] != '[') {
		return false
	}
	for _, c := range v {
		if c == '\n' || c == '\r' {
			return false
		}
	}
	return json.Valid(v)
}

// sharedStdout is the one writer the stdout sinks of this process share.
var sharedStdout = &lockedWriter{}

func init() { sharedStdout.mu.w = bufio.NewWriterSize(os.Stdout, 64<<10) }

// lockedWriter is a buffered writer that whole batches are written to
// under one lock.
type lockedWriter struct {
	mu struct {
		sync.Mutex
		w *bufio.Writer // protected by mu
	}
}

func (l *lockedWriter) write(p []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err := l.mu.w.Write(p)
	return err
}

func (l *lockedWriter) flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.w.Flush()
}

// SetStdout makes the stdout sinks write to w instead of os.Stdout (for
// tests and embedding) and returns a function that flushes w and puts the
// previous writer back.
func SetStdout(w io.Writer) (restore func()) {
	l := sharedStdout
	l.mu.Lock()
	prev := l.mu.w
	_ = prev.Flush()
	l.mu.w = bufio.NewWriterSize(w, 64<<10)
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		_ = l.mu.w.Flush()
		l.mu.w = prev
		l.mu.Unlock()
	}
}

// stdoutSink is one subtask of the stdout sink. It formats a batch into
// its own buffer and hands the whole batch to the shared writer under one
// lock.
type stdoutSink struct {
	format  string
	rawJSON bool
	buf     []byte
	closed  bool
}

func (s *stdoutSink) lineFormat() lineFormat {
	if s.format == "jsonl" {
		return formatJSONL
	}
	return formatText
}

// Write formats the batch and writes it to the shared writer.
func (s *stdoutSink) Write(entries []byte, count int) error {
	if s.closed {
		return errSinkClosed
	}
	var err error
	s.buf, err = appendLines(s.buf[:0], entries, s.lineFormat(), s.rawJSON)
	if err != nil {
		return err
	}
	if err := sharedStdout.write(s.buf); err != nil {
		return fmt.Errorf("connector: stdout: %w", err)
	}
	if cap(s.buf) > 4<<20 { // do not keep one huge batch's buffer forever
		s.buf = nil
	}
	return nil
}

// Flush flushes the shared writer.
func (s *stdoutSink) Flush() error {
	if err := sharedStdout.flush(); err != nil {
		return fmt.Errorf("connector: stdout: %w", err)
	}
	return nil
}

// Close flushes; it does not close standard output. It is idempotent.
func (s *stdoutSink) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	return s.Flush()
}

var errSinkClosed = errors.New("connector: sink closed")

// discardTotals count what every DiscardSink of the process received.
var discardTotals struct{ records, bytes atomic.Int64 }

// DiscardTotals returns the records and encoded entry bytes received by
// all discard sinks of this process so far.
func DiscardTotals() (records, bytes int64) {
	return discardTotals.records.Load(), discardTotals.bytes.Load()
}

// DiscardSink is the discard sink: it drops records, counting them. Its
// counters may be read from any goroutine.
type DiscardSink struct {
	records, bytes atomic.Int64
}

// Write counts the batch's records and bytes.
func (d *DiscardSink) Write(entries []byte, count int) error {
	d.records.Add(int64(count))
	d.bytes.Add(int64(len(entries)))
	discardTotals.records.Add(int64(count))
	discardTotals.bytes.Add(int64(len(entries)))
	return nil
}

// Count returns the number of records this sink received.
func (d *DiscardSink) Count() int64 { return d.records.Load() }

// Bytes returns the encoded entry bytes this sink received.
func (d *DiscardSink) Bytes() int64 { return d.bytes.Load() }

// Flush does nothing.
func (d *DiscardSink) Flush() error { return nil }

// Close does nothing.
func (d *DiscardSink) Close() error { return nil }

func init() {
	Register(&Spec{Name: "stdout", Kind: KindSink, NewSink: func(o Options, sub Subtask) (Sink, error) {
		return &stdoutSink{format: o.String("format"), rawJSON: o.Bool("raw_json")}, nil
	}})
	Register(&Spec{Name: "file", Kind: KindSink, NewSink: func(o Options, sub Subtask) (Sink, error) { return newFileSink(o, sub) }})
	Register(&Spec{Name: "discard", Kind: KindSink, NewSink: func(Options, Subtask) (Sink, error) { return &DiscardSink{}, nil }})
}
