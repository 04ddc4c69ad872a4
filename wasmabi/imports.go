package wasmabi

import "strings"

// ValType is a WebAssembly value type by its binary encoding, so the
// contract can state signatures without importing a runtime (wazero's
// api.ValueType uses the same bytes).
type ValType = byte

// Value types the host functions use.
const (
	I32 ValType = 0x7f
	I64 ValType = 0x7e
)

// Signature is the type of a host function.
type Signature struct {
	Params, Results []ValType
}

// String formats s as "(i32, i32) -> i64".
func (s Signature) String() string {
	var b strings.Builder
	b.WriteByte('(')
	for i, p := range s.Params {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(valTypeName(p))
	}
	b.WriteByte(')')
	for i, r := range s.Results {
		if i == 0 {
			b.WriteString(" -> ")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(valTypeName(r))
	}
	return b.String()
}

// Equal reports whether s and o have the same params and results.
func (s Signature) Equal(o Signature) bool {
	return string(s.Params) == string(o.Params) && string(s.Results) == string(o.Results)
}

func valTypeName(t ValType) string {
	switch t {
	case I32:
		return "i32"
	case I64:
		return "i64"
	case 0x7d:
		return "f32"
	case 0x7c:
		return "f64"
	}
	return "?"
}

// Imports is the signature of every function the host offers under
// ImportModule in this ABI version. A module importing any other name, or a
// name with another signature, was built for another ABI version. Both the
// host (worker/wasmhost) and the module registry's describe
// (internal/modinfo) check imports against it.
var Imports = map[string]Signature{
	ImportOutput:        {Params: []ValType{I32, I32}},
	ImportFail:          {Params: []ValType{I32, I32}},
	ImportLog:           {Params: []ValType{I32, I32, I32}},
	ImportCounter:       {Params: []ValType{I32, I32, I64}},
	ImportStateRegister: {Params: []ValType{I32, I32, I32}, Results: []ValType{I32}},
	ImportState:         {Params: []ValType{I32, I32, I32, I32, I32, I32, I32, I32}, Results: []ValType{I64}},
	ImportTimer:         {Params: []ValType{I32, I32, I64, I32, I32}},
}
