package queries

import (
	"errors"

	"github.com/weirstream/weir/internal/nexmark"
	weir "github.com/weirstream/weir/sdk/go"
)

// Stateless queries: q0, q1 and q2 each are one flat_map over the event
// stream that keeps the bids and formats them. They allocate nothing per
// record: events are decoded in place and results are built in a stack
// buffer, which Emit copies.

// DollarsToEuros is the exchange rate of q1 in thousandths: a price p in
// dollars is p*DollarsToEuros/1000 euros, rounded towards zero (integer
// division; prices are never negative).
const DollarsToEuros = 908

// Q2Modulus selects the auctions of q2: auction % Q2Modulus == 0.
const Q2Modulus = 123

func init() {
	weir.FlatMap("q0", q0)
	weir.FlatMap("q1", q1)
	weir.FlatMap("q2", q2)
}

// decode decodes r's value into e, saying which operator failed.
func decode(op string, r weir.Record, e *nexmark.Event) error {
	if err := nexmark.DecodeBinary(r.Value, e); err != nil {
		return errors.New(op + ": decoding a nexmark event: " + err.Error())
	}
	return nil
}

// q0 is the pass-through query: every bid, all its fields, as
// {"auction","bidder","price","channel","url","dateTime","extra"}, with no
// key and the bid's timestamp.
func q0(r weir.Record, out weir.Emitter) error {
	var e nexmark.Event
	if err := decode("q0", r, &e); err != nil {
		return err
	}
	if e.Kind != nexmark.KindBid {
		return nil
	}
	var buf [512]byte
	b := &e.Bid
	v := appendIntField(buf[:0], '{', "auction", b.Auction)
	v = appendIntField(v, ',', "bidder", b.Bidder)
	v = appendIntField(v, ',', "price", b.Price)
	v = appendStringField(v, ',', "channel", b.Channel)
	v = appendStringField(v, ',', "url", b.URL)
	v = appendIntField(v, ',', "dateTime", b.DateTime)
	v = appendStringField(v, ',', "extra", b.Extra)
	v = append(v, '}')
	out.Emit(weir.Record{Value: v, Timestamp: r.Timestamp})
	return nil
}

// q1 converts the price of every bid to euros (see DollarsToEuros):
// {"auction","bidder","price","dateTime"}, no key, the bid's timestamp.
// The SQL query also selects extra; it is left out here, as in the
// original Nexmark definition.
func q1(r weir.Record, out weir.Emitter) error {
	var e nexmark.Event
	if err := decode("q1", r, &e); err != nil {
		return err
	}
	if e.Kind != nexmark.KindBid {
		return nil
	}
	var buf [128]byte
	b := &e.Bid
	v := appendIntField(buf[:0], '{', "auction", b.Auction)
	v = appendIntField(v, ',', "bidder", b.Bidder)
	v = appendIntField(v, ',', "price", b.Price*DollarsToEuros/1000)
	v = appendIntField(v, ',', "dateTime", b.DateTime)
	v = append(v, '}')
	out.Emit(weir.Record{Value: v, Timestamp: r.Timestamp})
	return nil
}

// q2 keeps the bids on auctions whose id is a multiple of Q2Modulus:
// {"auction","price"}, no key, the bid's timestamp.
func q2(r weir.Record, out weir.Emitter) error {
	var e nexmark.Event
	if err := decode("q2", r, &e); err != nil {
		return err
	}
	if e.Kind != nexmark.KindBid || e.Bid.Auction%Q2Modulus != 0 {
		return nil
	}
	var buf [64]byte
	v := appendIntField(buf[:0], '{', "auction", e.Bid.Auction)
	v = appendIntField(v, ',', "price", e.Bid.Price)
	v = append(v, '}')
	out.Emit(weir.Record{Value: v, Timestamp: r.Timestamp})
	return nil
}
