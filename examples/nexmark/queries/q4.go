package queries

import (
	"encoding/binary"
	"errors"
	"slices"
	"strconv"

	"github.com/weirstream/weir/internal/nexmark"
	weir "github.com/weirstream/weir/sdk/go"
)

func init() {
	weir.FlatMap("q4_split", q4Split, weir.SideOutputs("bids"))
	weir.CoProcess("q4_max", &q4Max{})
	weir.Process("q4_average", &q4Average{})
}

// q4Split sends the auctions to the main output keyed by their id and the
// bids to side output "bids" keyed by their auction. Values and timestamps
// are the events'.
func q4Split(r weir.Record, out weir.Emitter) error {
	var e nexmark.Event
	if err := decode("q4_split", r, &e); err != nil {
		return err
	}
	var key [20]byte
	switch e.Kind {
	case nexmark.KindAuction:
		out.Emit(weir.Record{Key: appendKey(key[:0], e.Auction.ID), Value: r.Value, Timestamp: r.Timestamp})
	case nexmark.KindBid:
		out.EmitTo("bids", weir.Record{Key: appendKey(key[:0], e.Bid.Auction), Value: r.Value, Timestamp: r.Timestamp})
	}
	return nil
}

// q4Max computes the winning price of each auction, keyed by auction id
// (input 0: auctions, input 1: bids). The winning price is the highest
// price among the auction's bids whose time is in [auction time, expires]
// (both ends included). The auction closes at expires, an event-time
// timer: if it had at least one such bid, q4Max emits a record keyed by
// the auction's category (decimal), with value (auction id, winning price)
// as a 16-byte pair and timestamp expires; then it forgets the auction.
// Auctions without a valid bid emit nothing (the SQL's inner join).
//
// A bid that arrives before its auction waits in list state; the
// generator only names auctions opened before the bid, so when the
// watermark passes the bid's time without the auction, the auction has
// already closed and the bid is dropped (a timer at the bid's time).
type q4Max struct {
	auction *weir.ValueState[q4Auction]
	best    *weir.ValueState[int64] // highest valid price so far
	early   *weir.ListState[pair]   // (price, time) of bids before their auction
}

// q4Auction is what q4 keeps of an auction.
type q4Auction struct{ start, expires, category int64 }

type q4AuctionCodec struct{}

func (q4AuctionCodec) Append(dst []byte, a q4Auction) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, uint64(a.start))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(a.expires))
	return binary.LittleEndian.AppendUint64(dst, uint64(a.category))
}

func (q4AuctionCodec) Decode(b []byte) (q4Auction, error) {
	if len(b) != 24 {
		return q4Auction{}, errors.New("q4 auction: want 24 bytes")
	}
	return q4Auction{int64(binary.LittleEndian.Uint64(b)), int64(binary.LittleEndian.Uint64(b[8:])),
		int64(binary.LittleEndian.Uint64(b[16:]))}, nil
}

func (m *q4Max) Open(o *weir.OpenContext) error {
	m.auction = weir.NewValueState(o, "auction", weir.Codec[q4Auction](q4AuctionCodec{}))
	m.best = weir.NewValueState(o, "best", weir.Int64Codec)
	m.early = weir.NewListState(o, "early", weir.Codec[pair](pairCodec{}))
	return nil
}

// ProcessElement1 handles an auction.
func (m *q4Max) ProcessElement1(ctx *weir.Context, r weir.Record) error {
	var e nexmark.Event
	if err := decode("q4_max", r, &e); err != nil {
		return err
	}
	if e.Kind != nexmark.KindAuction {
		return errors.New("q4_max: input 0 wants auctions, got a " + e.Kind.String())
	}
	a := q4Auction{start: e.Auction.DateTime, expires: e.Auction.Expires, category: e.Auction.Category}
	m.auction.Set(ctx, a)
	ctx.RegisterEventTimer(a.expires)
	best, found, early := int64(0), false, false
	if err := m.early.Range(ctx, func(b pair) bool {
		early = true
		if a.valid(b.b) && (!found || b.a > best) {
			best, found = b.a, true
		}
		return true
	}); err != nil {
		return err
	}
	if early {
		m.early.Clear(ctx)
	}
	if found {
		m.best.Set(ctx, best)
	}
	return nil
}

func (a q4Auction) valid(bidTime int64) bool { return bidTime >= a.start && bidTime <= a.expires }

// ProcessElement2 handles a bid.
func (m *q4Max) ProcessElement2(ctx *weir.Context, r weir.Record) error {
	var e nexmark.Event
	if err := decode("q4_max", r, &e); err != nil {
		return err
	}
	if e.Kind != nexmark.KindBid {
		return errors.New("q4_max: input 1 wants bids, got a " + e.Kind.String())
	}
	a, ok, err := m.auction.Get(ctx)
	if err != nil {
		return err
	}
	if !ok {
		m.early.Add(ctx, pair{e.Bid.Price, e.Bid.DateTime})
		ctx.RegisterEventTimer(r.Timestamp)
		return nil
	}
	if !a.valid(e.Bid.DateTime) {
		return nil
	}
	best, found, err := m.best.Get(ctx)
	if err != nil {
		return err
	}
	if !found || e.Bid.Price > best {
		m.best.Set(ctx, e.Bid.Price)
	}
	return nil
}

