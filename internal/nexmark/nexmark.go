// Package nexmark generates the event stream of the Nexmark benchmark
// (Tucker, Tufte, Papadimos and Maier, "NEXMark - A Benchmark for Queries
// over Data Streams"): an online auction site where people register,
// open auctions and bid on them.
//
// The generator is deterministic and seekable. Event number n (counting
// from 0) is a pure function of the Config and n: its kind, its ids and its
// timestamp follow from n alone, and its remaining fields are drawn from a
// SplitMix64 stream seeded with Config.Seed and n. Rewinding a source to a
// checkpointed offset is therefore Generator.SeekTo(offset), an O(1)
// operation, and the events that follow are exactly those a generator
// started at 0 would emit after skipping offset events.
//
// The shape of the stream follows the description of the benchmark and the
// behaviour of the Apache Beam / Flink Nexmark generators:
//
//   - out of every 50 consecutive events (aligned on multiples of 50) the
//     first is a person, the next three are auctions and the last 46 are
//     bids;
//   - person and auction ids are 1000 plus the number of persons (auctions)
//     generated before, so they increase by one per person (auction);
//   - a bid names an auction and a bidder, and an auction names a seller,
//     that were generated earlier in the stream (unlike Beam's, which may
//     name a few ids ahead): either a "hot" one, chosen with probability
//     1-1/HotAuctionRatio (HotBiddersRatio, HotSellersRatio), or a
//     uniformly chosen one among the last NumInFlightAuctions auctions or
//     NumActivePeople persons. As in Beam, the hot auction (seller) is the
//     most recent one with its base-0 number rounded down to a multiple of
//     100, and the hot bidder the person after the hot seller (or the hot
//     seller while that person does not exist yet);
//   - event n's time is BaseTime + n*1000/EventsPerSecond milliseconds:
//     event time, not the wall clock;
//   - an auction expires a random time after it opens, uniformly between
//     1 ms and twice the span of event time in which NumInFlightAuctions
//     further auctions are generated;
//   - the Extra field of each event is padded so that the average encoded
//     size (AppendBinary) of persons, auctions and bids is close to
//     AvgPersonByteSize, AvgAuctionByteSize and AvgBidByteSize (it is
//     empty when the other fields alone reach the target, so the average
//     then exceeds it: about 80, 130 and 90 bytes for persons, auctions and
//     bids).
//
// Next allocates nothing: every string it puts in an Event is a precomputed
// string or a substring of one (names, cities, states, e-mail addresses, credit card
// numbers, channels, URLs, and a 64 KiB block of random text from which item
// names, descriptions and Extra padding are cut). These pools are built once
// per process from a fixed seed and never modified, so strings taken from an
// Event stay valid and unchanged forever; they do keep the pools alive.
//
// AppendJSON and AppendBinary encode events; DecodeBinary decodes the
// binary form without allocating and rejects malformed input, and
// BidFields reads a binary bid's numbers without decoding its strings. See
// their documentation for the formats. Only the generator builds the
// string pools, so code that only decodes (WebAssembly operators) never
// pays for them.
package nexmark

import (
	"errors"
	"fmt"
)

// Kind tells which of the three structs of an Event holds the event.
type Kind uint8

const (
	KindNone    Kind = iota // the zero Event: no event
	KindPerson              // Event.Person
	KindAuction             // Event.Auction
	KindBid                 // Event.Bid
)

