// The AssemblyScript SDK of weir (ABI v1): operator modules in AssemblyScript.
//
// An operator module imports this package as "weir" and registers its
// operators with top-level statements, in order (the order is the operator's
// index in the descriptor):
//
//   import { Record, Emitter, map, filter, flatMap } from "weir";
//
//   map("upper", (r: Record): Error | null => {
//     for (let i = 0; i < r.valueLen; i++) {
//       const c = load<u8>(r.valuePtr + i);
//       if (c >= 97 && c <= 122) store<u8>(r.valuePtr + i, c - 32);
//     }
//     return null; // the record, changed in place, is the output
//   });
//
// `weir module build` compiles it together with exports.ts (the ABI's
// exports) and --runtime minimal; docs/sdk-assemblyscript.md is the guide.
//
// Memory. A Record handed to an operator is a view into the module's input
// buffer: keyPtr/keyLen, valuePtr/valueLen, headersPtr/headersLen point at
// the bytes of the entry, valid during the callback. The bytes belong to the
// module during the call and may be changed in place. A record emitted
// unchanged (a map returning without touching the view, a filter keeping
// it) is not copied: the SDK hands the host the input bytes. Other output
// is appended to a 64 KiB buffer given to the host when it fills and at the
// end of the call. Nothing on the record path allocates; the string and
// ArrayBuffer helpers (valueString(), setValueString(), ...) do, and the
// garbage is collected between calls (the minimal runtime never collects
// during a call, so no object moves or dies under an operator).
//
// Errors. AssemblyScript has no exceptions that a module can catch, so
// every callback returns Error | null: null is success; an Error fails the
// whole call, and the host gets "record N: <message>" with N the index of
// the record (or timer, or accumulator) in its batch. fail(msg) also records
// the error, for callbacks that return something else (a filter). A
// throw, an out-of-bounds access or an abort traps the instance instead:
// the task fails and the instance is discarded.

// ------------------------------------------------------------ host imports

@external("weir", "output") declare function hostOutput(ptr: usize, len: usize): void;
@external("weir", "fail") declare function hostFail(ptr: usize, len: usize): void;
@external("weir", "log") declare function hostLog(level: i32, ptr: usize, len: usize): void;
@external("weir", "counter") declare function hostCounter(ptr: usize, len: usize, delta: i64): void;
@external("weir", "state_register") declare function hostStateRegister(ptr: usize, len: usize, kind: i32): i32;
@external("weir", "state") declare function hostState(op: i32, id: i32, kptr: usize, klen: usize, uptr: usize, ulen: usize, vptr: usize, vlen: usize): i64;
@external("weir", "timer") declare function hostTimer(op: i32, domain: i32, ts: i64, kptr: usize, klen: usize): void;

// ---------------------------------------------------------------- constants

export const ABI_VERSION: i32 = 1;
export const SDK_VERSION = "assemblyscript/0.1";

/** The watermark before the first watermark has arrived. */
export const NO_WATERMARK: i64 = i64.MIN_VALUE;

export const EVENT_TIME: i32 = 0;
export const PROCESSING_TIME: i32 = 1;

export const LOG_DEBUG: i32 = 0;
export const LOG_INFO: i32 = 1;
export const LOG_WARN: i32 = 2;
export const LOG_ERROR: i32 = 3;

const KIND_MAP: i32 = 1;
const KIND_FILTER: i32 = 2;
const KIND_FLAT_MAP: i32 = 3;
const KIND_PROCESS: i32 = 4;
const KIND_CO_PROCESS: i32 = 5;
const KIND_AGGREGATE: i32 = 6;

const METHOD_OPEN: i32 = 0;
const METHOD_PROCESS: i32 = 1;
const METHOD_TIMERS: i32 = 2;
const METHOD_AGG_ADD: i32 = 3;
const METHOD_AGG_MERGE: i32 = 4;
const METHOD_AGG_RESULT: i32 = 5;
const METHOD_FINISH: i32 = 6;

const ENTRY_RECORD: u8 = 1;
const ENTRY_WATERMARK: u8 = 2;
const ENTRY_TIMER: u8 = 3;
const ENTRY_ACCUMULATOR: u8 = 4;
const HDR: usize = 24; // bytes of a batch header and of an entry header

const STATE_VALUE: i32 = 1;
const STATE_LIST: i32 = 2;
const STATE_MAP: i32 = 3;
const STATE_OPERATOR_LIST: i32 = 4;
const STATE_UNION_LIST: i32 = 5;
const STATE_BROADCAST: i32 = 6;

const OP_GET: i32 = 1;
const OP_PUT: i32 = 2;
const OP_DELETE: i32 = 3;
const OP_ENTRIES: i32 = 4;
const OP_CLEAR: i32 = 5;

const OUT_FLUSH: usize = 64 << 10;

// ----------------------------------------------------------------- globals

let inBuf: usize = 0; // the input buffer (weir_buffer)
let inCap: usize = 0;
let outBuf: usize = 0; // buffered output entries
let outLen: usize = 0;
let outCap: usize = 0;
let runStart: usize = 0; // then: input entries passed through, [runStart, runEnd)
let runEnd: usize = 0; // 0: no run
let batchWatermark: i64 = NO_WATERMARK;
let batchTime: i64 = 0;
let keyPtr: usize = 0; // key of the record or timer at hand (keyed operators)
let keyLen: usize = 0;
let keyed = false; // state and timers may be used now
let current: Op | null = null; // the operator of the call
let opening = false; // in open: state may be declared
let pending: string | null = null; // an error set by fail() or SDK misuse
let stBuf: usize = 0; // results of state gets
let stCap: usize = 0;
let counterNames = new Array<string>();
let counterDeltas = new Array<i64>();
let lastPages: i32 = 0; // memory size after the last collection
let callsSinceCollect: i32 = 0;

// ------------------------------------------------------------------ errors

/**
 * Records msg as the error of the callback at hand and returns it as an
 * Error, so a callback can `return fail("bad amount")`. A callback that
 * cannot return an Error (a filter) calls it and returns anything.
 */
export function fail(msg: string): Error {
  if (pending === null) pending = msg;
  return new Error(msg);
}

// misuse records an error in the use of the SDK (state outside a keyed call,
// an undeclared side output): the call fails after the callback returns.
function misuse(msg: string): void {
  if (pending === null) pending = msg;
}

// ------------------------------------------------------------------ records

/**
 * A record: a key, a value, headers and an event-time timestamp (ms). The
 * pointers and lengths are a view of bytes the SDK or the operator owns;
 * on input they point into the module's input buffer.
 */
