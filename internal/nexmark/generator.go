package nexmark

import (
	"fmt"
	"math"
	"math/bits"
)

// Generator emits the events of a Config in order. It is not safe for
// concurrent use; give each goroutine (source subtask) its own.
type Generator struct {
	c Config
	n int64 // number of the next event
}

// NewGenerator returns a generator positioned at event 0. It validates c as
// it is and does not apply defaults: pass c.WithDefaults() to fill in the
// zero fields.
func NewGenerator(c Config) (*Generator, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("nexmark: creating generator: %w", err)
	}
	return &Generator{c: c}, nil
}

// Config returns the configuration of g.
func (g *Generator) Config() Config { return g.c }

// Next fills e with the next event and returns true, or returns false,
// leaving e alone, when a bounded stream (Config.Count > 0) is exhausted.
// It does not allocate.
func (g *Generator) Next(e *Event) bool {
	if g.c.Count > 0 && g.n >= g.c.Count {
		return false
	}
	g.c.event(g.n, e)
	g.n++
	return true
}

// Offset returns the number of events emitted so far (by Next, counting
// from the last SeekTo): the number of the event Next emits next.
func (g *Generator) Offset() int64 { return g.n }

// SeekTo positions g so that Next emits event n next, in O(1). Seeking at
// or past Config.Count ends a bounded stream. SeekTo panics if n is
// negative: an offset read from outside must be checked before.
//
// It is not called Seek because go vet reserves that name for io.Seeker's
// signature.
func (g *Generator) SeekTo(n int64) {
	if n < 0 {
		panic(fmt.Sprintf("nexmark: SeekTo(%d): negative offset", n))
	}
	g.n = n
}

// Event fills e with event number n of the stream c describes (ignoring
// c.Count): the event a Generator emits after SeekTo(n). It is a pure
// function of c and n and does not allocate. c must be valid (Validate
// returns nil); for n < 0 it sets e to the zero Event.
func (c Config) Event(n int64, e *Event) { c.event(n, e) }

// Hot auctions, sellers and bidders are the most recent ones rounded down
// to a multiple of hotGroup, as in the Beam generator.
const hotGroup = 100

func (c *Config) event(n int64, e *Event) {
	if n < 0 {
		*e = Event{}
		return
	}
	p := getPools()
	r := rng{s: mix64(c.Seed) + uint64(n)*0xd1b54a32d192ed03}
	ts := c.Timestamp(n)

	switch KindOf(n) {
	case KindPerson:
		e.Kind = KindPerson
		e.Auction = Auction{}
		e.Bid = Bid{}
		e.Person = Person{
			ID:           FirstPersonID + lastBase0Person(n),
			Name:         p.names[r.intn(int64(len(p.names)))],
			EmailAddress: p.emails[r.intn(numEmails)],
			CreditCard:   p.creditCards[r.intn(numCreditCards)],
			City:         p.cities[r.intn(int64(len(p.cities)))],
			State:        p.states[r.intn(int64(len(p.states)))],
			DateTime:     ts,
		}
		ps := &e.Person
		base := 1 + 8 + 8 + strSize(ps.Name) + strSize(ps.EmailAddress) +
			strSize(ps.CreditCard) + strSize(ps.City) + strSize(ps.State)
		ps.Extra = p.cut(&r, extraLen(&r, base, c.AvgPersonByteSize))

	case KindAuction:
		e.Kind = KindAuction
		e.Person = Person{}
		e.Bid = Bid{}
		lp := lastBase0Person(n)
		var seller int64
		if r.intn(c.HotSellersRatio) > 0 {
			seller = lp / hotGroup * hotGroup
		} else {
			seller = lp - r.intn(min(lp+1, c.NumActivePeople))
		}
		initial := r.price(p)
		a := &e.Auction
		*a = Auction{
			ID:          FirstAuctionID + lastBase0Auction(n),
			ItemName:    p.cut(&r, 5+r.intn(16)),
			Description: p.cut(&r, 20+r.intn(81)),
			InitialBid:  initial,
			Reserve:     initial + r.price(p),
			DateTime:    ts,
			Expires:     ts + 1 + r.intn(max(2*c.auctionHorizonMs(), 1)),
			Seller:      FirstPersonID + seller,
			Category:    FirstCategoryID + r.intn(NumCategories),
		}
		base := 1 + 7*8 + strSize(a.ItemName) + strSize(a.Description)
		a.Extra = p.cut(&r, extraLen(&r, base, c.AvgAuctionByteSize))

	default:
		e.Kind = KindBid
		e.Person = Person{}
		e.Auction = Auction{}
		la, lp := lastBase0Auction(n), lastBase0Person(n)
		var auction, bidder int64
		if r.intn(c.HotAuctionRatio) > 0 {
			auction = la / hotGroup * hotGroup
		} else {
			auction = la - r.intn(min(la+1, c.NumInFlightAuctions))
		}
		if r.intn(c.HotBiddersRatio) > 0 {
			// +1 so that the hot bidder is not the hot seller, as in Beam,
			// but never a person not generated yet.
			bidder = min(lp/hotGroup*hotGroup+1, lp)
		} else {
			bidder = lp - r.intn(min(lp+1, c.NumActivePeople))
		}
		var ch *channel
		if r.intn(hotChannelRatio) > 0 {
			ch = &p.channels[r.intn(int64(len(hotChannels)))]
		} else {
			ch = &p.channels[len(hotChannels)+int(r.intn(numColdChans))]
		}
		b := &e.Bid
		*b = Bid{
			Auction:  FirstAuctionID + auction,
			Bidder:   FirstPersonID + bidder,
			Price:    r.price(p),
			Channel:  ch.name,
			URL:      ch.url,
			DateTime: ts,
		}
		base := 1 + 4*8 + strSize(b.Channel) + strSize(b.URL)
		b.Extra = p.cut(&r, extraLen(&r, base, c.AvgBidByteSize))
	}
}

