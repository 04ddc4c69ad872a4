// Command wordcount is a weir operator module with the two operators of the
// classic word count:
//
//   - "split" (flat_map): each record's value is a line of text; it emits one
//     record per word, with the word as key and value and the line's
//     timestamp. A word is a run of letters and digits of the lowercased
//     line (strings.FieldsFunc(strings.ToLower(line), not a letter or digit)),
//     so punctuation and spaces separate words and are dropped.
//   - "count" (process): keyed by word, it keeps a running count per word in
//     keyed value state and emits, for every record, the word as key and its
//     count so far in decimal as value, with the record's timestamp.
//
// Build it with `weir module build examples/wordcount`, or
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o wordcount.wasm ./examples/wordcount
//
// and run the chain over sample.txt with
//
//	weir module test examples/wordcount/wordcount.wasm --operator split,count --input examples/wordcount/sample.txt
package main

import (
	"bytes"
	"strconv"
	"unicode"
	"unicode/utf8"

	weir "github.com/weirstream/weir/sdk/go"
)

func init() {
	weir.FlatMap("split", split)
	weir.Process("count", &counter{})
}

// split emits the words of a line. ASCII lines, the common case, are
// lowercased in place (a record's bytes belong to the operator during the
// call) and cut without allocating; other lines take the general path.
func split(r weir.Record, out weir.Emitter) error {
	line := r.Value
	for _, c := range line {
		if c >= utf8.RuneSelf {
			for _, w := range bytes.FieldsFunc(bytes.ToLower(line), notWord) {
				out.Emit(weir.Record{Key: w, Value: w, Timestamp: r.Timestamp})
			}
			return nil
		}
	}
	start := -1
	for i, c := range line {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
			line[i] = c
		}
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			w := line[start:i]
			out.Emit(weir.Record{Key: w, Value: w, Timestamp: r.Timestamp})
			start = -1
		}
	}
	if start >= 0 {
		w := line[start:]
		out.Emit(weir.Record{Key: w, Value: w, Timestamp: r.Timestamp})
	}
	return nil
}

func notWord(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }

// counter counts records per key.
type counter struct {
	weir.BaseProcess // Open is below; OnTimer: no timers
	count            *weir.ValueState[int64]
}

func (c *counter) Open(o *weir.OpenContext) error {
	c.count = weir.NewValueState(o, "count", weir.Int64Codec)
	return nil
}

func (c *counter) ProcessElement(ctx *weir.Context, r weir.Record) error {
	n, _, err := c.count.Get(ctx)
	if err != nil {
		return err
	}
	n++
	c.count.Set(ctx, n)
	var buf [20]byte
	ctx.Emit(weir.Record{Key: ctx.Key(), Value: strconv.AppendInt(buf[:0], n, 10), Timestamp: r.Timestamp})
	return nil
}

func main() {}