export class Record {
  keyPtr: usize = 0;
  keyLen: i32 = 0;
  valuePtr: usize = 0;
  valueLen: i32 = 0;
  headersPtr: usize = 0; // encoded: (u16 name length, name, u32 value length, value)*
  headersLen: i32 = 0;
  timestamp: i64 = 0;
  // Buffers the setters allocated, kept reachable while the view uses them.
  private keyBuf: ArrayBuffer | null = null;
  private valueBuf: ArrayBuffer | null = null;
  private headersBuf: ArrayBuffer | null = null;

  /** A new record of UTF-8 strings (allocates). */
  static of(key: string, value: string, timestamp: i64): Record {
    const r = new Record();
    r.setKeyString(key);
    r.setValueString(value);
    r.timestamp = timestamp;
    return r;
  }

  /** A copy of the key. */
  key(): ArrayBuffer { return copyOut(this.keyPtr, this.keyLen); }
  /** A copy of the value. */
  value(): ArrayBuffer { return copyOut(this.valuePtr, this.valueLen); }
  /** The key as UTF-8 text. */
  keyString(): string { return String.UTF8.decodeUnsafe(this.keyPtr, this.keyLen); }
  /** The value as UTF-8 text. */
  valueString(): string { return String.UTF8.decodeUnsafe(this.valuePtr, this.valueLen); }

  setKey(b: ArrayBuffer): void { this.keyBuf = b; this.keyPtr = changetype<usize>(b); this.keyLen = b.byteLength; }
  setValue(b: ArrayBuffer): void { this.valueBuf = b; this.valuePtr = changetype<usize>(b); this.valueLen = b.byteLength; }
  setKeyString(s: string): void { this.setKey(String.UTF8.encode(s)); }
  setValueString(s: string): void { this.setValue(String.UTF8.encode(s)); }
  /** Points the value at n bytes at ptr, which must stay valid until the record is emitted. */
  setValueRaw(ptr: usize, n: i32): void { this.valueBuf = null; this.valuePtr = ptr; this.valueLen = n; }
  setKeyRaw(ptr: usize, n: i32): void { this.keyBuf = null; this.keyPtr = ptr; this.keyLen = n; }

  /** The value of the first header called name, or null. */
  header(name: string): string | null {
    const at = findHeader(this.headersPtr, this.headersLen, name);
    if (at < 0) return null;
    const p = this.headersPtr + <usize>at;
    return String.UTF8.decodeUnsafe(p + 4, load<u32>(p));
  }

  /** Adds a header (allocates a new header block). */
  addHeader(name: string, value: string): void {
    const nl = String.UTF8.byteLength(name), vl = String.UTF8.byteLength(value);
    const b = new ArrayBuffer(this.headersLen + 6 + nl + vl);
    const p = changetype<usize>(b);
    memory.copy(p, this.headersPtr, this.headersLen);
    let q = p + this.headersLen;
    store<u16>(q, <u16>nl);
    String.UTF8.encodeUnsafe(changetype<usize>(name), name.length, q + 2);
    q += 2 + nl;
    store<u32>(q, <u32>vl);
    String.UTF8.encodeUnsafe(changetype<usize>(value), value.length, q + 4);
    this.headersBuf = b;
    this.headersPtr = p;
    this.headersLen = b.byteLength;
  }

  /** Copies the fields of o (the view, not the bytes). */
  copyFrom(o: Record): void {
    this.keyPtr = o.keyPtr; this.keyLen = o.keyLen;
    this.valuePtr = o.valuePtr; this.valueLen = o.valueLen;
    this.headersPtr = o.headersPtr; this.headersLen = o.headersLen;
    this.timestamp = o.timestamp;
    this.keyBuf = o.keyBuf; this.valueBuf = o.valueBuf; this.headersBuf = o.headersBuf;
  }
}

// findHeader returns the offset of the value length of header name in the
// encoded headers at p, or -1.
function findHeader(p: usize, n: i32, name: string): i32 {
  const want = String.UTF8.byteLength(name);
  let off: i32 = 0;
  while (off + 6 <= n) {
    const nl = <i32>load<u16>(p + <usize>off);
    if (off + 2 + nl + 4 > n) return -1;
    const vl = <i32>load<u32>(p + <usize>(off + 2 + nl));
    if (nl == want && sameUTF8(p + <usize>off + 2, nl, name)) return off + 2 + nl;
    off += 2 + nl + 4 + vl;
  }
  return -1;
}

function sameUTF8(p: usize, n: i32, s: string): bool {
  // Names are short: compare through a temporary encoding.
  const b = String.UTF8.encode(s);
  return b.byteLength == n && memory.compare(p, changetype<usize>(b), n) == 0;
}

function copyOut(p: usize, n: i32): ArrayBuffer {
  const b = new ArrayBuffer(n);
  memory.copy(changetype<usize>(b), p, n);
  return b;
}

/** A due timer of a keyed operator. */
export class Timer {
  keyPtr: usize = 0;
  keyLen: i32 = 0;
  timestamp: i64 = 0;
  domain: i32 = EVENT_TIME; // EVENT_TIME or PROCESSING_TIME
  key(): ArrayBuffer { return copyOut(this.keyPtr, this.keyLen); }
  keyString(): string { return String.UTF8.decodeUnsafe(this.keyPtr, this.keyLen); }
}

// ------------------------------------------------------------------- output

function flushOut(): void {
  if (outLen > 0) {
    hostOutput(outBuf, outLen);
    outLen = 0;
  }
  if (runEnd != 0) {
    hostOutput(runStart, runEnd - runStart);
    runEnd = 0;
  }
}

function discardOut(): void {
  outLen = 0;
  runEnd = 0;
}

// reserve returns room for n bytes of output after everything emitted so far.
function reserve(n: usize): usize {
  if (runEnd != 0 || outLen + n > outCap) {
    flushOut();
    if (n > outCap) {
      outBuf = heap.realloc(outBuf, n);
      outCap = n;
    }
  }
  const p = outBuf + outLen;
  outLen += n;
  return p;
}

// passThrough emits the input entry [s, e) as it is.
// @ts-ignore: decorator
@inline function passThrough(s: usize, e: usize): void {
  if (runEnd == s) {
    runEnd = e;
    return;
  }
  if (runEnd != 0 || outLen != 0) flushOut();
  runStart = s;
  runEnd = e;
}

// @ts-ignore: decorator
@inline function putHeader(p: usize, kind: u8, flags: u8, port: u16, kl: i32, ts: i64, vl: i32, hl: i32): void {
  store<u32>(p, <u32>kind | <u32>flags << 8 | <u32>port << 16);
  store<u32>(p, <u32>kl, 4);
  store<i64>(p, ts, 8);
  store<u32>(p, <u32>vl, 16);
  store<u32>(p, <u32>hl, 20);
}

function emitEntry(kind: u8, port: u16, kp: usize, kl: i32, vp: usize, vl: i32, hp: usize, hl: i32, ts: i64): void {
  const p = reserve(HDR + <usize>kl + <usize>vl + <usize>hl);
  putHeader(p, kind, 0, port, kl, ts, vl, hl);
  copy(p + HDR, kp, kl);
  copy(p + HDR + kl, vp, vl);
  if (hl != 0) copy(p + HDR + kl + vl, hp, hl);
}

