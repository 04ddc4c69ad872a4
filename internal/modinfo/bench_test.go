package modinfo_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/weirstream/weir/internal/modbuild"
	"github.com/weirstream/weir/internal/modinfo"
)

// BenchmarkDescribe measures what an upload costs the coordinator: a
// describe of the wordcount example, a Go SDK module (built once, cached
// under $WEIR_CACHE_DIR or the user cache).
//
//	go test ./internal/modinfo -run XXX -bench Describe -benchtime 5x
func BenchmarkDescribe(b *testing.B) {
	dir := b.TempDir()
	res, err := modbuild.Build(context.Background(), modbuild.Options{Dir: "../../examples/wordcount", Out: filepath.Join(dir, "wc.wasm")})
	if err != nil {
		b.Fatal(err)
	}
	wasm, err := os.ReadFile(res.Out)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(wasm)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := modinfo.Describe(context.Background(), wasm, modinfo.Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}
