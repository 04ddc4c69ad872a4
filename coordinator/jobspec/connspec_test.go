package jobspec

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/weirstream/weir/internal/connspec"
)

// TestConnectorOptionsRoundTrip: for every built-in connector, the options
// a job spec gives it, validated by Parse, go into their serialisable form
// (as a deployment descriptor carries them), through JSON bytes, and
// decode on the worker's side against the same spec to exactly the typed
// options Parse produced.
func TestConnectorOptionsRoundTrip(t *testing.T) {
	j, err, _ := parse(t, `name: every-connector
sources:
  - {uid: dg, connector: datagen, options: {count: 100, rate: 10, seed: 9223372036854775807, keys: 3}}
  - {uid: nx, connector: nexmark, options: {count: 0, format: binary, seed: -9223372036854775808, hot_auction_ratio: 1}}
  - {uid: fl, connector: file, options: {path: in.jsonl, format: jsonl, key_field: user}}
sinks:
  - {uid: so, connector: stdout, input: dg, options: {format: jsonl, raw_json: false}}
  - {uid: fs, connector: file, input: nx, options: {path: out/x.txt, format: lines}}
  - {uid: ds, connector: discard, input: fl}
`)
	if err != nil {
		t.Fatal(err)
	}
	type conn struct {
		kind connspec.Kind
		uid  string
		spec *connspec.Spec
		opts connspec.Options
	}
	var conns []conn
	for _, n := range j.Sources {
		conns = append(conns, conn{connspec.KindSource, n.UID, n.Source.Spec, n.Source.Options})
	}
	for _, n := range j.Sinks {
		conns = append(conns, conn{connspec.KindSink, n.UID, n.Sink.Spec, n.Sink.Options})
	}
	covered := map[*connspec.Spec]bool{}
	for _, c := range conns {
		if c.spec == nil || c.spec.Kind != c.kind || len(c.opts) != len(c.spec.Options) {
			t.Fatalf("%s: spec %+v, options %v", c.uid, c.spec, c.opts)
		}
		covered[c.spec] = true
		b, err := json.Marshal(c.spec.Encode(c.opts))
		if err != nil {
			t.Fatalf("%s: %v", c.uid, err)
		}
		var raw connspec.Raw
		if err := json.Unmarshal(b, &raw); err != nil {
			t.Fatalf("%s: %s: %v", c.uid, b, err)
		}
		got, err := c.spec.Decode(raw)
		if err != nil {
			t.Fatalf("%s: %s: %v", c.uid, b, err)
		}
		if !reflect.DeepEqual(got, c.opts) {
			t.Errorf("%s: through %s\ngot  %#v\nwant %#v", c.uid, b, got, c.opts)
		}
	}
	if got := j.Node("dg").Source.Options.Int("seed"); got != 1<<63-1 {
		t.Errorf("datagen seed %d, want the largest int64", got)
	}
	for _, s := range connspec.All() {
		if !covered[s] && s.Name != "test-src" && s.Name != "test-sink" {
			t.Errorf("%s %s: built-in connector not in the round-trip job", s.Kind, s.Name)
		}
	}
}
