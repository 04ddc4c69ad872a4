package nexmark

import (
	"math"
	"math/big"
	"strings"
	"testing"
)

func newGen(t testing.TB, c Config) *Generator {
	t.Helper()
	g, err := NewGenerator(c)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// events returns the first n events of c.
func events(t testing.TB, c Config, n int) []Event {
	t.Helper()
	g := newGen(t, c)
	es := make([]Event, n)
	for i := range es {
		if !g.Next(&es[i]) {
			t.Fatalf("stream ended after %d events", i)
		}
	}
	return es
}

func TestDeterminism(t *testing.T) {
	const n = 5000
	c := DefaultConfig()
	c.Seed = 42
	a, b := events(t, c, n), events(t, c, n)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("event %d differs between two generators with the same config:\n%+v\n%+v", i, a[i], b[i])
		}
		var e Event
		c.Event(int64(i), &e)
		if e != a[i] {
			t.Fatalf("Config.Event(%d) = %+v, Next gave %+v", i, e, a[i])
		}
	}
	for _, seed := range []uint64{0, 43, 1 << 63} {
		c2 := c
		c2.Seed = seed
		o := events(t, c2, n)
		same := 0
		for i := range a {
			if a[i] == o[i] {
				same++
			}
		}
		if same > n/100 {
			t.Errorf("seeds 42 and %d: %d of %d events equal", seed, same, n)
		}
	}
}

func TestProportions(t *testing.T) {
	const n = 100_000
	g := newGen(t, DefaultConfig())
	var count [4]int
	var e Event
	for i := range n {
		g.Next(&e)
		count[e.Kind]++
		// Within each aligned block of 50: 1 person, 3 auctions, 46 bids.
		want := KindBid
		switch pos := i % 50; {
		case pos == 0:
			want = KindPerson
		case pos <= 3:
			want = KindAuction
		}
		if e.Kind != want {
			t.Fatalf("event %d is a %v, want a %v", i, e.Kind, want)
		}
		if KindOf(int64(i)) != want {
			t.Fatalf("KindOf(%d) = %v, want %v", i, KindOf(int64(i)), want)
		}
	}
	if count[KindPerson] != n/50 || count[KindAuction] != 3*n/50 || count[KindBid] != 46*n/50 || count[KindNone] != 0 {
		t.Fatalf("counts %v, want 1:3:46 of %d", count, n)
	}
}

// TestIDsAndReferences checks that person and auction ids increase by one,
// and that sellers, bidders and auctions of bids are earlier ids, either
// the hot one or one among the most recent ones.
func TestIDsAndReferences(t *testing.T) {
	for _, c := range []Config{
		DefaultConfig(),
		{NumActivePeople: 7, NumInFlightAuctions: 5, HotAuctionRatio: 3, HotSellersRatio: 1, HotBiddersRatio: 1, Seed: 9},
	} {
		c = c.WithDefaults()
		g := newGen(t, c)
		nextPerson, nextAuction := int64(FirstPersonID), int64(FirstAuctionID)
		bids, hotBids := 0, 0
		var e Event
		for i := range 200_000 {
			g.Next(&e)
			lastPerson, lastAuction := nextPerson-1, nextAuction-1
			hotSeller := FirstPersonID + (lastPerson-FirstPersonID)/100*100
			switch e.Kind {
			case KindPerson:
				if e.Person.ID != nextPerson {
					t.Fatalf("event %d: person id %d, want %d", i, e.Person.ID, nextPerson)
				}
				nextPerson++
			case KindAuction:
				a := e.Auction
				if a.ID != nextAuction {
					t.Fatalf("event %d: auction id %d, want %d", i, a.ID, nextAuction)
				}
				nextAuction++
				recent := a.Seller <= lastPerson && a.Seller > lastPerson-c.NumActivePeople && a.Seller >= FirstPersonID
				if !recent && a.Seller != hotSeller {
					t.Fatalf("event %d: seller %d is neither hot (%d) nor among the %d persons up to %d", i, a.Seller, hotSeller, c.NumActivePeople, lastPerson)
				}
				if c.HotSellersRatio == 1 && !recent {
					t.Fatalf("event %d: hot seller %d with HotSellersRatio 1", i, a.Seller)
				}
			case KindBid:
				b := e.Bid
				hotAuction := FirstAuctionID + (lastAuction-FirstAuctionID)/100*100
				recent := b.Auction <= lastAuction && b.Auction > lastAuction-c.NumInFlightAuctions && b.Auction >= FirstAuctionID
				if !recent && b.Auction != hotAuction {
					t.Fatalf("event %d: bid on auction %d, neither hot (%d) nor among the %d up to %d", i, b.Auction, hotAuction, c.NumInFlightAuctions, lastAuction)
				}
				hotBidder := min(hotSeller+1, lastPerson)
				recent = b.Bidder <= lastPerson && b.Bidder > lastPerson-c.NumActivePeople && b.Bidder >= FirstPersonID
				if !recent && b.Bidder != hotBidder {
					t.Fatalf("event %d: bidder %d is neither hot (%d) nor among the %d persons up to %d", i, b.Bidder, hotBidder, c.NumActivePeople, lastPerson)
				}
				bids++
				if b.Auction == hotAuction {
					hotBids++
				}
			}
		}
		// P(hot) = 1-1/ratio, plus the uniform choice landing on the hot
		// auction: 1/ratio * 1/window when it is inside the window, which is
		// not always the case with a window of 5.
		p := 1 - 1/float64(c.HotAuctionRatio)
		hi := p + 1/float64(c.HotAuctionRatio)/float64(min(c.NumInFlightAuctions, 100))
		if got := float64(hotBids) / float64(bids); got < p-0.01 || got > hi+0.01 {
			t.Errorf("%+v: %.3f of bids on the hot auction, want %.3f to %.3f", c, got, p, hi)
		}
	}
}

