package modbuild

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Init writes an operator template for lang into dir and returns the files
// it wrote. It never overwrites a file. Each template exports two operators:
// "upper" (a map that upper-cases values) and "count" (a keyed process
// function that emits a running count per key).
func Init(dir string, lang Lang, cacheDir string) ([]string, error) {
	name := filepath.Base(filepath.Clean(dir))
	if err := validModuleName(name); err != nil {
		return nil, err
	}
	files := map[string]string{
		"sample.jsonl": sampleJSONL,
		"README.md":    strings.ReplaceAll(templateReadme, "{{NAME}}", name),
	}
	switch lang {
	case LangGo:
		sdkDir, err := WriteGoSDK(cacheDir)
		if err != nil {
			return nil, err
		}
		files["main.go"] = goTemplate
		// The replace points at the SDK this weir binary carries, so that
		// plain `go build` and editors work too; `weir module build` rewrites
		// it on the fly to its own SDK, so a moved cache does no harm.
		files["go.mod"] = fmt.Sprintf("module %s\n\ngo 1.25\n\nrequire %s v0.0.0\n\nreplace %s => %s\n", name, WeirModule, WeirModule, sdkDir)
	case LangC:
		files[name+".c"] = cTemplate
	case LangRust:
		files["lib.rs"] = rustTemplate
	case LangAssemblyScript:
		files[asTemplatePath] = asTemplate
	default:
		return nil, fmt.Errorf("modbuild: unknown language %q: want go, c, rust or assemblyscript", lang)
	}
	for f := range files {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return nil, fmt.Errorf("modbuild: %s already exists; init never overwrites files (choose a new folder)", filepath.Join(dir, f))
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("modbuild: %w", err)
	}
	var written []string
	for _, f := range []string{"main.go", name + ".c", "lib.rs", asTemplatePath, "go.mod", "sample.jsonl", "README.md"} {
		body, ok := files[f]
		if !ok {
			continue
		}
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return written, fmt.Errorf("modbuild: %w", err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return written, fmt.Errorf("modbuild: %w", err)
		}
		written = append(written, p)
	}
	return written, nil
}

func validModuleName(s string) error {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("modbuild: the folder name %q becomes the module name: use letters, digits, '_' and '-'", s)
		}
	}
	if s == "" || s == "." || s == "/" {
		return errors.New("modbuild: give a folder to create, like ./myop")
	}
	return nil
}

const sampleJSONL = `{"key": "alice", "value": "hello world", "timestamp": 1000}
{"key": "bob", "value": "stream processing", "timestamp": 2000}
{"key": "alice", "value": "with webassembly", "timestamp": 3000}
{"key": "carol", "value": "", "timestamp": 4000}
{"key": "alice", "value": "state and timers", "timestamp": 5000}
{"key": "bob", "value": "exactly once", "timestamp": 6000}
`

const templateReadme = "# {{NAME}}\n\n" +
	"A weir operator module with two operators:\n\n" +
	"- `upper`: a map that upper-cases each record's value;\n" +
	"- `count`: a keyed process function that keeps a count per key in value\n" +
	"  state and emits the running count.\n\n" +
	"```sh\n" +
	"weir module build .                                    # -> {{NAME}}.wasm\n" +
	"weir module test {{NAME}}.wasm --operator upper --input sample.jsonl\n" +
	"weir module test {{NAME}}.wasm --operator count --input sample.jsonl\n" +
	"weir module inspect {{NAME}}.wasm\n" +
	"```\n"

const goTemplate = `// A weir operator module. Operators register themselves in init; the
// module is built with ` + "`weir module build .`" + ` (or GOOS=wasip1 GOARCH=wasm
// go build -buildmode=c-shared -o op.wasm .) and tried with
// ` + "`weir module test`" + `.
package main

import (
	"strconv"

	weir "github.com/weirstream/weir/sdk/go"
)

func init() {
	// upper: a map. The record's bytes belong to the module during the
	// call, so it can change them in place without allocating.
	weir.Map("upper", func(r weir.Record) (weir.Record, error) {
		for i, c := range r.Value {
			if c >= 'a' && c <= 'z' {
				r.Value[i] = c - 'a' + 'A'
			}
		}
		return r, nil
	})

	// count: a keyed process function with value state.
	weir.Process("count", &counter{})
}

// counter counts records per key.
type counter struct {
	weir.BaseProcess // no-op Open and OnTimer
	count *weir.ValueState[int64]
}

func (c *counter) Open(o *weir.OpenContext) error {
	c.count = weir.NewValueState(o, "count", weir.Int64Codec)
	return nil
}

func (c *counter) ProcessElement(ctx *weir.Context, r weir.Record) error {
	n, _, err := c.count.Get(ctx) // scoped to r's key
	if err != nil {
		return err
	}
	n++
	c.count.Set(ctx, n)
	ctx.Emit(weir.Record{Key: r.Key, Value: strconv.AppendInt(nil, n, 10), Timestamp: r.Timestamp})
	return nil
}

func main() {}
`

