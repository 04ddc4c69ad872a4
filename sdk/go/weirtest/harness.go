//go:build !wasip1

package weirtest

import (
	"errors"
	"fmt"
	"slices"

	weir "github.com/weirstream/weir/sdk/go"
	"github.com/weirstream/weir/wasmabi"
)

// Harness drives one registered operator on its own weir.Instance and Host,
// as a worker would: it encodes batches, calls the operator and decodes what
// it emits.
type Harness struct {
	Host *Host
	// Watermark and ProcessingTime go into the header of every batch.
	Watermark      int64
	ProcessingTime int64

	inst *weir.Instance
	op   int
	desc wasmabi.OperatorDesc
}

// New returns a harness for the registered operator called name.
func New(name string) (*Harness, error) {
	d, err := wasmabi.ParseDescriptor(weir.Describe())
	if err != nil {
		return nil, fmt.Errorf("weirtest: the descriptor is invalid: %w", err)
	}
	op, od, ok := d.Operator(name)
	if !ok {
		return nil, fmt.Errorf("weirtest: no operator %q; registered: %v", name, d.Names())
	}
	h := NewHost()
	return &Harness{Host: h, Watermark: wasmabi.NoWatermark, inst: weir.NewInstance(h), op: op, desc: *od}, nil
}

// Operator returns the operator's description.
func (h *Harness) Operator() wasmabi.OperatorDesc { return h.desc }

// Output is one entry an operator emitted.
type Output struct {
	// Port is 0 for the main output, n for the n-th side output.
	Port int
	// SideOutput is the name of the side output, "" for the main output.
	SideOutput string
	// Watermark marks a watermark entry; its timestamp is in
	// Record.Timestamp.
	Watermark bool
	// Record is a copy of the emitted record.
	Record weir.Record
}

// Accumulator is an accumulator entry of an aggregate.
type Accumulator struct {
	Key       []byte
	Timestamp int64
	Value     []byte // encoded; nil for a new accumulator (flagged wasmabi.AccumulatorNew)
}

// Call runs method over input (parameters or an encoded batch) and returns
// the raw output entries, or the operator's failure message as an error.
func (h *Harness) Call(method wasmabi.Method, input []byte) ([]byte, error) {
	h.Host.Out, h.Host.Failure = h.Host.Out[:0], ""
	// The operator may modify its input: give it a copy.
	if !h.inst.Call(h.op, method, slices.Clone(input)) {
		if h.Host.Failure == "" {
			return nil, errors.New("weirtest: the call failed without a message")
		}
		return nil, errors.New(h.Host.Failure)
	}
	if h.Host.Failure != "" {
		return nil, fmt.Errorf("weirtest: the call succeeded after Fail(%q)", h.Host.Failure)
	}
	return h.Host.Out, nil
}

// Open opens the operator with params (JSON, or nil).
func (h *Harness) Open(params []byte) error {
	_, err := h.Call(wasmabi.MethodOpen, params)
	return err
}

// Batch encodes entries as an input batch with the harness's watermark and
// processing time.
func (h *Harness) Batch(entries ...wasmabi.Entry) []byte {
	b := wasmabi.AppendBatchHeader(nil, wasmabi.BatchHeader{Count: uint32(len(entries)),
		Watermark: h.Watermark, ProcessingTime: h.ProcessingTime})
	for i := range entries {
		b = wasmabi.AppendEntry(b, &entries[i])
	}
	return b
}

// RecordEntry returns r as a record entry on the given input port.
func RecordEntry(port int, r weir.Record) wasmabi.Entry {
	return wasmabi.Entry{Kind: wasmabi.EntryRecord, Port: uint16(port), Key: r.Key, Value: r.Value,
		Timestamp: r.Timestamp, Headers: r.Headers.Bytes()}
}

// Process sends records in one batch (MethodProcess) and returns what the
// operator emitted.
func (h *Harness) Process(records ...weir.Record) ([]Output, error) {
	return h.ProcessPort(0, records...)
}

// ProcessPort is Process for an input port of a two-input operator (0 or 1).
func (h *Harness) ProcessPort(port int, records ...weir.Record) ([]Output, error) {
	es := make([]wasmabi.Entry, len(records))
	for i, r := range records {
		es[i] = RecordEntry(port, r)
	}
	return h.run(wasmabi.MethodProcess, h.Batch(es...))
}

