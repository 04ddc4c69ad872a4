// Command fraud is a weir operator module with one keyed process operator,
// "detect", the classic fraud detector of stream processing tutorials: an
// account that makes a small transaction immediately followed by a large
// one, within a minute of event time, is probably a stolen card being
// tested and then emptied.
//
// Input records come from the `datagen` source with keys: the key is the
// account ("key-<k>") and the value {"seq":n,"key":"key-<k>","value":v},
// where v is the amount in cents. For each account (keyed state):
//
//   - a transaction of less than SmallAmount cents arms the account,
//     remembering its seq and time, and registers an event-time timer one
//     minute (Window) later;
//   - the next transaction of the account disarms it; if that transaction
//     is of at least LargeAmount cents and less than Window after the small
//     one, detect emits an alert {"account":"key-<k>","small_seq":s,
//     "large_seq":n} keyed by the account, with the large transaction's
//     timestamp (a small transaction may then arm the account again);
//   - the timer disarms an account whose small transaction is a minute
//     old, so state does not outlive the pattern.
//
// See job.yaml and README.md. Build with `weir module build examples/fraud`.
package main

import (
	"encoding/binary"
	"errors"
	"strconv"

	weir "github.com/weirstream/weir/sdk/go"
)

// Thresholds of the pattern.
const (
	SmallAmount = 100    // cents: a transaction below this is small
	LargeAmount = 50_000 // cents: a transaction of at least this is large
	Window      = 60_000 // ms of event time between the two
)

func init() {
	weir.Process("detect", &detector{})
}

// detector is the process function of "detect".
type detector struct {
	// armed is the small transaction (seq, time) the account's next
	// transaction is compared with.
	armed *weir.ValueState[small]
}

type small struct{ seq, time int64 }

type smallCodec struct{}

func (smallCodec) Append(dst []byte, s small) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, uint64(s.seq))
	return binary.LittleEndian.AppendUint64(dst, uint64(s.time))
}

func (smallCodec) Decode(b []byte) (small, error) {
	if len(b) != 16 {
		return small{}, errors.New("armed: want 16 bytes, got " + strconv.Itoa(len(b)))
	}
	return small{int64(binary.LittleEndian.Uint64(b)), int64(binary.LittleEndian.Uint64(b[8:]))}, nil
}

func (d *detector) Open(o *weir.OpenContext) error {
	d.armed = weir.NewValueState(o, "armed", weir.Codec[small](smallCodec{}))
	return nil
}

func (d *detector) ProcessElement(ctx *weir.Context, r weir.Record) error {
	seq, err := intField(r.Value, "seq")
	if err != nil {
		return err
	}
	amount, err := intField(r.Value, "value")
	if err != nil {
		return err
	}
	prev, armed, err := d.armed.Get(ctx)
	if err != nil {
		return err
	}
	if armed {
		if amount >= LargeAmount && r.Timestamp-prev.time < Window {
			var buf [128]byte
			v := append(buf[:0], `{"account":`...)
			v = strconv.AppendQuote(v, string(ctx.Key()))
			v = append(v, `,"small_seq":`...)
			v = strconv.AppendInt(v, prev.seq, 10)
			v = append(v, `,"large_seq":`...)
			v = strconv.AppendInt(v, seq, 10)
			v = append(v, '}')
			ctx.Emit(weir.Record{Key: ctx.Key(), Value: v, Timestamp: r.Timestamp})
		}
		d.armed.Clear(ctx)
		ctx.DeleteEventTimer(prev.time + Window)
	}
	if amount < SmallAmount {
		d.armed.Set(ctx, small{seq, r.Timestamp})
		ctx.RegisterEventTimer(r.Timestamp + Window)
	}
	return nil
}

func (d *detector) OnTimer(ctx *weir.Context, t weir.Timer) error {
	prev, armed, err := d.armed.Get(ctx)
	if err != nil || !armed {
		return err
	}
	if prev.time+Window == t.Timestamp {
		d.armed.Clear(ctx)
	}
	return nil
}

// intField returns the integer value of the top-level field name of the
// JSON object v, as the datagen source writes it (`"name":123`, no spaces).
// It does not allocate.
func intField(v []byte, name string) (int64, error) {
	for i := 0; i+len(name)+3 <= len(v); i++ {
		if v[i] != '"' || string(v[i+1:i+1+len(name)]) != name || v[i+1+len(name)] != '"' || v[i+2+len(name)] != ':' {
			continue
		}
		j := i + 3 + len(name)
		start := j
		var n int64
		for ; j < len(v) && v[j] >= '0' && v[j] <= '9' && j-start < 18; j++ {
			n = n*10 + int64(v[j]-'0')
		}
		if j == start || (j < len(v) && v[j] != ',' && v[j] != '}') {
			break
		}
		return n, nil
	}
	return 0, errors.New("detect: value " + strconv.Quote(string(v)) + " has no integer field " + strconv.Quote(name))
}

func main() {}
