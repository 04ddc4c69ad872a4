// Operators that exercise every part of the AssemblyScript SDK; as_test.go
// runs them through the weir host and checks them against Go code.
import {
  AggregateFunction, CoProcessFunction, Context, Emitter, ListState, MapState, OpenContext,
  ProcessFunction, Reader, Record, Timer, ValueState, Writer,
  aggregate, coProcess, count, fail, filter, flatMap, log, logAt, map, process, LOG_WARN,
} from "weir";

// identity: the record as it came (passed through, not copied).
map("identity", (r: Record): Error | null => null);

// upper: ASCII upper case, in place.
map("upper", (r: Record): Error | null => {
  for (let i = 0; i < r.valueLen; i++) {
    const c = load<u8>(r.valuePtr + i);
    if (c >= 97 && c <= 122) store<u8>(r.valuePtr + i, c - 32);
  }
  return null;
});

// describe: value becomes "<key>|<value>|<header h or ->", key "k:"+key,
// timestamp + 1, a header "seen: yes" added; value "x" fails the batch.
map("describe", (r: Record): Error | null => {
  const v = r.valueString();
  if (v == "x") return fail("no good: " + v);
  const h = r.header("h");
  r.setValueString(r.keyString() + "|" + v + "|" + (h === null ? "-" : h));
  r.setKeyString("k:" + r.keyString());
  r.timestamp += 1;
  r.addHeader("seen", "yes");
  return null;
});

// nonempty: keeps records with a value; "bad" fails.
filter("nonempty", (r: Record): bool => {
  if (r.valueLen == 3 && r.valueString() == "bad") fail("bad value");
  return r.valueLen > 0;
});

// words: each space-separated word a record (key = word, ts of the input);
// words starting with '#' go to side output "tags"; "wm=N" emits watermark N;
// "side=?" emits to an undeclared side output (an error). Counts words.
flatMap("words", (r: Record, out: Emitter): Error | null => {
  const words = r.valueString().split(" ");
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    if (w.length == 0) continue;
    if (w.startsWith("wm=")) {
      out.emitWatermark(I64.parseInt(w.substring(3)));
    } else if (w == "side=?") {
      out.emitTo("nosuch", r);
    } else if (w.startsWith("#")) {
      out.emitStringTo(1, w, "tag", r.timestamp);
      count("tags");
    } else {
      out.emitString(w, "1", r.timestamp);
      count("words");
    }
  }
  return null;
}, ["tags"], (ctx: OpenContext): Error | null => {
  log("words open " + ctx.name() + " params=" + ctx.params());
  return null;
}, (ctx: Context): Error | null => {
  ctx.emitString("", "end of words", 0);
  return null;
});

// sessions: per key a running count (value state), the values seen (list
// state) and a count per value (map state). Each record emits
// "<count>:<values joined by ,>" and registers an event timer at ts + 100;
// a timer emits "timer <key> <count> <distinct values>" and clears the
// key's state. A record behind the watermark goes to side output "late".
class Sessions extends ProcessFunction {
  n: ValueState | null = null;
  seen: ListState | null = null;
  perValue: MapState | null = null;

  open(ctx: OpenContext): Error | null {
    this.n = ctx.valueState("n");
    this.seen = ctx.listState("seen");
    this.perValue = ctx.mapState("per-value");
    logAt(LOG_WARN, "sessions open");
    return null;
  }

  processElement(ctx: Context, r: Record): Error | null {
    if (r.timestamp < ctx.watermark()) {
      ctx.emitTo("late", r);
      return null;
    }
    const v = r.valueString();
    if (v == "boom") return fail("boom at " + r.timestamp.toString());
    const n = this.n!.getI64(0) + 1;
    this.n!.setI64(n);
    this.seen!.addString(v);
    const old = this.perValue!.getString(v);
    this.perValue!.putString(v, old === null ? "1" : (I64.parseInt(old) + 1).toString());
    ctx.emitString(ctx.keyString(), n.toString() + ":" + this.seen!.getStrings().join(","), r.timestamp);
    ctx.registerEventTimer(r.timestamp + 100);
    count("records");
    return null;
  }

  onTimer(ctx: Context, t: Timer): Error | null {
    const entries = this.perValue!.entries();
    let distinct = "";
    for (let i = 0; i < entries.length; i++) {
      if (i > 0) distinct += ",";
      distinct += entries[i].keyString() + "=" + entries[i].valueString();
    }
    ctx.emitString(t.keyString(), "timer " + t.keyString() + " " + this.n!.getI64(0).toString() + " " + distinct, t.timestamp);
    this.n!.clear();
    this.seen!.clear();
    this.perValue!.clear();
    return null;
  }

  finish(ctx: Context): Error | null {
    ctx.emitString("", "sessions done", 0);
    return null;
  }
}
process("sessions", new Sessions(), ["late"]);