// FireTimers sends the registered timers that are due at the harness's
// Watermark (event time) and ProcessingTime in one MethodTimers batch, in
// order of time, and returns what the operator emitted. It sends nothing
// when no timer is due.
func (h *Harness) FireTimers() ([]Output, error) {
	due := h.Host.due(h.Watermark, h.ProcessingTime)
	if len(due) == 0 {
		return nil, nil
	}
	es := make([]wasmabi.Entry, len(due))
	for i, t := range due {
		es[i] = wasmabi.Entry{Kind: wasmabi.EntryTimer, Flags: uint8(t.Domain), Key: []byte(t.Key), Timestamp: t.TS}
	}
	return h.run(wasmabi.MethodTimers, h.Batch(es...))
}

// Finish runs MethodFinish.
func (h *Harness) Finish() ([]Output, error) {
	return h.run(wasmabi.MethodFinish, h.Batch())
}

func (h *Harness) run(method wasmabi.Method, batch []byte) ([]Output, error) {
	out, err := h.Call(method, batch)
	if err != nil {
		return nil, err
	}
	return h.Decode(out)
}

// Decode decodes output entries, copying them.
func (h *Harness) Decode(b []byte) ([]Output, error) {
	var outs []Output
	var e wasmabi.Entry
	for len(b) > 0 {
		var err error
		if b, err = wasmabi.ReadEntry(b, &e); err != nil {
			return nil, err
		}
		o := Output{Port: int(e.Port), Record: weir.Record{
			Key: slices.Clone(e.Key), Value: slices.Clone(e.Value), Timestamp: e.Timestamp,
			Headers: weir.HeadersFromBytes(slices.Clone(e.Headers))}}
		switch e.Kind {
		case wasmabi.EntryRecord:
		case wasmabi.EntryWatermark:
			o.Watermark = true
		default:
			return nil, fmt.Errorf("weirtest: the operator emitted a %s entry", e.Kind)
		}
		if o.Port > len(h.desc.SideOutputs) {
			return nil, fmt.Errorf("weirtest: output to port %d, the operator declares %d side outputs", o.Port, len(h.desc.SideOutputs))
		}
		if o.Port > 0 {
			o.SideOutput = h.desc.SideOutputs[o.Port-1]
		}
		if err := wasmabi.ValidHeaders(e.Headers); err != nil {
			return nil, err
		}
		outs = append(outs, o)
	}
	return outs, nil
}

// AggGroup is one group of an AggAdd batch: an accumulator and the records
// to add to it.
type AggGroup struct {
	Acc     Accumulator
	Records []weir.Record
}

// AggAdd runs MethodAggAdd and returns one accumulator per group.
func (h *Harness) AggAdd(groups ...AggGroup) ([]Accumulator, error) {
	var es []wasmabi.Entry
	for _, g := range groups {
		es = append(es, accEntry(g.Acc))
		for _, r := range g.Records {
			es = append(es, RecordEntry(0, r))
		}
	}
	return h.accs(wasmabi.MethodAggAdd, h.Batch(es...))
}

// AggMerge runs MethodAggMerge over pairs and returns one accumulator per
// pair.
func (h *Harness) AggMerge(pairs ...[2]Accumulator) ([]Accumulator, error) {
	var es []wasmabi.Entry
	for _, p := range pairs {
		es = append(es, accEntry(p[0]), accEntry(p[1]))
	}
	return h.accs(wasmabi.MethodAggMerge, h.Batch(es...))
}

// AggResult runs MethodAggResult and returns the result records.
func (h *Harness) AggResult(accs ...Accumulator) ([]Output, error) {
	es := make([]wasmabi.Entry, len(accs))
	for i, a := range accs {
		es[i] = accEntry(a)
	}
	return h.run(wasmabi.MethodAggResult, h.Batch(es...))
}

func accEntry(a Accumulator) wasmabi.Entry {
	e := wasmabi.Entry{Kind: wasmabi.EntryAccumulator, Key: a.Key, Timestamp: a.Timestamp, Value: a.Value}
	if a.Value == nil {
		e.Flags = wasmabi.AccumulatorNew
	}
	return e
}

func (h *Harness) accs(method wasmabi.Method, batch []byte) ([]Accumulator, error) {
	out, err := h.Call(method, batch)
	if err != nil {
		return nil, err
	}
	var accs []Accumulator
	var e wasmabi.Entry
	for len(out) > 0 {
		if out, err = wasmabi.ReadEntry(out, &e); err != nil {
			return nil, err
		}
		if e.Kind != wasmabi.EntryAccumulator {
			return nil, fmt.Errorf("weirtest: %s emitted a %s entry", method, e.Kind)
		}
		accs = append(accs, Accumulator{Key: slices.Clone(e.Key), Timestamp: e.Timestamp, Value: slices.Clone(e.Value)})
	}
	return accs, nil
}