func TestSeek(t *testing.T) {
	c := DefaultConfig()
	c.Seed = 7
	es := events(t, c, 3000)
	g := newGen(t, c)
	var e Event
	for _, n := range []int64{0, 1, 3, 4, 49, 50, 51, 999, 1234, 2999} {
		g.SeekTo(n)
		if !g.Next(&e) || e != es[n] {
			t.Fatalf("SeekTo(%d) then Next = %+v, want %+v", n, e, es[n])
		}
		if g.Offset() != n+1 {
			t.Fatalf("Offset after SeekTo(%d) and Next = %d", n, g.Offset())
		}
	}
	// Far away: the event is still a pure function of n.
	const far = 1_000_000_000_007
	g.SeekTo(far)
	g.Next(&e)
	var want Event
	c.Event(far, &want)
	if e != want || e.Kind != KindOf(far) || e.DateTime() != c.BaseTime+far/10 {
		t.Fatalf("event %d: %+v (Config.Event gives %+v)", int64(far), e, want)
	}

	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "negative") {
			t.Fatalf("SeekTo(-1) did not panic about a negative offset: %v", r)
		}
	}()
	g.SeekTo(-1)
}

func TestBounded(t *testing.T) {
	c := DefaultConfig()
	c.Count = 120
	g := newGen(t, c)
	var e Event
	n := 0
	for g.Next(&e) {
		n++
	}
	if n != 120 || g.Offset() != 120 {
		t.Fatalf("%d events, offset %d; want 120", n, g.Offset())
	}
	last := e
	if g.Next(&e) || e != last {
		t.Fatal("Next after the end returned true or changed the event")
	}
	g.SeekTo(119)
	if !g.Next(&e) || g.Next(&e) {
		t.Fatal("SeekTo(119) of 120 did not give exactly one more event")
	}
	g.SeekTo(500)
	if g.Next(&e) {
		t.Fatal("Next after SeekTo past Count returned true")
	}
}

func TestTimestamps(t *testing.T) {
	for _, c := range []Config{
		{EventsPerSecond: 10000},
		{EventsPerSecond: 3, BaseTime: 1},
		{EventsPerSecond: 7, BaseTime: 1 << 40},
		{EventsPerSecond: 1_000_000_000},
		{EventsPerSecond: 1},
	} {
		c = c.WithDefaults()
		g := newGen(t, c)
		var e Event
		prev := int64(math.MinInt64)
		for n := range int64(20_000) {
			g.Next(&e)
			// BaseTime + floor(n*1000/rate), computed with big integers.
			want := new(big.Int).Mul(big.NewInt(n), big.NewInt(1000))
			want.Quo(want, big.NewInt(c.EventsPerSecond))
			want.Add(want, big.NewInt(c.BaseTime))
			if e.DateTime() != want.Int64() || c.Timestamp(n) != want.Int64() {
				t.Fatalf("rate %d: event %d at %d, want %d", c.EventsPerSecond, n, e.DateTime(), want.Int64())
			}
			if e.DateTime() < prev {
				t.Fatalf("rate %d: event %d goes back in time", c.EventsPerSecond, n)
			}
			prev = e.DateTime()
		}
	}
	if got := DefaultConfig().Timestamp(0); got != DefaultBaseTime {
		t.Fatalf("default base time %d", got)
	}
}

