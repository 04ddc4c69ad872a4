// Package modtest runs operators of one module locally over sample records,
// the way `weir module test` does: a chain of operators fed in batches, with
// keyed state and timers kept in memory, event time driven by the records'
// timestamps, and every output, log line and counter collected.
//
// Semantics, so authors know what they test:
//   - Records go through the operators in the order given; the main output
//     of one is the input of the next; side outputs are collected.
//   - After each input batch the watermark becomes the largest timestamp
//     seen minus OutOfOrderness, and due event-time timers fire. Processing
//     time is simulated as the largest timestamp seen, so processing-time
//     timers fire deterministically. At the end of input the watermark and
//     processing time jump to the end of time: every timer fires, then each
//     operator is finished (MethodFinish).
//   - An aggregate operator has one global window per key: its records are
//     added to one accumulator per key and the results come out at the end.
//   - A watermark a module emits (punctuated) is passed to the next operator.
package modtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/weirstream/weir/wasmabi"
	"github.com/weirstream/weir/worker/wasmhost"
)

// Options say what to run.
type Options struct {
	Module    *wasmhost.Module
	Operators []string // a chain: the main output of each feeds the next
	Params    []byte   // JSON parameters passed to every operator's open
	Input     io.Reader
	InputName string // for errors: file:line
	// Format is "jsonl" (one JSON object per line: key, value, timestamp,
	// headers, input) or "lines" (each line is the value of a record whose
	// timestamp is its line number).
	Format         string
	KeyField       string // take the key from this field of a JSON value
	BatchSize      int
	OutOfOrderness int64 // ms
}

// Record is one input or output record. Value holds text when it is valid
// UTF-8, else Base64 (see Encoding).
type Record struct {
	Operator  string            `json:"operator,omitempty"`
	Output    string            `json:"output,omitempty"` // side output name; empty: main
	Key       string            `json:"key"`
	Value     string            `json:"value"`
	Encoding  string            `json:"encoding,omitempty"` // "base64" when Key or Value were not UTF-8
	Timestamp int64             `json:"timestamp"`
	Headers   map[string]string `json:"headers,omitempty"`
}

// LogLine is one line a module logged.
type LogLine struct {
	Operator string `json:"operator"`
	Level    string `json:"level"`
	Message  string `json:"message"`
}

// Result is everything a run produced.
type Result struct {
	Records    []Record         `json:"records"`
	Watermarks []int64          `json:"watermarks,omitempty"` // emitted by the last operator
	Logs       []LogLine        `json:"logs,omitempty"`
	Counters   map[string]int64 `json:"counters,omitempty"`
	Inputs     int              `json:"inputs"`
	// Usage is what each operator's instance used, by operator, in the
	// order of the chain.
	Usage []OperatorUsage `json:"usage"`
}

// OperatorUsage is the usage of one operator's instance.
type OperatorUsage struct {
	Operator string `json:"operator"`
	wasmhost.Usage
	// MemoryLimit is the linear memory limit, in bytes.
	MemoryLimit int64 `json:"memory_limit_bytes"`
}

// InputError is a malformed input line.
type InputError struct {
	File string
	Line int
	Err  error
}

func (e *InputError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }
func (e *InputError) Unwrap() error { return e.Err }

type inRecord struct {
	entry wasmabi.Entry
	line  int
}

// stage is one operator of the chain.
type stage struct {
	inst *wasmhost.Instance
	svc  *memServices
	desc *wasmabi.OperatorDesc
	wm   int64
	accs map[string][]byte // aggregate: accumulator per key
	keys []string          // aggregate: keys in first-seen order
	last map[string]int64  // aggregate: largest timestamp per key
}

