//go:build !wasip1

package queries_test

import (
	"testing"

	"github.com/weirstream/weir/internal/nexmark"
	weir "github.com/weirstream/weir/sdk/go"
	"github.com/weirstream/weir/wasmabi"
)

// discard is a Host that counts output bytes only, so the benchmarks
// measure the operators and the SDK, not a host.
type discard struct {
	n     int
	fails int
}

func (d *discard) Output(b []byte)                                            { d.n += len(b) }
func (d *discard) Fail(string)                                                { d.fails++ }
func (d *discard) Log(int, string)                                            {}
func (d *discard) Counter(string, int64)                                      {}
func (d *discard) StateRegister(string, wasmabi.StateKind) int32              { return 0 }
func (d *discard) State(wasmabi.StateOp, int32, []byte, []byte, []byte) int64 { return -1 }
func (d *discard) Timer(wasmabi.TimerOp, wasmabi.TimeDomain, int64, []byte)   {}

const benchBatch = 1024

// eventBatch is a batch of the first n events of the default stream, as
// the nexmark source emits them with format binary.
func eventBatch(tb testing.TB, n int) []byte {
	b := wasmabi.AppendBatchHeader(nil, wasmabi.BatchHeader{Count: uint32(n), Watermark: wasmabi.NoWatermark})
	var buf []byte
	for _, e := range generate(tb, 1, int64(n), 0) {
		buf = nexmark.AppendBinary(buf[:0], &e)
		b = wasmabi.AppendEntry(b, &wasmabi.Entry{Kind: wasmabi.EntryRecord, Value: buf, Timestamp: e.DateTime()})
	}
	return b
}

// benchOp runs a stateless operator over batches of benchBatch events,
// natively. allocs/op is per batch: 0 means no allocation per record.
func benchOp(b *testing.B, name string) {
	d, err := wasmabi.ParseDescriptor(weir.Describe())
	if err != nil {
		b.Fatal(err)
	}
	op, _, ok := d.Operator(name)
	if !ok {
		b.Fatalf("no operator %s", name)
	}
	h := &discard{}
	inst := weir.NewInstance(h)
	if !inst.Call(op, wasmabi.MethodOpen, nil) {
		b.Fatal("open failed")
	}
	in := eventBatch(b, benchBatch)
	inst.Call(op, wasmabi.MethodProcess, in) // warm up the output buffer
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if !inst.Call(op, wasmabi.MethodProcess, in) {
			b.Fatal("call failed")
		}
	}
	if h.fails > 0 {
		b.Fatalf("%d failed calls", h.fails)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchBatch, "ns/event")
}

func BenchmarkQ0(b *testing.B)      { benchOp(b, "q0") }
func BenchmarkQ1(b *testing.B)      { benchOp(b, "q1") }
func BenchmarkQ2(b *testing.B)      { benchOp(b, "q2") }
func BenchmarkQ3Split(b *testing.B) { benchOp(b, "q3_split") }
func BenchmarkQ4Split(b *testing.B) { benchOp(b, "q4_split") }
func BenchmarkQ5Bids(b *testing.B)  { benchOp(b, "q5_bids") }
func BenchmarkQ7Bids(b *testing.B)  { benchOp(b, "q7_bids") }
func BenchmarkQ8Split(b *testing.B) { benchOp(b, "q8_split") }

// BenchmarkDecode is the floor of every leading operator: decoding the
// events alone.
func BenchmarkDecode(b *testing.B) {
	var values [][]byte
	for _, e := range generate(b, 1, benchBatch, 0) {
		values = append(values, nexmark.AppendBinary(nil, &e))
	}
	var e nexmark.Event
	b.ReportAllocs()
	for b.Loop() {
		for _, v := range values {
			if err := nexmark.DecodeBinary(v, &e); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchBatch, "ns/event")
}