func TestAuctionExpiry(t *testing.T) {
	for _, c := range []Config{DefaultConfig(), {NumInFlightAuctions: 30, EventsPerSecond: 100}} {
		c = c.WithDefaults()
		g := newGen(t, c)
		var sum, count float64
		var e Event
		for range 200_000 {
			g.Next(&e)
			if e.Kind != KindAuction {
				continue
			}
			a := e.Auction
			if a.Expires <= a.DateTime {
				t.Fatalf("auction %d expires at %d, not after %d", a.ID, a.Expires, a.DateTime)
			}
			sum += float64(a.Expires - a.DateTime)
			count++
		}
		// Mean: the time in which NumInFlightAuctions auctions are made.
		want := float64(c.NumInFlightAuctions) * 50 / 3 * 1000 / float64(c.EventsPerSecond)
		if got := sum / count; math.Abs(got-want) > 0.05*want {
			t.Errorf("%+v: mean auction length %.1f ms, want about %.1f", c, got, want)
		}
	}
}

func TestBinarySizes(t *testing.T) {
	for _, c := range []Config{
		DefaultConfig(),
		{AvgPersonByteSize: 1000, AvgAuctionByteSize: 2000, AvgBidByteSize: 300, Seed: 3},
		{AvgPersonByteSize: 150, AvgAuctionByteSize: 300, AvgBidByteSize: 140, Seed: 4},
		{AvgPersonByteSize: MaxAvgByteSize, AvgAuctionByteSize: MaxAvgByteSize, AvgBidByteSize: MaxAvgByteSize, Seed: 5},
	} {
		c = c.WithDefaults()
		g := newGen(t, c)
		var size, count [4]float64
		var e Event
		var buf []byte
		for range 100_000 {
			g.Next(&e)
			buf = AppendBinary(buf[:0], &e)
			size[e.Kind] += float64(len(buf))
			count[e.Kind]++
		}
		for k, want := range map[Kind]int64{KindPerson: c.AvgPersonByteSize, KindAuction: c.AvgAuctionByteSize, KindBid: c.AvgBidByteSize} {
			if got := size[k] / count[k]; math.Abs(got-float64(want)) > 0.1*float64(want) {
				t.Errorf("%v: average %v size %.1f bytes, want %d ± 10%%", c, k, got, want)
			}
		}
	}

	// A target below what the other fields take: no Extra.
	c := Config{AvgPersonByteSize: 1, AvgAuctionByteSize: 1, AvgBidByteSize: 1}.WithDefaults()
	g := newGen(t, c)
	var e Event
	for range 1000 {
		g.Next(&e)
		if e.Person.Extra != "" || e.Auction.Extra != "" || e.Bid.Extra != "" {
			t.Fatalf("Extra %+v with 1-byte targets", e)
		}
	}
}

// TestFields checks the ranges of the fields drawn at random.
func TestFields(t *testing.T) {
	g := newGen(t, DefaultConfig())
	var e Event
	states := map[string]bool{}
	for range 100_000 {
		g.Next(&e)
		switch e.Kind {
		case KindPerson:
			p := e.Person
			if p.Name == "" || !strings.Contains(p.EmailAddress, "@") || len(p.CreditCard) != 19 || p.City == "" || len(p.State) != 2 {
				t.Fatalf("person %+v", p)
			}
			states[p.State] = true
		case KindAuction:
			a := e.Auction
			if a.Category < FirstCategoryID || a.Category >= FirstCategoryID+NumCategories ||
				a.InitialBid < 100 || a.Reserve <= a.InitialBid || a.Reserve > 2e8 || a.ItemName == "" {
				t.Fatalf("auction %+v", a)
			}
		case KindBid:
			b := e.Bid
			if b.Price < 100 || b.Price > 1e8 || b.Channel == "" || !strings.HasPrefix(b.URL, "https://") {
				t.Fatalf("bid %+v", b)
			}
		}
	}
	for _, s := range []string{"OR", "ID", "CA"} { // Nexmark query 3
		if !states[s] {
			t.Errorf("no person in state %s", s)
		}
	}
}

