package reference

import (
	"slices"
	"strings"
	"testing"

	"github.com/weirstream/weir/internal/nexmark"
)

// Small hand-made inputs whose results are worked out by hand in the
// comments, so the reference is itself checked.

func person(id int64, name, state string, ts int64) nexmark.Event {
	return nexmark.Event{Kind: nexmark.KindPerson, Person: nexmark.Person{ID: id, Name: name, City: "c", State: state, DateTime: ts}}
}

func auction(id, seller, category, ts, expires int64) nexmark.Event {
	return nexmark.Event{Kind: nexmark.KindAuction, Auction: nexmark.Auction{ID: id, Seller: seller, Category: category, DateTime: ts, Expires: expires}}
}

func bid(auction, bidder, price, ts int64) nexmark.Event {
	return nexmark.Event{Kind: nexmark.KindBid, Bid: nexmark.Bid{Auction: auction, Bidder: bidder, Price: price, DateTime: ts}}
}

func check(t *testing.T, what string, got []Record, want ...Record) {
	t.Helper()
	if d := Diff(want, got, 10); d != "" {
		t.Errorf("%s:\n%s", what, d)
	}
}

func TestQ1Q2(t *testing.T) {
	ev := []nexmark.Event{bid(246, 1, 1001, 5), bid(247, 1, 999, 6), person(1, "a", "OR", 7)}
	// 1001*0.908 = 908.908, 999*0.908 = 907.092
	check(t, "q1", Q1(ev),
		Record{"", `{"auction":246,"bidder":1,"price":908,"dateTime":5}`, 5},
		Record{"", `{"auction":247,"bidder":1,"price":907,"dateTime":6}`, 6})
	check(t, "q2", Q2(ev), Record{"", `{"auction":246,"price":1001}`, 5})
}

func TestQ3(t *testing.T) {
	ev := []nexmark.Event{
		person(1, "Ann", "OR", 10), person(2, "Bob", "WA", 11), person(3, "Cy", "CA", 30),
		auction(100, 1, 10, 20, 99), auction(101, 2, 10, 21, 99), auction(102, 1, 11, 22, 99),
		auction(103, 3, 10, 25, 99), // before its seller: joined at the seller's time
	}
	check(t, "q3", Q3(ev),
		Record{"100", `{"name":"Ann","city":"c","state":"OR","auction":100}`, 20},
		Record{"103", `{"name":"Cy","city":"c","state":"CA","auction":103}`, 30})
}

func TestQ4(t *testing.T) {
	ev := []nexmark.Event{
		auction(100, 1, 10, 0, 50), auction(101, 1, 10, 0, 40), auction(102, 1, 11, 0, 40),
		auction(103, 1, 10, 0, 40),                                    // no bid in range: left out
		bid(100, 1, 30, 10), bid(100, 1, 90, 51), bid(100, 1, 40, 50), // 100 closes at 40 (51 is too late)
		bid(101, 1, 7, 40), // 101 closes at 7
		bid(102, 1, 5, 1),
		bid(103, 1, 500, 41),
	}
	// Category 10: 101 (expires 40) then 100 (expires 50).
	check(t, "q4", Q4(ev),
		Record{"10", `{"category":10,"auctions":1,"sum":7,"avg":7}`, 40},
		Record{"10", `{"category":10,"auctions":2,"sum":47,"avg":23}`, 50},
		Record{"11", `{"category":11,"auctions":1,"sum":5,"avg":5}`, 40})
}

