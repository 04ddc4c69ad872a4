package queries

import (
	"encoding/binary"
	"errors"

	"github.com/weirstream/weir/internal/nexmark"
	weir "github.com/weirstream/weir/sdk/go"
)

// Q3Category is the auction category q3 looks for.
const Q3Category = 10

// q3States are the US states q3 looks for.
func q3State(s string) bool { return s == "OR" || s == "ID" || s == "CA" }

func init() {
	weir.FlatMap("q3_split", q3Split, weir.SideOutputs("auctions"))
	weir.CoProcess("q3_join", &q3Join{})
}

// q3Split sends the persons of OR, ID and CA to the main output keyed by
// their id, and the auctions of category Q3Category to side output
// "auctions" keyed by their seller. Values and timestamps are the events'.
func q3Split(r weir.Record, out weir.Emitter) error {
	var e nexmark.Event
	if err := decode("q3_split", r, &e); err != nil {
		return err
	}
	var key [20]byte
	switch {
	case e.Kind == nexmark.KindPerson && q3State(e.Person.State):
		out.Emit(weir.Record{Key: appendKey(key[:0], e.Person.ID), Value: r.Value, Timestamp: r.Timestamp})
	case e.Kind == nexmark.KindAuction && e.Auction.Category == Q3Category:
		out.EmitTo("auctions", weir.Record{Key: appendKey(key[:0], e.Auction.Seller), Value: r.Value, Timestamp: r.Timestamp})
	}
	return nil
}

// q3Join is the incremental join of q3, keyed by person id (input 0:
// persons from q3_split) and seller (input 1: its "auctions"). It keeps the
// person's name, city and state; an auction whose seller is known is
// joined at once, one that arrives first waits in list state. For every
// (person, auction) pair it emits {"name","city","state","auction"} keyed
// by the auction id, with timestamp max(person time, auction time), which
// is the same whichever input arrives first.
//
// Waiting auctions are dropped when the watermark passes their time: the
// generator only names sellers registered before the auction, so by then
// the seller has arrived if it is in one of the three states.
type q3Join struct {
	person  *weir.ValueState[q3Person]
	pending *weir.ListState[pair] // (auction id, auction time)
}

// q3Person is the part of a person q3 keeps.
type q3Person struct {
	name, city, state string
	time              int64
}

// q3PersonCodec encodes a q3Person as its time (8 bytes) then three
// uvarint-length-prefixed strings.
type q3PersonCodec struct{}

func (q3PersonCodec) Append(dst []byte, p q3Person) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, uint64(p.time))
	for _, s := range [...]string{p.name, p.city, p.state} {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	return dst
}

func (q3PersonCodec) Decode(b []byte) (q3Person, error) {
	var p q3Person
	if len(b) < 8 {
		return p, errors.New("q3 person: truncated")
	}
	p.time = int64(binary.LittleEndian.Uint64(b))
	b = b[8:]
	for _, s := range [...]*string{&p.name, &p.city, &p.state} {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return p, errors.New("q3 person: truncated")
		}
		*s = string(b[k : k+int(n)])
		b = b[k+int(n):]
	}
	return p, nil
}

type pairCodec struct{}

func (pairCodec) Append(dst []byte, p pair) []byte { return appendPair(dst, p) }
func (pairCodec) Decode(b []byte) (pair, error)    { return decodePair(b) }

func (j *q3Join) Open(o *weir.OpenContext) error {
	j.person = weir.NewValueState(o, "person", weir.Codec[q3Person](q3PersonCodec{}))
	j.pending = weir.NewListState(o, "pending", weir.Codec[pair](pairCodec{}))
	return nil
}

// ProcessElement1 handles a person.
func (j *q3Join) ProcessElement1(ctx *weir.Context, r weir.Record) error {
	var e nexmark.Event
	if err := decode("q3_join", r, &e); err != nil {
		return err
	}
	if e.Kind != nexmark.KindPerson {
		return errors.New("q3_join: input 0 wants persons, got a " + e.Kind.String())
	}
	p := q3Person{name: e.Person.Name, city: e.Person.City, state: e.Person.State, time: r.Timestamp}
	j.person.Set(ctx, p)
	var waiting []pair
	if err := j.pending.Range(ctx, func(a pair) bool {
		waiting = append(waiting, a)
		return true
	}); err != nil {
		return err
	}
	if len(waiting) == 0 {
		return nil
	}
	j.pending.Clear(ctx)
	for _, a := range waiting {
		q3Emit(ctx, &p, a.a, a.b)
	}
	return nil
}

// ProcessElement2 handles an auction.
func (j *q3Join) ProcessElement2(ctx *weir.Context, r weir.Record) error {
	var e nexmark.Event
	if err := decode("q3_join", r, &e); err != nil {
		return err
	}
	if e.Kind != nexmark.KindAuction {
		return errors.New("q3_join: input 1 wants auctions, got a " + e.Kind.String())
	}
	p, ok, err := j.person.Get(ctx)
	if err != nil {
		return err
	}
	if ok {
		q3Emit(ctx, &p, e.Auction.ID, r.Timestamp)
		return nil
	}
	j.pending.Add(ctx, pair{e.Auction.ID, r.Timestamp})
	ctx.RegisterEventTimer(r.Timestamp)
	return nil
}

// OnTimer drops the auctions still waiting for a seller.
func (j *q3Join) OnTimer(ctx *weir.Context, t weir.Timer) error {
	if _, ok, err := j.person.Get(ctx); err != nil || ok {
		return err
	}
	j.pending.Clear(ctx)
	return nil
}

func q3Emit(ctx *weir.Context, p *q3Person, auction, auctionTime int64) {
	var buf [256]byte
	v := appendStringField(buf[:0], '{', "name", p.name)
	v = appendStringField(v, ',', "city", p.city)
	v = appendStringField(v, ',', "state", p.state)
	v = appendIntField(v, ',', "auction", auction)
	v = append(v, '}')
	var key [20]byte
	ctx.Emit(weir.Record{Key: appendKey(key[:0], auction), Value: v, Timestamp: max(p.time, auctionTime)})
}
