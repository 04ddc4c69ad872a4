package connector

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/weirstream/weir/internal/nexmark"
)

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

func init() {
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
	Register(&Spec{
		Name: "nexmark",
		Kind: KindSource,
		Help: `Events of the Nexmark benchmark (persons, auctions and bids of an online auction site, 1:3:46),
deterministic and seekable (internal/nexmark). Records have no key; the value is the encoded event and
the timestamp its event time. Subtask i of p emits events i, i+p, i+2p, ... of the one stream the
options define, so the subtasks together emit exactly the events of a single generator. Bounded when
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
			if err := nexmarkConfig(o).Validate(); err != nil {
				return fmt.Errorf("nexmark options: %w", err)
			}
			return nil
		},
		NewSource: func(o Options, sub Subtask) (Source, error) { return newNexmarkSource(o, sub) },
	})
}

func nexmarkConfig(o Options) nexmark.Config {
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

// nexmarkSource is one subtask of the nexmark source. Every event is a pure
// function of the Config and its number (nexmark.Config.Event), so the
// subtask computes events i, i+p, ... directly, and seeking is O(1).
type nexmarkSource struct {
	cfg    nexmark.Config // validated, defaults applied
	ev     nexmark.Event
	binary bool
	count  int64
	sub    Subtask
	step   int64
	next   int64 // number of the next event this subtask emits
	pace   pacer
}

func newNexmarkSource(o Options, sub Subtask) (*nexmarkSource, error) {
	if err := checkSubtask("nexmark", sub); err != nil {
		return nil, err
	}
	cfg := nexmarkConfig(o).WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("connector: nexmark: %w", err)
	}
	s := &nexmarkSource{
		cfg:    cfg,
		binary: o.String("format") == "binary",
		count:  o.Int("count"),
		sub:    sub,
		step:   int64(sub.Parallelism),
		next:   int64(sub.Index),
		pace:   pacer{rate: o.Int("wall_rate"), now: time.Now},
	}
	return s, nil
}

// Read appends the subtask's next events, at most max of them.
func (s *nexmarkSource) Read(ctx context.Context, b *Batch, max int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if s.count > 0 && s.next >= s.count {
		return 0, io.EOF
	}
	limit, err := s.pace.limit(ctx, s.next)
	if err != nil {
		return 0, err
	}
	if s.count > 0 && limit > s.count {
		limit = s.count
	}
	n := 0
	for n < max && s.next < limit {
		s.cfg.Event(s.next, &s.ev)
		start := b.reserveRecord()
		if s.binary {
			b.Buf = nexmark.AppendBinary(b.Buf, &s.ev)
		} else {
			b.Buf = nexmark.AppendJSON(b.Buf, &s.ev)
		}
		b.finishRecord(start, 0, s.ev.DateTime())
		s.next += s.step
		n++
	}
	if s.count > 0 && s.next >= s.count {
		return n, io.EOF
	}
	return n, nil
}

// Offset is the number of the next event this subtask emits.
func (s *nexmarkSource) Offset() []byte { return encodeOffset(offsetNexmark, s.next) }

// Seek resumes at the event an Offset named (the first event of this
// subtask at or after it, should the parallelism have changed).
func (s *nexmarkSource) Seek(offset []byte) error {
	var n int64
	if err := decodeOffset("nexmark", offsetNexmark, offset, &n); err != nil {
		return err
	}
	if n < 0 {
		return fmt.Errorf("connector: nexmark: negative offset %d", n)
	}
	s.next = stride(n, s.sub)
	s.pace.restart()
	return nil
}

// Close does nothing: the generator holds no resources.
func (s *nexmarkSource) Close() error { return nil }
