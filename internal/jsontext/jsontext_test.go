package jsontext

import (
	"encoding/json"
	"testing"
)

func check(t *testing.T, s string) {
	t.Helper()
	want, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	// encoding/json also escapes <, > and & for HTML; we do not.
	var back string
	got := AppendString(nil, s)
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatalf("%q -> %s: not JSON: %v", s, got, err)
	}
	var wantBack string
	json.Unmarshal(want, &wantBack)
	if back != wantBack {
		t.Fatalf("%q -> %s decodes to %q, encoding/json's to %q", s, got, back, wantBack)
	}
	if b := AppendString(nil, []byte(s)); string(b) != string(got) {
		t.Fatalf("[]byte and string differ: %s vs %s", b, got)
	}
}

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote`, `back\slash`, "ctl\x00\x1f\n\r\t", "café", "\u2028\u2029", "bad\xffutf8", "\xe2\x80", "日本語", "ünïcödé ☃ 𝄞", "bad \xff\xfe utf8 \xe2\x82", "<&>\u2028"} {
		check(t, s)
	}
}

// TestAppendStringWords puts each kind of byte that needs care at every
// place of a string long enough for the eight-byte fast path, and next to
// every neighbour value that a borrow could confuse.
func TestAppendStringWords(t *testing.T) {
	specials := []string{"\"", "\\", "\x00", "\x1f", "\x7f", "\x80", "\xff", "é", "\u2028", " ", "!", "#", "[", "]", "~"}
	base := "abcdefghijklmnopqrstuvwxyz0123456789"
	for _, sp := range specials {
		for i := 0; i <= len(base); i++ {
			check(t, base[:i]+sp+base[i:])
		}
	}
	for c := range 256 {
		for i := range 9 {
			b := []byte(base[:17])
			b[i] = byte(c)
			b[i+8] = byte(255 - c)
			check(t, string(b))
		}
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("hello \"world\"\n\xff\u2028")
	f.Fuzz(func(t *testing.T, s string) { check(t, s) })
}

func BenchmarkAppendString(b *testing.B) {
	s := "https://www.nexmark.com/auction/item.htm?query=1&channel_id=1234567890 some extra text of a bid"
	var dst []byte
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendString(dst[:0], s)
	}
}
