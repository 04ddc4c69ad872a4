package queries

import (
	"encoding/binary"
	"errors"
	"strconv"

	"github.com/weirstream/weir/internal/nexmark"
	weir "github.com/weirstream/weir/sdk/go"
)

// WindowMillis is the size of the tumbling windows of q7 and q8 (10 s).
// The job specs must give q7_max a tumbling window of the same size.
const WindowMillis = 10_000

func init() {
	weir.FlatMap("q7_bids", q7Bids)
	weir.Aggregate("q7_max", q7Max{}, weir.Codec[q7Best](q7BestCodec{}))
}

// windowStart returns the start of the WindowMillis window holding ts
// (windows are aligned on the epoch).
func windowStart(ts int64) int64 {
	s := ts - ts%WindowMillis
	if ts < 0 && ts%WindowMillis != 0 {
		s -= WindowMillis
	}
	return s
}

// q7Bids keeps the bids, keyed by the start of their WindowMillis window
// (decimal ms), so that the windows spread over the subtasks of q7_max;
// values and timestamps are the events'.
func q7Bids(r weir.Record, out weir.Emitter) error {
	var e nexmark.Event
	if err := decode("q7_bids", r, &e); err != nil {
		return err
	}
	if e.Kind != nexmark.KindBid {
		return nil
	}
	var key [20]byte
	out.Emit(weir.Record{Key: appendKey(key[:0], windowStart(e.Bid.DateTime)), Value: r.Value, Timestamp: r.Timestamp})
	return nil
}

// q7Best is the highest bid of a window so far.
type q7Best struct {
	set                              bool
	price, auction, bidder, dateTime int64
}

// better reports whether b beats the current best: a higher price; among
// equal prices the earlier dateTime, then the lower auction id, then the
// lower bidder id. So of tied highest bids q7 reports exactly one, the
// first by (dateTime, auction, bidder).
func (c q7Best) better(b q7Best) bool {
	switch {
	case !c.set:
		return b.set
	case !b.set:
		return false
	case b.price != c.price:
		return b.price > c.price
	case b.dateTime != c.dateTime:
		return b.dateTime < c.dateTime
	case b.auction != c.auction:
		return b.auction < c.auction
	}
	return b.bidder < c.bidder
}

// q7BestCodec encodes a q7Best as 33 bytes: a set flag then price,
// auction, bidder and dateTime, little endian; the empty accumulator is 1
// zero byte.
type q7BestCodec struct{}

func (q7BestCodec) Append(dst []byte, b q7Best) []byte {
	if !b.set {
		return append(dst, 0)
	}
	dst = append(dst, 1)
	for _, v := range [...]int64{b.price, b.auction, b.bidder, b.dateTime} {
		dst = binary.LittleEndian.AppendUint64(dst, uint64(v))
	}
	return dst
}

func (q7BestCodec) Decode(b []byte) (q7Best, error) {
	switch {
	case len(b) == 1 && b[0] == 0:
		return q7Best{}, nil
	case len(b) == 33 && b[0] == 1:
		u := func(i int) int64 { return int64(binary.LittleEndian.Uint64(b[1+8*i:])) }
		return q7Best{set: true, price: u(0), auction: u(1), bidder: u(2), dateTime: u(3)}, nil
	}
	return q7Best{}, errors.New("q7 accumulator of " + strconv.Itoa(len(b)) + " bytes, want 1 or 33")
}

// q7Max keeps the highest bid of a tumbling window (see q7Best.better for
// ties) and emits it when the window fires: {"auction","price","bidder",
// "dateTime"}, keyed by the window's start, with the window's last
// millisecond as timestamp.
type q7Max struct{}

func (q7Max) Create() q7Best { return q7Best{} }

func (q7Max) Add(acc q7Best, r weir.Record) q7Best {
	var e nexmark.Event
	if err := nexmark.DecodeBinary(r.Value, &e); err != nil {
		panic("q7_max: decoding a nexmark event: " + err.Error())
	}
	if e.Kind != nexmark.KindBid {
		panic("q7_max: wants bids, got a " + e.Kind.String())
	}
	b := q7Best{set: true, price: e.Bid.Price, auction: e.Bid.Auction, bidder: e.Bid.Bidder, dateTime: e.Bid.DateTime}
	if acc.better(b) {
		return b
	}
	return acc
}

func (q7Max) Merge(a, b q7Best) q7Best {
	if a.better(b) {
		return b
	}
	return a
}

func (q7Max) Result(_ []byte, _ int64, acc q7Best) weir.Record {
	if !acc.set {
		return weir.Record{Value: []byte("{}")}
	}
	var buf [128]byte
	v := appendIntField(buf[:0], '{', "auction", acc.auction)
	v = appendIntField(v, ',', "price", acc.price)
	v = appendIntField(v, ',', "bidder", acc.bidder)
	v = appendIntField(v, ',', "dateTime", acc.dateTime)
	v = append(v, '}')
	return weir.Record{Value: v}
}