/**
 * Copies n bytes from src to dst (not overlapping): memory.copy, but plain
 * loads and stores for up to 16 bytes, since engines run memory.copy as a
 * call into the runtime.
 */
// @ts-ignore: decorator
@inline export function copy(dst: usize, src: usize, n: usize): void {
  if (n <= 16) {
    if (n >= 8) {
      const a = load<u64>(src), b = load<u64>(src + n - 8);
      store<u64>(dst, a);
      store<u64>(dst + n - 8, b);
    } else if (n >= 4) {
      const a = load<u32>(src), b = load<u32>(src + n - 4);
      store<u32>(dst, a);
      store<u32>(dst + n - 4, b);
    } else if (n != 0) {
      const a = load<u8>(src), b = load<u8>(src + (n >> 1)), c = load<u8>(src + n - 1);
      store<u8>(dst, a);
      store<u8>(dst + (n >> 1), b);
      store<u8>(dst + n - 1, c);
    }
  } else {
    memory.copy(dst, src, n);
  }
}

// The input entry of the record callback at hand, to tell an unchanged
// record from a changed one.
let entryStart: usize = 0;
let entryEnd: usize = 0;
let entryTs: i64 = 0;

// unchanged reports whether r is the view of the input entry at hand.
// @ts-ignore: decorator
@inline function unchanged(r: Record): bool {
  const k = r.keyPtr;
  return entryEnd != 0 && k == entryStart + HDR && r.valuePtr == k + <usize>r.keyLen &&
    r.headersPtr == r.valuePtr + <usize>r.valueLen && r.headersPtr + <usize>r.headersLen == entryEnd &&
    r.timestamp == entryTs;
}

function emitRecord(port: u16, r: Record): void {
  if (port == 0 && unchanged(r)) {
    passThrough(entryStart, entryEnd);
    return;
  }
  emitEntry(ENTRY_RECORD, port, r.keyPtr, r.keyLen, r.valuePtr, r.valueLen, r.headersPtr, r.headersLen, r.timestamp);
}

function sidePort(name: string): u16 {
  const o = current;
  if (o !== null) {
    const side = o.sideOutputs;
    for (let i = 0; i < side.length; i++) {
      if (unchecked(side[i]) == name) return <u16>(i + 1);
    }
    misuse("emit to side output \"" + name + "\", which operator " + o.name + " did not declare");
  }
  return 0xffff;
}

/**
 * Where a callback emits records and watermarks. Valid only during the
 * callback it was given to; the bytes emitted are copied at once.
 */
export class Emitter {
  /** Emits r to the main output (an unchanged input record is not copied). */
  emit(r: Record): void { emitRecord(0, r); }
  /** Emits r to the side output called name (declared at registration). */
  emitTo(name: string, r: Record): void {
    const port = sidePort(name);
    if (port != 0xffff) emitRecord(port, r);
  }
  /** Emits a record of UTF-8 strings, encoded straight into the output. */
  emitString(key: string, value: string, timestamp: i64): void { this.emitStringTo(0, key, value, timestamp); }
  /** As emitString, to output port (0 main, n the n-th side output). */
  emitStringTo(port: i32, key: string, value: string, timestamp: i64): void {
    const kl = String.UTF8.byteLength(key), vl = String.UTF8.byteLength(value);
    const p = reserve(HDR + <usize>kl + <usize>vl);
    putHeader(p, ENTRY_RECORD, 0, <u16>port, kl, timestamp, vl, 0);
    String.UTF8.encodeUnsafe(changetype<usize>(key), key.length, p + HDR);
    String.UTF8.encodeUnsafe(changetype<usize>(value), value.length, p + HDR + kl);
  }
  /** Emits key and value bytes (key may be null). */
  emitBytes(key: ArrayBuffer | null, value: ArrayBuffer, timestamp: i64): void {
    const kp = key === null ? 0 : changetype<usize>(key);
    const kl = key === null ? 0 : key.byteLength;
    emitEntry(ENTRY_RECORD, 0, kp, kl, changetype<usize>(value), value.byteLength, 0, 0, timestamp);
  }
  /** Emits the bytes at the given addresses to output port. */
  emitRaw(port: i32, kp: usize, kl: i32, vp: usize, vl: i32, timestamp: i64): void {
    emitEntry(ENTRY_RECORD, <u16>port, kp, kl, vp, vl, 0, 0, timestamp);
  }
  /**
   * Emits a record with r's key, headers and timestamp and a value of n
   * bytes, and returns the address of the value for the caller to fill
   * (before its next emit): no copy of a temporary value.
   */
  emitValue(r: Record, n: i32): usize {
    const p = reserve(HDR + <usize>r.keyLen + <usize>n + <usize>r.headersLen);
    putHeader(p, ENTRY_RECORD, 0, 0, r.keyLen, r.timestamp, n, r.headersLen);
    memory.copy(p + HDR, r.keyPtr, r.keyLen);
    memory.copy(p + HDR + r.keyLen + n, r.headersPtr, r.headersLen);
    return p + HDR + r.keyLen;
  }
  /** Emits a watermark (punctuated watermarks). */
  emitWatermark(ts: i64): void {
    putHeader(reserve(HDR), ENTRY_WATERMARK, 0, 0, 0, ts, 0, 0);
  }
}

// ------------------------------------------------------- logs and counters

/** Writes a log line at info level. */
export function log(msg: string): void { logAt(LOG_INFO, msg); }

/** Writes a log line at level (LOG_DEBUG .. LOG_ERROR). */
export function logAt(level: i32, msg: string): void {
  const b = String.UTF8.encode(msg);
  hostLog(level, changetype<usize>(b), b.byteLength);
}

/** Adds delta to the named counter; summed per call, sent at its end. */
export function count(name: string, delta: i64 = 1): void {
  const names = counterNames;
  for (let i = 0; i < names.length; i++) {
    if (unchecked(names[i]) == name) {
      unchecked(counterDeltas[i] += delta);
      return;
    }
  }
  names.push(name);
  counterDeltas.push(delta);
}

function sendCounters(): void {
  const names = counterNames;
  for (let i = 0; i < names.length; i++) {
    const d = unchecked(counterDeltas[i]);
    if (d != 0) {
      const b = String.UTF8.encode(unchecked(names[i]));
      hostCounter(changetype<usize>(b), b.byteLength, d);
      unchecked(counterDeltas[i] = 0);
    }
  }
}

// -------------------------------------------------------------------- state

function stateKey(needKey: bool): bool {
  if (needKey && !keyed) {
    misuse("keyed state or timers used outside a record or timer of a keyed operator (process or co_process)");
    return false;
  }
  return true;
}

