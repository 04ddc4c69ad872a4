//go:build !wasip1

package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"testing"

	weir "github.com/weirstream/weir/sdk/go"
	"github.com/weirstream/weir/sdk/go/weirtest"
	"github.com/weirstream/weir/wasmabi"
)

// value is a benchmark value: id=NNNNNN;amt=N;note=xxx..., 100 bytes.
func value(id, amt int) []byte {
	v := fmt.Appendf(nil, "id=%06d;amt=%d;note=", id, amt)
	return append(v, bytes.Repeat([]byte("x"), 100-len(v))...)
}

func TestRewrite(t *testing.T) {
	h, err := weirtest.New("rewrite")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Open(nil); err != nil {
		t.Fatal(err)
	}
	outs, err := h.Process(
		weir.Record{Key: []byte("k1"), Value: value(42, 7), Timestamp: 5},
		weir.Record{Key: []byte("k2"), Value: value(999999, 99999), Timestamp: 6},
		weir.Record{Value: []byte("id=000001;amt=0"), Timestamp: 7},
		weir.Record{Value: []byte("id=000002;amt=999999999999999999;"), Timestamp: 8},
		weir.Record{Value: []byte("id=000003;amt=12345678;note=" + strings.Repeat("x", 72)), Timestamp: 9},
		weir.Record{Value: []byte("id=000004;amt=1234567;" + strings.Repeat("x", 78)), Timestamp: 10},
	)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range outs {
		got = append(got, fmt.Sprintf("%s=%s@%d", o.Record.Key, o.Record.Value, o.Record.Timestamp))
	}
	want := "000042=14@5 999999=199998@6 000001=0@7 000002=1999999999999999998@8 000003=24691356@9 000004=2469134@10"
	if strings.Join(got, " ") != want {
		t.Errorf("got  %s\nwant %s", strings.Join(got, " "), want)
	}
	for i, bad := range []string{"", "id=12345;amt=1", "id=1234567amt=1", "id=12a456;amt=1", "id=123456;amt=", "id=123456;amt=x",
		"id=123456;amt=12x", "id=123456;amt=1234567890123456789", "ID=123456;amt=1",
		"id=12345\x00;amt=1", "id=1234:6;amt=1", "id=123456;amt=12345678x" + strings.Repeat("x", 80), "id=123456:amt=1" + strings.Repeat("x", 80)} {
		_, err := h.Process(weir.Record{Value: value(1, 1)}, weir.Record{Value: []byte(bad)})
		if err == nil || !strings.HasPrefix(err.Error(), "record 1: rewrite: ") {
			t.Errorf("bad value %d %q: err = %v", i, bad, err)
		}
	}
}

func TestIdentity(t *testing.T) {
	h, err := weirtest.New("identity")
	if err != nil {
		t.Fatal(err)
	}
	var hdr weir.Headers
	hdr = hdr.Add("h", []byte("v"))
	in := []weir.Record{{Key: []byte("k"), Value: value(1, 2), Timestamp: 3, Headers: hdr}, {Value: nil, Timestamp: -1}}
	outs, err := h.Process(in...)
	if err != nil || len(outs) != 2 {
		t.Fatal(err, len(outs))
	}
	for i, o := range outs {
		r := o.Record
		if !bytes.Equal(r.Key, in[i].Key) || !bytes.Equal(r.Value, in[i].Value) || r.Timestamp != in[i].Timestamp ||
			!bytes.Equal(r.Headers.Bytes(), in[i].Headers.Bytes()) || o.Port != 0 {
			t.Errorf("record %d changed: %+v", i, o)
		}
	}
}

// sink is a Host that keeps nothing.
type sink struct{ fails int }

func (s *sink) Output([]byte)                                              {}
func (s *sink) Fail(string)                                                { s.fails++ }
func (s *sink) Log(int, string)                                            {}
func (s *sink) Counter(string, int64)                                      {}
func (s *sink) StateRegister(string, wasmabi.StateKind) int32              { return 0 }
func (s *sink) State(wasmabi.StateOp, int32, []byte, []byte, []byte) int64 { return -1 }
func (s *sink) Timer(wasmabi.TimerOp, wasmabi.TimeDomain, int64, []byte)   {}

func batch(n int) []byte {
	b := wasmabi.AppendBatchHeader(nil, wasmabi.BatchHeader{Count: uint32(n), Watermark: wasmabi.NoWatermark})
	for i := 0; i < n; i++ {
		b = wasmabi.AppendEntry(b, &wasmabi.Entry{Kind: wasmabi.EntryRecord, Key: fmt.Appendf(nil, "k%07d", i),
			Value: value(i, i*7%100000), Timestamp: int64(i)})
	}
	return b
}

func opIndex(t testing.TB, name string) int {
	d, err := wasmabi.ParseDescriptor(weir.Describe())
	if err != nil {
		t.Fatal(err)
	}
	op, _, _ := d.Operator(name)
	return op
}

func TestZeroAllocs(t *testing.T) {
	for _, name := range []string{"identity", "rewrite"} {
		s := &sink{}
		inst := weir.NewInstance(s)
		op := opIndex(t, name)
		src := batch(1024)
		in := slices.Clone(src)
		allocs := testing.AllocsPerRun(20, func() {
			copy(in, src) // rewrite changes its input in place
			if !inst.Call(op, wasmabi.MethodProcess, in) {
				t.Fatal("call failed")
			}
		})
		if allocs != 0 || s.fails != 0 {
			t.Errorf("%s: %v allocations per batch of 1024, %d failures", name, allocs, s.fails)
		}
	}
}

func benchmark(b *testing.B, name string) {
	inst := weir.NewInstance(&sink{})
	op := opIndex(b, name)
	src := batch(1024)
	in := slices.Clone(src)
	inst.Call(op, wasmabi.MethodProcess, in) // warm up: the output buffer
	b.ReportAllocs()
	for b.Loop() {
		copy(in, src)
		if !inst.Call(op, wasmabi.MethodProcess, in) {
			b.Fatal("call failed")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1024, "ns/record")
}

func BenchmarkIdentity(b *testing.B) { benchmark(b, "identity") }
func BenchmarkRewrite(b *testing.B)  { benchmark(b, "rewrite") }

func TestParseDigits(t *testing.T) {
	for v := uint64(0); v < 10_000_000; v += 3 {
		s := strconv.FormatUint(v, 10)
		for _, str := range []string{s, "00" + s} {
			if len(str) > 7 {
				continue
			}
			var b [8]byte
			copy(b[:], str)
			b[len(str)] = ';'
			x := binary.LittleEndian.Uint64(b[:])
			if n := bits.TrailingZeros64(nonDigits(x)) / 8; n != len(str) {
				t.Fatalf("%q: %d leading digits", str, n)
			}
			if got := parseDigits(x, len(str)); got != v {
				t.Fatalf("parseDigits(%q) = %d", str, got)
			}
		}
	}
	for _, n := range []int64{0, 1, 9, 10, 99, 100, 123456, 1 << 62} {
		buf := make([]byte, 0, 30)
		if got := string(appendInt(buf, n)); got != strconv.FormatInt(n, 10) {
			t.Errorf("appendInt(%d) = %s", n, got)
		}
		if got := string(appendInt(buf[:0:2], n)); got != strconv.FormatInt(n, 10) {
			t.Errorf("appendInt(%d) without room = %s", n, got)
		}
	}
}