// Run runs the chain over the input.
func Run(ctx context.Context, o Options) (*Result, error) {
	if len(o.Operators) == 0 {
		return nil, errors.New("modtest: no operator given")
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 1024
	}
	recs, err := ReadInput(o.Input, o.InputName, o.Format, o.KeyField)
	if err != nil {
		return nil, err
	}
	res := &Result{Counters: map[string]int64{}, Inputs: len(recs)}
	r := &runner{o: o, res: res, procTime: math.MinInt64}
	for _, name := range o.Operators {
		svc := newMemServices(name, &res.Logs, res.Counters)
		inst, err := o.Module.Instantiate(ctx, name, svc)
		if err != nil {
			r.close()
			return nil, err
		}
		st := &stage{inst: inst, svc: svc, desc: inst.Operator(), wm: wasmabi.NoWatermark}
		r.stages = append(r.stages, st)
		if err := inst.Open(o.Params); err != nil {
			r.close()
			return nil, err
		}
	}
	defer r.close()

	maxTs := int64(math.MinInt64)
	for start := 0; start < len(recs); start += o.BatchSize {
		batch := recs[start:min(start+o.BatchSize, len(recs))]
		entries := make([]wasmabi.Entry, len(batch))
		for i := range batch {
			entries[i] = batch[i].entry
			maxTs = max(maxTs, batch[i].entry.Timestamp)
		}
		r.procTime = maxTs
		wm := maxTs - o.OutOfOrderness
		if maxTs == math.MinInt64 {
			wm = wasmabi.NoWatermark
		}
		if err := r.push(0, entries, wm, batch); err != nil {
			return nil, err
		}
	}
	// End of input: everything fires, then every operator finishes.
	r.procTime = math.MaxInt64
	for i := range r.stages {
		if err := r.push(i, nil, math.MaxInt64, nil); err != nil {
			return nil, err
		}
		if err := r.finish(i); err != nil {
			return nil, err
		}
	}
	if len(res.Counters) == 0 {
		res.Counters = nil
	}
	limit := int64(o.Module.Limits().MemoryPages) * 65536
	for _, st := range r.stages {
		res.Usage = append(res.Usage, OperatorUsage{Operator: st.desc.Name, Usage: st.inst.Usage(), MemoryLimit: limit})
	}
	return res, nil
}

type runner struct {
	o        Options
	res      *Result
	stages   []*stage
	procTime int64
}

func (r *runner) close() {
	for _, s := range r.stages {
		s.inst.Close()
	}
}

// push runs stage i over entries with the task watermark wm, fires due
// timers, and passes outputs down the chain.
func (r *runner) push(i int, entries []wasmabi.Entry, wm int64, src []inRecord) error {
	st := r.stages[i]
	// Records arrive under the watermark that held before them; the
	// watermark the batch brings advances the clock after it.
	if len(entries) > 0 {
		var out []byte
		var err error
		if st.desc.Kind == wasmabi.KindAggregate {
			err = r.aggAdd(st, entries)
		} else {
			in := r.batch(st, entries)
			out, err = st.inst.Call(wasmabi.MethodProcess, in)
			if err == nil {
				err = st.inst.CheckOutput(wasmabi.MethodProcess, in[wasmabi.BatchHeaderSize:], len(entries), out)
			}
		}
		if err != nil {
			return r.locate(err, i, src)
		}
		if err := r.emit(i, out); err != nil {
			return err
		}
	}
	st.wm = max(st.wm, wm)
	if st.desc.Kind.Keyed() {
		for round := 0; round < 1000; round++ {
			timers := append(st.svc.due(wasmabi.EventTime, st.wm), st.svc.due(wasmabi.ProcessingTime, r.procTime)...)
			if len(timers) == 0 {
				break
			}
			tes := make([]wasmabi.Entry, len(timers))
			for j, t := range timers {
				tes[j] = wasmabi.Entry{Kind: wasmabi.EntryTimer, Flags: uint8(t.domain), Key: []byte(t.key), Timestamp: t.ts}
			}
			out, err := st.inst.Call(wasmabi.MethodTimers, r.batch(st, tes))
			if err != nil {
				return err
			}
			if err := r.emit(i, out); err != nil {
				return err
			}
		}
	}
	if i+1 < len(r.stages) && wm != wasmabi.NoWatermark {
		return r.push(i+1, nil, st.wm, nil)
	}
	return nil
}

func (r *runner) batch(st *stage, entries []wasmabi.Entry) []byte {
	b := wasmabi.AppendBatchHeader(nil, wasmabi.BatchHeader{Count: uint32(len(entries)), Watermark: st.wm, ProcessingTime: r.procTime})
	for j := range entries {
		b = wasmabi.AppendEntry(b, &entries[j])
	}
	return b
}

