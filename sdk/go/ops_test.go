//go:build !wasip1

package weir_test

import (
	"bytes"
	"errors"
	"strconv"

	weir "github.com/weirstream/weir/sdk/go"
)

// Operators the tests drive, registered like a module registers its own.
func init() {
	weir.Map("t.upper", func(r weir.Record) (weir.Record, error) {
		r.Value = bytes.ToUpper(r.Value)
		return r, nil
	})
	weir.Map("t.identity", func(r weir.Record) (weir.Record, error) { return r, nil })
	weir.Map("t.fail17", func(r weir.Record) (weir.Record, error) {
		if string(r.Value) == "bad" {
			return r, errors.New("bad value")
		}
		return r, nil
	})
	weir.Map("t.panic", func(r weir.Record) (weir.Record, error) {
		if string(r.Value) == "boom" {
			var m map[string]int
			m["x"] = 1 // a runtime panic
		}
		return r, nil
	})
	weir.Map("t.params", func(r weir.Record) (weir.Record, error) { return r, nil },
		weir.OnOpen(func(o *weir.OpenContext) error {
			if string(o.Params()) == `{"fail":true}` {
				return errors.New("params say fail")
			}
			return nil
		}),
		weir.OnFinish(func(ctx *weir.Context) error {
			ctx.Emit(weir.Record{Value: []byte("done")})
			return nil
		}))
	weir.Map("t.mapstate", func(r weir.Record) (weir.Record, error) { return r, nil },
		weir.OnOpen(func(o *weir.OpenContext) error {
			weir.NewValueState(o, "nope", weir.Int64Codec)
			return nil
		}))
	weir.Filter("t.even", func(r weir.Record) (bool, error) {
		n, err := strconv.Atoi(string(r.Value))
		return n%2 == 0, err
	})
	weir.FlatMap("t.split", func(r weir.Record, out weir.Emitter) error {
		for _, w := range bytes.Fields(r.Value) {
			if w[0] == '!' {
				out.EmitTo("odd", weir.Record{Key: w, Value: w, Timestamp: r.Timestamp})
				continue
			}
			out.Emit(weir.Record{Key: w, Value: w, Timestamp: r.Timestamp, Headers: r.Headers})
		}
		if bytes.Equal(r.Value, []byte("wm")) {
			out.EmitWatermark(r.Timestamp - 1)
		}
		if bytes.Equal(r.Value, []byte("undeclared")) {
			out.EmitTo("nope", r)
		}
		return nil
	}, weir.SideOutputs("odd"))
	weir.FlatMap("t.big", func(r weir.Record, out weir.Emitter) error {
		n, _ := strconv.Atoi(string(r.Key))
		for i := 0; i < n; i++ {
			out.Emit(weir.Record{Key: strconv.AppendInt(nil, int64(i), 10), Value: r.Value})
		}
		return nil
	})
	weir.Process("t.session", &session{}, weir.SideOutputs("late"))
	weir.CoProcess("t.join", &join{})
	weir.Aggregate("t.sum", sum{}, weir.Int64Codec)
	weir.Aggregate("t.avg", avg{}, avgCodec{})
}

// session exercises every state kind and timer of a process function.
type session struct {
	weir.BaseProcess
	count  *weir.ValueState[int64]
	seen   *weir.ListState[string]
	byWord *weir.MapState[string, int64]
	blob   *weir.ValueState[[]byte]
}

func (s *session) Open(o *weir.OpenContext) error {
	s.count = weir.NewValueState(o, "count", weir.Int64Codec)
	s.seen = weir.NewListState(o, "seen", weir.StringCodec)
	s.byWord = weir.NewMapState(o, "by_word", weir.StringCodec, weir.Int64Codec)
	s.blob = weir.NewValueState(o, "blob", weir.BytesCodec)
	o.Logf("opened %s with %d bytes of params", o.Name(), len(o.Params()))
	return nil
}

func (s *session) ProcessElement(ctx *weir.Context, r weir.Record) error {
	ctx.Counter("records").Add(1)
	ctx.Counter("bytes").Add(int64(len(r.Value)))
	if ctx.Watermark() != weir.NoWatermark && r.Timestamp <= ctx.Watermark() {
		ctx.EmitTo("late", r)
		return nil
	}
	switch v := string(r.Value); {
	case v == "big":
		s.blob.Set(ctx, bytes.Repeat([]byte("x"), 5000))
	case v == "clear":
		s.count.Clear(ctx)
		s.seen.Clear(ctx)
		s.byWord.Clear(ctx)
		ctx.DeleteEventTimer(r.Timestamp + 100)
	case v == "error":
		return errors.New("asked to fail")
	case v == "timerpanic":
		// no key outside: fine here, it has one
	default:
		n, _, err := s.count.Get(ctx)
		if err != nil {
			return err
		}
		n++
		s.count.Set(ctx, n)
		s.seen.Add(ctx, v)
		c, _, err := s.byWord.Get(ctx, v)
		if err != nil {
			return err
		}
		s.byWord.Put(ctx, v, c+1)
		ctx.RegisterEventTimer(r.Timestamp + 100)
		ctx.RegisterProcessingTimer(ctx.ProcessingTime() + 1000)
		var buf [20]byte
		ctx.Emit(weir.Record{Key: ctx.Key(), Value: strconv.AppendInt(buf[:0], n, 10), Timestamp: r.Timestamp})
	}
	return nil
}