// TestStandardDistributions checks the distributions that decide query
// volumes against the standard generator's: NUM_CATEGORIES = 5 categories,
// uniform; city and state uniform over 10 cities and 6 states, drawn
// independently (every one of the 60 pairs occurs), so that half of the
// people live in OR, ID or CA (query 3).
func TestStandardDistributions(t *testing.T) {
	if NumCategories != 5 {
		t.Fatalf("NumCategories = %d, want the standard 5", NumCategories)
	}
	g := newGen(t, DefaultConfig())
	var e Event
	cats := map[int64]int{}
	pairs := map[string]int{}
	var people, q3 int
	for range 1_000_000 {
		g.Next(&e)
		switch e.Kind {
		case KindPerson:
			people++
			pairs[e.Person.City+"/"+e.Person.State]++
			if s := e.Person.State; s == "OR" || s == "ID" || s == "CA" {
				q3++
			}
		case KindAuction:
			cats[e.Auction.Category]++
		}
	}
	if len(cats) != 5 {
		t.Fatalf("categories %v, want 5", cats)
	}
	auctions := 0
	for _, n := range cats {
		auctions += n
	}
	for c, n := range cats {
		if c < FirstCategoryID || c >= FirstCategoryID+5 || math.Abs(float64(n)/float64(auctions)-0.2) > 0.01 {
			t.Errorf("category %d: %d of %d auctions, want 1/5", c, n, auctions)
		}
	}
	if len(pairs) != 60 {
		t.Errorf("%d city/state pairs, want all 60 of 10 cities x 6 states", len(pairs))
	}
	if f := float64(q3) / float64(people); math.Abs(f-0.5) > 0.02 {
		t.Errorf("%.3f of the people in OR, ID or CA, want 0.5", f)
	}
}

func TestValidate(t *testing.T) {
	if _, err := NewGenerator(Config{}); err == nil || !strings.Contains(err.Error(), "EventsPerSecond") {
		t.Fatalf("NewGenerator(Config{}) = %v, want an error naming EventsPerSecond", err)
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Config){
		"Count":                   func(c *Config) { c.Count = -1 },
		"BaseTime":                func(c *Config) { c.BaseTime = -5 },
		"AvgBidByteSize":          func(c *Config) { c.AvgBidByteSize = MaxAvgByteSize + 1 },
		"NumInFlightAuctions":     func(c *Config) { c.NumInFlightAuctions = MaxNumInFlightAuctions + 1 },
		"EventsPerSecond must be": func(c *Config) { c.EventsPerSecond = 2e9 },
		"HotBiddersRatio":         func(c *Config) { c.HotBiddersRatio = -1 },
	} {
		c := DefaultConfig()
		mod(&c)
		if _, err := NewGenerator(c); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %v", name, err)
		}
	}
	c := Config{Seed: 5, EventsPerSecond: 3, Count: 9}.WithDefaults()
	if c.Seed != 5 || c.EventsPerSecond != 3 || c.Count != 9 || c.AvgBidByteSize != DefaultAvgBidByteSize {
		t.Fatalf("WithDefaults changed a set field or missed a default: %+v", c)
	}
}

func TestZeroAllocs(t *testing.T) {
	g := newGen(t, DefaultConfig())
	var e Event
	buf := make([]byte, 0, 1<<16)
	var bid []byte
	for bid == nil {
		g.Next(&e)
		if e.Kind == KindBid {
			bid = AppendBinary(nil, &e)
		}
	}
	for name, f := range map[string]func(){
		"Next":         func() { g.Next(&e) },
		"AppendBinary": func() { g.Next(&e); buf = AppendBinary(buf[:0], &e) },
		"DecodeBinary": func() {
			if err := DecodeBinary(bid, &e); err != nil {
				t.Fatal(err)
			}
		},
		"BidFields":  func() { BidFields(bid) },
		"AppendJSON": func() { g.Next(&e); buf = AppendJSON(buf[:0], &e) },
	} {
		if a := testing.AllocsPerRun(1000, f); a != 0 {
			t.Errorf("%s: %.1f allocations per call", name, a)
		}
	}
}

func BenchmarkNext(b *testing.B) {
	g := newGen(b, DefaultConfig())
	var e Event
	for b.Loop() {
		g.Next(&e)
	}
}
