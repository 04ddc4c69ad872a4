package connspec

import (
	"fmt"
	"strconv"

	"github.com/weirstream/weir/internal/nexmark"
)

// The built-in connectors' specs. Their factories are in worker/connector,
// registered under the same kinds and names; a test there checks that
// every spec here has one.
func init() {
	for _, s := range []*Spec{datagenSpec(), nexmarkSpec(), fileSourceSpec(), stdoutSpec(), fileSinkSpec(), discardSpec()} {
		Register(s)
	}
}

const datagenHelp = `Synthetic records, deterministic and seekable. Record n (0-based, numbered over all subtasks) has
timestamp start_time + n*interval_ms; when keys > 0 the key "key-<k>" and the value {"seq":n,"key":"key-<k>","value":v},
when keys = 0 no key and the value {"seq":n,"value":v} (compact JSON, fields in this order, integers in decimal).
k and v come from SplitMix64 started in state seed: with G = 0x9E3779B97F4A7C15 and
mix(z) = z ^= z>>30; z *= 0xBF58476D1CE4E5B9; z ^= z>>27; z *= 0x94D049BB133111EB; z ^= z>>31,
output i is out(i) = mix(uint64(seed) + (i+1)*G) (uint64 arithmetic, wrapping); record n takes
k = out(2n) mod keys and v = out(2n+1) mod max_value (unsigned). The records are cut into 720 splits
(split k: records k, k+720, ...), read by subtask k mod p: when p divides 720, subtask i emits records
i, i+p, i+2p, ... in order. Bounded when count > 0.`

func datagenSpec() *Spec {
	return &Spec{
		Name: "datagen",
		Kind: KindSource,
		Help: datagenHelp,
		Options: []Option{
			{Name: "count", Type: TypeInt, Default: "0", Help: "number of records over all subtasks; 0 = unbounded"},
			{Name: "rate", Type: TypeInt, Default: "0", Help: "records per second of wall-clock time over all subtasks; 0 = as fast as possible"},
			{Name: "seed", Type: TypeInt, Default: "0", Help: "seed of the SplitMix64 stream that draws keys and values"},
			{Name: "keys", Type: TypeInt, Default: "0", Help: "number of distinct keys key-0..key-<keys-1>; 0 = records have no key"},
			{Name: "max_value", Type: TypeInt, Default: "100000", Help: "values are drawn from [0, max_value)"},
			{Name: "start_time", Type: TypeInt, Default: "1700000000000", Help: "timestamp of record 0, ms since the Unix epoch"},
			{Name: "interval_ms", Type: TypeInt, Default: "1", Help: "event-time step between consecutive records, ms"},
		},
		Keyed:   func(o Options) bool { return o.Int("keys") > 0 },
		Bounded: func(o Options) bool { return o.Int("count") > 0 },
		Check: func(o Options) error {
			for _, name := range []string{"count", "rate", "keys", "start_time", "interval_ms"} {
				if o.Int(name) < 0 {
					return fmt.Errorf("option %q: must be >= 0, got %d", name, o.Int(name))
				}
			}
			if o.Int("max_value") < 1 {
				return fmt.Errorf("option %q: must be >= 1, got %d", "max_value", o.Int("max_value"))
			}
			return nil
		},
	}
}

// DefaultNexmarkCount is the nexmark source's default number of events:
// bounded, so a job that forgets the option ends, and large enough for a
// meaningful run (100 s of event time at the default rate).
const DefaultNexmarkCount = 1_000_000

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// nexmarkKnobs maps options to the generator's Config fields that must be
// > 0.
var nexmarkKnobs = []struct {
	name, help string
	def        int64
	field      func(c *nexmark.Config) *int64
}{
	{"active_people", "number of most recent persons among which non-hot bidders and sellers are chosen", nexmark.DefaultNumActivePeople, func(c *nexmark.Config) *int64 { return &c.NumActivePeople }},
	{"in_flight_auctions", "number of most recent auctions non-hot bids choose from; also sets the mean auction length", nexmark.DefaultNumInFlightAuctions, func(c *nexmark.Config) *int64 { return &c.NumInFlightAuctions }},
	{"hot_auction_ratio", "a bid goes to the hot auction with probability 1-1/ratio (1 = never)", nexmark.DefaultHotAuctionRatio, func(c *nexmark.Config) *int64 { return &c.HotAuctionRatio }},
	{"hot_sellers_ratio", "an auction is opened by the hot seller with probability 1-1/ratio", nexmark.DefaultHotSellersRatio, func(c *nexmark.Config) *int64 { return &c.HotSellersRatio }},
	{"hot_bidders_ratio", "a bid is placed by the hot bidder with probability 1-1/ratio", nexmark.DefaultHotBiddersRatio, func(c *nexmark.Config) *int64 { return &c.HotBiddersRatio }},
	{"avg_person_bytes", "target average binary size of a person event (padding in extra)", nexmark.DefaultAvgPersonByteSize, func(c *nexmark.Config) *int64 { return &c.AvgPersonByteSize }},
	{"avg_auction_bytes", "target average binary size of an auction event", nexmark.DefaultAvgAuctionByteSize, func(c *nexmark.Config) *int64 { return &c.AvgAuctionByteSize }},
	{"avg_bid_bytes", "target average binary size of a bid event", nexmark.DefaultAvgBidByteSize, func(c *nexmark.Config) *int64 { return &c.AvgBidByteSize }},
}

