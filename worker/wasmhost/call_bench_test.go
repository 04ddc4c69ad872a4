package wasmhost

import (
	"context"
	"testing"

	"github.com/weirstream/weir/wasmabi"
)

// BenchmarkCallOverhead is the fixed cost of one call into a module (a WAT
// identity over a batch of one record): what metering, the watchdog and
// the contract check add per batch, not per record.
func BenchmarkCallOverhead(b *testing.B) {
	rt, err := NewRuntime(context.Background(), Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	mod, err := rt.Load(context.Background(), "id.wasm", buildWAT(b, watOpts{}))
	if err != nil {
		b.Fatal(err)
	}
	inst, err := mod.Instantiate(context.Background(), "id", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer inst.Close()
	in := batchOf("v")
	b.ResetTimer()
	for range b.N {
		if _, err := inst.Call(wasmabi.MethodProcess, in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInstantiate is the cost of a fresh instance, what isolating a
// trapping record pays once.
func BenchmarkInstantiate(b *testing.B) {
	rt, err := NewRuntime(context.Background(), Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	mod, err := rt.Load(context.Background(), "id.wasm", buildWAT(b, watOpts{}))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		inst, err := mod.Instantiate(context.Background(), "id", nil)
		if err != nil {
			b.Fatal(err)
		}
		inst.Close()
	}
}
