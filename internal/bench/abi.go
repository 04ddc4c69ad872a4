// Package bench measures weir: each benchmark builds what it needs, runs it
// on this machine and returns a report that prints as a table or as JSON.
package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"text/tabwriter"
	"time"

	benchsrc "github.com/weirstream/weir/examples/bench"
	"github.com/weirstream/weir/internal/modbuild"
	"github.com/weirstream/weir/wasmabi"
	"github.com/weirstream/weir/worker/wasmhost"
)

// ABIOptions configure the ABI benchmark.
type ABIOptions struct {
	Records  int   // records per measurement
	Batches  []int // batch sizes
	CacheDir string
	Progress io.Writer // one line per finished measurement; nil: quiet
}

// ABIRow is one measurement.
type ABIRow struct {
	Impl  string `json:"impl"` // memcpy, native, go-wasm, c-wasm, rust-wasm, as-wasm
	Op    string `json:"op"`   // identity, rewrite
	Batch int    `json:"batch"`
	// Deadline is how the per-call time limit is enforced: "check" (weir's
	// instrumented loop check, the default), "wazero" (wazero's
	// WithCloseOnContextDone) or "none"; "-" for native code.
	Deadline      string  `json:"deadline"`
	NsPerRecord   float64 `json:"ns_per_record"`
	RecordsPerSec float64 `json:"records_per_sec"`
}

// ABIReport is the whole result.
type ABIReport struct {
	Machine Machine  `json:"machine"`
	Records int      `json:"records"`
	Rows    []ABIRow `json:"rows"`
	// Instantiation of the Go module: compiling with an empty cache, loading
	// in a new runtime from the warm on-disk cache, and a second instance of
	// a loaded module.
	GoCompileColdMs  float64 `json:"go_compile_cold_ms"`
	GoLoadCachedMs   float64 `json:"go_load_cached_ms"`
	GoInstantiateMs  float64 `json:"go_instantiate_ms"`
	GoModuleBytes    int     `json:"go_module_bytes"`
	CModuleBytes     int     `json:"c_module_bytes"`
	RustModuleBytes  int     `json:"rust_module_bytes"`
	ASModuleBytes    int     `json:"as_module_bytes"`
	RecordValueBytes int     `json:"record_value_bytes"`
}

// Machine describes where a benchmark ran.
type Machine struct {
	GOOS   string `json:"goos"`
	GOARCH string `json:"goarch"`
	CPUs   int    `json:"cpus"`
	Go     string `json:"go"`
	CPU    string `json:"cpu,omitempty"`
}

func thisMachine() Machine {
	m := Machine{GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range bytes.Split(b, []byte("\n")) {
			if k, v, ok := bytes.Cut(line, []byte(":")); ok && string(bytes.TrimSpace(k)) == "model name" {
				m.CPU = string(bytes.TrimSpace(v))
				break
			}
		}
	}
	return m
}

const valueBytes = 100

// records makes n records with 8-byte keys and 100-byte values
// `id=NNNNNN;amt=N;note=xxx...`, laid out one after another in one arena as
// an engine's network buffers hold them.
func records(n int) []wasmabi.Entry {
	out := make([]wasmabi.Entry, n)
	arena := make([]byte, 0, n*(8+valueBytes))
	for i := range out {
		start := len(arena)
		arena = fmt.Appendf(arena, "k%07d", i%10000000)
		key := arena[start:len(arena):len(arena)]
		start = len(arena)
		arena = fmt.Appendf(arena, "id=%06d;amt=%d;note=", i%1000000, i*7%100000)
		for len(arena)-start < valueBytes {
			arena = append(arena, 'x')
		}
		out[i] = wasmabi.Entry{Kind: wasmabi.EntryRecord, Key: key, Value: arena[start:len(arena):len(arena)], Timestamp: int64(i)}
	}
	return out
}