// emit routes the output of stage i: main records to the next stage (or the
// result), side outputs and the last stage's records to the result.
func (r *runner) emit(i int, out []byte) error {
	st := r.stages[i]
	var next []wasmabi.Entry
	nextWm := int64(wasmabi.NoWatermark)
	for len(out) > 0 {
		var e wasmabi.Entry
		var err error
		if out, err = wasmabi.ReadEntry(out, &e); err != nil {
			return err // validated by the host already
		}
		if e.Kind == wasmabi.EntryWatermark {
			if i+1 == len(r.stages) {
				r.res.Watermarks = append(r.res.Watermarks, e.Timestamp)
			}
			nextWm = max(nextWm, e.Timestamp)
			continue
		}
		if e.Port == 0 && i+1 < len(r.stages) {
			e.Key, e.Value, e.Headers = bytes.Clone(e.Key), bytes.Clone(e.Value), bytes.Clone(e.Headers)
			next = append(next, e)
			continue
		}
		rec := outRecord(&e)
		rec.Operator = st.desc.Name
		if e.Port > 0 {
			rec.Output = st.desc.SideOutputs[e.Port-1]
		}
		r.res.Records = append(r.res.Records, rec)
	}
	if i+1 < len(r.stages) && (len(next) > 0 || nextWm != wasmabi.NoWatermark) {
		return r.push(i+1, next, nextWm, nil)
	}
	return nil
}

// aggAdd adds a batch to the per-key accumulators of an aggregate stage.
func (r *runner) aggAdd(st *stage, entries []wasmabi.Entry) error {
	if st.accs == nil {
		st.accs, st.last = map[string][]byte{}, map[string]int64{}
	}
	groups := map[string][]wasmabi.Entry{}
	var order []string
	for _, e := range entries {
		k := string(e.Key)
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], e)
		if last, ok := st.last[k]; !ok || e.Timestamp > last {
			st.last[k] = e.Timestamp
		}
	}
	var in []wasmabi.Entry
	for _, k := range order {
		if _, ok := st.accs[k]; !ok {
			st.keys = append(st.keys, k)
		}
		acc := wasmabi.Entry{Kind: wasmabi.EntryAccumulator, Key: []byte(k), Value: st.accs[k]}
		if _, ok := st.accs[k]; !ok {
			acc.Flags = wasmabi.AccumulatorNew
		}
		in = append(in, acc)
		in = append(in, groups[k]...)
	}
	out, err := st.inst.Call(wasmabi.MethodAggAdd, r.batch(st, in))
	if err != nil {
		return err
	}
	for _, k := range order {
		var e wasmabi.Entry
		if out, err = wasmabi.ReadEntry(out, &e); err != nil {
			return fmt.Errorf("module %s, operator %s: agg_add returned fewer accumulators (%d groups in)", r.o.Module.Name(), st.desc.Name, len(order))
		}
		st.accs[k] = bytes.Clone(e.Value)
	}
	if len(out) > 0 {
		return fmt.Errorf("module %s, operator %s: agg_add returned more accumulators than groups (%d)", r.o.Module.Name(), st.desc.Name, len(order))
	}
	return nil
}

// finish emits aggregate results, then calls MethodFinish.
func (r *runner) finish(i int) error {
	st := r.stages[i]
	if st.desc.Kind == wasmabi.KindAggregate && len(st.keys) > 0 {
		var in []wasmabi.Entry
		for _, k := range st.keys {
			in = append(in, wasmabi.Entry{Kind: wasmabi.EntryAccumulator, Key: []byte(k), Value: st.accs[k], Timestamp: st.last[k]})
		}
		out, err := st.inst.Call(wasmabi.MethodAggResult, r.batch(st, in))
		if err != nil {
			return err
		}
		if err := r.emit(i, out); err != nil {
			return err
		}
	}
	out, err := st.inst.Call(wasmabi.MethodFinish, r.batch(st, nil))
	if err == nil {
		err = st.inst.CheckOutput(wasmabi.MethodFinish, nil, 0, out)
	}
	if err != nil {
		return err
	}
	return r.emit(i, out)
}

// locate adds the input file and line of the failing record to err.
func (r *runner) locate(err error, stageIdx int, src []inRecord) error {
	var werr *wasmhost.Error
	if !errors.As(err, &werr) || len(src) == 0 {
		return err
	}
	if stageIdx == 0 && werr.Record >= 0 && werr.Record < len(src) {
		return fmt.Errorf("%s:%d: %w", r.o.InputName, src[werr.Record].line, err)
	}
	return fmt.Errorf("%s:%d-%d: %w", r.o.InputName, src[0].line, src[len(src)-1].line, err)
}

