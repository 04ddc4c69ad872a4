// Operators that exercise what `weir module test` promises: keyed state,
// event-time timers, side outputs, the watermark, aggregates and finish.
package main

import (
	"strconv"

	weir "github.com/weirstream/weir/sdk/go"
)

func init() {
	weir.Process("dedupe", &dedupe{}, weir.SideOutputs("expired", "late"))
	weir.Aggregate("sum", sum{}, weir.Int64Codec)
}

// dedupe emits the first record of each key, forgets the key 10 ms of event
// time later (reporting it to "expired"), and sends records that arrive
// behind the watermark to "late".
type dedupe struct {
	seen *weir.ValueState[int64]
}

func (d *dedupe) Open(o *weir.OpenContext) error {
	d.seen = weir.NewValueState(o, "seen", weir.Int64Codec)
	return nil
}

func (d *dedupe) ProcessElement(ctx *weir.Context, r weir.Record) error {
	if r.Timestamp <= ctx.Watermark() {
		ctx.EmitTo("late", r)
		return nil
	}
	if _, ok, err := d.seen.Get(ctx); err != nil || ok {
		return err
	}
	d.seen.Set(ctx, r.Timestamp)
	ctx.RegisterEventTimer(r.Timestamp + 10)
	ctx.Emit(r)
	return nil
}

func (d *dedupe) OnTimer(ctx *weir.Context, t weir.Timer) error {
	first, _, err := d.seen.Get(ctx)
	if err != nil {
		return err
	}
	d.seen.Clear(ctx)
	ctx.EmitTo("expired", weir.Record{Key: ctx.Key(), Value: strconv.AppendInt(nil, first, 10), Timestamp: t.Timestamp})
	return nil
}

// sum adds the decimal values of a key's records.
type sum struct{}

func (sum) Create() int64 { return 0 }
func (sum) Add(acc int64, r weir.Record) int64 {
	n, _ := strconv.ParseInt(string(r.Value), 10, 64)
	return acc + n
}
func (sum) Merge(a, b int64) int64 { return a + b }
func (sum) Result(key []byte, windowEnd int64, acc int64) weir.Record {
	return weir.Record{Value: strconv.AppendInt(nil, acc, 10)}
}

func main() {}