const cTemplate = `// A weir operator module in C. Build with ` + "`weir module build .`" + `
// (clang --target=wasm32-wasi) and try with ` + "`weir module test`" + `.
#include "weir.h"

// upper: a map that upper-cases each record's value.
static int upper(const weir_record *in, weir_emitter *out) {
    uint8_t *v = weir_emit_value(out, in, in->value.len);
    if (!v) return WEIR_ERR;
    for (uint32_t i = 0; i < in->value.len; i++) {
        uint8_t c = in->value.ptr[i];
        v[i] = c >= 'a' && c <= 'z' ? c - 32 : c;
    }
    return 0;
}

// count: a keyed process function with value state holding an int64.
static weir_state count_state;

static int count_open(weir_bytes params) {
    (void)params;
    count_state = weir_state_register("count", WEIR_STATE_VALUE);
    return 0;
}

static int count(const weir_record *in, weir_emitter *out) {
    int64_t n = 0;
    if (weir_value_get(count_state, &n, sizeof n) < 0) n = 0;  // -1: no value yet
    n++;
    weir_value_put(count_state, &n, sizeof n);
    char digits[24];
    uint32_t len = weir_i64_to_dec(n, digits);
    uint8_t *v = weir_emit_value(out, in, len);  // same key and timestamp, new value
    if (!v) return WEIR_ERR;
    memcpy(v, digits, len);
    return 0;
}

WEIR_OPERATORS(
    WEIR_MAP("upper", upper),
    WEIR_PROCESS("count", count, .open = count_open))
`

const rustTemplate = `//! A weir operator module in Rust. Build with ` + "`weir module build .`" + `
//! (plain rustc for wasm32-wasi, no cargo and no crates needed; the weir
//! crate is the SDK, see docs/sdk-rust.md) and try with ` + "`weir module test`" + `.

use weir::{Context, Open, Process, Record, Result, ValueState};

/// upper: a map that upper-cases each record's value. The new value is
/// written straight into the output; key, timestamp and headers are kept.
fn upper(r: &Record, ctx: &Context) -> Result {
    ctx.emit_value(r, r.value.len(), |v| {
        for (d, c) in v.iter_mut().zip(r.value) {
            *d = c.to_ascii_uppercase();
        }
    })
}

/// count: a keyed process function that keeps a count per key in value
/// state and emits the running count.
#[derive(Default)]
struct Count {
    count: ValueState<i64>,
}

impl Process for Count {
    fn open(&mut self, o: &Open) -> Result {
        self.count = o.value_state("count")?;
        Ok(())
    }

    fn process(&mut self, r: &Record, ctx: &Context) -> Result {
        let n = self.count.get(ctx)?.unwrap_or(0) + 1; // scoped to r's key
        self.count.set(ctx, &n)?;
        ctx.emit_with(0, r.key, r.timestamp, |w| {
            w.int(n);
        })
    }
}

weir::operators! {
    map "upper" => upper;
    process "count" => Count;
}
`

// asTemplatePath is where the AssemblyScript template goes, the layout of
// AssemblyScript projects.
const asTemplatePath = "assembly/index.ts"

const asTemplate = `// A weir operator module in AssemblyScript. Build with ` + "`weir module build .`" + `
// (the assemblyscript compiler) and try with ` + "`weir module test`" + `.
import { Context, OpenContext, ProcessFunction, Record, ValueState, map, process } from "weir";

// upper: a map. The record is a view of the module's input buffer, which
// the operator may change in place; the record is emitted when it returns.
map("upper", (r: Record): Error | null => {
  for (let i = 0; i < r.valueLen; i++) {
    const c = load<u8>(r.valuePtr + i);
    if (c >= 97 && c <= 122) store<u8>(r.valuePtr + i, c - 32);
  }
  return null;
});

// count: a keyed process function with value state, emitting the running
// count of each key.
class Counter extends ProcessFunction {
  count: ValueState | null = null;

  open(ctx: OpenContext): Error | null {
    this.count = ctx.valueState("count");
    return null;
  }

  processElement(ctx: Context, r: Record): Error | null {
    const st = this.count!;
    const n = st.getI64(0) + 1; // scoped to r's key
    st.setI64(n);
    ctx.emitString(r.keyString(), n.toString(), r.timestamp);
    return null;
  }
}

process("count", new Counter());
`
