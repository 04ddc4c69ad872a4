package connector

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/weirstream/weir/internal/splits"
)

// MaxLineSize is the longest line the file source reads (16 MiB); a longer
// line is an error naming it.
const MaxLineSize = 16 << 20

// fileSource is one subtask of the file source: it reads the lines of its
// splits (internal/splits: byte ranges cut at line starts), one split
// after the other in id order.
type fileSource struct {
	path     string
	jsonl    bool
	keyField string
	tsField  string
	sub      Subtask

	f      *os.File
	states []splits.State // by id; states[cur] is being read
	cur    int
	sc     *bufio.Scanner // over states[cur], nil before it is opened
	buf    []byte         // the scanner's initial buffer, reused by every split
	// advance is the byte count the last token consumed, newline included,
	// set by the split function.
	advance int
	eof     bool
	err     error // a bad line stops the source; Read repeats it
	keyBuf  []byte
}

func newFileSource(o Options, sub Subtask) (*fileSource, error) {
	s := &fileSource{
		path:     o.String("path"),
		jsonl:    o.String("format") == "jsonl",
		keyField: o.String("key_field"),
		tsField:  o.String("timestamp_field"),
		sub:      sub,
	}
	sn, err := startSplits("file", splits.KindFile, o, sub)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(s.path)
	if err != nil {
		return nil, fmt.Errorf("connector: file: %w", err)
	}
	s.f = f
	if err := s.resume(sn); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// resume makes the source read the splits of sn from their positions,
// after checking the file still holds them: a split past the file's end
// means the file was replaced or truncated since they were cut.
func (s *fileSource) resume(sn splits.Snapshot) error {
	st, err := s.f.Stat()
	if err != nil {
		return fmt.Errorf("connector: file: %w", err)
	}
	for i := range sn.States {
		sp := &sn.States[i].Split
		if sp.Path != s.path {
			return fmt.Errorf("connector: file: %s: restoring a split of %s: %w", s.path, sp.Path, splits.ErrInvalid)
		}
		if sp.End > st.Size() {
			return fmt.Errorf("connector: file: %s: split %d ends at byte %d, past the end (%d bytes): was the file replaced?", s.path, sp.ID, sp.End, st.Size())
		}
		// Where reading continues must still follow a newline: one byte
		// per split catches most edits that moved the lines.
		if next := sn.States[i].Next; next > 0 && next < sp.End {
			var c [1]byte
			if _, err := s.f.ReadAt(c[:], next-1); err != nil {
				return fmt.Errorf("connector: file: %s: %w", s.path, err)
			}
			if c[0] != '\n' {
				return fmt.Errorf("connector: file: %s: split %d resumes at byte %d, which is not a line start: was the file changed?", s.path, sp.ID, next)
			}
		}
	}
	s.states, s.cur, s.sc, s.eof, s.err = sn.States, 0, nil, false, nil
	return nil
}

// open starts reading states[cur] at its position, skipping finished
// splits; it returns false after the last split.
func (s *fileSource) open() bool {
	for ; s.cur < len(s.states); s.cur++ {
		st := &s.states[s.cur]
		if st.Done() {
			continue
		}
		if s.buf == nil {
			s.buf = make([]byte, 64<<10)
		}
		s.sc = bufio.NewScanner(io.NewSectionReader(s.f, st.Next, st.Split.End-st.Next))
		s.sc.Buffer(s.buf, MaxLineSize+2) // room for "\r\n"
		s.sc.Split(s.split)
		return true
	}
	return false
}

// split is bufio.ScanLines that also records how many bytes each line
// took, for the split's position.
func (s *fileSource) split(data []byte, atEOF bool) (int, []byte, error) {
	if atEOF && len(data) == 0 {
		return 0, nil, nil
	}
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		s.advance = i + 1
		return i + 1, dropCR(data[:i]), nil
	}
	if atEOF {
		s.advance = len(data)
		return len(data), dropCR(data), nil
	}
	return 0, nil, nil
}

func dropCR(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '\r' {
		return b[:len(b)-1]
	}
	return b
}

// Read appends the subtask's next lines, at most max records.
func (s *fileSource) Read(ctx context.Context, b *Batch, max int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if s.err != nil {
		return 0, s.err
	}
	if s.eof {
		return 0, io.EOF
	}
	n := 0
	// Reading a local file does not block for long; checking ctx every
	// few thousand lines bounds a Read over a huge file of empty lines.
	for scanned := 0; n < max; scanned++ {
		if scanned&4095 == 4095 && ctx.Err() != nil {
			return n, ctx.Err()
		}
		if s.sc == nil && !s.open() {
			s.eof = true
			return n, io.EOF
		}
		st := &s.states[s.cur]
		if !s.sc.Scan() {
			if err := s.sc.Err(); err != nil {
				if errors.Is(err, bufio.ErrTooLong) {
					s.err = fmt.Errorf("%s:%d: line longer than %d bytes", s.path, st.NextLine+1, MaxLineSize)
				} else {
					s.err = fmt.Errorf("reading %s: %w", s.path, err)
				}
				return n, s.err
			}
			s.sc = nil
			s.cur++
			continue
		}
		lineNo := st.NextLine
		st.NextLine++
		st.Next += int64(s.advance)
		text := s.sc.Bytes()
		if !s.jsonl {
			b.Append(nil, text, lineNo)
			n++
			continue
		}
		if len(bytes.TrimSpace(text)) == 0 {
			continue
		}
		if err := s.appendJSON(b, text, lineNo); err != nil {
			// Leave the position before the bad line, so the error
			// repeats rather than skipping it silently.
			st.NextLine--
			st.Next -= int64(s.advance)
			s.err = err
			return n, err
		}
		n++
	}
	return n, nil
}

