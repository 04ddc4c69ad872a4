package wasmhost

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/weirstream/weir/wasmabi"
)

// Sentinel errors, one per way a module can fail. Every failure of a module is
// returned as an *Error that wraps one of them, so callers can tell them apart
// with errors.Is. *Error prints them without the package prefix: a user
// reads "module trapped", not "wasmhost: module trapped".
var (
	ErrInvalidModule = errors.New("wasmhost: not a valid WebAssembly module")
	ErrImport        = errors.New("wasmhost: module imports a function the host does not offer")
	ErrVersion       = errors.New("wasmhost: ABI version mismatch")
	ErrDescriptor    = errors.New("wasmhost: bad operator descriptor")
	ErrNoOperator    = errors.New("wasmhost: no such operator")
	ErrTrap          = errors.New("wasmhost: module trapped")
	ErrExit          = errors.New("wasmhost: module exited")
	ErrTimeout       = errors.New("wasmhost: exceeded its time limit")
	ErrMemoryLimit   = errors.New("wasmhost: module exceeded its memory limit")
	ErrOutputLimit   = errors.New("wasmhost: call exceeded its output limit")
	ErrBadOutput     = errors.New("wasmhost: malformed output")
	ErrContract      = errors.New("wasmhost: output breaks the operator kind's contract")
	ErrHostCall      = errors.New("wasmhost: bad host function call")
	ErrHostLimit     = errors.New("wasmhost: host-side limit reached")
	ErrOperator      = errors.New("wasmhost: operator failed")
	ErrCanceled      = errors.New("wasmhost: stopped because its job is ending")
	ErrBudget        = errors.New("wasmhost: worker memory budget exhausted")
	ErrClosed        = errors.New("wasmhost: instance closed")
)

const pkgPrefix = "wasmhost: "

// Error is a failure of one module, operator and stage. It says which
// module, which operator, what the host was doing (the stage: compile,
// instantiate, start function, describe, open, process, timers, finish,
// ...), which record when known, and what happened, each once.
//
// The task that runs the instance fills in Node, Subtask, Offset and Key
// rather than wrapping the error in more text.
type Error struct {
	Module   string // module name (usually its file name)
	Operator string // operator name in the module, empty when the module as a whole failed
	Method   string // the stage: the ABI method or phase ("instantiate", "process", ...)
	Record   int    // index of the failing record in its batch, or -1
	Err      error  // wraps one of the sentinels above
	Detail   string // what the module printed to stderr before it failed, if anything

	// Set by the task that ran the call; zero outside a job.
	Node    string // the job's operator uid
	Subtask int    // subtask index, when Node is set
	Offset  int64  // offset of the failing record in the subtask's input, when Node is set and Record >= 0
	Key     []byte // key of the failing record, when known
	Records string // when the record is not known: which records of the input the batch held ("records 0-1023")
	Policy  string // why the error policy did not apply, if it did not
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Node != "" {
		fmt.Fprintf(&b, "operator %s subtask %d (module %s", e.Node, e.Subtask, e.Module)
		if e.Operator != "" && e.Operator != e.Node {
			b.WriteString(", operator " + e.Operator)
		}
		b.WriteString(")")
	} else {
		b.WriteString("module " + e.Module)
		if e.Operator != "" {
			b.WriteString(", operator " + e.Operator)
		}
	}
	if e.Method != "" {
		b.WriteString(", " + e.Method)
	}
	switch {
	case e.Node != "" && e.Record >= 0:
		fmt.Fprintf(&b, ", record %d of the subtask's input", e.Offset)
	case e.Record >= 0:
		fmt.Fprintf(&b, ", record %d of the batch", e.Record)
	case e.Records != "":
		b.WriteString(", " + e.Records)
	}
	if e.Key != nil {
		b.WriteString(" (key " + QuoteKey(e.Key) + ")")
	}
	b.WriteString(": ")
	// Sentinels and errors wrapped in them carry the package prefix; say it
	// to no user.
	b.WriteString(strings.ReplaceAll(e.Err.Error(), pkgPrefix, ""))
	if e.Detail != "" {
		b.WriteString(" (stderr: " + e.Detail + ")")
	}
	if e.Policy != "" {
		b.WriteString(" (" + e.Policy + ")")
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Poisoning reports whether the instance that produced e can no longer be
// used. Only an operator's own error (returned through fail) and an output
// that breaks the kind's contract leave the instance healthy; a trap, exit,
// timeout or limit leaves it in an unknown state.
func (e *Error) Poisoning() bool {
	return !errors.Is(e.Err, ErrOperator) && !errors.Is(e.Err, ErrContract)
}

// OperatorError is the error of an operator that failed a call with msg
// (through the fail host function, or natively). A message that starts with
// "record N:" or "timer N:" names the failing entry of the batch; Record is
// set from it and the prefix dropped. Bytes that are not printable text are
// escaped.
func OperatorError(module, operator string, method wasmabi.Method, msg string) *Error {
	rec := -1
	for _, prefix := range []string{"record ", "timer "} {
		rest, ok := strings.CutPrefix(msg, prefix)
		if !ok {
			continue
		}
		if i := strings.IndexByte(rest, ':'); i > 0 {
			if n, err := strconv.Atoi(rest[:i]); err == nil && n >= 0 {
				rec, msg = n, strings.TrimSpace(rest[i+1:])
			}
		}
	}
	return &Error{Module: module, Operator: operator, Method: method.String(), Record: rec,
		Err: fmt.Errorf("%w: %s", ErrOperator, Printable(msg))}
}

// Printable returns s with every byte that is not printable UTF-8 text
// escaped (\n, \t, \xNN, \u2028), so a module's message can neither
// corrupt a terminal nor hide in one.
func Printable(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case !unicode.IsPrint(r) && r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		case !unicode.IsPrint(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}

// QuoteKey renders a record key for an error message: quoted, escaped,
// at most 64 bytes of it.
func QuoteKey(k []byte) string {
	const max = 64
	if len(k) > max {
		return strconv.Quote(string(k[:max])) + fmt.Sprintf("... (%d bytes)", len(k))
	}
	return strconv.Quote(string(k))
}
