package queries

import (
	"errors"

	"github.com/weirstream/weir/internal/nexmark"
	weir "github.com/weirstream/weir/sdk/go"
)

func init() {
	weir.FlatMap("q5_bids", q5Bids)
	weir.Aggregate("q5_count", q5Count{}, weir.Int64Codec)
	weir.Process("q5_hot", &q5Hot{})
}

// q5Bids keeps the bids, keyed by auction, with an empty value (q5 only
// counts them) and the bid's timestamp.
func q5Bids(r weir.Record, out weir.Emitter) error {
	var e nexmark.Event
	if err := decode("q5_bids", r, &e); err != nil {
		return err
	}
	if e.Kind != nexmark.KindBid {
		return nil
	}
	var key [20]byte
	out.Emit(weir.Record{Key: appendKey(key[:0], e.Bid.Auction), Timestamp: r.Timestamp})
	return nil
}

// q5Count counts the bids of an auction (the key) in a window; the job
// gives it a sliding window of 10 s every 2 s. Its result is keyed by the
// window's end (exclusive, decimal ms) so that q5_hot sees every auction
// of a window under one key; the value is (auction id, count) as a 16-byte
// pair; the timestamp is the window's last millisecond.
type q5Count struct{}

func (q5Count) Create() int64                    { return 0 }
func (q5Count) Add(n int64, _ weir.Record) int64 { return n + 1 }
func (q5Count) Merge(a, b int64) int64           { return a + b }
func (q5Count) Result(key []byte, windowEnd int64, n int64) weir.Record {
	auction, err := parseKey(key)
	if err != nil {
		panic("q5_count: " + err.Error())
	}
	var k [20]byte
	var v [16]byte
	return weir.Record{Key: appendKey(k[:0], windowEnd+1), Value: appendPair(v[:0], pair{auction, n}),
		Timestamp: windowEnd}
}

// q5Hot finds, per window (the key: its end), the auctions with the most
// bids. It keeps the highest count and the auctions that have it; an
// event-time timer at the window's last millisecond (the timestamp of the
// counts, which q5_count emits when the window fires) emits, for each of
// those auctions, {"auction","count","window_end"} keyed by the auction
// id, with the window's last millisecond as timestamp. window_end is the
// exclusive end of the window, in ms. Ties all appear, as in the SQL
// (num >= max).
type q5Hot struct {
	max      *weir.ValueState[int64]
	auctions *weir.ListState[int64]
}

func (h *q5Hot) Open(o *weir.OpenContext) error {
	h.max = weir.NewValueState(o, "max", weir.Int64Codec)
	h.auctions = weir.NewListState(o, "auctions", weir.Int64Codec)
	return nil
}

func (h *q5Hot) ProcessElement(ctx *weir.Context, r weir.Record) error {
	p, err := decodePair(r.Value)
	if err != nil {
		return errors.New("q5_hot: " + err.Error())
	}
	max, ok, err := h.max.Get(ctx)
	if err != nil {
		return err
	}
	switch {
	case !ok || p.b > max:
		h.max.Set(ctx, p.b)
		h.auctions.Clear(ctx)
		h.auctions.Add(ctx, p.a)
	case p.b == max:
		h.auctions.Add(ctx, p.a)
	}
	ctx.RegisterEventTimer(r.Timestamp)
	return nil
}

func (h *q5Hot) OnTimer(ctx *weir.Context, t weir.Timer) error {
	max, ok, err := h.max.Get(ctx)
	if err != nil || !ok {
		return err
	}
	end, err := parseKey(ctx.Key())
	if err != nil {
		return errors.New("q5_hot: " + err.Error())
	}
	if err := h.auctions.Range(ctx, func(a int64) bool {
		var buf [96]byte
		v := appendIntField(buf[:0], '{', "auction", a)
		v = appendIntField(v, ',', "count", max)
		v = appendIntField(v, ',', "window_end", end)
		v = append(v, '}')
		var key [20]byte
		ctx.Emit(weir.Record{Key: appendKey(key[:0], a), Value: v, Timestamp: t.Timestamp})
		return true
	}); err != nil {
		return err
	}
	h.max.Clear(ctx)
	h.auctions.Clear(ctx)
	return nil
}