// stateCall runs a get or entries and leaves the result in stBuf; it returns
// the length, or -1 for nothing.
function stateFetch(op: i32, id: i32, isKeyed: bool, up: usize, ul: usize): i64 {
  if (!stateKey(isKeyed)) return -1;
  let n = hostState(op, id, keyPtr, keyLen, up, ul, stBuf, stCap);
  if (n > <i64>stCap) {
    stBuf = heap.realloc(stBuf, <usize>n);
    stCap = <usize>n;
    n = hostState(op, id, keyPtr, keyLen, up, ul, stBuf, stCap);
  }
  return n;
}

function stateDo(op: i32, id: i32, isKeyed: bool, up: usize, ul: usize, vp: usize, vl: usize): void {
  if (stateKey(isKeyed)) hostState(op, id, keyPtr, keyLen, up, ul, vp, vl);
}

function items(n: i64): Array<ArrayBuffer> {
  const out = new Array<ArrayBuffer>();
  let p = stBuf;
  const end = stBuf + <usize>n;
  while (p + 4 <= end) {
    const l = load<u32>(p);
    out.push(copyOut(p + 4, l));
    p += 4 + l;
  }
  return out;
}

function register(name: string, kind: i32): i32 {
  const o = current;
  if (!opening || o === null) {
    misuse("state \"" + name + "\" must be declared in open");
    return -1;
  }
  if (kind <= STATE_MAP && o.kind != KIND_PROCESS && o.kind != KIND_CO_PROCESS) {
    misuse("state \"" + name + "\": keyed state needs a process or co_process operator (operator state does not)");
    return -1;
  }
  const b = String.UTF8.encode(name);
  return hostStateRegister(changetype<usize>(b), b.byteLength, kind);
}

function encoded(s: string): ArrayBuffer { return String.UTF8.encode(s); }

/** Keyed value state: one value per key. */
export class ValueState {
  constructor(readonly id: i32) {}
  /** The value, or null. */
  get(): ArrayBuffer | null {
    const n = stateFetch(OP_GET, this.id, true, 0, 0);
    return n < 0 ? null : copyOut(stBuf, <i32>n);
  }
  getString(): string | null {
    const n = stateFetch(OP_GET, this.id, true, 0, 0);
    return n < 0 ? null : String.UTF8.decodeUnsafe(stBuf, <usize>n);
  }
  /** The value as a little-endian i64, or dflt when there is none (no allocation). */
  getI64(dflt: i64 = 0): i64 {
    const n = stateFetch(OP_GET, this.id, true, 0, 0);
    return n == 8 ? load<i64>(stBuf) : dflt;
  }
  getF64(dflt: f64 = 0): f64 {
    const n = stateFetch(OP_GET, this.id, true, 0, 0);
    return n == 8 ? load<f64>(stBuf) : dflt;
  }
  has(): bool { return stateFetch(OP_GET, this.id, true, 0, 0) >= 0; }
  set(v: ArrayBuffer): void { stateDo(OP_PUT, this.id, true, 0, 0, changetype<usize>(v), v.byteLength); }
  setString(v: string): void { this.set(encoded(v)); }
  setRaw(p: usize, n: usize): void { stateDo(OP_PUT, this.id, true, 0, 0, p, n); }
  setI64(v: i64): void { store<i64>(scratch8, v); stateDo(OP_PUT, this.id, true, 0, 0, scratch8, 8); }
  setF64(v: f64): void { store<f64>(scratch8, v); stateDo(OP_PUT, this.id, true, 0, 0, scratch8, 8); }
  clear(): void { stateDo(OP_CLEAR, this.id, true, 0, 0, 0, 0); }
}

let scratch8: usize = 0;

/** List state: keyed (one list per key) or operator state (one per subtask). */
export class ListState {
  constructor(readonly id: i32, readonly isKeyed: bool) {}
  add(v: ArrayBuffer): void { stateDo(OP_PUT, this.id, this.isKeyed, 0, 0, changetype<usize>(v), v.byteLength); }
  addString(v: string): void { this.add(encoded(v)); }
  addRaw(p: usize, n: usize): void { stateDo(OP_PUT, this.id, this.isKeyed, 0, 0, p, n); }
  addI64(v: i64): void { store<i64>(scratch8, v); stateDo(OP_PUT, this.id, this.isKeyed, 0, 0, scratch8, 8); }
  /** All items, oldest first (empty when there are none). */
  get(): Array<ArrayBuffer> {
    const n = stateFetch(OP_GET, this.id, this.isKeyed, 0, 0);
    return n < 0 ? new Array<ArrayBuffer>() : items(n);
  }
  getStrings(): Array<string> {
    const all = this.get();
    const out = new Array<string>(all.length);
    for (let i = 0; i < all.length; i++) unchecked(out[i] = String.UTF8.decode(unchecked(all[i])));
    return out;
  }
  getI64s(): Array<i64> {
    const all = this.get();
    const out = new Array<i64>(all.length);
    for (let i = 0; i < all.length; i++) {
      const b = unchecked(all[i]);
      unchecked(out[i] = b.byteLength == 8 ? load<i64>(changetype<usize>(b)) : 0);
    }
    return out;
  }
  /** Replaces the list with vs. */
  update(vs: Array<ArrayBuffer>): void {
    this.clear();
    for (let i = 0; i < vs.length; i++) this.add(unchecked(vs[i]));
  }
  clear(): void { stateDo(OP_CLEAR, this.id, this.isKeyed, 0, 0, 0, 0); }
}

/** One entry of a map state. */
export class MapEntry {
  constructor(readonly key: ArrayBuffer, readonly value: ArrayBuffer) {}
  keyString(): string { return String.UTF8.decode(this.key); }
  valueString(): string { return String.UTF8.decode(this.value); }
}