// rewriteValue is the rewrite operator computed independently of the
// modules, to check their output: key = the id digits, value = amt*2.
func rewriteValue(e *wasmabi.Entry) (key, value []byte, ok bool) {
	v := e.Value
	if len(v) < 10 || string(v[:3]) != "id=" || v[9] != ';' {
		return nil, nil, false
	}
	key = v[3:9]
	rest := v[10:]
	if len(rest) < 4 || string(rest[:4]) != "amt=" {
		return nil, nil, false
	}
	rest = rest[4:]
	amt := int64(0)
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		amt = amt*10 + int64(rest[n]-'0')
		n++
	}
	if n == 0 {
		return nil, nil, false
	}
	return key, strconv.AppendInt(nil, amt*2, 10), true
}

// ABI runs the benchmark.
func ABI(ctx context.Context, o ABIOptions) (*ABIReport, error) {
	if o.Records <= 0 {
		o.Records = 200_000
	}
	if len(o.Batches) == 0 {
		o.Batches = []int{1, 64, 1024}
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	for _, b := range o.Batches {
		if b <= 0 || b > o.Records {
			return nil, fmt.Errorf("bench: batch size %d: want 1 to --records (%d)", b, o.Records)
		}
	}
	rep := &ABIReport{Machine: thisMachine(), Records: o.Records, RecordValueBytes: valueBytes}
	recs := records(o.Records)

	fmt.Fprintln(o.Progress, "building the Go, C, Rust and AssemblyScript benchmark modules ...")
	goWasm, err := buildEmbedded(ctx, o.CacheDir, "go")
	if err != nil {
		return nil, err
	}
	cWasm, err := buildEmbedded(ctx, o.CacheDir, "c")
	if err != nil {
		return nil, err
	}
	rustWasm, err := buildEmbedded(ctx, o.CacheDir, "rust")
	if err != nil {
		return nil, err
	}
	asWasm, err := buildEmbedded(ctx, o.CacheDir, "assemblyscript")
	if err != nil {
		return nil, err
	}
	rep.GoModuleBytes, rep.CModuleBytes, rep.RustModuleBytes, rep.ASModuleBytes = len(goWasm), len(cWasm), len(rustWasm), len(asWasm)
	if err := measureInstantiation(ctx, rep, goWasm); err != nil {
		return nil, err
	}

	for _, b := range o.Batches {
		rep.add(measureMemcpy(b, recs), o.Progress)
	}
	for _, op := range []string{"identity", "rewrite"} {
		for _, b := range o.Batches {
			row, err := measureNative(op, b, recs)
			if err != nil {
				return nil, err
			}
			rep.add(row, o.Progress)
		}
	}
	for _, deadline := range []string{"check", "none", "wazero"} {
		cfg := wasmhost.Config{CacheDir: filepath.Join(o.CacheDir, "wazero"), Limits: wasmhost.Limits{CallTimeout: -1}}
		if deadline != "none" {
			cfg.Limits.CallTimeout = wasmhost.DefaultLimits.CallTimeout
			cfg.WazeroInterrupt = deadline == "wazero"
		}
		rt, err := wasmhost.NewRuntime(ctx, cfg)
		if err != nil {
			return nil, err
		}
		for _, m := range []struct {
			impl string
			wasm []byte
		}{{"go-wasm", goWasm}, {"c-wasm", cWasm}, {"rust-wasm", rustWasm}, {"as-wasm", asWasm}} {
			mod, err := rt.Load(ctx, m.impl+".wasm", m.wasm)
			if err != nil {
				rt.Close()
				return nil, err
			}
			for _, op := range []string{"identity", "rewrite"} {
				for _, b := range o.Batches {
					row, err := measureWasm(ctx, mod, m.impl, op, b, deadline, recs)
					if err != nil {
						rt.Close()
						return nil, err
					}
					rep.add(row, o.Progress)
				}
			}
		}
		rt.Close()
	}
	return rep, nil
}

func (r *ABIReport) add(row ABIRow, progress io.Writer) {
	r.Rows = append(r.Rows, row)
	fmt.Fprintf(progress, "  %-8s %-8s batch %-5d deadline %-6s %8.1f ns/record\n", row.Impl, row.Op, row.Batch, row.Deadline, row.NsPerRecord)
}

// buildEmbedded writes the embedded benchmark operator of lang to the cache
// and builds it like any author's operator.
func buildEmbedded(ctx context.Context, cacheDir, lang string) ([]byte, error) {
	dir := filepath.Join(cacheDir, "bench-src", lang+"-"+modbuild.SDKHash())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	src := fs.FS(benchsrc.Source)
	if lang == "assemblyscript" {
		src = benchsrc.AssemblyScript
	}
	err := fs.WalkDir(src, lang, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(src, p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, filepath.Base(p)), b, 0o644)
	})
	if err != nil {
		return nil, fmt.Errorf("bench: writing %s sources: %w", lang, err)
	}
	if lang == "go" {
		gomod := "module weirbench\n\ngo 1.25\n\nrequire " + modbuild.WeirModule + " v0.0.0\n"
		if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644); err != nil {
			return nil, err
		}
	}
	res, err := modbuild.Build(ctx, modbuild.Options{Dir: dir, CacheDir: cacheDir})
	if err != nil {
		return nil, fmt.Errorf("bench: building the %s module: %w", lang, err)
	}
	return os.ReadFile(res.Out)
}

