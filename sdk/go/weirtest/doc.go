// Package weirtest runs weir operators natively, in-process, against an
// in-memory host, for unit tests of operators written with the Go SDK:
//
//	h, err := weirtest.New("count")
//	...
//	if err := h.Open(nil); err != nil { ... }
//	out, err := h.Process(weir.Record{Key: []byte("a"), Value: []byte("x")})
//
// The operators are those the test binary registered (the package under
// test's init functions). Host implements weir.Host with keyed state in
// maps and records timers, logs and counters.
//
// It runs natively only: under GOOS=wasip1 the package is empty.
package weirtest