/** Map state: keyed (one map per key) or broadcast state (one per subtask). */
export class MapState {
  constructor(readonly id: i32, readonly isKeyed: bool) {}
  get(k: ArrayBuffer): ArrayBuffer | null {
    const n = stateFetch(OP_GET, this.id, this.isKeyed, changetype<usize>(k), k.byteLength);
    return n < 0 ? null : copyOut(stBuf, <i32>n);
  }
  getString(k: string): string | null {
    const kb = encoded(k);
    const n = stateFetch(OP_GET, this.id, this.isKeyed, changetype<usize>(kb), kb.byteLength);
    return n < 0 ? null : String.UTF8.decodeUnsafe(stBuf, <usize>n);
  }
  has(k: ArrayBuffer): bool { return stateFetch(OP_GET, this.id, this.isKeyed, changetype<usize>(k), k.byteLength) >= 0; }
  put(k: ArrayBuffer, v: ArrayBuffer): void {
    stateDo(OP_PUT, this.id, this.isKeyed, changetype<usize>(k), k.byteLength, changetype<usize>(v), v.byteLength);
  }
  putString(k: string, v: string): void { this.put(encoded(k), encoded(v)); }
  delete(k: ArrayBuffer): void { stateDo(OP_DELETE, this.id, this.isKeyed, changetype<usize>(k), k.byteLength, 0, 0); }
  deleteString(k: string): void { this.delete(encoded(k)); }
  /** All entries, in the host's order (by user key). */
  entries(): Array<MapEntry> {
    const out = new Array<MapEntry>();
    const n = stateFetch(OP_ENTRIES, this.id, this.isKeyed, 0, 0);
    if (n < 0) return out;
    let p = stBuf;
    const end = stBuf + <usize>n;
    while (p + 8 <= end) {
      const kl = load<u32>(p);
      const k = copyOut(p + 4, kl);
      p += 4 + kl;
      const vl = load<u32>(p);
      out.push(new MapEntry(k, copyOut(p + 4, vl)));
      p += 4 + vl;
    }
    return out;
  }
  clear(): void { stateDo(OP_CLEAR, this.id, this.isKeyed, 0, 0, 0, 0); }
}

// ----------------------------------------------------------------- contexts

/** Handed to open: the parameters, state declarations, logs. */
export class OpenContext {
  /** The operator's name. */
  name(): string { const o = current; return o === null ? "" : o.name; }
  /** The operator's parameters as the job gives them (JSON text, maybe empty). */
  params(): string { return String.UTF8.decodeUnsafe(paramsPtr, paramsLen); }
  paramsBytes(): ArrayBuffer { return copyOut(paramsPtr, <i32>paramsLen); }
  valueState(name: string): ValueState { return new ValueState(register(name, STATE_VALUE)); }
  listState(name: string): ListState { return new ListState(register(name, STATE_LIST), true); }
  mapState(name: string): MapState { return new MapState(register(name, STATE_MAP), true); }
  /** Operator list state: its items are split among subtasks on rescaling. */
  operatorListState(name: string): ListState { return new ListState(register(name, STATE_OPERATOR_LIST), false); }
  /** Union list state: every subtask gets all items on rescaling. */
  unionListState(name: string): ListState { return new ListState(register(name, STATE_UNION_LIST), false); }
  /** Broadcast state: the same map in every subtask, copied on rescaling. */
  broadcastState(name: string): MapState { return new MapState(register(name, STATE_BROADCAST), false); }
}

let paramsPtr: usize = 0;
let paramsLen: usize = 0;

/**
 * Handed to keyed callbacks (and finish hooks): the current key, time,
 * timers, and the Emitter methods. Valid only during the callback.
 */
export class Context extends Emitter {
  /** Event time of the record or timer at hand. */
  timestamp: i64 = 0;
  /** The task's current watermark (NO_WATERMARK before the first). */
  watermark(): i64 { return batchWatermark; }
  /** The host's processing time, ms since the Unix epoch. */
  processingTime(): i64 { return batchTime; }
  /** A copy of the current key. */
  key(): ArrayBuffer { return copyOut(keyPtr, <i32>keyLen); }
  keyString(): string { return String.UTF8.decodeUnsafe(keyPtr, keyLen); }
  registerEventTimer(ts: i64): void { timer(1, EVENT_TIME, ts); }
  registerProcessingTimer(ts: i64): void { timer(1, PROCESSING_TIME, ts); }
  deleteEventTimer(ts: i64): void { timer(2, EVENT_TIME, ts); }
  deleteProcessingTimer(ts: i64): void { timer(2, PROCESSING_TIME, ts); }
}

function timer(op: i32, domain: i32, ts: i64): void {
  if (stateKey(true)) hostTimer(op, domain, ts, keyPtr, keyLen);
}

// --------------------------------------------------------- operator kinds

export type MapFn = (r: Record) => Error | null;
export type FilterFn = (r: Record) => bool;
export type FlatMapFn = (r: Record, out: Emitter) => Error | null;
export type OpenFn = (ctx: OpenContext) => Error | null;
export type FinishFn = (ctx: Context) => Error | null;

/** The user code of a keyed process operator. */
export abstract class ProcessFunction {
  /** Once per instance before any record: read parameters, declare state. */
  open(ctx: OpenContext): Error | null { return null; }
  /** Each record, with ctx scoped to its key. */
  abstract processElement(ctx: Context, r: Record): Error | null;
  /** Each due timer the function registered, scoped to the timer's key. */
  onTimer(ctx: Context, t: Timer): Error | null { return null; }
  /** At the end of a bounded input; no current key (no keyed state, timers). */
  finish(ctx: Context): Error | null { return null; }
}

/** The user code of a keyed operator with two inputs. */
export abstract class CoProcessFunction {
  open(ctx: OpenContext): Error | null { return null; }
  /** Each record of the first input. */
  abstract processElement1(ctx: Context, r: Record): Error | null;
  /** Each record of the second input. */
  abstract processElement2(ctx: Context, r: Record): Error | null;
  onTimer(ctx: Context, t: Timer): Error | null { return null; }
  finish(ctx: Context): Error | null { return null; }
}

/**
 * The user code of a window aggregate with accumulators of type A, which
 * the host stores between calls through encode and decode.
 */
export abstract class AggregateFunction<A> {
  /** A new, empty accumulator. */
  abstract create(): A;
  /** Folds r into acc and returns the result (acc itself may be changed). */
  abstract add(acc: A, r: Record): A;
  /** Combines two accumulators. */
  abstract merge(a: A, b: A): A;
  /**
   * Emits the result of the final accumulator of the group key in the
   * window ending at windowEnd (its last millisecond) to out, usually one
   * record (emitRaw with key.keyPtr/keyLen keeps the group key).
   */
  abstract result(key: Record, windowEnd: i64, acc: A, out: Emitter): Error | null;
  /** Writes acc to w. */
  abstract encode(acc: A, w: Writer): void;
  /** Reads an accumulator that encode wrote; null when the bytes are bad. */
  abstract decode(r: Reader): A | null;
}

/** A growable byte buffer for encoding accumulators (reused, no allocation once grown). */
export class Writer {
  ptr: usize = 0;
  len: usize = 0;
  cap: usize = 0;
  reset(): void { this.len = 0; }
  private room(n: usize): usize {
    if (this.len + n > this.cap) {
      const c = max(max(this.cap * 2, this.len + n), <usize>64);
      this.ptr = this.ptr == 0 ? heap.alloc(c) : heap.realloc(this.ptr, c);
      this.cap = c;
    }
    const p = this.ptr + this.len;
    this.len += n;
    return p;
  }
  i64(v: i64): void { store<i64>(this.room(8), v); }
  f64(v: f64): void { store<f64>(this.room(8), v); }
  i32(v: i32): void { store<i32>(this.room(4), v); }
  raw(p: usize, n: usize): void { memory.copy(this.room(n), p, n); }
  bytes(b: ArrayBuffer): void { this.i32(b.byteLength); this.raw(changetype<usize>(b), b.byteLength); }
  string(s: string): void {
    const n = String.UTF8.byteLength(s);
    this.i32(n);
    String.UTF8.encodeUnsafe(changetype<usize>(s), s.length, this.room(n));
  }
}

