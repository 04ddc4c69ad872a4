package connspec

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// roundTrip encodes o canonically, marshals it to JSON and decodes it
// back, as a deployment descriptor carries options from the coordinator to
// a worker.
func roundTrip(t *testing.T, s *Spec, o Options) (Options, []byte) {
	t.Helper()
	b, err := json.Marshal(s.Encode(o))
	if err != nil {
		t.Fatalf("%s %s: marshaling %v: %v", s.Kind, s.Name, o, err)
	}
	var r Raw
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s %s: unmarshaling %s: %v", s.Kind, s.Name, b, err)
	}
	got, err := s.Decode(r)
	if err != nil {
		t.Fatalf("%s %s: decoding %s: %v", s.Kind, s.Name, b, err)
	}
	return got, b
}

// TestRawJSONExact pins the canonical JSON of options against text written
// by hand: ints as exact decimal numbers (the largest int64 too, which a
// float64 would round), durations as Go duration strings, defaults
// present.
func TestRawJSONExact(t *testing.T) {
	s := testSpec()
	o, err := s.ParseOptions(map[string]any{"path": "p", "count": int64(math.MaxInt64), "wait": 1500, "verbose": false})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(s.Encode(o))
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"count":9223372036854775807,"format":"lines","label":"","path":"p","verbose":false,"wait":"1.5s"}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	got, _ := roundTrip(t, s, o)
	if got.Int("count") != math.MaxInt64 || got.Duration("wait") != 1500*time.Millisecond || got.Bool("verbose") {
		t.Fatalf("round trip lost values: %#v", got)
	}
	// The Raw itself survives JSON unchanged.
	r1, err := s.Normalize(map[string]any{"path": "p", "count": -3})
	if err != nil {
		t.Fatal(err)
	}
	b1, _ := json.Marshal(r1)
	var r2 Raw
	if err := json.Unmarshal(b1, &r2); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r1, r2) {
		t.Fatalf("Raw changed through JSON:\n%#v\n%#v", r1, r2)
	}
}

// TestRoundTripBuiltins: for every built-in connector, options given as a
// job spec gives them decode through Raw and JSON to exactly the Options
// ParseOptions returns for them directly.
func TestRoundTripBuiltins(t *testing.T) {
	cases := map[regKey][]map[string]any{
		{KindSource, "datagen"}: {
			nil,
			{"count": 1000, "rate": 50, "seed": int64(math.MaxInt64), "keys": 7, "max_value": 3, "start_time": 0, "interval_ms": 20},
			{"seed": int64(math.MinInt64), "count": float64(12)},
		},
		{KindSource, "nexmark"}: {
			nil,
			{"count": 0, "rate": 1_000_000_000, "seed": int64(1) << 62, "format": "binary", "base_time": 1, "wall_rate": 9,
				"active_people": 3, "in_flight_auctions": 4, "hot_auction_ratio": 1, "hot_sellers_ratio": 5, "hot_bidders_ratio": 6,
				"avg_person_bytes": 300, "avg_auction_bytes": 600, "avg_bid_bytes": 200},
		},
		{KindSource, "file"}: {
			{"path": "in.txt"},
			{"path": "/abs/ünï code.jsonl", "format": "jsonl", "key_field": "user", "timestamp_field": "ts"},
		},
		{KindSink, "stdout"}:  {nil, {"format": "jsonl", "raw_json": false}},
		{KindSink, "file"}:    {{"path": "out.jsonl"}, {"path": "o", "format": "lines", "raw_json": false}},
		{KindSink, "discard"}: {nil, {}},
	}
	for _, s := range All() {
		givens, ok := cases[regKey{s.Kind, s.Name}]
		if !ok {
			if strings.HasPrefix(s.Name, "test-") {
				continue
			}
			t.Errorf("%s %s: built-in connector without a round-trip case", s.Kind, s.Name)
			continue
		}
		for _, given := range givens {
			want, err := s.ParseOptions(given)
			if err != nil {
				t.Fatalf("%s %s %v: %v", s.Kind, s.Name, given, err)
			}
			if len(want) != len(s.Options) {
				t.Fatalf("%s %s: %d options after defaults, spec has %d", s.Kind, s.Name, len(want), len(s.Options))
			}
			got, b := roundTrip(t, s, want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s %s %v: through %s\ngot  %#v\nwant %#v", s.Kind, s.Name, given, b, got, want)
			}
			// Normalize is ParseOptions then Encode.
			r, err := s.Normalize(given)
			if err != nil || !reflect.DeepEqual(r, s.Encode(want)) {
				t.Errorf("%s %s %v: Normalize %v, %v", s.Kind, s.Name, given, r, err)
			}
		}
	}
}

// TestDecodeHostile: Raw from a descriptor is outside input, checked as a
// job spec's options are.
func TestDecodeHostile(t *testing.T) {
	s := testSpec()
	for _, tc := range []struct {
		json string
		want string
	}{
		{`{"path":"p","cuont":1}`, `did you mean "count"`},
		{`{"path":"p","count":1.5}`, "want an integer"},
		{`{"path":"p","count":1e400}`, "out of the int64 range"},
		{`{"path":"p","count":9223372036854775808}`, "out of the int64 range"},
		{`{"path":"p","count":"7"}`, "want integer"},
		{`{"path":"p","wait":{"ms":1}}`, "got map"},
		{`{"path":"p","wait":-1}`, "negative"},
		{`{"path":["p"]}`, "got list"},
		{`{}`, "required"},
	} {
		var r Raw
		if err := json.Unmarshal([]byte(tc.json), &r); err != nil {
			t.Errorf("%s: unmarshal: %v", tc.json, err)
			continue
		}
		_, err := s.Decode(r)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `source "test-opts"`) {
			t.Errorf("%s: got %v, want an error naming the connector and %q", tc.json, err, tc.want)
		}
	}
	for _, bad := range []string{`[1]`, `"x"`, `3`, `{"a":`} {
		var r Raw
		if err := json.Unmarshal([]byte(bad), &r); err == nil {
			t.Errorf("%s: unmarshaled into Raw", bad)
		}
	}
	// A whole number written as 1e3 is an integer.
	var r Raw
	if err := json.Unmarshal([]byte(`{"path":"p","count":1e3}`), &r); err != nil {
		t.Fatal(err)
	}
	if o, err := s.Decode(r); err != nil || o.Int("count") != 1000 {
		t.Fatalf("1e3: %v, %v", o, err)
	}
}
