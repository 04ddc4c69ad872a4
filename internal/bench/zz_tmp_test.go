package bench

import (
	"context"
	"os"
	"testing"

	"github.com/weirstream/weir/internal/modbuild"
	"github.com/weirstream/weir/internal/nexmark"
	"github.com/weirstream/weir/wasmabi"
	"github.com/weirstream/weir/worker/wasmhost"
)

func benchNex(b *testing.B, dir, op string) {
	ctx := context.Background()
	res, err := modbuild.Build(ctx, modbuild.Options{Dir: dir, Out: "/tmp/zz-" + op + ".wasm", CacheDir: "/tmp/zzcache"})
	if err != nil {
		b.Fatal(err)
	}
	wasm, _ := os.ReadFile(res.Out)
	rt, _ := wasmhost.NewRuntime(ctx, wasmhost.Config{})
	defer rt.Close()
	mod, err := rt.Load(ctx, "m", wasm)
	if err != nil {
		b.Fatal(err)
	}
	inst, err := mod.Instantiate(ctx, op, nil)
	if err != nil {
		b.Fatal(err)
	}
	inst.Open(nil)
	g, _ := nexmark.NewGenerator(nexmark.Config{Seed: 1, EventsPerSecond: 200, Count: 100000}.WithDefaults())
	var recs []wasmabi.Entry
	var e nexmark.Event
	for len(recs) < 1024 && g.Next(&e) {
		if e.Kind != nexmark.KindBid {
			continue
		}
		recs = append(recs, wasmabi.Entry{Kind: wasmabi.EntryRecord, Value: nexmark.AppendBinary(nil, &e), Timestamp: 1})
	}
	in := encodeBatch(nil, recs)
	b.ResetTimer()
	var out int
	for i := 0; i < b.N; i++ {
		o, err := inst.Call(wasmabi.MethodProcess, in)
		if err != nil {
			b.Fatal(err)
		}
		out = len(o)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
	b.ReportMetric(float64(out)/float64(len(recs)), "outB/rec")
	b.ReportMetric(float64(len(in))/float64(len(recs)), "inB/rec")
}

func BenchmarkZQ0(b *testing.B)  { benchNex(b, "../../examples/nexmark/rust", "q0") }
func BenchmarkZQ1(b *testing.B)  { benchNex(b, "../../examples/nexmark/rust", "q1") }
func BenchmarkZQ2(b *testing.B)  { benchNex(b, "../../examples/nexmark/rust", "q2") }
func BenchmarkZQ0a(b *testing.B) { benchNex(b, "/tmp/nxa", "q0") }
func BenchmarkZQ0b(b *testing.B) { benchNex(b, "/tmp/nxb", "q0") }
func BenchmarkZGoQ0(b *testing.B) { benchNex(b, "../../examples/nexmark", "q0") }
func BenchmarkZQ1a(b *testing.B) { benchNex(b, "/tmp/nxa", "q1") }
func BenchmarkZQ1b(b *testing.B) { benchNex(b, "/tmp/nxb", "q1") }