/** Reads what a Writer wrote; ok turns false on reading past the end. */
export class Reader {
  ptr: usize = 0;
  end: usize = 0;
  ok: bool = true;
  remaining(): usize { return this.end - this.ptr; }
  private take(n: usize): usize {
    if (this.end - this.ptr < n) {
      this.ok = false;
      this.ptr = this.end;
      return scratch8; // a readable word; the caller sees ok == false
    }
    const p = this.ptr;
    this.ptr += n;
    return p;
  }
  i64(): i64 { const p = this.take(8); return this.ok ? load<i64>(p) : 0; }
  f64(): f64 { const p = this.take(8); return this.ok ? load<f64>(p) : 0; }
  i32(): i32 { const p = this.take(4); return this.ok ? load<i32>(p) : 0; }
  bytes(): ArrayBuffer {
    const n = <usize>this.i32();
    if (!this.ok || n > this.remaining()) { this.ok = false; return new ArrayBuffer(0); }
    return copyOut(this.take(n), <i32>n);
  }
  string(): string {
    const n = <usize>this.i32();
    if (!this.ok || n > this.remaining()) { this.ok = false; return ""; }
    return String.UTF8.decodeUnsafe(this.take(n), n);
  }
}

// An operator as registered.
class Op {
  name: string;
  kind: i32;
  sideOutputs: Array<string>;
  mapFn: MapFn = (r: Record): Error | null => null;
  filterFn: FilterFn = (r: Record): bool => true;
  flatFn: FlatMapFn = (r: Record, out: Emitter): Error | null => null;
  openFn: OpenFn | null = null;
  finishFn: FinishFn | null = null;
  constructor(name: string, kind: i32, side: Array<string> | null) {
    this.name = name;
    this.kind = kind;
    this.sideOutputs = side === null ? new Array<string>() : side;
  }
  // Keyed and aggregate operators override these.
  open(): Error | null { const f = this.openFn; return f === null ? null : f(openCtx); }
  finish(): Error | null { const f = this.finishFn; return f === null ? null : f(ctx); }
  record(r: Record, port: i32): Error | null { return null; }
  onTimer(t: Timer): Error | null { return null; }
  aggregate(method: i32, p: usize, end: usize, count: u32): i32 { return failCall("call", -1, "method not supported by this operator"); }
}

class ProcessOp extends Op {
  constructor(name: string, side: Array<string> | null, readonly fn: ProcessFunction) { super(name, KIND_PROCESS, side); }
  open(): Error | null { const e = this.fn.open(openCtx); return e !== null ? e : super.open(); }
  finish(): Error | null { const e = this.fn.finish(ctx); return e !== null ? e : super.finish(); }
  record(r: Record, port: i32): Error | null { return this.fn.processElement(ctx, r); }
  onTimer(t: Timer): Error | null { return this.fn.onTimer(ctx, t); }
}

class CoProcessOp extends Op {
  constructor(name: string, side: Array<string> | null, readonly fn: CoProcessFunction) { super(name, KIND_CO_PROCESS, side); }
  open(): Error | null { const e = this.fn.open(openCtx); return e !== null ? e : super.open(); }
  finish(): Error | null { const e = this.fn.finish(ctx); return e !== null ? e : super.finish(); }
  record(r: Record, port: i32): Error | null {
    return port == 0 ? this.fn.processElement1(ctx, r) : this.fn.processElement2(ctx, r);
  }
  onTimer(t: Timer): Error | null { return this.fn.onTimer(ctx, t); }
}

const accWriter = new Writer();
const accReader = new Reader();
const groupKey = new Record();

class AggregateOp<A> extends Op {
  constructor(name: string, readonly fn: AggregateFunction<A>) { super(name, KIND_AGGREGATE, null); }

  // acc decodes the accumulator entry at p (or creates one when flagged new).
  private acc(p: usize, index: i32): A | null {
    if (load<u8>(p, 1) & 1) return this.fn.create();
    const kl = load<u32>(p, 4);
    accReader.ptr = p + HDR + kl;
    accReader.end = accReader.ptr + load<u32>(p, 16);
    accReader.ok = true;
    const a = this.fn.decode(accReader);
    if (a === null || !accReader.ok) {
      failCall("record", index, "accumulator: cannot decode it");
      return null;
    }
    return a;
  }

  private emitAcc(p: usize, a: A): void {
    accWriter.reset();
    this.fn.encode(a, accWriter);
    const kl = <i32>load<u32>(p, 4);
    emitEntry(ENTRY_ACCUMULATOR, 0, p + HDR, kl, accWriter.ptr, <i32>accWriter.len, 0, 0, load<i64>(p, 8));
  }

  aggregate(method: i32, p: usize, end: usize, count: u32): i32 {
    const fn = this.fn;
    if (method == METHOD_AGG_ADD) {
      let open = false;
      let accAt: usize = 0;
      let acc: A | null = null;
      for (let i: u32 = 0; i < count; i++) {
        const n = entrySize(p, end);
        if (n == 0) return failCall("record", i, "truncated entry");
        const kind = load<u8>(p);
        if (kind == ENTRY_ACCUMULATOR) {
          if (open) this.emitAcc(accAt, changetype<A>(acc));
          acc = this.acc(p, i);
          if (acc === null) return 1;
          accAt = p;
          open = true;
        } else if (kind == ENTRY_RECORD) {
          if (!open) return failCall("record", i, "record before the first accumulator of an agg_add batch");
          setRecord(inRec, p);
          acc = fn.add(changetype<A>(acc), inRec);
          if (pending !== null) return failCall("record", i, null);
        } else {
          return failCall("record", i, "unexpected entry kind in agg_add");
        }
        p += n;
      }
      if (open) this.emitAcc(accAt, changetype<A>(acc));
    } else if (method == METHOD_AGG_MERGE) {
      if (count & 1) return failCall("batch", -1, "agg_merge batch of an odd number of accumulators");
      for (let i: u32 = 0; i < count; i += 2) {
        const n1 = entrySize(p, end);
        if (n1 == 0 || load<u8>(p) != ENTRY_ACCUMULATOR) return failCall("record", i, "not an accumulator entry");
        const q = p + n1;
        const n2 = entrySize(q, end);
        if (n2 == 0 || load<u8>(q) != ENTRY_ACCUMULATOR) return failCall("record", i + 1, "not an accumulator entry");
        const a = this.acc(p, i);
        if (a === null) return 1;
        const b = this.acc(q, i + 1);
        if (b === null) return 1;
        this.emitAcc(p, fn.merge(changetype<A>(a), changetype<A>(b)));
        if (pending !== null) return failCall("record", i, null);
        p = q + n2;
      }
    } else if (method == METHOD_AGG_RESULT) {
      for (let i: u32 = 0; i < count; i++) {
        const n = entrySize(p, end);
        if (n == 0 || load<u8>(p) != ENTRY_ACCUMULATOR) return failCall("record", i, "not an accumulator entry");
        const a = this.acc(p, i);
        if (a === null) return 1;
        setRecord(groupKey, p);
        groupKey.valuePtr = 0;
        groupKey.valueLen = 0;
        const err = fn.result(groupKey, groupKey.timestamp, changetype<A>(a), ctx);
        if (err !== null || pending !== null) return failWith("record", i, err);
        p += n;
      }
    } else {
      return failCall("call", -1, "method not supported by an aggregate operator");
    }
    if (p != end) return failCall("batch", -1, "bytes left after the last entry of the count");
    return 0;
  }
}

