// Word count in AssemblyScript: the operators of examples/as-wordcount/job.yaml.
//
//   split  flat_map: one record per word of each line, key and value the
//          word in ASCII lower case (a word is a run of ASCII letters and
//          digits), with the line's timestamp
//   count  process: a running count per word in keyed value state; emits
//          the word and its count so far
//
// split allocates nothing: it lower-cases the line in place (the input
// buffer belongs to the module during the call) and emits views of it.
import { Context, Emitter, OpenContext, ProcessFunction, Record, ValueState, flatMap, process } from "weir";

// @ts-ignore: decorator
@inline function isWordByte(c: u32): bool {
  return c - 48 < 10 || (c | 32) - 97 < 26;
}

flatMap("split", (r: Record, out: Emitter): Error | null => {
  const p = r.valuePtr;
  const n = r.valueLen;
  let start = -1;
  for (let i = 0; i <= n; i++) {
    const c: u32 = i < n ? load<u8>(p + i) : 32;
    if (isWordByte(c)) {
      if (c - 65 < 26) store<u8>(p + i, <u8>(c | 32));
      if (start < 0) start = i;
    } else if (start >= 0) {
      out.emitRaw(0, p + start, i - start, p + start, i - start, r.timestamp);
      start = -1;
    }
  }
  return null;
});

class Counter extends ProcessFunction {
  count: ValueState | null = null;

  open(ctx: OpenContext): Error | null {
    this.count = ctx.valueState("count");
    return null;
  }

  processElement(ctx: Context, r: Record): Error | null {
    const st = this.count!;
    const n = st.getI64(0) + 1;
    st.setI64(n);
    const digits = n.toString();
    const v = ctx.emitValue(r, digits.length); // r's key and timestamp, a new value
    for (let i = 0; i < digits.length; i++) store<u8>(v + i, <u8>digits.charCodeAt(i));
    return null;
  }
}

process("count", new Counter());