// String returns the lowercase name of k ("person", ...).
func (k Kind) String() string {
	switch k {
	case KindNone:
		return "none"
	case KindPerson:
		return "person"
	case KindAuction:
		return "auction"
	case KindBid:
		return "bid"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Person is a person registering with the auction site.
type Person struct {
	ID           int64  `json:"id"`
	Name         string `json:"name"`
	EmailAddress string `json:"emailAddress"`
	CreditCard   string `json:"creditCard"`
	City         string `json:"city"`
	State        string `json:"state"`
	DateTime     int64  `json:"dateTime"` // event time, ms since the Unix epoch
	Extra        string `json:"extra"`
}

// Auction is an item put up for auction by a seller (a Person.ID).
type Auction struct {
	ID          int64  `json:"id"`
	ItemName    string `json:"itemName"`
	Description string `json:"description"`
	InitialBid  int64  `json:"initialBid"`
	Reserve     int64  `json:"reserve"`
	DateTime    int64  `json:"dateTime"` // event time, ms since the Unix epoch
	Expires     int64  `json:"expires"`  // ms since the Unix epoch, > DateTime
	Seller      int64  `json:"seller"`
	Category    int64  `json:"category"`
	Extra       string `json:"extra"`
}

// Bid is a bid by a bidder (a Person.ID) on an auction (an Auction.ID).
type Bid struct {
	Auction  int64  `json:"auction"`
	Bidder   int64  `json:"bidder"`
	Price    int64  `json:"price"`
	Channel  string `json:"channel"`
	URL      string `json:"url"`
	DateTime int64  `json:"dateTime"` // event time, ms since the Unix epoch
	Extra    string `json:"extra"`
}

// Event is one event of the stream: Kind says which one of Person, Auction
// and Bid holds it. The generator and DecodeBinary leave the other two
// zero.
type Event struct {
	Kind    Kind
	Person  Person
	Auction Auction
	Bid     Bid
}

// DateTime returns the event time of the event, or 0 for KindNone.
func (e *Event) DateTime() int64 {
	switch e.Kind {
	case KindPerson:
		return e.Person.DateTime
	case KindAuction:
		return e.Auction.DateTime
	case KindBid:
		return e.Bid.DateTime
	}
	return 0
}

// Stream proportions: of every ProportionDenominator events, PersonProportion
// are persons, AuctionProportion auctions and BidProportion bids.
const (
	PersonProportion      = 1
	AuctionProportion     = 3
	BidProportion         = 46
	ProportionDenominator = PersonProportion + AuctionProportion + BidProportion
)

// Fixed parameters of the stream.
const (
	FirstPersonID   = 1000 // id of the first person
	FirstAuctionID  = 1000 // id of the first auction
	FirstCategoryID = 10   // auction categories are FirstCategoryID..+NumCategories-1
	// NumCategories is the standard generator's NUM_CATEGORIES: it sets how
	// many groups query 4 averages over (and how often query 3's category
	// matches: one auction in NumCategories).
	NumCategories = 5

	// DefaultBaseTime is 2015-07-15 00:00:00 UTC in ms since the Unix epoch.
	DefaultBaseTime = 1436918400000

	// MaxAvgByteSize bounds the Avg*ByteSize settings (the Extra padding is
	// cut from a fixed block of text).
	MaxAvgByteSize = 16 << 10

	// MaxNumInFlightAuctions bounds NumInFlightAuctions (so that the auction
	// length in ms cannot overflow).
	MaxNumInFlightAuctions = 1 << 32
)

// Config parameterizes a Generator. The zero value of a field other than
// Seed, Count and BaseTime means "use the default"; see WithDefaults.
type Config struct {
	// Seed selects the stream; the same Seed and parameters give the same
	// events.
	Seed uint64
	// EventsPerSecond is the rate in event time: event n has time
	// BaseTime + n*1000/EventsPerSecond ms. Default 10000.
	EventsPerSecond int64
	// BaseTime is the time of event 0 in ms since the Unix epoch.
	// 0 means DefaultBaseTime.
	BaseTime int64
	// Count is the number of events of the stream; 0 means unbounded.
	Count int64

	// NumActivePeople is the number of most recent persons among which
	// non-hot bidders and sellers are chosen. Default 1000.
	NumActivePeople int64
	// NumInFlightAuctions is the number of most recent auctions among which
	// non-hot bids choose their auction; it also sets the mean auction
	// length. Default 100.
	NumInFlightAuctions int64

	// A bid goes to the hot auction with probability 1-1/HotAuctionRatio
	// (so 1 means never). Default 2.
	HotAuctionRatio int64
	// An auction is opened by the hot seller with probability
	// 1-1/HotSellersRatio. Default 4.
	HotSellersRatio int64
	// A bid is placed by the hot bidder with probability
	// 1-1/HotBiddersRatio. Default 4.
	HotBiddersRatio int64

	// Target average sizes in bytes of the binary encoding of each kind;
	// the Extra field is padded towards them. Defaults 200, 500, 100.
	AvgPersonByteSize  int64
	AvgAuctionByteSize int64
	AvgBidByteSize     int64
}

// Default values of Config fields.
const (
	DefaultEventsPerSecond     = 10000
	DefaultNumActivePeople     = 1000
	DefaultNumInFlightAuctions = 100
	DefaultHotAuctionRatio     = 2
	DefaultHotSellersRatio     = 4
	DefaultHotBiddersRatio     = 4
	DefaultAvgPersonByteSize   = 200
	DefaultAvgAuctionByteSize  = 500
	DefaultAvgBidByteSize      = 100
)

// DefaultConfig returns the default configuration (seed 0, unbounded).
func DefaultConfig() Config { return Config{}.WithDefaults() }

// WithDefaults returns c with every zero field that has a default set to it.
func (c Config) WithDefaults() Config {
	def := func(p *int64, v int64) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.EventsPerSecond, DefaultEventsPerSecond)
	def(&c.BaseTime, DefaultBaseTime)
	def(&c.NumActivePeople, DefaultNumActivePeople)
	def(&c.NumInFlightAuctions, DefaultNumInFlightAuctions)
	def(&c.HotAuctionRatio, DefaultHotAuctionRatio)
	def(&c.HotSellersRatio, DefaultHotSellersRatio)
	def(&c.HotBiddersRatio, DefaultHotBiddersRatio)
	def(&c.AvgPersonByteSize, DefaultAvgPersonByteSize)
	def(&c.AvgAuctionByteSize, DefaultAvgAuctionByteSize)
	def(&c.AvgBidByteSize, DefaultAvgBidByteSize)
	return c
}

// Validate reports whether c can drive a Generator as it is (without
// WithDefaults: zero rates, ratios and sizes are errors here).
func (c Config) Validate() error {
	var errs []error
	pos := func(name string, v int64) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("nexmark: %s must be > 0, got %d", name, v))
		}
	}
	pos("EventsPerSecond", c.EventsPerSecond)
	pos("NumActivePeople", c.NumActivePeople)
	pos("NumInFlightAuctions", c.NumInFlightAuctions)
	pos("HotAuctionRatio", c.HotAuctionRatio)
	pos("HotSellersRatio", c.HotSellersRatio)
	pos("HotBiddersRatio", c.HotBiddersRatio)
	pos("AvgPersonByteSize", c.AvgPersonByteSize)
	pos("AvgAuctionByteSize", c.AvgAuctionByteSize)
	pos("AvgBidByteSize", c.AvgBidByteSize)
	if c.EventsPerSecond > 1_000_000_000 {
		errs = append(errs, fmt.Errorf("nexmark: EventsPerSecond must be <= 1e9, got %d", c.EventsPerSecond))
	}
	if c.NumInFlightAuctions > MaxNumInFlightAuctions {
		errs = append(errs, fmt.Errorf("nexmark: NumInFlightAuctions must be <= %d, got %d", int64(MaxNumInFlightAuctions), c.NumInFlightAuctions))
	}
	if c.Count < 0 {
		errs = append(errs, fmt.Errorf("nexmark: Count must be >= 0 (0 = unbounded), got %d", c.Count))
	}
	if c.BaseTime < 0 || c.BaseTime > 1<<53 {
		errs = append(errs, fmt.Errorf("nexmark: BaseTime must be in [0, 2^53], got %d", c.BaseTime))
	}
	for _, s := range []struct {
		name string
		v    int64
	}{{"AvgPersonByteSize", c.AvgPersonByteSize}, {"AvgAuctionByteSize", c.AvgAuctionByteSize}, {"AvgBidByteSize", c.AvgBidByteSize}} {
		if s.v > MaxAvgByteSize {
			errs = append(errs, fmt.Errorf("nexmark: %s must be <= %d, got %d", s.name, MaxAvgByteSize, s.v))
		}
	}
	return errors.Join(errs...)
}