let ops = new Array<Op>();

function add(o: Op): void {
  ops.push(o);
}

/** Registers a map: fn changes r (in place, or by pointing it elsewhere); r is then emitted. */
export function map(name: string, fn: MapFn, open: OpenFn | null = null): void {
  const o = new Op(name, KIND_MAP, null);
  o.mapFn = fn;
  o.openFn = open;
  add(o);
}

/** Registers a filter: records for which fn returns true pass unchanged. */
export function filter(name: string, fn: FilterFn, open: OpenFn | null = null): void {
  const o = new Op(name, KIND_FILTER, null);
  o.filterFn = fn;
  o.openFn = open;
  add(o);
}

/** Registers a flat map: fn emits any number of records to out, to the main or side outputs. */
export function flatMap(name: string, fn: FlatMapFn, sideOutputs: Array<string> | null = null,
  open: OpenFn | null = null, finish: FinishFn | null = null): void {
  const o = new Op(name, KIND_FLAT_MAP, sideOutputs);
  o.flatFn = fn;
  o.openFn = open;
  o.finishFn = finish;
  add(o);
}

/** Registers a keyed process operator. */
export function process(name: string, fn: ProcessFunction, sideOutputs: Array<string> | null = null): void {
  add(new ProcessOp(name, sideOutputs, fn));
}

/** Registers a keyed operator with two inputs. */
export function coProcess(name: string, fn: CoProcessFunction, sideOutputs: Array<string> | null = null): void {
  add(new CoProcessOp(name, sideOutputs, fn));
}

/** Registers a window aggregate. */
export function aggregate<A>(name: string, fn: AggregateFunction<A>): void {
  add(new AggregateOp<A>(name, fn));
}

// ----------------------------------------------------------------- the ABI

const inRec = new Record();
const inTimer = new Timer();
const ctx = new Context();
const emitter = ctx as Emitter;
const openCtx = new OpenContext();

// entrySize returns the size of the entry at p, or 0 when it does not fit
// before end.
// @ts-ignore: decorator
@inline function entrySize(p: usize, end: usize): usize {
  if (end - p < HDR) return 0;
  const payload = <u64>load<u32>(p, 4) + <u64>load<u32>(p, 16) + <u64>load<u32>(p, 20);
  if (payload > <u64>(end - p - HDR)) return 0;
  return HDR + <usize>payload;
}

// @ts-ignore: decorator
@inline function setRecord(r: Record, p: usize): void {
  const kl = load<u32>(p, 4), vl = load<u32>(p, 16);
  r.keyPtr = p + HDR;
  r.keyLen = kl;
  r.valuePtr = p + HDR + kl;
  r.valueLen = vl;
  r.headersPtr = p + HDR + kl + vl;
  r.headersLen = load<u32>(p, 20);
  r.timestamp = load<i64>(p, 8);
}

function decimal(v: i64): string { return v.toString(); }

// failCall reports the failure of the call: "<what>[ <index>]: <message>",
// the message being problem, or the error the operator returned or set.
function failCall(what: string, index: i64, problem: string | null): i32 {
  let msg = what;
  if (index >= 0) msg += " " + decimal(index);
  msg += ": ";
  if (problem !== null) {
    msg += problem;
  } else if (pending !== null) {
    msg += <string>pending;
  } else {
    msg += "operator failed";
  }
  const b = String.UTF8.encode(msg);
  hostFail(changetype<usize>(b), b.byteLength);
  discardOut();
  for (let i = 0; i < counterDeltas.length; i++) unchecked(counterDeltas[i] = 0);
  keyed = false;
  return 1;
}

function failWith(what: string, index: i64, err: Error | null): i32 {
  if (err !== null && pending === null) pending = err.message;
  return failCall(what, index, null);
}

function runRecords(o: Op, p: usize, end: usize, count: u32): i32 {
  const kind = o.kind;
  const r = inRec;
  const isKeyed = kind == KIND_PROCESS || kind == KIND_CO_PROCESS;
  for (let i: u32 = 0; i < count; i++) {
    if (end - p < HDR) return failCall("record", i, "truncated entry");
    const h0 = load<u64>(p), h2 = load<u64>(p, 16);
    const kl = <u32>(h0 >> 32), vl = <u32>h2, hl = <u32>(h2 >> 32);
    const payload = <u64>kl + <u64>vl + <u64>hl;
    if (payload > <u64>(end - p - HDR)) return failCall("record", i, "truncated entry");
    const port = <i32>(<u32>h0 >> 16);
    if (<u32>h0 != ENTRY_RECORD) {
      if (<u8>h0 != ENTRY_RECORD) return failCall("record", i, "not a record entry");
      // Flags or an input port set: clear them in the input buffer (the
      // module's), so that the entry reads as the output entry of an
      // unchanged record and can be passed through.
      store<u16>(p, 0, 2);
      store<u8>(p, 0, 1);
    }
    const next = p + HDR + <usize>payload;
    const ts = load<i64>(p, 8);
    r.keyPtr = p + HDR;
    r.keyLen = kl;
    r.valuePtr = p + HDR + kl;
    r.valueLen = vl;
    r.headersPtr = p + HDR + kl + vl;
    r.headersLen = hl;
    r.timestamp = ts;
    entryStart = p;
    entryEnd = next;
    entryTs = ts;
    if (kind == KIND_MAP) {
      const err = o.mapFn(r);
      if (err !== null || pending !== null) return failWith("record", i, err);
      emitRecord(0, r);
    } else if (kind == KIND_FILTER) {
      const keep = o.filterFn(r);
      if (pending !== null) return failCall("record", i, null);
      if (keep) passThrough(p, next);
    } else if (kind == KIND_FLAT_MAP) {
      const err = o.flatFn(r, emitter);
      if (err !== null || pending !== null) return failWith("record", i, err);
    } else {
      keyPtr = p + HDR;
      keyLen = kl;
      keyed = isKeyed;
      ctx.timestamp = ts;
      const err = o.record(r, port);
      if (err !== null || pending !== null) return failWith("record", i, err);
    }
    p = next;
  }
  entryEnd = 0;
  if (p != end) return failCall("batch", -1, "bytes left after the last entry of the count");
  return 0;
}

