// Command bench is the Go operator module of `weir bench abi`: two maps that
// measure what crossing the WebAssembly boundary costs per record.
//
//   - "identity" returns each record unchanged.
//   - "rewrite" parses values of the form id=<6 digits>;amt=<digits>;... (100
//     ASCII bytes, padded) and emits key = the id digits, value = amt*2 in
//     decimal, timestamp and headers unchanged. A value of another form is an
//     error, which fails the batch.
//
// Neither allocates: rewrite writes its result into the record's own bytes,
// which belong to the operator during the call.
package main

import (
	"errors"
	"strconv"

	weir "github.com/weirstream/weir/sdk/go"
)

func init() {
	weir.Map("identity", identity)
	weir.Map("rewrite", rewrite)
}

func identity(r weir.Record) (weir.Record, error) { return r, nil }

var errValue = errors.New("rewrite: the value is not id=<6 digits>;amt=<digits>[;...]")

// maxAmtDigits keeps amt*2 within an int64.
const maxAmtDigits = 18

func rewrite(r weir.Record) (weir.Record, error) {
	v := r.Value
	if len(v) < 15 || string(v[:3]) != "id=" || string(v[9:14]) != ";amt=" {
		return r, errValue
	}
	for _, c := range v[3:9] {
		if c < '0' || c > '9' {
			return r, errValue
		}
	}
	amt, n := int64(0), 0
	for _, c := range v[14:] {
		if c < '0' || c > '9' {
			break
		}
		amt = amt*10 + int64(c-'0')
		n++
	}
	if n == 0 || n > maxAmtDigits || 14+n < len(v) && v[14+n] != ';' {
		return r, errValue
	}
	r.Key = v[3:9]
	// amt*2 has at most n+1 digits and v[10:] holds n+4 bytes: the result
	// fits in place, after the key, so AppendInt does not allocate.
	r.Value = strconv.AppendInt(v[10:10], amt*2, 10)
	return r, nil
}

func main() {}