// auctionHorizonMs is the span of event time in which NumInFlightAuctions
// auctions are generated: the mean time from an auction's opening to its
// expiry.
func (c *Config) auctionHorizonMs() int64 {
	k := c.NumInFlightAuctions * ProportionDenominator / AuctionProportion
	r := c.EventsPerSecond
	return (k/r)*1000 + (k%r)*1000/r
}

// extraLen returns the length of the Extra string of an event whose other
// fields take base bytes of binary encoding, so that the encoding takes avg
// bytes on average: it is uniform within ±20% of what is left, as in Beam.
// When base alone reaches avg, Extra is empty.
func extraLen(r *rng, base, avg int64) int64 {
	room := avg - base // for Extra's length prefix and bytes
	if room <= 1 {
		return 0
	}
	delta := room / 5
	total := room - delta + r.intn(2*delta+1)
	for k := int64(1); k <= 3; k++ {
		if n := total - k; uvarintLen(uint64(n)) == int(k) {
			return n
		}
	}
	// total sits on a prefix-length boundary (129, 16386): one byte short.
	return total - int64(uvarintLen(uint64(total)))
}

// strSize returns the size of s in the binary encoding.
func strSize(s string) int64 { return int64(uvarintLen(uint64(len(s))) + len(s)) }

// rng is a SplitMix64 generator (Steele, Lea and Flood, "Fast splittable
// pseudorandom number generators").
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	return mix64(r.s)
}

func mix64(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// intn returns a number in [0, n) for n > 0 (Lemire's multiply-shift; the
// bias, at most n/2^64, does not matter here).
func (r *rng) intn(n int64) int64 {
	hi, _ := bits.Mul64(r.next(), uint64(n))
	return int64(hi)
}

// price returns a price in cents between 1 and 1,000,000 dollars,
// log-uniformly distributed as in Beam (100*10^(6u) for u uniform in
// [0, 1)), interpolated linearly between priceSteps+1 points of that curve
// with integer arithmetic: math.Exp costs more than the rest of an event
// and its assembly versions may differ in the last bit between platforms.
func (r *rng) price(p *pools) int64 {
	v := r.next()
	i, f := v>>(64-priceBits), v<<priceBits>>(64-priceFracBits)
	lo, hi := p.prices[i], p.prices[i+1]
	return lo + int64(uint64(hi-lo)*f>>priceFracBits)
}

const (
	priceBits     = 12
	priceSteps    = 1 << priceBits
	priceFracBits = 40 // (hi-lo) < 2^19, so the product fits
)

// priceTable returns round(100*10^(6i/priceSteps)) for i in [0, priceSteps].
func priceTable() []int64 {
	t := make([]int64, priceSteps+1)
	for i := range t {
		t[i] = int64(math.Round(100 * math.Pow(10, 6*float64(i)/priceSteps)))
	}
	return t
}
