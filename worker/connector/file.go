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
)

// MaxLineSize is the longest line the file source reads (16 MiB); a longer
// line is an error naming it.
const MaxLineSize = 16 << 20

// fileSource is one subtask of the file source.
type fileSource struct {
	path     string
	jsonl    bool
	keyField string
	tsField  string
	sub      Subtask

	f  *os.File
	sc *bufio.Scanner
	// advance is the byte count the last token consumed, newline included,
	// set by the split function.
	advance int
	// pos and line are the byte offset and 0-based number of the next
	// unread line.
	pos, line int64
	eof       bool
	err       error // a bad line stops the source; Read repeats it
	keyBuf    []byte
}

func newFileSource(o Options, sub Subtask) (*fileSource, error) {
	if err := checkSubtask("file", sub); err != nil {
		return nil, err
	}
	s := &fileSource{
		path:     o.String("path"),
		jsonl:    o.String("format") == "jsonl",
		keyField: o.String("key_field"),
		tsField:  o.String("timestamp_field"),
		sub:      sub,
	}
	f, err := os.Open(s.path)
	if err != nil {
		return nil, fmt.Errorf("connector: file: %w", err)
	}
	s.f = f
	s.reset()
	return s, nil
}

func (s *fileSource) reset() {
	s.sc = bufio.NewScanner(s.f)
	s.sc.Buffer(make([]byte, 64<<10), MaxLineSize+2) // room for "\r\n"
	s.sc.Split(s.split)
}

// split is bufio.ScanLines that also records how many bytes each line
// took, for Offset.
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
	p, i := int64(s.sub.Parallelism), int64(s.sub.Index)
	// Reading a local file does not block for long; checking ctx every
	// few thousand lines bounds a Read over a huge file of skipped lines.
	for scanned := 0; n < max; scanned++ {
		if scanned&4095 == 4095 && ctx.Err() != nil {
			return n, ctx.Err()
		}
		if !s.sc.Scan() {
			if err := s.sc.Err(); err != nil {
				if errors.Is(err, bufio.ErrTooLong) {
					s.err = fmt.Errorf("%s:%d: line longer than %d bytes", s.path, s.line+1, MaxLineSize)
				} else {
					s.err = fmt.Errorf("reading %s: %w", s.path, err)
				}
				return n, s.err
			}
			s.eof = true
			return n, io.EOF
		}
		lineNo := s.line
		s.line++
		s.pos += int64(s.advance)
		if lineNo%p != i {
			continue
		}
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
			s.line--
			s.pos -= int64(s.advance)
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

// Offset is the byte offset and 0-based number of the next unread line.
func (s *fileSource) Offset() []byte { return encodeOffset(offsetFile, s.pos, s.line) }

// Seek resumes reading at a position an Offset returned.
func (s *fileSource) Seek(offset []byte) error {
	var pos, line int64
	if err := decodeOffset("file", offsetFile, offset, &pos, &line); err != nil {
		return err
	}
	if pos < 0 || line < 0 {
		return fmt.Errorf("connector: file: %s: bad offset (byte %d, line %d)", s.path, pos, line)
	}
	st, err := s.f.Stat()
	if err != nil {
		return fmt.Errorf("connector: file: %w", err)
	}
	if pos > st.Size() {
		return fmt.Errorf("connector: file: %s: offset %d is past the end (%d bytes): was the file replaced?", s.path, pos, st.Size())
	}
	if _, err := s.f.Seek(pos, io.SeekStart); err != nil {
		return fmt.Errorf("connector: file: %w", err)
	}
	s.pos, s.line, s.eof, s.err = pos, line, false, nil
	s.reset()
	return nil
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