func TestQ5(t *testing.T) {
	// Windows [s, s+10000) for s = -8000, -6000, ..., 0, 2000, ...
	ev := []nexmark.Event{bid(1, 1, 1, 0), bid(2, 1, 1, 1000), bid(2, 1, 1, 2500), bid(1, 1, 1, 9999)}
	got := Q5(ev)
	var ends []string
	for _, r := range got {
		ends = append(ends, r.Value)
	}
	slices.Sort(ends)
	// Windows holding bids: starts -8000..8000 (end 2000..18000).
	// end 2000 [-8000,2000): 1:1 2:1 -> both; ends 4000, 6000, 8000 (bids at
	// 0, 1000, 2500): 1:1 2:2 -> 2; end 10000 [0,10000) holds all four:
	// 1:2 2:2 -> both; end 12000 [2000,12000): 2:1 (2500) 1:1 (9999) -> both;
	// ends 14000, 16000, 18000: 1:1 -> 1.
	want := []string{
		`{"auction":1,"count":1,"window_end":12000}`, `{"auction":1,"count":1,"window_end":14000}`,
		`{"auction":1,"count":1,"window_end":16000}`, `{"auction":1,"count":1,"window_end":18000}`,
		`{"auction":1,"count":1,"window_end":2000}`, `{"auction":1,"count":2,"window_end":10000}`,
		`{"auction":2,"count":1,"window_end":12000}`, `{"auction":2,"count":1,"window_end":2000}`,
		`{"auction":2,"count":2,"window_end":10000}`, `{"auction":2,"count":2,"window_end":4000}`,
		`{"auction":2,"count":2,"window_end":6000}`, `{"auction":2,"count":2,"window_end":8000}`,
	}
	if !slices.Equal(ends, want) {
		t.Errorf("q5:\n got %s\nwant %s", strings.Join(ends, "\n     "), strings.Join(want, "\n     "))
	}
	for _, r := range got {
		if !strings.Contains(r.Value, `"auction":`+r.Key+",") {
			t.Errorf("q5 record %v: key is not the auction", r)
		}
	}
}

func TestQ7(t *testing.T) {
	ev := []nexmark.Event{bid(1, 5, 10, 100), bid(2, 4, 10, 100), bid(3, 3, 10, 50), bid(4, 1, 9, 0),
		bid(9, 9, 3, -1), bid(8, 8, 2, 10000)}
	check(t, "q7", Q7(ev),
		Record{"-10000", `{"auction":9,"price":3,"bidder":9,"dateTime":-1}`, -1},
		Record{"0", `{"auction":3,"price":10,"bidder":3,"dateTime":50}`, 9999},
		Record{"10000", `{"auction":8,"price":2,"bidder":8,"dateTime":10000}`, 19999})
}

func TestQ8(t *testing.T) {
	ev := []nexmark.Event{
		person(1, "Ann", "x", 9000), auction(100, 1, 10, 9999, 99999), auction(101, 1, 10, 9999, 99999), // yes, once
		person(2, "Bob", "x", 9000), auction(102, 2, 10, 10000, 99999), // next window: no
		auction(103, 3, 10, 10500, 99999), person(3, "Cy", "x", 19999), // auction first, same window: yes
	}
	check(t, "q8", Q8(ev),
		Record{"1", `{"id":1,"name":"Ann","window_start":0}`, 9999},
		Record{"3", `{"id":3,"name":"Cy","window_start":10000}`, 19999})
}

func TestDiff(t *testing.T) {
	a := []Record{{"k", `{"a":1,"b":"x"}`, 1}, {"k", `{"a":1,"b":"x"}`, 1}}
	if d := Diff(a, []Record{{"k", `{ "b":"x", "a":1 }`, 1}, {"k", `{"a":1,"b":"x"}`, 1}}, 5); d != "" {
		t.Errorf("equal multisets differ:\n%s", d)
	}
	d := Diff(a, []Record{{"k", `{"a":1,"b":"x"}`, 1}, {"k", `{"a":2,"b":"x"}`, 1}}, 5)
	if !strings.Contains(d, "1 missing, 1 unexpected") || !strings.Contains(d, `{"a":2,"b":"x"}`) {
		t.Errorf("diff of a changed record:\n%s", d)
	}
	if d := Diff(a, a[:1], 5); !strings.Contains(d, "1 missing, 0 unexpected") {
		t.Errorf("diff of a lost duplicate:\n%s", d)
	}
	if d := Diff(a, []Record{{"k", `not json`, 1}}, 5); !strings.Contains(d, "not a JSON object") {
		t.Errorf("diff with a bad value: %s", d)
	}
}
