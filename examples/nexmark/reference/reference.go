// Package reference computes the results of the Nexmark queries of
// examples/nexmark directly from a slice of events: plain Go, no SDK, no
// engine, no state or timers. It is written apart from the operators in
// examples/nexmark/queries (it sorts and groups the whole input where they
// keep per-key state and fire timers), so that the end-to-end test can
// hold the engine's output against it.
//
// Every function returns the expected output records in no particular
// order; compare them as a multiset. Values are JSON objects made with
// encoding/json; compare them after parsing, not byte for byte.
package reference

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	"github.com/weirstream/weir/internal/nexmark"
)

// Record is one expected output record.
type Record struct {
	Key       string
	Value     string // a JSON object
	Timestamp int64
}

// String formats r for test messages.
func (r Record) String() string {
	return fmt.Sprintf("key=%q value=%s ts=%d", r.Key, r.Value, r.Timestamp)
}

// Query is the reference computation of one query.
type Query func(events []nexmark.Event) []Record

// Queries maps the query names (q0, q1, ...) to their computations.
var Queries = map[string]Query{
	"q0": Q0, "q1": Q1, "q2": Q2, "q3": Q3, "q4": Q4, "q5": Q5, "q7": Q7, "q8": Q8,
}

// Window sizes of the windowed queries, in ms.
const (
	Q5Size  = 10_000 // q5: sliding window size
	Q5Slide = 2_000  // q5: sliding window step
	Q7Size  = 10_000 // q7: tumbling window
	Q8Size  = 10_000 // q8: tumbling window
)

func record(key string, ts int64, value any) Record {
	b, err := json.Marshal(value)
	if err != nil {
		panic("reference: " + err.Error()) // only plain structs are marshalled
	}
	return Record{Key: key, Value: string(b), Timestamp: ts}
}

func bids(events []nexmark.Event) []nexmark.Bid {
	var out []nexmark.Bid
	for i := range events {
		if events[i].Kind == nexmark.KindBid {
			out = append(out, events[i].Bid)
		}
	}
	return out
}

// Q0 is every bid with all its fields, no key, at the bid's time.
func Q0(events []nexmark.Event) []Record {
	var out []Record
	for _, b := range bids(events) {
		out = append(out, record("", b.DateTime, b)) // the json tags of nexmark.Bid name the fields
	}
	return out
}

// Q1 is every bid with its price in euros: floor(price * 0.908).
func Q1(events []nexmark.Event) []Record {
	type euroBid struct {
		Auction  int64 `json:"auction"`
		Bidder   int64 `json:"bidder"`
		Price    int64 `json:"price"`
		DateTime int64 `json:"dateTime"`
	}
	var out []Record
	for _, b := range bids(events) {
		out = append(out, record("", b.DateTime, euroBid{b.Auction, b.Bidder, b.Price * 908 / 1000, b.DateTime}))
	}
	return out
}

// Q2 is (auction, price) of the bids on auctions whose id is a multiple of
// 123.
func Q2(events []nexmark.Event) []Record {
	type auctionPrice struct {
		Auction int64 `json:"auction"`
		Price   int64 `json:"price"`
	}
	var out []Record
	for _, b := range bids(events) {
		if b.Auction%123 == 0 {
			out = append(out, record("", b.DateTime, auctionPrice{b.Auction, b.Price}))
		}
	}
	return out
}

// Q3 joins the persons of OR, ID and CA with the auctions of category 10
// they sell: (name, city, state, auction id), keyed by the auction id, at
// the later of the two events' times.
func Q3(events []nexmark.Event) []Record {
	type local struct {
		Name    string `json:"name"`
		City    string `json:"city"`
		State   string `json:"state"`
		Auction int64  `json:"auction"`
	}
	persons := map[int64]nexmark.Person{}
	for i := range events {
		if p := events[i].Person; events[i].Kind == nexmark.KindPerson && (p.State == "OR" || p.State == "ID" || p.State == "CA") {
			persons[p.ID] = p
		}
	}
	var out []Record
	for i := range events {
		a := events[i].Auction
		if events[i].Kind != nexmark.KindAuction || a.Category != 10 {
			continue
		}
		if p, ok := persons[a.Seller]; ok {
			out = append(out, record(strconv.FormatInt(a.ID, 10), max(p.DateTime, a.DateTime),
				local{p.Name, p.City, p.State, a.ID}))
		}
	}
	return out
}