func nexmarkSpec() *Spec {
	opts := []Option{
		{Name: "count", Type: TypeInt, Default: itoa(DefaultNexmarkCount), Help: "number of events over all subtasks; 0 = unbounded"},
		{Name: "rate", Type: TypeInt, Default: itoa(nexmark.DefaultEventsPerSecond), Help: "events per second of event time: event n has time base_time + n*1000/rate ms"},
		{Name: "seed", Type: TypeInt, Default: "0", Help: "selects the stream; the same seed and options give the same events"},
		{Name: "format", Type: TypeString, Default: "json", Enum: []string{"json", "binary"}, Help: "json: one JSON object per event ({\"event_type\":0|1|2,\"person\":..,\"auction\":..,\"bid\":..}); binary: the compact encoding of internal/nexmark"},
		{Name: "base_time", Type: TypeInt, Default: itoa(nexmark.DefaultBaseTime), Help: "time of event 0, ms since the Unix epoch"},
		{Name: "wall_rate", Type: TypeInt, Default: "0", Help: "events per second of wall-clock time over all subtasks; 0 = as fast as possible"},
	}
	for _, k := range nexmarkKnobs {
		opts = append(opts, Option{Name: k.name, Type: TypeInt, Default: itoa(k.def), Help: k.help})
	}
	return &Spec{
		Name: "nexmark",
		Kind: KindSource,
		Help: `Events of the Nexmark benchmark (persons, auctions and bids of an online auction site, 1:3:46),
deterministic and seekable (internal/nexmark). Records have no key; the value is the encoded event and
the timestamp its event time. The events are cut into 720 splits (split k: events k, k+720, ...), read
by subtask k mod p: when p divides 720, subtask i emits events i, i+p, i+2p, ... of the one stream the
options define; the subtasks together emit exactly the events of a single generator. Bounded when
count > 0 (the default).`,
		Options: opts,
		Keyed:   func(Options) bool { return false },
		Bounded: func(o Options) bool { return o.Int("count") > 0 },
		Check: func(o Options) error {
			for _, name := range []string{"count", "wall_rate", "base_time"} {
				if o.Int(name) < 0 {
					return fmt.Errorf("option %q: must be >= 0, got %d", name, o.Int(name))
				}
			}
			if r := o.Int("rate"); r < 1 || r > 1_000_000_000 {
				return fmt.Errorf("option %q: must be in 1..1000000000, got %d", "rate", r)
			}
			for _, k := range nexmarkKnobs {
				if v := o.Int(k.name); v < 1 {
					return fmt.Errorf("option %q: must be >= 1, got %d", k.name, v)
				}
			}
			if err := NexmarkConfig(o).Validate(); err != nil {
				return fmt.Errorf("nexmark options: %w", err)
			}
			return nil
		},
	}
}

// NexmarkConfig is the generator configuration the nexmark options
// describe (zero fields where the options leave them).
func NexmarkConfig(o Options) nexmark.Config {
	c := nexmark.Config{
		Seed:            uint64(o.Int("seed")),
		EventsPerSecond: o.Int("rate"),
		BaseTime:        o.Int("base_time"),
		Count:           o.Int("count"),
	}
	for _, k := range nexmarkKnobs {
		*k.field(&c) = o.Int(k.name)
	}
	return c
}