// keyless: uses keyed state from a finish hook, which must fail.
class Keyless extends ProcessFunction {
  n: ValueState | null = null;
  open(ctx: OpenContext): Error | null { this.n = ctx.valueState("n"); return null; }
  processElement(ctx: Context, r: Record): Error | null {
    ctx.registerProcessingTimer(ctx.processingTime() + 5);
    return null;
  }
  onTimer(ctx: Context, t: Timer): Error | null {
    ctx.emitString(t.keyString(), t.domain == 1 ? "processing" : "event", t.timestamp);
    return null;
  }
  finish(ctx: Context): Error | null {
    this.n!.setI64(1);
    return null;
  }
}
process("keyless", new Keyless());

// join: input 1 sets the key's name (value state); input 2 records are
// "orders": with a name known they emit "<name> ordered <value>", else they
// wait in list state until the name comes.
class Join extends CoProcessFunction {
  name: ValueState | null = null;
  waiting: ListState | null = null;
  open(ctx: OpenContext): Error | null {
    this.name = ctx.valueState("name");
    this.waiting = ctx.listState("waiting");
    return null;
  }
  processElement1(ctx: Context, r: Record): Error | null {
    const name = r.valueString();
    this.name!.setString(name);
    const w = this.waiting!.getStrings();
    for (let i = 0; i < w.length; i++) ctx.emitString(ctx.keyString(), name + " ordered " + w[i], r.timestamp);
    this.waiting!.clear();
    return null;
  }
  processElement2(ctx: Context, r: Record): Error | null {
    const name = this.name!.getString();
    if (name === null) {
      this.waiting!.addString(r.valueString());
    } else {
      ctx.emitString(ctx.keyString(), name + " ordered " + r.valueString(), r.timestamp);
    }
    return null;
  }
}
coProcess("join", new Join());

// stats: a window aggregate of the integer values: count, sum, max;
// result "<key>: n=<n> sum=<sum> max=<max>" at the window end.
class Stats {
  n: i64 = 0;
  sum: i64 = 0;
  max: i64 = i64.MIN_VALUE;
}
class StatsAgg extends AggregateFunction<Stats> {
  create(): Stats { return new Stats(); }
  add(acc: Stats, r: Record): Stats {
    const v = I64.parseInt(r.valueString());
    acc.n++;
    acc.sum += v;
    if (v > acc.max) acc.max = v;
    return acc;
  }
  merge(a: Stats, b: Stats): Stats {
    a.n += b.n;
    a.sum += b.sum;
    if (b.max > a.max) a.max = b.max;
    return a;
  }
  result(key: Record, windowEnd: i64, acc: Stats, out: Emitter): Error | null {
    const text = key.keyString() + ": n=" + acc.n.toString() + " sum=" + acc.sum.toString() + " max=" + acc.max.toString();
    const b = String.UTF8.encode(text);
    out.emitRaw(0, key.keyPtr, key.keyLen, changetype<usize>(b), b.byteLength, windowEnd);
    return null;
  }
  encode(acc: Stats, w: Writer): void { w.i64(acc.n); w.i64(acc.sum); w.i64(acc.max); }
  decode(r: Reader): Stats | null {
    const s = new Stats();
    s.n = r.i64();
    s.sum = r.i64();
    s.max = r.i64();
    return r.ok && r.remaining() == 0 ? s : null;
  }
}
aggregate<Stats>("stats", new StatsAgg());

// inventory: operator state. Each record's value is added to an operator
// list, a union list gets its key, and broadcast state maps key -> value;
// the output value is "<list items>/<union items>/<broadcast of this key>".
let items: ListState | null = null;
let union: ListState | null = null;
let bcast: MapState | null = null;
map("inventory", (r: Record): Error | null => {
  items!.addString(r.valueString());
  union!.addString(r.keyString());
  bcast!.putString(r.keyString(), r.valueString());
  const b = bcast!.getString(r.keyString());
  r.setValueString(items!.get().length.toString() + "/" + union!.get().length.toString() + "/" + (b === null ? "?" : b));
  return null;
}, (ctx: OpenContext): Error | null => {
  items = ctx.operatorListState("items");
  union = ctx.unionListState("keys");
  bcast = ctx.broadcastState("latest");
  return null;
});

// badstate: declares keyed state in a map, which open refuses.
map("badstate", (r: Record): Error | null => null, (ctx: OpenContext): Error | null => {
  ctx.valueState("nope");
  return null;
});

// digits: emits the value's length in decimal through emitValue (written
// in place, no temporary).
flatMap("digits", (r: Record, out: Emitter): Error | null => {
  const s = r.valueLen.toString();
  const p = out.emitValue(r, s.length);
  for (let i = 0; i < s.length; i++) store<u8>(p + i, <u8>s.charCodeAt(i));
  return null;
});