func (s *session) OnTimer(ctx *weir.Context, t weir.Timer) error {
	if t.Domain == weir.ProcessingTime {
		ctx.Emit(weir.Record{Key: ctx.Key(), Value: []byte("ptimer"), Timestamp: t.Timestamp})
		return nil
	}
	seen, err := s.seen.Get(ctx)
	if err != nil {
		return err
	}
	var words []string
	if err := s.byWord.Range(ctx, func(k string, v int64) bool {
		// state use inside Range must not disturb the iteration
		n, _, _ := s.count.Get(ctx)
		words = append(words, k+"="+strconv.FormatInt(v, 10)+"/"+strconv.FormatInt(n, 10))
		return true
	}); err != nil {
		return err
	}
	b, ok, err := s.blob.Get(ctx)
	if err != nil {
		return err
	}
	out := "seen=" + join2(seen) + " map=" + join2(words) + " blob=" + strconv.Itoa(len(b)) + "/" + strconv.FormatBool(ok)
	ctx.Emit(weir.Record{Key: ctx.Key(), Value: []byte(out), Timestamp: t.Timestamp})
	return nil
}

func (s *session) Finish(ctx *weir.Context) error {
	ctx.Emit(weir.Record{Value: []byte("finished")})
	return nil
}

func join2(s []string) string {
	var b []byte
	for i, x := range s {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, x...)
	}
	return string(b)
}

// join pairs the latest value of each input per key.
type join struct {
	weir.BaseProcess
	left, right *weir.ValueState[string]
}

func (j *join) Open(o *weir.OpenContext) error {
	j.left = weir.NewValueState(o, "left", weir.StringCodec)
	j.right = weir.NewValueState(o, "right", weir.StringCodec)
	return nil
}

func (j *join) ProcessElement1(ctx *weir.Context, r weir.Record) error {
	return j.side(ctx, r, j.left, j.right, "L")
}

func (j *join) ProcessElement2(ctx *weir.Context, r weir.Record) error {
	return j.side(ctx, r, j.right, j.left, "R")
}

func (j *join) side(ctx *weir.Context, r weir.Record, mine, other *weir.ValueState[string], tag string) error {
	mine.Set(ctx, string(r.Value))
	o, ok, err := other.Get(ctx)
	if err != nil || !ok {
		return err
	}
	ctx.Emit(weir.Record{Key: ctx.Key(), Value: []byte(tag + ":" + string(r.Value) + "+" + o), Timestamp: r.Timestamp})
	return nil
}

// sum adds up the decimal values of records.
type sum struct{}

func (sum) Create() int64 { return 0 }
func (sum) Add(acc int64, r weir.Record) int64 {
	n, err := strconv.ParseInt(string(r.Value), 10, 64)
	if err != nil {
		panic(err)
	}
	return acc + n
}
func (sum) Merge(a, b int64) int64 { return a + b }
func (sum) Result(key []byte, end int64, acc int64) weir.Record {
	return weir.Record{Value: strconv.AppendInt(nil, acc, 10)}
}

// avg has a struct accumulator with its own codec.
type avgAcc struct{ n, total int64 }

type avgCodec struct{}

func (avgCodec) Append(dst []byte, a avgAcc) []byte {
	dst = weir.Int64Codec.Append(dst, a.n)
	return weir.Int64Codec.Append(dst, a.total)
}

func (avgCodec) Decode(b []byte) (avgAcc, error) {
	if len(b) != 16 {
		return avgAcc{}, errors.New("avg accumulator of " + strconv.Itoa(len(b)) + " bytes")
	}
	n, _ := weir.Int64Codec.Decode(b[:8])
	t, _ := weir.Int64Codec.Decode(b[8:])
	return avgAcc{n, t}, nil
}

type avg struct{}

func (avg) Create() avgAcc { return avgAcc{} }
func (avg) Add(a avgAcc, r weir.Record) avgAcc {
	n, _ := strconv.ParseInt(string(r.Value), 10, 64)
	return avgAcc{a.n + 1, a.total + n}
}
func (avg) Merge(a, b avgAcc) avgAcc { return avgAcc{a.n + b.n, a.total + b.total} }
func (avg) Result(key []byte, end int64, a avgAcc) weir.Record {
	return weir.Record{Key: []byte("avg"), Value: strconv.AppendInt(nil, a.total/max(a.n, 1), 10), Timestamp: 7}
}
