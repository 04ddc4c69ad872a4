//go:build !wasip1

package queries_test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/weirstream/weir/internal/nexmark"
	weir "github.com/weirstream/weir/sdk/go"
	"github.com/weirstream/weir/sdk/go/weirtest"
)

func open(t *testing.T, name string) *weirtest.Harness {
	t.Helper()
	h, err := weirtest.New(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Open(nil); err != nil {
		t.Fatal(err)
	}
	return h
}

func person(id int64, name, city, state string, ts int64) nexmark.Event {
	return nexmark.Event{Kind: nexmark.KindPerson, Person: nexmark.Person{ID: id, Name: name, City: city, State: state,
		EmailAddress: "x@y", CreditCard: "1234", DateTime: ts}}
}

func auction(id, seller, category, ts, expires int64) nexmark.Event {
	return nexmark.Event{Kind: nexmark.KindAuction, Auction: nexmark.Auction{ID: id, Seller: seller, Category: category,
		DateTime: ts, Expires: expires, ItemName: "item", InitialBid: 1, Reserve: 2}}
}

func bid(auction, bidder, price, ts int64) nexmark.Event {
	return nexmark.Event{Kind: nexmark.KindBid, Bid: nexmark.Bid{Auction: auction, Bidder: bidder, Price: price,
		Channel: "Google", URL: "https://example.com/x?y=\"z\"", DateTime: ts, Extra: "tab\there"}}
}

func rec(key string, e nexmark.Event) weir.Record {
	r := weir.Record{Value: nexmark.AppendBinary(nil, &e), Timestamp: e.DateTime()}
	if key != "" {
		r.Key = []byte(key)
	}
	return r
}

// show formats outputs as key|value|ts (with the side output name first
// when there is one), decoding 16-byte pair values as "(a,b)".
func show(outs []weirtest.Output) []string {
	var s []string
	for _, o := range outs {
		v := string(o.Record.Value)
		if len(o.Record.Value) == 16 && !strings.HasPrefix(v, "{") {
			v = fmt.Sprintf("(%d,%d)", int64(binary.LittleEndian.Uint64(o.Record.Value)), int64(binary.LittleEndian.Uint64(o.Record.Value[8:])))
		}
		line := fmt.Sprintf("%s|%s|%d", o.Record.Key, v, o.Record.Timestamp)
		if o.SideOutput != "" {
			line = o.SideOutput + ":" + line
		}
		s = append(s, line)
	}
	return s
}

func check(t *testing.T, what string, outs []weirtest.Output, err error, want ...string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if got := show(outs); !slices.Equal(got, want) {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

// jsonOf marshals v with encoding/json: the expected values are built
// independently of the operators' own encoder.
func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestStatelessQueries(t *testing.T) {
	events := []nexmark.Event{
		person(1000, "Ann", "Boise", "ID", 5),
		bid(1107, 1000, 1000, 6),
		auction(1001, 1000, 10, 7, 100),
		bid(246, 1001, 999, 8), // 246 = 2*123
		bid(1, 1001, 3, 9),
	}
	var in []weir.Record
	for _, e := range events {
		in = append(in, rec("", e))
	}
	var want0, want1, want2 []string
	for _, e := range events {
		if e.Kind != nexmark.KindBid {
			continue
		}
		b := e.Bid
		want0 = append(want0, "|"+jsonOf(t, b)+"|"+fmt.Sprint(b.DateTime))
		want1 = append(want1, "|"+fmt.Sprintf(`{"auction":%d,"bidder":%d,"price":%d,"dateTime":%d}`,
			b.Auction, b.Bidder, int64(math.Floor(float64(b.Price)*0.908+1e-9)), b.DateTime)+"|"+fmt.Sprint(b.DateTime))
		if b.Auction%123 == 0 {
			want2 = append(want2, "|"+fmt.Sprintf(`{"auction":%d,"price":%d}`, b.Auction, b.Price)+"|"+fmt.Sprint(b.DateTime))
		}
	}
	for _, c := range []struct {
		op   string
		want []string
	}{{"q0", want0}, {"q1", want1}, {"q2", want2}} {
		outs, err := open(t, c.op).Process(in...)
		check(t, c.op, outs, err, c.want...)
	}
	if _, err := open(t, "q0").Process(weir.Record{Value: []byte{9, 9}}); err == nil || !strings.Contains(err.Error(), "q0: decoding") {
		t.Errorf("q0 on garbage: err = %v, want a decoding error", err)
	}
}

func TestQ3(t *testing.T) {
	split := open(t, "q3_split")
	outs, err := split.Process(rec("", person(1000, "Ann", "Boise", "ID", 1)), rec("", person(1001, "Bob", "Reno", "NV", 2)),
		rec("", auction(2000, 1000, 10, 3, 50)), rec("", auction(2001, 1000, 11, 4, 50)), rec("", bid(2000, 1001, 5, 5)))
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 2 || string(outs[0].Record.Key) != "1000" || outs[0].SideOutput != "" ||
		string(outs[1].Record.Key) != "1000" || outs[1].SideOutput != "auctions" {
		t.Errorf("q3_split: %q", show(outs))
	}

	h := open(t, "q3_join")
	// Person first: the auction joins at once, at the auction's time.
	outs, err = h.ProcessPort(0, rec("1000", person(1000, "Ann \"A\"", "Boise", "ID", 10)))
	check(t, "person", outs, err)
	outs, err = h.ProcessPort(1, rec("1000", auction(2000, 1000, 10, 20, 90)))
	check(t, "auction after person", outs, err, `2000|{"name":"Ann \"A\"","city":"Boise","state":"ID","auction":2000}|20`)
	// Auction first: it waits for the person, and joins at the later time.
	outs, err = h.ProcessPort(1, rec("1001", auction(2001, 1001, 10, 30, 90)), rec("1001", auction(2002, 1001, 10, 31, 90)))
	check(t, "auctions before person", outs, err)
	outs, err = h.ProcessPort(0, rec("1001", person(1001, "Bob", "Portland", "OR", 29)))
	check(t, "person after auctions", outs, err,
		`2001|{"name":"Bob","city":"Portland","state":"OR","auction":2001}|30`,
		`2002|{"name":"Bob","city":"Portland","state":"OR","auction":2002}|31`)
	// An auction whose seller never comes is dropped when the watermark
	// passes it.
	outs, err = h.ProcessPort(1, rec("1002", auction(2003, 1002, 10, 40, 90)))
	check(t, "auction of an unknown seller", outs, err)
	h.Watermark = 40
	outs, err = h.FireTimers()
	check(t, "timers", outs, err)
	if l := h.Host.List("pending", "1002"); len(l) > 0 {
		t.Error("the waiting auction of 1002 is still in state after the watermark passed it")
	}
}

func pairValue(a, b int64) []byte {
	v := binary.LittleEndian.AppendUint64(nil, uint64(a))
	return binary.LittleEndian.AppendUint64(v, uint64(b))
}

func TestQ4Max(t *testing.T) {
	h := open(t, "q4_max")
	// A bid before its auction waits; bids outside [start, expires] do not count.
	outs, err := h.ProcessPort(1, rec("2000", bid(2000, 1, 70, 15)))
	check(t, "early bid", outs, err)
	outs, err = h.ProcessPort(0, rec("2000", auction(2000, 1000, 12, 10, 50)))
	check(t, "auction", outs, err)
	outs, err = h.ProcessPort(1, rec("2000", bid(2000, 1, 60, 20)), rec("2000", bid(2000, 2, 500, 51)), rec("2000", bid(2000, 2, 80, 50)),
		rec("2000", bid(2000, 2, 90, 9)))
	check(t, "bids", outs, err)
	// An auction without a valid bid closes silently.
	outs, err = h.ProcessPort(0, rec("2001", auction(2001, 1000, 12, 10, 40)))
	check(t, "auction 2001", outs, err)
	h.Watermark = 49
	outs, err = h.FireTimers()
	check(t, "before expires", outs, err)
	h.Watermark = 50
	outs, err = h.FireTimers()
	check(t, "at expires", outs, err, "12|(2000,80)|50")
	if _, ok := h.Host.Value("auction", "2000"); ok {
		t.Error("the closed auction is still in state")
	}
	// A bid for a closed auction waits, then goes at its own time.
	outs, err = h.ProcessPort(1, rec("2000", bid(2000, 1, 70, 60)))
	check(t, "late bid", outs, err)
	h.Watermark = 60
	outs, err = h.FireTimers()
	check(t, "late bid dropped", outs, err)
	if l := h.Host.List("early", "2000"); len(l) > 0 {
		t.Error("the bid of a closed auction is still in state")
	}
}

func TestQ4Average(t *testing.T) {
	h := open(t, "q4_average")
	// Closings arrive out of order; they are applied by (expires, auction).
	outs, err := h.Process(weir.Record{Key: []byte("10"), Value: pairValue(3000, 30), Timestamp: 200},
		weir.Record{Key: []byte("10"), Value: pairValue(2002, 10), Timestamp: 100},
		weir.Record{Key: []byte("10"), Value: pairValue(2001, 21), Timestamp: 100},
		weir.Record{Key: []byte("11"), Value: pairValue(2005, 7), Timestamp: 100})
	check(t, "closings", outs, err)
	h.Watermark = 150
	outs, err = h.FireTimers()
	check(t, "up to 150", outs, err,
		`10|{"category":10,"auctions":1,"sum":21,"avg":21}|100`,
		`10|{"category":10,"auctions":2,"sum":31,"avg":15}|100`,
		`11|{"category":11,"auctions":1,"sum":7,"avg":7}|100`)
	h.Watermark = math.MaxInt64
	outs, err = h.FireTimers()
	check(t, "the rest", outs, err, `10|{"category":10,"auctions":3,"sum":61,"avg":20}|200`)
	if _, err := h.Process(weir.Record{Key: []byte("10"), Value: []byte("xx"), Timestamp: 1}); err == nil {
		t.Error("a 2-byte value was accepted")
	}
}

func TestQ5(t *testing.T) {
	outs, err := open(t, "q5_bids").Process(rec("", bid(2000, 1, 5, 7)), rec("", person(1, "a", "b", "c", 8)))
	check(t, "q5_bids", outs, err, "2000||7")

	agg := open(t, "q5_count")
	accs, err := agg.AggAdd(weirtest.AggGroup{Acc: weirtest.Accumulator{Key: []byte("2000"), Timestamp: 9999},
		Records: []weir.Record{{Key: []byte("2000"), Timestamp: 1}, {Key: []byte("2000"), Timestamp: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	accs, err = agg.AggMerge([2]weirtest.Accumulator{accs[0], accs[0]})
	if err != nil {
		t.Fatal(err)
	}
	outs, err = agg.AggResult(accs[0])
	check(t, "q5_count", outs, err, "10000|(2000,4)|9999")

	h := open(t, "q5_hot")
	outs, err = h.Process(weir.Record{Key: []byte("10000"), Value: pairValue(2000, 4), Timestamp: 9999},
		weir.Record{Key: []byte("10000"), Value: pairValue(2001, 7), Timestamp: 9999},
		weir.Record{Key: []byte("12000"), Value: pairValue(2001, 1), Timestamp: 11999},
		weir.Record{Key: []byte("10000"), Value: pairValue(2002, 7), Timestamp: 9999},
		weir.Record{Key: []byte("10000"), Value: pairValue(2003, 6), Timestamp: 9999})
	check(t, "counts", outs, err)
	h.Watermark = 9999
	outs, err = h.FireTimers()
	check(t, "window 10000 (a tie)", outs, err,
		`2001|{"auction":2001,"count":7,"window_end":10000}|9999`,
		`2002|{"auction":2002,"count":7,"window_end":10000}|9999`)
	h.Watermark = 11999
	outs, err = h.FireTimers()
	check(t, "window 12000", outs, err, `2001|{"auction":2001,"count":1,"window_end":12000}|11999`)
}

func TestQ7(t *testing.T) {
	outs, err := open(t, "q7_bids").Process(rec("", bid(2000, 1, 5, 19999)), rec("", bid(2000, 1, 5, 20000)))
	if err != nil || len(outs) != 2 || string(outs[0].Record.Key) != "10000" || string(outs[1].Record.Key) != "20000" {
		t.Errorf("q7_bids: %q, %v; want keys 10000 and 20000", show(outs), err)
	}

	h := open(t, "q7_max")
	group := func(bids ...nexmark.Event) weirtest.AggGroup {
		g := weirtest.AggGroup{Acc: weirtest.Accumulator{Key: []byte("10000"), Timestamp: 19999}}
		for _, b := range bids {
			g.Records = append(g.Records, rec("10000", b))
		}
		return g
	}
	// Ties on price go to the earliest, then the lowest auction, then bidder.
	a, err := h.AggAdd(group(bid(2005, 9, 50, 12000), bid(2004, 9, 70, 13000), bid(2003, 8, 70, 13000), bid(2003, 7, 70, 13000)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.AggAdd(group(bid(2002, 9, 70, 14000), bid(2009, 1, 10, 11000)))
	if err != nil {
		t.Fatal(err)
	}
	for _, order := range [][2]weirtest.Accumulator{{a[0], b[0]}, {b[0], a[0]}} {
		m, err := h.AggMerge(order)
		if err != nil {
			t.Fatal(err)
		}
		outs, err := h.AggResult(m[0])
		check(t, "q7_max", outs, err, `10000|{"auction":2003,"price":70,"bidder":7,"dateTime":13000}|19999`)
	}
	empty, err := h.AggAdd(weirtest.AggGroup{Acc: weirtest.Accumulator{Key: []byte("0"), Timestamp: 9999}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := h.AggMerge([2]weirtest.Accumulator{empty[0], b[0]})
	if err != nil {
		t.Fatal(err)
	}
	outs, err = h.AggResult(m[0])
	check(t, "merge with an empty accumulator", outs, err, `0|{"auction":2002,"price":70,"bidder":9,"dateTime":14000}|9999`)
}

func TestQ8(t *testing.T) {
	outs, err := open(t, "q8_split").Process(rec("", person(1000, "a", "b", "c", 1)), rec("", auction(2000, 999, 10, 2, 50)), rec("", bid(1, 2, 3, 4)))
	check(t, "q8_split", outs, err, "1000|"+string(nexmark.AppendBinary(nil, ptr(person(1000, "a", "b", "c", 1))))+"|1",
		"auctions:999|"+string(nexmark.AppendBinary(nil, ptr(auction(2000, 999, 10, 2, 50))))+"|2")

	h := open(t, "q8_join")
	// 1000 registers at 12000 and sells at 19999: window [10000, 20000).
	// 1001 sells first (at 13000), then registers at 15000.
	// 1002 registers at 19000 and sells at 20000: another window.
	// 1003 sells in [10000, 20000) and never registers.
	outs, err = h.ProcessPort(0, rec("1000", person(1000, "Ann", "x", "y", 12000)))
	check(t, "1000", outs, err)
	outs, err = h.ProcessPort(1, rec("1001", auction(3000, 1001, 10, 13000, 90000)), rec("1003", auction(3001, 1003, 10, 13000, 90000)))
	check(t, "auctions first", outs, err)
	outs, err = h.ProcessPort(0, rec("1001", person(1001, "Bob", "x", "y", 15000)), rec("1002", person(1002, "Cy", "x", "y", 19000)))
	check(t, "persons", outs, err)
	outs, err = h.ProcessPort(1, rec("1000", auction(3002, 1000, 10, 19999, 90000)), rec("1000", auction(3003, 1000, 10, 19999, 90000)),
		rec("1002", auction(3004, 1002, 10, 20000, 90000)))
	check(t, "auctions", outs, err)
	h.Watermark = 19999
	outs, err = h.FireTimers()
	check(t, "window [10000, 20000)", outs, err,
		`1000|{"id":1000,"name":"Ann","window_start":10000}|19999`,
		`1001|{"id":1001,"name":"Bob","window_start":10000}|19999`)
	h.Watermark = math.MaxInt64
	outs, err = h.FireTimers()
	check(t, "the rest", outs, err)
	for _, k := range []string{"1000", "1001", "1002", "1003"} {
		if _, ok := h.Host.Value("person", k); ok {
			t.Errorf("person %s is still in state", k)
		}
	}
}

func ptr(e nexmark.Event) *nexmark.Event { return &e }
