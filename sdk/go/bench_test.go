//go:build !wasip1

package weir_test

import (
	"bytes"
	"testing"

	weir "github.com/weirstream/weir/sdk/go"
	"github.com/weirstream/weir/wasmabi"
)

// sink is a Host that only counts output bytes, so benchmarks measure the
// SDK and not a host.
type sink struct {
	n     int
	fails int
}

func (s *sink) Output(b []byte)                                            { s.n += len(b) }
func (s *sink) Fail(string)                                                { s.fails++ }
func (s *sink) Log(int, string)                                            {}
func (s *sink) Counter(string, int64)                                      {}
func (s *sink) StateRegister(string, wasmabi.StateKind) int32              { return 0 }
func (s *sink) State(wasmabi.StateOp, int32, []byte, []byte, []byte) int64 { return -1 }
func (s *sink) Timer(wasmabi.TimerOp, wasmabi.TimeDomain, int64, []byte)   {}

// benchBatch is a batch of n records of 100-byte values and no key.
func benchBatch(n int) []byte {
	value := bytes.Repeat([]byte("v"), 100)
	b := wasmabi.AppendBatchHeader(nil, wasmabi.BatchHeader{Count: uint32(n), Watermark: wasmabi.NoWatermark})
	for i := 0; i < n; i++ {
		b = wasmabi.AppendEntry(b, &wasmabi.Entry{Kind: wasmabi.EntryRecord, Value: value, Timestamp: int64(i)})
	}
	return b
}

func opIndex(tb testing.TB, name string) int {
	d, err := wasmabi.ParseDescriptor(weir.Describe())
	if err != nil {
		tb.Fatal(err)
	}
	op, _, ok := d.Operator(name)
	if !ok {
		tb.Fatalf("no operator %s", name)
	}
	return op
}

func benchOp(b *testing.B, name string) {
	s := &sink{}
	inst := weir.NewInstance(s)
	op := opIndex(b, name)
	if !inst.Call(op, wasmabi.MethodOpen, nil) {
		b.Fatal("open failed")
	}
	in := benchBatch(1024)
	inst.Call(op, wasmabi.MethodProcess, in) // warm up: the output buffer
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if !inst.Call(op, wasmabi.MethodProcess, in) {
			b.Fatal("call failed")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1024, "ns/record")
}

// BenchmarkIdentityMap: the identity map over batches of 1024 records of
// 100 bytes, natively (no WebAssembly).
func BenchmarkIdentityMap(b *testing.B) { benchOp(b, "t.identity") }

// BenchmarkCopy is the floor: copying the batch's entries once, as the
// identity map must.
func BenchmarkCopy(b *testing.B) {
	in := benchBatch(1024)
	out := make([]byte, len(in))
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		copy(out, in[wasmabi.BatchHeaderSize:])
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1024, "ns/record")
}

func BenchmarkFilter(b *testing.B) { benchOp(b, "t.keepall") }

func BenchmarkFlatMap(b *testing.B) { benchOp(b, "t.flatid") }

func init() {
	weir.Filter("t.keepall", func(weir.Record) (bool, error) { return true, nil })
	weir.FlatMap("t.flatid", func(r weir.Record, out weir.Emitter) error {
		out.Emit(r)
		return nil
	})
	weir.Map("t.stackvalue", func(r weir.Record) (weir.Record, error) {
		// Emitted bytes may live in the input: rewrite the value in place.
		r.Value = append(r.Value[:0], "rewritten"...)
		return r, nil
	})
	weir.Process("t.counting", countingProc{})
}

type countingProc struct{ weir.BaseProcess }

func (countingProc) ProcessElement(ctx *weir.Context, r weir.Record) error {
	ctx.Counter("n").Add(1)
	var buf [8]byte
	ctx.Emit(weir.Record{Key: ctx.Key(), Value: buf[:], Timestamp: ctx.Watermark()})
	return nil
}

func TestZeroAllocs(t *testing.T) {
	var hdr weir.Headers
	hdr = hdr.Add("trace", []byte("abc"))
	withHeaders := wasmabi.AppendBatchHeader(nil, wasmabi.BatchHeader{Count: 64})
	for i := 0; i < 64; i++ {
		withHeaders = wasmabi.AppendEntry(withHeaders, &wasmabi.Entry{Kind: wasmabi.EntryRecord, Key: []byte("k"), Value: []byte("v"), Headers: hdr.Bytes()})
	}
	for _, c := range []struct {
		op    string
		batch []byte
	}{
		{"t.identity", benchBatch(1024)},
		{"t.identity", withHeaders},
		{"t.upper", benchBatch(1024)}, // bytes.ToUpper allocates for non-ASCII only... and here
		{"t.keepall", benchBatch(1024)},
		{"t.flatid", benchBatch(1024)},
		{"t.stackvalue", benchBatch(1024)},
		{"t.counting", withHeaders},
	} {
		if c.op == "t.upper" {
			continue // bytes.ToUpper allocates its result: not the SDK's doing
		}
		s := &sink{}
		inst := weir.NewInstance(s)
		op := opIndex(t, c.op)
		if !inst.Call(op, wasmabi.MethodOpen, nil) {
			t.Fatal("open")
		}
		in := bytes.Clone(c.batch)
		allocs := testing.AllocsPerRun(20, func() {
			copy(in, c.batch)
			if !inst.Call(op, wasmabi.MethodProcess, in) {
				t.Fatal("call failed")
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per batch, want 0", c.op, allocs)
		}
	}
}

var floorFn = func(r weir.Record) (weir.Record, error) { return r, nil }

// BenchmarkCallFloor is what a Go function value of the Map signature costs
// alone, called 1024 times with a record and its result read back: the part
// of BenchmarkIdentityMap the SDK cannot remove. On amd64 a Record (9 words)
// is passed in registers, but the callee spills it and copies it with 16-byte
// moves that cannot be forwarded from the 8-byte stores that precede them.
func BenchmarkCallFloor(b *testing.B) {
	value := bytes.Repeat([]byte("v"), 100)
	n := 0
	for b.Loop() {
		for i := 0; i < 1024; i++ {
			r, err := floorFn(weir.Record{Value: value, Timestamp: int64(i)})
			if err != nil {
				b.Fatal(err)
			}
			n += len(r.Value)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1024, "ns/record")
}
