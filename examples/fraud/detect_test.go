//go:build !wasip1

package main

import (
	"fmt"
	"math"
	"slices"
	"testing"

	weir "github.com/weirstream/weir/sdk/go"
	"github.com/weirstream/weir/sdk/go/weirtest"
)

func tx(account string, seq, cents, ts int64) weir.Record {
	return weir.Record{Key: []byte(account), Value: fmt.Appendf(nil, `{"seq":%d,"key":%q,"value":%d}`, seq, account, cents), Timestamp: ts}
}

func TestDetect(t *testing.T) {
	h, err := weirtest.New("detect")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Open(nil); err != nil {
		t.Fatal(err)
	}
	outs, err := h.Process(
		tx("key-1", 1, 99, 1000),     // small: arms key-1
		tx("key-2", 2, 5, 1000),      // small: arms key-2
		tx("key-1", 3, 50000, 60999), // large, 59.999 s later: alert
		tx("key-2", 4, 70000, 61000), // large, 60 s later: too late, no alert
		tx("key-3", 5, 10, 62000),    // small
		tx("key-3", 6, 300, 62001),   // neither: disarms
		tx("key-3", 7, 90000, 62002), // large, but not right after the small one
		tx("key-4", 8, 1, 62000),     // small
		tx("key-4", 9, 2, 62003),     // small again: re-arms with seq 9
		tx("key-4", 10, 99999, 62004),
	)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range outs {
		got = append(got, fmt.Sprintf("%s %s %d", o.Record.Key, o.Record.Value, o.Record.Timestamp))
	}
	want := []string{
		`key-1 {"account":"key-1","small_seq":1,"large_seq":3} 60999`,
		`key-4 {"account":"key-4","small_seq":9,"large_seq":10} 62004`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("alerts:\n got %q\nwant %q", got, want)
	}

	// The timer disarms an account a minute after its small transaction.
	outs, err = h.Process(tx("key-5", 11, 0, 100000))
	if err != nil || len(outs) != 0 {
		t.Fatalf("small: %v, %v", outs, err)
	}
	if _, ok := h.Host.Value("armed", "key-5"); !ok {
		t.Fatal("key-5 is not armed")
	}
	h.Watermark = 159999
	if _, err := h.FireTimers(); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.Host.Value("armed", "key-5"); !ok {
		t.Fatal("key-5 was disarmed before its minute")
	}
	h.Watermark = 160000
	if _, err := h.FireTimers(); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.Host.Value("armed", "key-5"); ok {
		t.Error("key-5 is still armed after its minute")
	}
	h.Watermark = math.MaxInt64
	if _, err := h.FireTimers(); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"key-1", "key-2", "key-3", "key-4"} {
		if _, ok := h.Host.Value("armed", k); ok {
			t.Errorf("%s is still armed at the end", k)
		}
	}
	if len(h.Host.Timers) != 0 {
		t.Errorf("timers left: %v", h.Host.Timers)
	}

	if _, err := h.Process(weir.Record{Key: []byte("key-1"), Value: []byte(`{"seq":1}`), Timestamp: 1}); err == nil {
		t.Error("a value without an amount was accepted")
	}
}

func TestIntField(t *testing.T) {
	v := []byte(`{"seq":12,"key":"key-3","value":4501}`)
	for name, want := range map[string]int64{"seq": 12, "value": 4501} {
		if got, err := intField(v, name); err != nil || got != want {
			t.Errorf("intField(%s) = %d, %v; want %d", name, got, err, want)
		}
	}
	for _, bad := range []string{`{"seq":1}`, `{"value":}`, `{"value":"12"}`, `{"value":12x}`, `{"value":-3}`, `{"value`} {
		if n, err := intField([]byte(bad), "value"); err == nil {
			t.Errorf("intField(%s) = %d, want an error", bad, n)
		}
	}
}

func BenchmarkIntField(b *testing.B) {
	v := []byte(`{"seq":123456,"key":"key-999","value":99999}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := intField(v, "value"); err != nil {
			b.Fatal(err)
		}
	}
}