// Timestamp returns the event time in ms of event number n.
func (c Config) Timestamp(n int64) int64 {
	r := c.EventsPerSecond
	// n*1000/r without overflowing for large n.
	return c.BaseTime + (n/r)*1000 + (n%r)*1000/r
}

// KindOf returns the kind of event number n (n >= 0).
func KindOf(n int64) Kind {
	switch rem := n % ProportionDenominator; {
	case rem < PersonProportion:
		return KindPerson
	case rem < PersonProportion+AuctionProportion:
		return KindAuction
	}
	return KindBid
}

// lastBase0Person returns the 0-based number of the last person generated
// at or before event n; -1 if none.
func lastBase0Person(n int64) int64 {
	epoch, off := n/ProportionDenominator, n%ProportionDenominator
	if off >= PersonProportion {
		off = PersonProportion - 1
	}
	return epoch*PersonProportion + off
}

// lastBase0Auction returns the 0-based number of the last auction generated
// at or before event n; -1 if none.
func lastBase0Auction(n int64) int64 {
	epoch, off := n/ProportionDenominator, n%ProportionDenominator
	switch {
	case off < PersonProportion:
		epoch--
		off = AuctionProportion - 1
	case off >= PersonProportion+AuctionProportion:
		off = AuctionProportion - 1
	default:
		off -= PersonProportion
	}
	return epoch*AuctionProportion + off
}

// LastPersonID returns the id of the last person generated at or before
// event n, or FirstPersonID-1 if there is none.
func LastPersonID(n int64) int64 { return FirstPersonID + lastBase0Person(n) }

// LastAuctionID returns the id of the last auction generated at or before
// event n, or FirstAuctionID-1 if there is none.
func LastAuctionID(n int64) int64 { return FirstAuctionID + lastBase0Auction(n) }