func fileSourceSpec() *Spec {
	return &Spec{
		Name: "file",
		Kind: KindSource,
		Help: `Reads a text file line by line (a trailing "\r" is dropped). format lines: each line is a record
with no key, the line as its value and its 0-based line number as its timestamp. format jsonl: each
non-empty line must be a JSON object; the record's value is the line, its key the text of key_field
(a string, or a number as written), its timestamp the integer ms in timestamp_field (default: the
0-based line number). Empty lines are skipped in jsonl. The file is cut into up to 64 splits (byte
ranges starting at line starts, at most 64 MiB each for larger files); subtask i of p reads splits
i, i+p, ... in order. Bounded.`,
		Options: []Option{
			{Name: "path", Type: TypeString, Required: true, Help: "the file to read"},
			{Name: "format", Type: TypeString, Default: "lines", Enum: []string{"lines", "jsonl"}, Help: "lines: raw text lines; jsonl: one JSON object per line"},
			{Name: "key_field", Type: TypeString, Help: "jsonl only: top-level field whose string or number value becomes the key; empty = no key"},
			{Name: "timestamp_field", Type: TypeString, Help: "jsonl only: top-level field holding the event time as integer ms; empty = the 0-based line number"},
		},
		Keyed:   func(o Options) bool { return o.String("key_field") != "" },
		Bounded: func(Options) bool { return true },
		Check: func(o Options) error {
			if o.String("path") == "" {
				return fmt.Errorf("option %q: must not be empty", "path")
			}
			if o.String("format") != "jsonl" {
				for _, f := range []string{"key_field", "timestamp_field"} {
					if o.String(f) != "" {
						return fmt.Errorf("option %q: only for format jsonl, not %s", f, o.String("format"))
					}
				}
			}
			return nil
		},
	}
}

const jsonlShape = `jsonl writes {"key":K,"value":V,"timestamp":T} per record: K is the key as a JSON string,
or null when the key is empty; T the timestamp in ms; V the value as a JSON string, except that
with raw_json (the default) a value that is itself a valid JSON object or array is embedded as it
is, so JSON records stay readable (a reader that needs the exact bytes sets raw_json: false).
`

var rawJSONOption = Option{Name: "raw_json", Type: TypeBool, Default: "true", Help: "jsonl: embed values that are valid JSON objects or arrays as JSON instead of as a string"}

func stdoutSpec() *Spec {
	return &Spec{
		Name: "stdout",
		Kind: KindSink,
		Help: `Writes one line per record to standard output. text writes key<TAB>value, or just the value
when the key is empty (values are written as they are: a value holding a newline spans lines).
` + jsonlShape + `Output is buffered and flushed on Flush and Close; the subtasks of a
process share one writer and each batch is written whole, so lines never interleave.`,
		Options: []Option{
			{Name: "format", Type: TypeString, Default: "text", Enum: []string{"text", "jsonl"}, Help: "text: key<TAB>value per line; jsonl: one JSON object per line"},
			rawJSONOption,
		},
	}
}

func fileSinkSpec() *Spec {
	return &Spec{
		Name: "file",
		Kind: KindSink,
		Help: `Writes one line per record to a file (its parent folders created). Without checkpoints the
lines go to a hidden temporary file renamed into place when the job ends, so a failed run leaves an
earlier file as it was; with parallelism p > 1, subtask i writes its own file: the path with "-i"
inserted before the extension (out.jsonl -> out-0.jsonl, out-1.jsonl; out -> out-0). With checkpoints
it is exactly-once: each checkpoint's records are a hidden pending file, committed by an atomic rename
to <path>.part-<subtask>-<seq>-<attempt> once the checkpoint completes (read every <path>.part-* in
name order). lines writes the value only. ` + jsonlShape,
		Options: []Option{
			{Name: "path", Type: TypeString, Required: true, Help: "the file to write"},
			{Name: "format", Type: TypeString, Default: "jsonl", Enum: []string{"jsonl", "lines"}, Help: "jsonl: one JSON object per record; lines: the value of each record"},
			rawJSONOption,
			{Name: "rate", Type: TypeInt, Default: "0", Help: "records per second each subtask writes at most, 0 = no limit: a slow sink, to see backpressure"},
		},
		Check: func(o Options) error {
			if o.String("path") == "" {
				return fmt.Errorf("option %q: must not be empty", "path")
			}
			if o.Int("rate") < 0 {
				return fmt.Errorf("option %q: must be >= 0, got %d", "rate", o.Int("rate"))
			}
			return nil
		},
	}
}

func discardSpec() *Spec {
	return &Spec{
		Name: "discard",
		Kind: KindSink,
		Help: `Drops every record, counting records and encoded bytes (see DiscardTotals), so benchmarks
measure the engine rather than the output.`,
	}
}