// OnTimer closes the auction at expires, or drops bids whose auction never
// came.
func (m *q4Max) OnTimer(ctx *weir.Context, t weir.Timer) error {
	a, ok, err := m.auction.Get(ctx)
	if err != nil {
		return err
	}
	if !ok {
		m.early.Clear(ctx)
		return nil
	}
	if t.Timestamp != a.expires {
		return nil
	}
	best, found, err := m.best.Get(ctx)
	if err != nil {
		return err
	}
	if found {
		id, err := parseKey(ctx.Key())
		if err != nil {
			return errors.New("q4_max: " + err.Error())
		}
		var key [20]byte
		var val [16]byte
		ctx.Emit(weir.Record{Key: appendKey(key[:0], a.category), Value: appendPair(val[:0], pair{id, best}),
			Timestamp: a.expires})
	}
	// early is empty: bids that came before the auction were folded in
	// when it arrived.
	m.auction.Clear(ctx)
	m.best.Clear(ctx)
	return nil
}

// q4Average keeps, per category (the key), the number and sum of the
// winning prices of the closed auctions, and emits after each closed
// auction {"category","auctions","sum","avg"} where avg = sum/auctions
// (integer division), keyed by the category, with the auction's expires as
// timestamp: one record per closed auction, the running average after it.
//
// Closed auctions reach it from several q4_max subtasks in no fixed order,
// so it does not apply them as they come: it parks them in map state under
// their expires and applies them at an event-time timer at that time, in
// order of (expires, auction id). The records it emits are therefore the
// same in every run. Each timer reads and deletes only its own entry, so
// the work per closed auction stays constant however many wait.
type q4Average struct {
	totals *weir.ValueState[pair] // (auctions, sum)
	// pending maps an expires to the (auction id, winning price) pairs of
	// the auctions that closed then, in arrival order.
	pending *weir.MapState[int64, []pair]
}

// pairsCodec encodes a list of pairs as consecutive 16-byte pairs.
type pairsCodec struct{}

func (pairsCodec) Append(dst []byte, ps []pair) []byte {
	for _, p := range ps {
		dst = appendPair(dst, p)
	}
	return dst
}

func (pairsCodec) Decode(b []byte) ([]pair, error) {
	if len(b)%16 != 0 {
		return nil, errors.New("q4 pending closings: " + strconv.Itoa(len(b)) + " bytes, not a multiple of 16")
	}
	ps := make([]pair, 0, len(b)/16)
	for ; len(b) > 0; b = b[16:] {
		p, _ := decodePair(b[:16])
		ps = append(ps, p)
	}
	return ps, nil
}

func (q *q4Average) Open(o *weir.OpenContext) error {
	q.totals = weir.NewValueState(o, "totals", weir.Codec[pair](pairCodec{}))
	q.pending = weir.NewMapState(o, "pending", weir.Int64Codec, weir.Codec[[]pair](pairsCodec{}))
	return nil
}

func (q *q4Average) ProcessElement(ctx *weir.Context, r weir.Record) error {
	p, err := decodePair(r.Value)
	if err != nil {
		return errors.New("q4_average: " + err.Error())
	}
	waiting, _, err := q.pending.Get(ctx, r.Timestamp)
	if err != nil {
		return err
	}
	q.pending.Put(ctx, r.Timestamp, append(waiting, p))
	ctx.RegisterEventTimer(r.Timestamp)
	return nil
}

func (q *q4Average) OnTimer(ctx *weir.Context, t weir.Timer) error {
	closed, ok, err := q.pending.Get(ctx, t.Timestamp)
	if err != nil || !ok {
		return err
	}
	q.pending.Delete(ctx, t.Timestamp)
	slices.SortFunc(closed, func(x, y pair) int { return cmpInt(x.a, y.a) })
	totals, _, err := q.totals.Get(ctx)
	if err != nil {
		return err
	}
	category, err := parseKey(ctx.Key())
	if err != nil {
		return errors.New("q4_average: " + err.Error())
	}
	for _, c := range closed {
		totals.a++
		totals.b += c.b
		var buf [128]byte
		v := appendIntField(buf[:0], '{', "category", category)
		v = appendIntField(v, ',', "auctions", totals.a)
		v = appendIntField(v, ',', "sum", totals.b)
		v = appendIntField(v, ',', "avg", totals.b/totals.a)
		v = append(v, '}')
		ctx.Emit(weir.Record{Key: ctx.Key(), Value: v, Timestamp: t.Timestamp})
	}
	q.totals.Set(ctx, totals)
	return nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