// Q4 is the running average closing price per category. The closing price
// of an auction is its highest bid among the bids dated within [auction
// time, expires]; auctions without such a bid have none and are left out.
// Each category's closed auctions, ordered by (expires, auction id), give
// one record each: (category, number of auctions so far, sum of their
// closing prices, sum/number with integer division), keyed by the
// category, at the auction's expires.
func Q4(events []nexmark.Event) []Record {
	type average struct {
		Category int64 `json:"category"`
		Auctions int64 `json:"auctions"`
		Sum      int64 `json:"sum"`
		Avg      int64 `json:"avg"`
	}
	auctions := map[int64]nexmark.Auction{}
	for i := range events {
		if events[i].Kind == nexmark.KindAuction {
			auctions[events[i].Auction.ID] = events[i].Auction
		}
	}
	closing := map[int64]int64{} // auction id -> highest valid price
	for _, b := range bids(events) {
		a, ok := auctions[b.Auction]
		if !ok || b.DateTime < a.DateTime || b.DateTime > a.Expires {
			continue
		}
		if p, seen := closing[a.ID]; !seen || b.Price > p {
			closing[a.ID] = b.Price
		}
	}
	closed := make([]nexmark.Auction, 0, len(closing))
	for id := range closing {
		closed = append(closed, auctions[id])
	}
	sort.Slice(closed, func(i, j int) bool {
		x, y := closed[i], closed[j]
		if x.Category != y.Category {
			return x.Category < y.Category
		}
		if x.Expires != y.Expires {
			return x.Expires < y.Expires
		}
		return x.ID < y.ID
	})
	var out []Record
	var n, sum int64
	for i, a := range closed {
		if i == 0 || a.Category != closed[i-1].Category {
			n, sum = 0, 0
		}
		n++
		sum += closing[a.ID]
		out = append(out, record(strconv.FormatInt(a.Category, 10), a.Expires, average{a.Category, n, sum, sum / n}))
	}
	return out
}

// floorDiv is the floor of a/b for b > 0.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// Q5 is, for every sliding window of Q5Size ms every Q5Slide ms (aligned
// on the epoch) that holds a bid, the auctions with the most bids in it,
// all of them when several tie: (auction, count, exclusive window end),
// keyed by the auction, at the window's last millisecond.
func Q5(events []nexmark.Event) []Record {
	type hot struct {
		Auction   int64 `json:"auction"`
		Count     int64 `json:"count"`
		WindowEnd int64 `json:"window_end"`
	}
	type cell struct{ start, auction int64 }
	counts := map[cell]int64{}
	for _, b := range bids(events) {
		// Every window [s, s+size) with s a multiple of slide and
		// s <= t < s+size.
		last := floorDiv(b.DateTime, Q5Slide) * Q5Slide
		for s := last; s > b.DateTime-Q5Size; s -= Q5Slide {
			counts[cell{s, b.Auction}]++
		}
	}
	best := map[int64]int64{} // window start -> highest count
	for c, n := range counts {
		best[c.start] = max(best[c.start], n)
	}
	var out []Record
	for c, n := range counts {
		if n == best[c.start] {
			out = append(out, record(strconv.FormatInt(c.auction, 10), c.start+Q5Size-1, hot{c.auction, n, c.start + Q5Size}))
		}
	}
	return out
}

// Q7 is the highest bid of every tumbling window of Q7Size ms that holds a
// bid: (auction, price, bidder, dateTime), keyed by the window start, at
// the window's last millisecond. Of bids tied at the highest price the one
// with the earliest dateTime wins, then the lowest auction id, then the
// lowest bidder id.
func Q7(events []nexmark.Event) []Record {
	type highest struct {
		Auction  int64 `json:"auction"`
		Price    int64 `json:"price"`
		Bidder   int64 `json:"bidder"`
		DateTime int64 `json:"dateTime"`
	}
	all := bids(events)
	sort.SliceStable(all, func(i, j int) bool {
		x, y := all[i], all[j]
		wx, wy := floorDiv(x.DateTime, Q7Size), floorDiv(y.DateTime, Q7Size)
		switch {
		case wx != wy:
			return wx < wy
		case x.Price != y.Price:
			return x.Price > y.Price
		case x.DateTime != y.DateTime:
			return x.DateTime < y.DateTime
		case x.Auction != y.Auction:
			return x.Auction < y.Auction
		}
		return x.Bidder < y.Bidder
	})
	var out []Record
	for i, b := range all {
		w := floorDiv(b.DateTime, Q7Size) * Q7Size
		if i > 0 && floorDiv(all[i-1].DateTime, Q7Size)*Q7Size == w {
			continue // not the first of its window
		}
		out = append(out, record(strconv.FormatInt(w, 10), w+Q7Size-1, highest{b.Auction, b.Price, b.Bidder, b.DateTime}))
	}
	return out
}

// Q8 is every person who opened an auction in the tumbling window of
// Q8Size ms in which they registered: (id, name, window start), keyed by
// the person id, at the window's last millisecond.
func Q8(events []nexmark.Event) []Record {
	type newUser struct {
		ID          int64  `json:"id"`
		Name        string `json:"name"`
		WindowStart int64  `json:"window_start"`
	}
	type sellerWindow struct{ seller, start int64 }
	opened := map[sellerWindow]bool{}
	for i := range events {
		if a := events[i].Auction; events[i].Kind == nexmark.KindAuction {
			opened[sellerWindow{a.Seller, floorDiv(a.DateTime, Q8Size) * Q8Size}] = true
		}
	}
	var out []Record
	for i := range events {
		p := events[i].Person
		if events[i].Kind != nexmark.KindPerson {
			continue
		}
		w := floorDiv(p.DateTime, Q8Size) * Q8Size
		if opened[sellerWindow{p.ID, w}] {
			out = append(out, record(strconv.FormatInt(p.ID, 10), w+Q8Size-1, newUser{p.ID, p.Name, w}))
		}
	}
	return out
}
