// Command logs is a weir operator module that writes to its log: the
// "tally" operator (process, keyed) counts the records of each key and
// logs a line each time a key's count reaches a multiple of 100. Its lines
// show in `weir run` on stderr and, on a cluster, in `weir job logs ID`.
//
//	weir run examples/logs/job.yaml
package main

import (
	"strconv"

	weir "github.com/weirstream/weir/sdk/go"
)

func init() { weir.Process("tally", &tally{}) }

type tally struct {
	weir.BaseProcess
	n *weir.ValueState[int64]
}

func (t *tally) Open(o *weir.OpenContext) error {
	t.n = weir.NewValueState(o, "n", weir.Int64Codec)
	return nil
}

func (t *tally) ProcessElement(ctx *weir.Context, r weir.Record) error {
	n, _, err := t.n.Get(ctx)
	if err != nil {
		return err
	}
	n++
	t.n.Set(ctx, n)
	if n%100 == 0 {
		ctx.Log("key " + string(ctx.Key()) + " reached " + strconv.FormatInt(n, 10))
	}
	ctx.Emit(weir.Record{Key: ctx.Key(), Value: strconv.AppendInt(nil, n, 10), Timestamp: r.Timestamp})
	return nil
}

func main() {}