// appendJSON appends the JSONL line as a record, taking its key and
// timestamp from the configured fields.
func (s *fileSource) appendJSON(b *Batch, text []byte, lineNo int64) error {
	if !json.Valid(text) {
		var v any
		err := json.Unmarshal(text, &v) // only to describe the mistake
		return fmt.Errorf("%s:%d: invalid JSON: %v", s.path, lineNo+1, err)
	}
	if text = bytes.TrimLeft(text, " \t"); text[0] != '{' {
		return fmt.Errorf("%s:%d: want a JSON object, got %s", s.path, lineNo+1, jsonKind(text[0]))
	}
	var key []byte
	ts := lineNo
	if s.keyField != "" {
		raw, ok := topLevelField(text, s.keyField)
		if !ok {
			return fmt.Errorf("%s:%d: no field %q (key_field)", s.path, lineNo+1, s.keyField)
		}
		switch raw[0] {
		case '"':
			if bytes.IndexByte(raw, '\\') < 0 {
				key = raw[1 : len(raw)-1]
			} else {
				var str string
				if err := json.Unmarshal(raw, &str); err != nil {
					return fmt.Errorf("%s:%d: field %q: %v", s.path, lineNo+1, s.keyField, err)
				}
				s.keyBuf = append(s.keyBuf[:0], str...)
				key = s.keyBuf
			}
		case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			key = raw
		default:
			return fmt.Errorf("%s:%d: field %q (key_field) is %s, want a string or a number", s.path, lineNo+1, s.keyField, jsonKind(raw[0]))
		}
	}
	if s.tsField != "" {
		raw, ok := topLevelField(text, s.tsField)
		if !ok {
			return fmt.Errorf("%s:%d: no field %q (timestamp_field)", s.path, lineNo+1, s.tsField)
		}
		v, ok := parseInt(raw)
		if !ok {
			return fmt.Errorf("%s:%d: field %q (timestamp_field) is %s, want an integer of ms", s.path, lineNo+1, s.tsField, raw)
		}
		ts = v
	}
	b.Append(key, text, ts)
	return nil
}

// Snapshot returns the state of the subtask's splits.
func (s *fileSource) Snapshot() splits.Snapshot {
	return splits.Snapshot{Connector: "file", States: append([]splits.State{}, s.states...)}
}

// Offset is the encoded Snapshot.
func (s *fileSource) Offset() []byte { return splits.Encode(s.Snapshot()) }

// Seek resumes at the split states an Offset named.
func (s *fileSource) Seek(offset []byte) error {
	sn, err := decodeSeek("file", splits.KindFile, offset, s.sub)
	if err != nil {
		return err
	}
	return s.resume(sn)
}

// Close closes the file.
func (s *fileSource) Close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

func jsonKind(c byte) string {
	switch c {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a bool"
	case 'n':
		return "null"
	}
	return "a number"
}

// parseInt parses a JSON integer without allocating.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	for i, c := range b {
		if (c < '0' || c > '9') && !(i == 0 && c == '-') {
			return 0, false
		}
	}
	// The bytes are digits, so the conversion is only for ParseInt's
	// range check; it does not escape.
	v, err := strconv.ParseInt(string(b), 10, 64)
	return v, err == nil
}

// topLevelField returns the raw JSON value of field name in the object
// obj, which must be valid JSON. It does not allocate.
func topLevelField(obj []byte, name string) ([]byte, bool) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil, false
	}
	i++
	for {
		i = skipSpace(obj, i)
		if i >= len(obj) || obj[i] == '}' {
			return nil, false
		}
		ks := i
		i = skipString(obj, i)
		k := obj[ks+1 : i-1]
		i = skipSpace(obj, i) + 1 // ':'
		i = skipSpace(obj, i)
		vs := i
		i = skipValue(obj, i)
		if keyEquals(k, name) {
			return obj[vs:i], true
		}
		i = skipSpace(obj, i)
		if i < len(obj) && obj[i] == ',' {
			i++
		}
	}
}

// keyEquals compares a raw JSON object key with name; keys with escapes
// are compared after unescaping (rare, so that path may allocate).
func keyEquals(raw []byte, name string) bool {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw) == name
	}
	q := make([]byte, 0, len(raw)+2)
	q = append(append(append(q, '"'), raw...), '"')
	var s string
	return json.Unmarshal(q, &s) == nil && s == name
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"'.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// skipValue returns the index after the JSON value starting at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\r' && b[i] != '\n' {
		i++
	}
	return i
}

func init() {
	Register(&Spec{Name: "file", Kind: KindSource, NewSource: func(o Options, sub Subtask) (Source, error) { return newFileSource(o, sub) }})
}
