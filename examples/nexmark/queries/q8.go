package queries

import (
	"encoding/binary"
	"errors"

	"github.com/weirstream/weir/internal/nexmark"
	weir "github.com/weirstream/weir/sdk/go"
)

func init() {
	weir.FlatMap("q8_split", q8Split, weir.SideOutputs("auctions"))
	weir.CoProcess("q8_join", &q8Join{})
}

// q8Split sends the persons to the main output keyed by their id and the
// auctions to side output "auctions" keyed by their seller. Values and
// timestamps are the events'.
func q8Split(r weir.Record, out weir.Emitter) error {
	var e nexmark.Event
	if err := decode("q8_split", r, &e); err != nil {
		return err
	}
	var key [20]byte
	switch e.Kind {
	case nexmark.KindPerson:
		out.Emit(weir.Record{Key: appendKey(key[:0], e.Person.ID), Value: r.Value, Timestamp: r.Timestamp})
	case nexmark.KindAuction:
		out.EmitTo("auctions", weir.Record{Key: appendKey(key[:0], e.Auction.Seller), Value: r.Value, Timestamp: r.Timestamp})
	}
	return nil
}

// q8Join finds the persons who opened an auction in the same WindowMillis
// tumbling window (aligned on the epoch) as they registered; keyed by
// person id (input 0: persons) and seller (input 1: auctions). It keeps the
// person's name and window, and the set of windows in which the key opened
// auctions; at an event-time timer at the window's last millisecond it
// emits {"id","name","window_start"} keyed by the person id, with the
// window's last millisecond as timestamp, once per person at most, and
// forgets that window.
type q8Join struct {
	person   *weir.ValueState[q8Person]
	auctions *weir.MapState[int64, int64] // window start -> 1
}

// q8Person is the part of a person q8 keeps.
type q8Person struct {
	window int64
	name   string
}

type q8PersonCodec struct{}

func (q8PersonCodec) Append(dst []byte, p q8Person) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, uint64(p.window))
	return append(dst, p.name...)
}

func (q8PersonCodec) Decode(b []byte) (q8Person, error) {
	if len(b) < 8 {
		return q8Person{}, errors.New("q8 person: truncated")
	}
	return q8Person{window: int64(binary.LittleEndian.Uint64(b)), name: string(b[8:])}, nil
}

func (j *q8Join) Open(o *weir.OpenContext) error {
	j.person = weir.NewValueState(o, "person", weir.Codec[q8Person](q8PersonCodec{}))
	j.auctions = weir.NewMapState(o, "auctions", weir.Int64Codec, weir.Int64Codec)
	return nil
}

// ProcessElement1 handles a person.
func (j *q8Join) ProcessElement1(ctx *weir.Context, r weir.Record) error {
	var e nexmark.Event
	if err := decode("q8_join", r, &e); err != nil {
		return err
	}
	if e.Kind != nexmark.KindPerson {
		return errors.New("q8_join: input 0 wants persons, got a " + e.Kind.String())
	}
	w := windowStart(e.Person.DateTime)
	j.person.Set(ctx, q8Person{window: w, name: e.Person.Name})
	ctx.RegisterEventTimer(w + WindowMillis - 1)
	return nil
}

// ProcessElement2 handles an auction.
func (j *q8Join) ProcessElement2(ctx *weir.Context, r weir.Record) error {
	var e nexmark.Event
	if err := decode("q8_join", r, &e); err != nil {
		return err
	}
	if e.Kind != nexmark.KindAuction {
		return errors.New("q8_join: input 1 wants auctions, got a " + e.Kind.String())
	}
	w := windowStart(e.Auction.DateTime)
	j.auctions.Put(ctx, w, 1)
	ctx.RegisterEventTimer(w + WindowMillis - 1)
	return nil
}

// OnTimer closes the window ending at t.
func (j *q8Join) OnTimer(ctx *weir.Context, t weir.Timer) error {
	w := t.Timestamp + 1 - WindowMillis
	_, opened, err := j.auctions.Get(ctx, w)
	if err != nil {
		return err
	}
	if opened {
		j.auctions.Delete(ctx, w)
	}
	p, ok, err := j.person.Get(ctx)
	if err != nil || !ok || p.window != w {
		return err
	}
	j.person.Clear(ctx)
	if !opened {
		return nil
	}
	id, err := parseKey(ctx.Key())
	if err != nil {
		return errors.New("q8_join: " + err.Error())
	}
	var buf [256]byte
	v := appendIntField(buf[:0], '{', "id", id)
	v = appendStringField(v, ',', "name", p.name)
	v = appendIntField(v, ',', "window_start", w)
	v = append(v, '}')
	ctx.Emit(weir.Record{Key: ctx.Key(), Value: v, Timestamp: t.Timestamp})
	return nil
}