func measureInstantiation(ctx context.Context, rep *ABIReport, wasm []byte) error {
	cold, err := os.MkdirTemp("", "weir-bench-cache-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(cold)
	load := func() (*wasmhost.Runtime, *wasmhost.Module, time.Duration, error) {
		rt, err := wasmhost.NewRuntime(ctx, wasmhost.Config{CacheDir: cold})
		if err != nil {
			return nil, nil, 0, err
		}
		start := time.Now()
		mod, err := rt.Load(ctx, "go-wasm.wasm", wasm)
		if err != nil {
			rt.Close()
			return nil, nil, 0, err
		}
		return rt, mod, time.Since(start), nil
	}
	rt, _, d, err := load()
	if err != nil {
		return err
	}
	rt.Close()
	rep.GoCompileColdMs = ms(d)
	rt, mod, d, err := load()
	if err != nil {
		return err
	}
	defer rt.Close()
	rep.GoLoadCachedMs = ms(d)
	// A second instance of a loaded module: the best of a few runs.
	best := time.Hour
	for range 5 {
		start := time.Now()
		inst, err := mod.Instantiate(ctx, "identity", nil)
		if err != nil {
			return err
		}
		best = min(best, time.Since(start))
		inst.Close()
	}
	rep.GoInstantiateMs = ms(best)
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// measureNative runs the operator as a plain Go function over the same
// batches: decode each entry, apply the function, encode the result.
func measureNative(op string, batch int, recs []wasmabi.Entry) (ABIRow, error) {
	batches := encodeBatches(recs, batch)
	out := make([]byte, 0, 1<<20)
	var scratch []byte
	run := func(n int) (time.Duration, error) {
		start := time.Now()
		for i := 0; i < n/batch; i++ {
			out = out[:0]
			_, rest, _ := wasmabi.ReadBatchHeader(batches[i].buf)
			var e wasmabi.Entry
			for len(rest) > 0 {
				var err error
				if rest, err = wasmabi.ReadEntry(rest, &e); err != nil {
					return 0, err
				}
				if op == "rewrite" {
					k, _, ok := rewriteValue(&e)
					if !ok {
						return 0, fmt.Errorf("bench: native rewrite: bad value %q", e.Value)
					}
					e.Key = k
					scratch = nativeRewrite(scratch[:0], e.Value)
					e.Value = scratch
				}
				out = wasmabi.AppendEntry(out, &e)
			}
		}
		return time.Since(start), nil
	}
	if _, err := run(min(len(recs), 10_000)); err != nil {
		return ABIRow{}, err
	}
	d, err := bestOf(func() (time.Duration, error) { return run(len(recs)) })
	if err != nil {
		return ABIRow{}, err
	}
	return row("native", op, batch, "-", d, len(recs)/batch*batch), nil
}

// measureMemcpy is the floor of every WebAssembly row: each batch copied
// into a buffer the size of a module's input buffer and the same bytes
// copied out again, as the host moves an identity map's batch in and out,
// with no call, no operator and no check.
func measureMemcpy(batch int, recs []wasmabi.Entry) ABIRow {
	batches := encodeBatches(recs, batch)
	in := make([]byte, 64<<10)
	out := make([]byte, 0, 64<<10)
	run := func(n int) time.Duration {
		start := time.Now()
		for i := 0; i < n/batch; i++ {
			b := batches[i].buf
			if len(b) > len(in) {
				in = make([]byte, len(b))
			}
			copy(in, b)
			out = append(out[:0], in[wasmabi.BatchHeaderSize:len(b)]...)
		}
		return time.Since(start)
	}
	run(min(len(recs), 10_000))
	d, _ := bestOf(func() (time.Duration, error) { return run(len(recs)), nil })
	return row("memcpy", "identity", batch, "-", d, len(recs)/batch*batch)
}

// nativeRewrite is the native operator: amt*2 in decimal, appended to dst.
func nativeRewrite(dst, v []byte) []byte {
	amt := int64(0)
	for _, c := range v[14:] {
		if c < '0' || c > '9' {
			break
		}
		amt = amt*10 + int64(c-'0')
	}
	return strconv.AppendInt(dst, amt*2, 10)
}

// encoded is one batch as the engine holds it, with the records it came from.
type encoded struct {
	buf  []byte
	recs []wasmabi.Entry
}

// encodeBatches cuts recs into batches of size n (dropping a short tail, so
// every measurement runs whole batches) and encodes each.
func encodeBatches(recs []wasmabi.Entry, n int) []encoded {
	var out []encoded
	for i := 0; i+n <= len(recs); i += n {
		out = append(out, encoded{encodeBatch(nil, recs[i:i+n]), recs[i : i+n]})
	}
	return out
}

func encodeBatch(dst []byte, recs []wasmabi.Entry) []byte {
	dst = wasmabi.AppendBatchHeader(dst, wasmabi.BatchHeader{Count: uint32(len(recs)), Watermark: wasmabi.NoWatermark})
	for i := range recs {
		dst = wasmabi.AppendEntry(dst, &recs[i])
	}
	return dst
}

// measureWasm copies each batch into the instance's memory, calls it, and
// lets the host check the output: the cost of a record crossing the boundary
// in and out, as the engine pays it (its buffers hold records in the ABI's
// entry format, so a batch goes in with one copy).
func measureWasm(ctx context.Context, mod *wasmhost.Module, impl, op string, batch int, deadline string, recs []wasmabi.Entry) (ABIRow, error) {
	inst, err := mod.Instantiate(ctx, op, nil)
	if err != nil {
		return ABIRow{}, err
	}
	defer inst.Close()
	if err := inst.Open(nil); err != nil {
		return ABIRow{}, err
	}
	batches := encodeBatches(recs, batch)
	run := func(n int, check bool) (time.Duration, error) {
		start := time.Now()
		for i := 0; i < n/batch; i++ {
			out, err := inst.Call(wasmabi.MethodProcess, batches[i].buf)
			if err != nil {
				return 0, err
			}
			if check {
				if err := checkOutput(op, batches[i].recs, out); err != nil {
					return 0, fmt.Errorf("bench: %s %s: %w", impl, op, err)
				}
			}
		}
		return time.Since(start), nil
	}
	// Warm up, checking every output against an independent computation.
	if _, err := run(min(len(recs), 10_000), true); err != nil {
		return ABIRow{}, err
	}
	d, err := bestOf(func() (time.Duration, error) { return run(len(recs), false) })
	if err != nil {
		return ABIRow{}, err
	}
	return row(impl, op, batch, deadline, d, len(recs)/batch*batch), nil
}

// repeats is how many times each row is measured; the table shows the
// fastest, which is the least disturbed by other work on the machine.
const repeats = 5

func bestOf(run func() (time.Duration, error)) (time.Duration, error) {
	best := time.Duration(1<<63 - 1)
	for range repeats {
		d, err := run()
		if err != nil {
			return 0, err
		}
		best = min(best, d)
	}
	return best, nil
}

// checkOutput compares a module's output with what the operator must give.
func checkOutput(op string, in []wasmabi.Entry, out []byte) error {
	var e wasmabi.Entry
	for i := range in {
		var err error
		if out, err = wasmabi.ReadEntry(out, &e); err != nil {
			return fmt.Errorf("output record %d: %v", i, err)
		}
		wantKey, wantVal := in[i].Key, in[i].Value
		if op == "rewrite" {
			wantKey, wantVal, _ = rewriteValue(&in[i])
		}
		if !bytes.Equal(e.Key, wantKey) || !bytes.Equal(e.Value, wantVal) || e.Timestamp != in[i].Timestamp {
			return fmt.Errorf("output record %d = %q/%q@%d, want %q/%q@%d", i, e.Key, e.Value, e.Timestamp, wantKey, wantVal, in[i].Timestamp)
		}
	}
	if len(out) > 0 {
		return fmt.Errorf("%d bytes of extra output", len(out))
	}
	return nil
}

func row(impl, op string, batch int, deadline string, d time.Duration, n int) ABIRow {
	ns := float64(d.Nanoseconds()) / float64(n)
	return ABIRow{Impl: impl, Op: op, Batch: batch, Deadline: deadline, NsPerRecord: ns, RecordsPerSec: 1e9 / ns}
}

// WriteTable prints the report for a terminal.
func (r *ABIReport) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "weir bench abi: %d records of %d-byte values per row, best of %d runs, on %s/%s, %d CPUs, %s\n", r.Records, r.RecordValueBytes, repeats, r.Machine.GOOS, r.Machine.GOARCH, r.Machine.CPUs, r.Machine.Go)
	if r.Machine.CPU != "" {
		fmt.Fprintf(w, "cpu: %s\n", r.Machine.CPU)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "impl\top\tbatch\tdeadline\tns/record\trecords/s\tvs batch 1\t")
	base := map[string]float64{}
	for _, row := range r.Rows {
		k := fmt.Sprintf("%s/%s/%v", row.Impl, row.Op, row.Deadline)
		if row.Batch == 1 {
			base[k] = row.NsPerRecord
		}
		speedup := "-"
		if b, ok := base[k]; ok && row.Batch != 1 {
			speedup = fmt.Sprintf("%.1fx", b/row.NsPerRecord)
		}
		dl := row.Deadline
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%.1f\t%s\t%s\t\n", row.Impl, row.Op, row.Batch, dl, row.NsPerRecord, humanRate(row.RecordsPerSec), speedup)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nGo module (%d KiB): compile with an empty cache %.1f ms, load from the on-disk cache %.1f ms, second instance %.2f ms\n",
		r.GoModuleBytes/1024, r.GoCompileColdMs, r.GoLoadCachedMs, r.GoInstantiateMs)
	fmt.Fprintf(w, "C module: %d KiB\n", r.CModuleBytes/1024)
	fmt.Fprintf(w, "Rust module: %d KiB\n", r.RustModuleBytes/1024)
	fmt.Fprintf(w, "AssemblyScript module: %d KiB\n", r.ASModuleBytes/1024)
}

func humanRate(r float64) string {
	switch {
	case r >= 1e6:
		return fmt.Sprintf("%.1fM", r/1e6)
	case r >= 1e3:
		return fmt.Sprintf("%.1fk", r/1e3)
	}
	return fmt.Sprintf("%.0f", r)
}