// ReadInput parses sample records. Errors name the file and line.
func ReadInput(in io.Reader, name, format, keyField string) ([]inRecord, error) {
	if format == "" {
		format = "jsonl"
	}
	if format != "jsonl" && format != "lines" {
		return nil, fmt.Errorf("modtest: unknown input format %q (want jsonl or lines)", format)
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var recs []inRecord
	for line := 1; sc.Scan(); line++ {
		text := sc.Bytes()
		if format == "lines" {
			recs = append(recs, inRecord{entry: wasmabi.Entry{Kind: wasmabi.EntryRecord, Value: bytes.Clone(text), Timestamp: int64(line)}, line: line})
			continue
		}
		if len(bytes.TrimSpace(text)) == 0 {
			continue
		}
		e, err := parseJSONRecord(text, keyField)
		if err != nil {
			return nil, &InputError{File: name, Line: line, Err: err}
		}
		recs = append(recs, inRecord{entry: e, line: line})
	}
	if err := sc.Err(); err != nil {
		return nil, &InputError{File: name, Line: len(recs) + 1, Err: err}
	}
	return recs, nil
}

func parseJSONRecord(text []byte, keyField string) (wasmabi.Entry, error) {
	var raw struct {
		Key       json.RawMessage   `json:"key"`
		Value     json.RawMessage   `json:"value"`
		Timestamp *int64            `json:"timestamp"`
		Headers   map[string]string `json:"headers"`
		Input     int               `json:"input"`
	}
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return wasmabi.Entry{}, fmt.Errorf("not a record (want {\"key\":..,\"value\":..,\"timestamp\":..}): %v", err)
	}
	if raw.Value == nil {
		return wasmabi.Entry{}, errors.New(`record has no "value"`)
	}
	if raw.Input != 0 && raw.Input != 1 {
		return wasmabi.Entry{}, fmt.Errorf(`"input" is %d; a two-input operator has inputs 0 and 1`, raw.Input)
	}
	e := wasmabi.Entry{Kind: wasmabi.EntryRecord, Port: uint16(raw.Input), Value: textOrJSON(raw.Value)}
	if raw.Timestamp != nil {
		e.Timestamp = *raw.Timestamp
	}
	if raw.Key != nil && string(raw.Key) != "null" {
		e.Key = textOrJSON(raw.Key)
	}
	if keyField != "" {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(e.Value, &obj); err != nil {
			return wasmabi.Entry{}, fmt.Errorf("--key-field %s: the value is not a JSON object", keyField)
		}
		f, ok := obj[keyField]
		if !ok {
			return wasmabi.Entry{}, fmt.Errorf("--key-field %s: the value has no field %q", keyField, keyField)
		}
		e.Key = textOrJSON(f)
	}
	names := make([]string, 0, len(raw.Headers))
	for n := range raw.Headers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		e.Headers = wasmabi.AppendHeader(e.Headers, n, []byte(raw.Headers[n]))
	}
	return e, nil
}

// textOrJSON returns the text of a JSON string, or the raw JSON of anything
// else (so {"value": {"a":1}} gives the bytes {"a":1}).
func textOrJSON(raw json.RawMessage) []byte {
	var s string
	if len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
		return []byte(s)
	}
	return bytes.Clone(raw)
}

func outRecord(e *wasmabi.Entry) Record {
	rec := Record{Key: string(e.Key), Value: string(e.Value), Timestamp: e.Timestamp}
	if !utf8.Valid(e.Key) || !utf8.Valid(e.Value) {
		rec.Encoding = "base64"
		rec.Key, rec.Value = base64.StdEncoding.EncodeToString(e.Key), base64.StdEncoding.EncodeToString(e.Value)
	}
	h := e.Headers
	for len(h) > 0 {
		name, val, rest, err := wasmabi.NextHeader(h)
		if err != nil {
			break
		}
		if rec.Headers == nil {
			rec.Headers = map[string]string{}
		}
		rec.Headers[string(name)] = string(val)
		h = rest
	}
	return rec
}

// String formats the record as one line for a terminal.
func (r Record) String() string {
	var b strings.Builder
	if r.Output != "" {
		b.WriteString("[" + r.Output + "] ")
	}
	fmt.Fprintf(&b, "key=%s value=%s ts=%d", strconv.Quote(r.Key), strconv.Quote(r.Value), r.Timestamp)
	if r.Encoding != "" {
		b.WriteString(" (" + r.Encoding + ")")
	}
	for _, n := range sortedKeys(r.Headers) {
		fmt.Fprintf(&b, " %s=%s", n, strconv.Quote(r.Headers[n]))
	}
	return b.String()
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
