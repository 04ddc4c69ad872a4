package nexmark

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// jsonValid reports whether b is JSON in valid UTF-8 (json.Valid alone
// accepts invalid UTF-8 inside strings).
func jsonValid(b []byte) bool { return json.Valid(b) && utf8.Valid(b) }

// jsonEvent is the documented JSON shape, decoded with encoding/json.
type jsonEvent struct {
	EventType *int     `json:"event_type"`
	Person    *Person  `json:"person"`
	Auction   *Auction `json:"auction"`
	Bid       *Bid     `json:"bid"`
}

// asMap decodes a JSON object into a map, keeping numbers exact.
func asMap(t *testing.T, b []byte) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return m
}

func TestJSON(t *testing.T) {
	g := newGen(t, DefaultConfig())
	var e Event
	var buf []byte
	for i := range 20_000 {
		g.Next(&e)
		buf = AppendJSON(buf[:0], &e)
		if !jsonValid(buf) {
			t.Fatalf("event %d: invalid JSON %s", i, buf)
		}
		var j jsonEvent
		dec := json.NewDecoder(bytes.NewReader(buf))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&j); err != nil {
			t.Fatalf("event %d: %v in %s", i, err, buf)
		}
		if j.EventType == nil || *j.EventType != int(e.Kind)-1 {
			t.Fatalf("event %d (%v): event_type in %s", i, e.Kind, buf)
		}
		var inner any
		switch e.Kind {
		case KindPerson:
			ok := j.Person != nil && *j.Person == e.Person && j.Auction == nil && j.Bid == nil
			if !ok {
				t.Fatalf("event %d: %s decodes to %+v", i, buf, j)
			}
			inner = e.Person
		case KindAuction:
			if j.Auction == nil || *j.Auction != e.Auction || j.Person != nil || j.Bid != nil {
				t.Fatalf("event %d: %s decodes to %+v", i, buf, j)
			}
			inner = e.Auction
		case KindBid:
			if j.Bid == nil || *j.Bid != e.Bid || j.Person != nil || j.Auction != nil {
				t.Fatalf("event %d: %s decodes to %+v", i, buf, j)
			}
			inner = e.Bid
		}
		if i%101 != 0 {
			continue
		}
		// The same object as encoding/json's, and the others explicitly null.
		want, err := json.Marshal(inner)
		if err != nil {
			t.Fatal(err)
		}
		m := asMap(t, buf)
		key := map[Kind]string{KindPerson: "person", KindAuction: "auction", KindBid: "bid"}[e.Kind]
		got, _ := json.Marshal(m[key])
		if !reflect.DeepEqual(asMap(t, got), asMap(t, want)) {
			t.Fatalf("event %d: %s\nencoding/json: %s", i, got, want)
		}
		for _, k := range []string{"person", "auction", "bid"} {
			if v, ok := m[k]; !ok || k != key && v != nil {
				t.Fatalf("event %d: key %q in %s", i, k, buf)
			}
		}
		if len(m) != 4 {
			t.Fatalf("event %d: keys of %s", i, buf)
		}
	}
	if got := string(AppendJSON(nil, &Event{})); got != "null" {
		t.Fatalf("zero event: %s", got)
	}
}

func TestJSONStrings(t *testing.T) {
	for _, s := range []string{
		"", `"`, `\`, `a"b\c`, "\x00\x01\x1f\x7f", "\n\r\t\b\f", "\u2028\u2029", "é日本語🙂",
		"\xff", "a\xfe\xffb", "\xe2\x82", "\xed\xa0\x80", "<>&", strings.Repeat("x", 300),
	} {
		e := Event{Kind: KindBid, Bid: Bid{Channel: s, URL: s, Extra: s}}
		b := AppendJSON(nil, &e)
		if !jsonValid(b) {
			t.Fatalf("%q: invalid JSON %s", s, b)
		}
		var j jsonEvent
		if err := json.Unmarshal(b, &j); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		// What encoding/json makes of the same string.
		m, _ := json.Marshal(s)
		var want string
		if err := json.Unmarshal(m, &want); err != nil {
			t.Fatal(err)
		}
		if j.Bid.Channel != want || j.Bid.URL != want || j.Bid.Extra != want {
			t.Fatalf("%q: decodes to %q, encoding/json gives %q", s, j.Bid.Channel, want)
		}
		if strings.ContainsAny(string(b), "\u2028\u2029") {
			t.Fatalf("%q: unescaped line separator in %s", s, b)
		}
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	es := benchEvents(b, 1000)
	buf := make([]byte, 0, 1<<16)
	i := 0
	for b.Loop() {
		buf = AppendJSON(buf[:0], &es[i%len(es)])
		i++
	}
}