function runTimers(o: Op, p: usize, end: usize, count: u32): i32 {
  const t = inTimer;
  for (let i: u32 = 0; i < count; i++) {
    const n = entrySize(p, end);
    if (n == 0) return failCall("timer", i, "truncated entry");
    if (load<u8>(p) != ENTRY_TIMER) return failCall("timer", i, "not a timer entry");
    t.keyPtr = p + HDR;
    t.keyLen = load<u32>(p, 4);
    t.timestamp = load<i64>(p, 8);
    t.domain = load<u8>(p, 1);
    keyPtr = t.keyPtr;
    keyLen = t.keyLen;
    keyed = true;
    ctx.timestamp = t.timestamp;
    const err = o.onTimer(t);
    if (err !== null || pending !== null) return failWith("timer", i, err);
    p += n;
  }
  if (p != end) return failCall("batch", -1, "bytes left after the last entry of the count");
  return 0;
}

function init(): void {
  if (outBuf != 0) return;
  outBuf = heap.alloc(OUT_FLUSH);
  outCap = OUT_FLUSH;
  scratch8 = heap.alloc(16);
  store<u64>(scratch8, 0);
  store<u64>(scratch8, 0, 8);
  stCap = 256;
  stBuf = heap.alloc(stCap);
}

/** weir_buffer: the input buffer, at least size bytes. */
export function _buffer(size: i32): i32 {
  init();
  const n = <usize>max(size, 64);
  if (n > inCap) {
    if (inBuf != 0) heap.free(inBuf);
    inBuf = heap.alloc(n);
    inCap = n;
  }
  return <i32>inBuf;
}

function kindName(k: i32): string {
  switch (k) {
    case KIND_MAP: return "map";
    case KIND_FILTER: return "filter";
    case KIND_FLAT_MAP: return "flat_map";
    case KIND_PROCESS: return "process";
    case KIND_CO_PROCESS: return "co_process";
    case KIND_AGGREGATE: return "aggregate";
  }
  return "unknown";
}

function jsonString(s: string): string {
  let out = "\"";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c == 34 || c == 92) out += "\\" + String.fromCharCode(c);
    else if (c < 0x20) out += "\\u00" + (c < 16 ? "0" : "") + c.toString(16);
    else out += String.fromCharCode(c);
  }
  return out + "\"";
}

/** weir_describe: the descriptor. */
export function _describe(): void {
  init();
  let d = "{\"sdk\":" + jsonString(SDK_VERSION) + ",\"operators\":[";
  for (let i = 0; i < ops.length; i++) {
    const o = unchecked(ops[i]);
    if (i > 0) d += ",";
    d += "{\"name\":" + jsonString(o.name) + ",\"kind\":\"" + kindName(o.kind) + "\"";
    if (o.sideOutputs.length > 0) {
      d += ",\"side_outputs\":[";
      for (let j = 0; j < o.sideOutputs.length; j++) {
        if (j > 0) d += ",";
        d += jsonString(unchecked(o.sideOutputs[j]));
      }
      d += "]";
    }
    d += "}";
  }
  d += "]}";
  const b = String.UTF8.encode(d);
  hostOutput(changetype<usize>(b), b.byteLength);
}

/** weir_call: method of operator op over the len input bytes. */
export function _call(op: i32, method: i32, len: i32): i32 {
  init();
  discardOut();
  pending = null;
  keyed = false;
  keyPtr = 0;
  keyLen = 0;
  const rc = dispatch(op, method, <usize>len);
  keyed = false;
  current = null;
  opening = false;
  // The minimal runtime collects only when asked: between calls, where no
  // object is referenced from the stack. When memory grew (a call left
  // garbage), and now and then otherwise.
  callsSinceCollect++;
  const pages = memory.size();
  if (pages != lastPages || callsSinceCollect >= 4096) {
    __collect();
    lastPages = memory.size();
    callsSinceCollect = 0;
  }
  return rc;
}

function dispatch(op: i32, method: i32, len: usize): i32 {
  if (op < 0 || op >= ops.length) return failCall("call", -1, "no operator with this index in the descriptor");
  if (len > inCap) return failCall("call", -1, "input longer than the buffer from weir_buffer");
  const o = unchecked(ops[op]);
  current = o;
  let p = inBuf;
  const end = inBuf + len;
  if (method == METHOD_OPEN) {
    batchWatermark = NO_WATERMARK;
    batchTime = 0;
    paramsPtr = p;
    paramsLen = len;
    opening = true;
    const err = o.open();
    opening = false;
    if (err !== null || pending !== null) return failWith("open", -1, err);
    flushOut();
    sendCounters();
    return 0;
  }
  if (len < HDR) return failCall("batch", -1, "shorter than its 24-byte header");
  const count = load<u32>(p);
  batchWatermark = load<i64>(p, 8);
  batchTime = load<i64>(p, 16);
  p += HDR;
  let rc: i32 = 0;
  const kind = o.kind;
  if (method == METHOD_PROCESS) {
    if (kind == KIND_AGGREGATE) return failCall("call", -1, "an aggregate operator takes agg_add, agg_merge and agg_result, not process");
    rc = runRecords(o, p, end, count);
  } else if (method == METHOD_TIMERS) {
    if (kind != KIND_PROCESS && kind != KIND_CO_PROCESS) return failCall("call", -1, "timers go to process and co_process operators only");
    rc = runTimers(o, p, end, count);
  } else if (method == METHOD_FINISH) {
    ctx.timestamp = 0;
    const err = o.finish();
    if (err !== null || pending !== null) return failWith("finish", -1, err);
  } else if (method >= METHOD_AGG_ADD && method <= METHOD_AGG_RESULT) {
    if (kind != KIND_AGGREGATE) return failCall("call", -1, "aggregate methods go to aggregate operators only");
    rc = o.aggregate(method, p, end, count);
  } else {
    return failCall("call", -1, "unknown method");
  }
  if (rc != 0) return rc;
  flushOut();
  sendCounters();
  return 0;
}

/** The custom abort of modules built by weir (--use abort=...): reports, then traps. */
export function _abort(message: string | null, file: string | null, line: u32, column: u32): void {
  let msg = "abort: " + (message === null ? "" : <string>message);
  if (file !== null) msg += " at " + <string>file + ":" + line.toString() + ":" + column.toString();
  logAt(LOG_ERROR, msg);
  unreachable();
}
