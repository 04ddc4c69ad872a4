//! weir: the Rust SDK for weir operator modules (weir ABI v1).
//!
//! An operator module is a `cdylib` for `wasm32-wasi` (`wasm32-wasip1` on
//! newer toolchains) that lists its operators once with [`operators!`]:
//!
//! ```ignore
//! use weir::{Context, Record, Result};
//!
//! fn upper(r: &Record, ctx: &Context) -> Result {
//!     // Same key, timestamp and headers, a new value written in place.
//!     ctx.emit_value(r, r.value.len(), |v| {
//!         for (d, c) in v.iter_mut().zip(r.value) { *d = c.to_ascii_uppercase(); }
//!     })
//! }
//!
//! weir::operators! {
//!     map "upper" => upper;
//! }
//! ```
//!
//! `weir module build DIR` compiles it (see docs/sdk-rust.md for the plain
//! `rustc` commands). The crate has no dependencies but the standard
//! library, and the record path allocates nothing: input records borrow the
//! module's input buffer, output goes to one reused buffer, and a record
//! emitted unchanged is not copied at all (its input bytes are handed to the
//! host as they are).
//!
//! Kinds (the keyword in [`operators!`] and what it names):
//!
//! | keyword | names | callback |
//! |---|---|---|
//! | `map` | a function | `fn(&Record, &Context) -> Result`, emits exactly one record |
//! | `filter` | a function | `fn(&Record) -> Result<bool>`, true keeps the record unchanged |
//! | `flat_map` | a function | `fn(&Record, &Context) -> Result`, emits any number |
//! | `map_with`, `flat_map_with` | a type: [`Stateless`] + `Default` | as above, with open/finish and operator state |
//! | `process` | a type: [`Process`] + `Default` | keyed: value/list/map state, timers |
//! | `co_process` | a type: [`CoProcess`] + `Default` | keyed, two inputs |
//! | `aggregate` | a type: [`Aggregate`] + `Default` | window aggregate: create/add/merge/result |
//!
//! Every entry may end with `, side_outputs ["a", "b"]`: port n of
//! [`Context::emit_to_port`] (or the name given to [`Context::emit_to`]) is
//! the n-th name.
//!
//! Errors: a callback returns [`Error`]; the whole call fails and the host
//! reports `record N: <message>` (N the index of the record in its batch).
//! A panic aborts the instance (the module is built with panic=abort); the
//! host shows the panic message the standard library writes to stderr.

#![allow(clippy::missing_safety_doc)]

use std::fmt;
use std::marker::PhantomData;

/// The ABI version this SDK speaks.
pub const ABI_VERSION: i32 = 1;
/// The "sdk" field of the descriptor.
pub const SDK_NAME: &str = "rust/0.1";
/// The watermark before any watermark has arrived.
pub const NO_WATERMARK: i64 = i64::MIN;

/// Output is handed to the host once this many bytes are buffered.
const FLUSH: usize = 64 << 10;
/// A pass-through run at most this long is copied behind buffered output
/// rather than handed over by itself.
const FOLD_COPY: usize = 2048;
/// Distinct counters summed per call.
const COUNTERS: usize = 16;
const COUNTER_NAME: usize = 128;

// ---------------------------------------------------------------- imports

#[doc(hidden)]
pub mod sys {
    #[cfg(target_arch = "wasm32")]
    #[link(wasm_import_module = "weir")]
    extern "C" {
        #[link_name = "output"]
        pub fn output(ptr: *const u8, len: u32);
        #[link_name = "fail"]
        pub fn fail(ptr: *const u8, len: u32);
        #[link_name = "log"]
        pub fn log(level: i32, ptr: *const u8, len: u32);
        #[link_name = "counter"]
        pub fn counter(ptr: *const u8, len: u32, delta: i64);
        #[link_name = "state_register"]
        pub fn state_register(ptr: *const u8, len: u32, kind: i32) -> i32;
        #[link_name = "state"]
        pub fn state(op: i32, id: i32, kptr: *const u8, klen: u32, uptr: *const u8, ulen: u32, vptr: *mut u8, vlen: u32) -> i64;
        #[link_name = "timer"]
        pub fn timer(op: i32, domain: i32, ts: i64, kptr: *const u8, klen: u32);
    }

    // Outside WebAssembly (rustdoc, a host-side `cargo check`) the imports
    // do not exist; these stand-ins keep the crate compiling and trap.
    #[cfg(not(target_arch = "wasm32"))]
    mod stub {
        fn no_host() -> ! {
            panic!("weir: the host functions exist only inside a WebAssembly module run by weir")
        }
        pub unsafe fn output(_: *const u8, _: u32) { no_host() }
        pub unsafe fn fail(_: *const u8, _: u32) { no_host() }
        pub unsafe fn log(_: i32, _: *const u8, _: u32) { no_host() }
        pub unsafe fn counter(_: *const u8, _: u32, _: i64) { no_host() }
        pub unsafe fn state_register(_: *const u8, _: u32, _: i32) -> i32 { no_host() }
        pub unsafe fn state(_: i32, _: i32, _: *const u8, _: u32, _: *const u8, _: u32, _: *mut u8, _: u32) -> i64 { no_host() }
        pub unsafe fn timer(_: i32, _: i32, _: i64, _: *const u8, _: u32) { no_host() }
    }
    #[cfg(not(target_arch = "wasm32"))]
    pub use stub::*;
}

// ----------------------------------------------------------------- errors

/// What kind of failure an [`Error`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The operator's own error (made with [`Error::new`] or from a string).
    Operator,
    /// Bytes that did not decode: a record, a state value, an accumulator.
    Decode,
    /// The SDK used wrongly: keyed state outside a keyed call, an
    /// undeclared side output, a state handle never declared in open.
    Usage,
    /// The host refused something (a state registration).
    Host,
}

/// The error of a callback: a kind and a message. It fails the whole call;
/// the host reports `record N: <message>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    msg: String,
}

/// The result of a callback.
pub type Result<T = ()> = std::result::Result<T, Error>;

impl Error {
    /// An operator error with message msg.
    pub fn new(msg: impl Into<String>) -> Error {
        Error { kind: ErrorKind::Operator, msg: msg.into() }
    }
    /// An error of the given kind.
    pub fn with_kind(kind: ErrorKind, msg: impl Into<String>) -> Error {
        Error { kind, msg: msg.into() }
    }
    /// A decoding error.
    pub fn decode(msg: impl Into<String>) -> Error {
        Error::with_kind(ErrorKind::Decode, msg)
    }
    fn usage(msg: impl Into<String>) -> Error {
        Error::with_kind(ErrorKind::Usage, msg)
    }
    /// The kind of the error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    /// The message.
    pub fn message(&self) -> &str {
        &self.msg
    }
    /// Prefixes the message with context: `"{what}: {message}"`.
    pub fn context(mut self, what: &str) -> Error {
        self.msg = format!("{}: {}", what, self.msg);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.msg)
    }
}

impl std::error::Error for Error {}

impl From<&str> for Error {
    fn from(s: &str) -> Error {
        Error::new(s)
    }
}

impl From<String> for Error {
    fn from(s: String) -> Error {
        Error::new(s)
    }
}

// ---------------------------------------------------------------- records

/// A record. On input its slices borrow the module's input buffer, valid
/// during the callback; to emit, build one from any bytes (they are copied,
/// unless the record is the callback's input unchanged).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    /// Encoded headers: (u16 name length, name, u32 value length, value)*;
    /// walk them with [`Record::headers`].
    pub headers: &'a [u8],
    /// Event time, ms since the Unix epoch.
    pub timestamp: i64,
}

impl<'a> Record<'a> {
    /// A record with key, value and timestamp, no headers.
    pub fn new(key: &'a [u8], value: &'a [u8], timestamp: i64) -> Record<'a> {
        Record { key, value, headers: &[], timestamp }
    }
    /// This record with another value.
    pub fn with_value<'b>(&self, value: &'b [u8]) -> Record<'b>
    where
        'a: 'b,
    {
        Record { key: self.key, value, headers: self.headers, timestamp: self.timestamp }
    }
    /// This record with another key.
    pub fn with_key<'b>(&self, key: &'b [u8]) -> Record<'b>
    where
        'a: 'b,
    {
        Record { key, value: self.value, headers: self.headers, timestamp: self.timestamp }
    }
    /// The headers, in order: (name, value); malformed headers end the walk.
    pub fn headers(&self) -> Headers<'a> {
        Headers { rest: self.headers }
    }
    /// The value of the first header called name.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers().find(|(n, _)| *n == name.as_bytes()).map(|(_, v)| v)
    }
}

/// Iterator over encoded headers.
pub struct Headers<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a [u8], &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        let b = self.rest;
        if b.len() < 2 {
            return None;
        }
        let nl = u16::from_le_bytes([b[0], b[1]]) as usize;
        if b.len() - 2 < nl + 4 {
            return None;
        }
        let vl = rd32(&b[2 + nl..]) as usize;
        if vl > b.len() - 6 - nl {
            return None;
        }
        self.rest = &b[6 + nl + vl..];
        Some((&b[2..2 + nl], &b[6 + nl..6 + nl + vl]))
    }
}

/// Appends one encoded header to dst (for the headers of an emitted record).
pub fn append_header(dst: &mut Vec<u8>, name: &str, value: &[u8]) {
    dst.extend_from_slice(&(name.len() as u16).to_le_bytes());
    dst.extend_from_slice(name.as_bytes());
    dst.extend_from_slice(&(value.len() as u32).to_le_bytes());
    dst.extend_from_slice(value);
}

/// Event time or processing time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeDomain {
    EventTime = 0,
    ProcessingTime = 1,
}

/// A due timer of a keyed operator; its key is [`Context::key`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timer {
    pub timestamp: i64,
    pub domain: TimeDomain,
}

/// Log levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
}

// ----------------------------------------------------------------- codecs

/// How a value is stored in state or as an accumulator.
pub trait Codec: Sized {
    /// Appends the encoding of self to out.
    fn encode(&self, out: &mut Vec<u8>);
    /// Decodes b, all of it.
    fn decode(b: &[u8]) -> Result<Self>;
}

macro_rules! int_codec {
    ($($t:ty),*) => {$(
        impl Codec for $t {
            #[inline]
            fn encode(&self, out: &mut Vec<u8>) { out.extend_from_slice(&self.to_le_bytes()); }
            #[inline]
            fn decode(b: &[u8]) -> Result<Self> {
                const N: usize = std::mem::size_of::<$t>();
                if b.len() != N {
                    return Err(Error::decode(format!(concat!("a ", stringify!($t), " of {} bytes, want {}"), b.len(), N)));
                }
                let mut a = [0u8; N];
                a.copy_from_slice(b);
                Ok(<$t>::from_le_bytes(a))
            }
        }
    )*};
}
int_codec!(i8, u8, i16, u16, i32, u32, i64, u64, f32, f64);

impl Codec for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(*self as u8)
    }
    fn decode(b: &[u8]) -> Result<Self> {
        match b {
            [0] => Ok(false),
            [1] => Ok(true),
            _ => Err(Error::decode("a bool is one byte, 0 or 1")),
        }
    }
}

impl Codec for () {
    fn encode(&self, _: &mut Vec<u8>) {}
    fn decode(_: &[u8]) -> Result<Self> {
        Ok(())
    }
}

impl Codec for Vec<u8> {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self)
    }
    fn decode(b: &[u8]) -> Result<Self> {
        Ok(b.to_vec())
    }
}

impl Codec for String {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes())
    }
    fn decode(b: &[u8]) -> Result<Self> {
        String::from_utf8(b.to_vec()).map_err(|_| Error::decode("a string that is not UTF-8"))
    }
}

/// A pair: the first element length-prefixed (u32), the second the rest.
impl<A: Codec, B: Codec> Codec for (A, B) {
    fn encode(&self, out: &mut Vec<u8>) {
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        self.0.encode(out);
        let n = (out.len() - at - 4) as u32;
        out[at..at + 4].copy_from_slice(&n.to_le_bytes());
        self.1.encode(out);
    }
    fn decode(b: &[u8]) -> Result<Self> {
        if b.len() < 4 {
            return Err(Error::decode("a pair shorter than its 4-byte length"));
        }
        let n = rd32(b) as usize;
        if n > b.len() - 4 {
            return Err(Error::decode("a pair whose first part is longer than the pair"));
        }
        Ok((A::decode(&b[4..4 + n])?, B::decode(&b[4 + n..])?))
    }
}

// ------------------------------------------------------------- the globals

#[derive(Clone, Copy, PartialEq, Eq)]
#[doc(hidden)]
pub enum Kind {
    Map,
    Filter,
    FlatMap,
    Process,
    Aggregate,
    CoProcess,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Map => "map",
            Kind::Filter => "filter",
            Kind::FlatMap => "flat_map",
            Kind::Process => "process",
            Kind::Aggregate => "aggregate",
            Kind::CoProcess => "co_process",
        }
    }
    fn keyed(self) -> bool {
        matches!(self, Kind::Process | Kind::CoProcess)
    }
}

/// One operator of the module, as [`operators!`] lists it.
#[doc(hidden)]
pub struct OpDesc {
    pub name: &'static str,
    pub kind: Kind,
    pub side_outputs: &'static [&'static str],
}

#[derive(Clone, Copy)]
struct CounterSlot {
    len: usize,
    name: [u8; COUNTER_NAME],
    delta: i64,
}

struct Globals {
    inited: bool,
    input: Vec<u8>,
    /// Buffered output entries not yet given to the host.
    out: Vec<u8>,
    /// A run of input entries passed through unchanged, [run, run_end),
    /// to be given to the host after out; run_end == 0: none.
    run: usize,
    run_end: usize,
    /// The encoded input entry of the record callback at hand, [start, end),
    /// and its record; cur == 0 outside record callbacks.
    cur: usize,
    cur_end: usize,
    cur_ts: i64,
    /// Entries emitted by the callback at hand (for the map check).
    emitted: u32,
    watermark: i64,
    ptime: i64,
    /// The current key (keyed state and timer scope) and timestamp.
    keyed: bool,
    key_ptr: *const u8,
    key_len: usize,
    ts: i64,
    op: &'static OpDesc,
    ncounters: usize,
    counters: [CounterSlot; COUNTERS],
    /// Reused buffers for state reads and encodings.
    pool: Vec<Vec<u8>>,
}

static NO_OP: OpDesc = OpDesc { name: "", kind: Kind::Map, side_outputs: &[] };

static mut G: Globals = Globals {
    inited: false,
    input: Vec::new(),
    out: Vec::new(),
    run: 0,
    run_end: 0,
    cur: 0,
    cur_end: 0,
    cur_ts: 0,
    emitted: 0,
    watermark: NO_WATERMARK,
    ptime: 0,
    keyed: false,
    key_ptr: 1 as *const u8,
    key_len: 0,
    ts: 0,
    op: &NO_OP,
    ncounters: 0,
    counters: [CounterSlot { len: 0, name: [0; COUNTER_NAME], delta: 0 }; COUNTERS],
    pool: Vec::new(),
};

/// The module's globals. WebAssembly instances are single-threaded and the
/// host never re-enters a call, so there is one user at a time; every
/// function below takes the reference afresh and holds it briefly.
#[inline(always)]
fn g() -> &'static mut Globals {
    unsafe { &mut *std::ptr::addr_of_mut!(G) }
}

#[inline(always)]
fn rd32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

#[inline(always)]
unsafe fn rd32p(p: *const u8) -> u32 {
    u32::from_le(std::ptr::read_unaligned(p as *const u32))
}

#[inline(always)]
unsafe fn rd64p(p: *const u8) -> u64 {
    u64::from_le(std::ptr::read_unaligned(p as *const u64))
}

#[inline(always)]
unsafe fn slice<'a>(p: usize, n: usize) -> &'a [u8] {
    std::slice::from_raw_parts(p as *const u8, n)
}

/// Copies src to dst (not overlapping) with plain loads and stores when
/// short: memcpy becomes memory.copy, which engines run as a call, a cost
/// that dwarfs copying a key or a field name.
#[inline(always)]
unsafe fn copy_small(dst: *mut u8, src: *const u8, n: usize) {
    use std::ptr::{read_unaligned as rd, write_unaligned as wr};
    if n <= 16 {
        if n >= 8 {
            let a = rd(src as *const u64);
            let b = rd(src.add(n - 8) as *const u64);
            wr(dst as *mut u64, a);
            wr(dst.add(n - 8) as *mut u64, b);
        } else if n >= 4 {
            let a = rd(src as *const u32);
            let b = rd(src.add(n - 4) as *const u32);
            wr(dst as *mut u32, a);
            wr(dst.add(n - 4) as *mut u32, b);
        } else if n > 0 {
            let (a, b, c) = (*src, *src.add(n / 2), *src.add(n - 1));
            *dst = a;
            *dst.add(n / 2) = b;
            *dst.add(n - 1) = c;
        }
    } else if n <= 32 {
        let a = rd(src as *const u64);
        let b = rd(src.add(8) as *const u64);
        let c = rd(src.add(n - 16) as *const u64);
        let d = rd(src.add(n - 8) as *const u64);
        wr(dst as *mut u64, a);
        wr(dst.add(8) as *mut u64, b);
        wr(dst.add(n - 16) as *mut u64, c);
        wr(dst.add(n - 8) as *mut u64, d);
    } else {
        std::ptr::copy_nonoverlapping(src, dst, n);
    }
}

/// Appends b to v (see copy_small).
#[inline(always)]
fn put(v: &mut Vec<u8>, b: &[u8]) {
    v.reserve(b.len());
    unsafe {
        let len = v.len();
        copy_small(v.as_mut_ptr().add(len), b.as_ptr(), b.len());
        v.set_len(len + b.len());
    }
}

/// Appends one byte to v.
#[inline(always)]
fn put_byte(v: &mut Vec<u8>, b: u8) {
    v.reserve(1);
    unsafe {
        let len = v.len();
        *v.as_mut_ptr().add(len) = b;
        v.set_len(len + 1);
    }
}

/// Appends an entry header to v.
#[inline(always)]
fn put_header(v: &mut Vec<u8>, kind: u8, flags: u8, port: u16, kl: usize, ts: i64, vl: usize, hl: usize) {
    let h0 = kind as u64 | (flags as u64) << 8 | (port as u64) << 16 | (kl as u64) << 32;
    let h2 = vl as u64 | (hl as u64) << 32;
    v.reserve(24);
    unsafe {
        let len = v.len();
        let p = v.as_mut_ptr().add(len);
        std::ptr::write_unaligned(p as *mut u64, h0.to_le());
        std::ptr::write_unaligned(p.add(8) as *mut u64, (ts as u64).to_le());
        std::ptr::write_unaligned(p.add(16) as *mut u64, h2.to_le());
        v.set_len(len + 24);
    }
}

impl Globals {
    fn init(&mut self) {
        if self.inited {
            return;
        }
        self.inited = true;
        self.out = Vec::with_capacity(FLUSH + FLUSH / 4);
    }

    #[inline(never)]
    fn flush_out(&mut self) {
        if !self.out.is_empty() {
            unsafe { sys::output(self.out.as_ptr(), self.out.len() as u32) };
            self.out.clear();
        }
        if self.out.capacity() > 4 * FLUSH {
            self.out = Vec::with_capacity(FLUSH + FLUSH / 4);
        }
    }

    /// Moves the pending pass-through run behind the buffered bytes: copied
    /// when short, else both handed to the host as they are.
    #[inline(never)]
    fn fold(&mut self) {
        let n = self.run_end - self.run;
        if n <= FOLD_COPY && self.out.len() + n <= self.out.capacity() {
            self.out.extend_from_slice(unsafe { slice(self.run, n) });
        } else {
            self.flush_out();
            unsafe { sys::output(self.run as *const u8, n as u32) };
        }
        self.run = 0;
        self.run_end = 0;
    }

    /// Makes out the end of the output (folding a pending run into it).
    #[inline(always)]
    fn open_out(&mut self) {
        if self.run_end != 0 {
            self.fold();
        }
    }

    #[inline(always)]
    fn after_entry(&mut self) {
        self.emitted += 1;
        if self.out.len() >= FLUSH {
            self.flush_out();
        }
    }

    /// Passes the input entry at hand through unchanged.
    #[inline(always)]
    fn pass(&mut self) {
        if self.run_end != self.cur {
            if self.run_end != 0 {
                self.fold();
            }
            self.run = self.cur;
        }
        self.run_end = self.cur_end;
        self.emitted += 1;
    }

    /// The end of a call: everything buffered goes to the host.
    fn finish_output(&mut self) {
        self.flush_out();
        if self.run_end != 0 {
            unsafe { sys::output(self.run as *const u8, (self.run_end - self.run) as u32) };
        }
        self.run = 0;
        self.run_end = 0;
    }

    fn discard(&mut self) {
        self.out.clear();
        self.run = 0;
        self.run_end = 0;
        self.cur = 0;
        self.ncounters = 0;
    }

    #[inline(always)]
    fn is_input(&self, r: &Record) -> bool {
        self.cur != 0
            && r.key.as_ptr() as usize == self.cur + 24
            && r.value.as_ptr() as usize == self.cur + 24 + r.key.len()
            && r.headers.as_ptr() as usize == self.cur + 24 + r.key.len() + r.value.len()
            && self.cur + 24 + r.key.len() + r.value.len() + r.headers.len() == self.cur_end
            && r.timestamp == self.cur_ts
    }

    #[inline(always)]
    fn copy_entry(&mut self, port: u16, r: &Record) {
        self.open_out();
        put_header(&mut self.out, 1, 0, port, r.key.len(), r.timestamp, r.value.len(), r.headers.len());
        put(&mut self.out, r.key);
        put(&mut self.out, r.value);
        put(&mut self.out, r.headers);
        self.after_entry();
    }

    fn take_buf(&mut self) -> Vec<u8> {
        let mut b = self.pool.pop().unwrap_or_else(|| Vec::with_capacity(256));
        b.clear();
        b
    }

    fn give_buf(&mut self, b: Vec<u8>) {
        if self.pool.len() < 8 {
            self.pool.push(b);
        }
    }

    fn port(&self, side: &str) -> Result<u16> {
        for (i, s) in self.op.side_outputs.iter().enumerate() {
            if *s == side {
                return Ok(i as u16 + 1);
            }
        }
        Err(Error::usage(format!(
            "operator {:?} declares no side output {:?}; declare it with `, side_outputs [\"{}\"]` in weir::operators!",
            self.op.name, side, side
        )))
    }

    fn check_port(&self, port: u16) -> Result<()> {
        if port as usize > self.op.side_outputs.len() {
            return Err(Error::usage(format!(
                "operator {:?} has {} side outputs, no port {}",
                self.op.name,
                self.op.side_outputs.len(),
                port
            )));
        }
        Ok(())
    }

    fn key(&self) -> &'static [u8] {
        unsafe { std::slice::from_raw_parts(self.key_ptr, self.key_len) }
    }

    fn send_counters(&mut self) {
        for i in 0..self.ncounters {
            let c = &self.counters[i];
            if c.delta != 0 {
                unsafe { sys::counter(c.name.as_ptr(), c.len as u32, c.delta) };
            }
        }
        self.ncounters = 0;
    }
}

// --------------------------------------------------------------- contexts

/// What a callback sees of its call: the current record's key and time, the
/// watermark, output, keyed state scope, timers, logs and counters. Valid
/// only during the callback it was passed to.
pub struct Context {
    _private: (),
}

static CTX: Context = Context { _private: () };

impl Context {
    /// The key of the record or timer at hand (the group key in an
    /// aggregate's result); empty when there is none.
    #[inline]
    pub fn key(&self) -> &[u8] {
        g().key()
    }
    /// The timestamp of the record or timer at hand (the window's last
    /// millisecond in an aggregate's result).
    #[inline]
    pub fn timestamp(&self) -> i64 {
        g().ts
    }
    /// The task's watermark when the batch was made ([`NO_WATERMARK`] if none).
    #[inline]
    pub fn watermark(&self) -> i64 {
        g().watermark
    }
    /// The host's processing time when the batch was made, ms since the epoch.
    #[inline]
    pub fn processing_time(&self) -> i64 {
        g().ptime
    }
    /// The operator's name.
    pub fn operator(&self) -> &'static str {
        g().op.name
    }

    /// Emits r to the main output. The input record of the callback,
    /// unchanged, is passed through without a copy; any other is copied.
    #[inline(always)]
    pub fn emit(&self, r: &Record) -> Result {
        let g = g();
        if g.is_input(r) {
            g.pass();
        } else {
            g.copy_entry(0, r);
        }
        Ok(())
    }

    /// Emits r to the side output called name.
    pub fn emit_to(&self, side: &str, r: &Record) -> Result {
        let port = g().port(side)?;
        g().copy_entry(port, r);
        Ok(())
    }

    /// Emits r to output port: 0 the main output, n the n-th side output.
    #[inline]
    pub fn emit_to_port(&self, port: u16, r: &Record) -> Result {
        if port == 0 {
            return self.emit(r);
        }
        g().check_port(port)?;
        g().copy_entry(port, r);
        Ok(())
    }

    /// Emits to the main output a copy of r (key, timestamp, headers) with a
    /// new value of len bytes, which fill writes (it starts zeroed): one
    /// copy of the key and headers, none of the value.
    #[inline]
    pub fn emit_value(&self, r: &Record, len: usize, fill: impl FnOnce(&mut [u8])) -> Result {
        let g = g();
        g.open_out();
        put_header(&mut g.out, 1, 0, 0, r.key.len(), r.timestamp, len, r.headers.len());
        put(&mut g.out, r.key);
        let at = g.out.len();
        g.out.resize(at + len, 0);
        fill(&mut g.out[at..at + len]);
        put(&mut g.out, r.headers);
        g.after_entry();
        Ok(())
    }

    /// Emits a record to output port with the given key and timestamp (no
    /// headers) whose value f writes with a [`Writer`], straight into the
    /// output: no intermediate buffer.
    #[inline]
    pub fn emit_with(&self, port: u16, key: &[u8], timestamp: i64, f: impl FnOnce(&mut Writer)) -> Result {
        self.emit_with_headers(port, key, timestamp, &[], f)
    }

    /// As [`Context::emit_with`], with encoded headers.
    #[inline]
    pub fn emit_with_headers(&self, port: u16, key: &[u8], timestamp: i64, headers: &[u8], f: impl FnOnce(&mut Writer)) -> Result {
        let g = g();
        if port != 0 {
            g.check_port(port)?;
        }
        g.open_out();
        let start = g.out.len();
        put_header(&mut g.out, 1, 0, port, key.len(), timestamp, 0, headers.len());
        put(&mut g.out, key);
        let vstart = g.out.len();
        f(Writer::wrap(&mut g.out));
        let vl = (g.out.len() - vstart) as u32;
        unsafe { std::ptr::write_unaligned(g.out.as_mut_ptr().add(start + 16) as *mut u32, vl.to_le()) };
        put(&mut g.out, headers);
        g.after_entry();
        Ok(())
    }

    /// Emits a watermark.
    pub fn emit_watermark(&self, timestamp: i64) -> Result {
        let g = g();
        g.open_out();
        put_header(&mut g.out, 2, 0, 0, 0, timestamp, 0, 0);
        g.after_entry();
        Ok(())
    }

    fn timer(&self, op: i32, domain: TimeDomain, ts: i64, what: &str) -> Result {
        let g = g();
        if !g.keyed {
            return Err(no_key(what));
        }
        unsafe { sys::timer(op, domain as i32, ts, g.key_ptr, g.key_len as u32) };
        Ok(())
    }
    /// Registers an event-time timer for the current key at ts.
    pub fn register_event_timer(&self, ts: i64) -> Result {
        self.timer(1, TimeDomain::EventTime, ts, "register_event_timer")
    }
    /// Registers a processing-time timer for the current key at ts.
    pub fn register_processing_timer(&self, ts: i64) -> Result {
        self.timer(1, TimeDomain::ProcessingTime, ts, "register_processing_timer")
    }
    /// Deletes the event-time timer of the current key at ts.
    pub fn delete_event_timer(&self, ts: i64) -> Result {
        self.timer(2, TimeDomain::EventTime, ts, "delete_event_timer")
    }
    /// Deletes the processing-time timer of the current key at ts.
    pub fn delete_processing_timer(&self, ts: i64) -> Result {
        self.timer(2, TimeDomain::ProcessingTime, ts, "delete_processing_timer")
    }

    /// Logs one line at level.
    pub fn log(&self, level: Level, msg: &str) {
        unsafe { sys::log(level as i32, msg.as_ptr(), msg.len() as u32) }
    }
    /// Logs one line at level info.
    pub fn log_info(&self, msg: &str) {
        self.log(Level::Info, msg)
    }

    /// Adds delta to the named counter (at most 128 bytes of name). Deltas
    /// are summed during the call and sent once per name at its end, and
    /// dropped if the call fails.
    pub fn counter(&self, name: &str, delta: i64) {
        let g = g();
        let nb = name.as_bytes();
        for c in g.counters[..g.ncounters].iter_mut() {
            if c.len == nb.len() && &c.name[..c.len] == nb {
                c.delta += delta;
                return;
            }
        }
        if g.ncounters == COUNTERS || nb.is_empty() || nb.len() > COUNTER_NAME {
            // No room to sum it, or a name the host will refuse: send now.
            unsafe { sys::counter(nb.as_ptr(), nb.len() as u32, delta) };
            return;
        }
        let c = &mut g.counters[g.ncounters];
        g.ncounters += 1;
        c.len = nb.len();
        c.name[..nb.len()].copy_from_slice(nb);
        c.delta = delta;
    }
}

fn no_key(what: &str) -> Error {
    Error::usage(format!(
        "{}: no current key here (keyed state and timers are for process, co_process and their timers)",
        what
    ))
}

/// What open sees: the operator's parameters and the declaration of state.
pub struct Open<'a> {
    params: &'a [u8],
}

impl<'a> Open<'a> {
    /// The operator's parameters: JSON bytes from the job spec, maybe empty.
    pub fn params(&self) -> &'a [u8] {
        self.params
    }
    /// The operator's name.
    pub fn operator(&self) -> &'static str {
        g().op.name
    }
    /// Logs one line at level info.
    pub fn log(&self, msg: &str) {
        CTX.log(Level::Info, msg)
    }

    fn register(&self, name: &str, kind: i32) -> Result<i32> {
        let op = g().op;
        if kind <= 3 && !op.kind.keyed() {
            return Err(Error::usage(format!(
                "state {:?}: operator {:?} is a {}; keyed state needs process or co_process (operator state does not)",
                name,
                op.name,
                op.kind.name()
            )));
        }
        if name.is_empty() {
            return Err(Error::usage("empty state name"));
        }
        let id = unsafe { sys::state_register(name.as_ptr(), name.len() as u32, kind) };
        if id < 0 {
            return Err(Error::with_kind(ErrorKind::Host, format!("the host refused state {:?}", name)));
        }
        Ok(id)
    }

    /// Declares keyed value state.
    pub fn value_state<T: Codec>(&self, name: &str) -> Result<ValueState<T>> {
        Ok(ValueState { id: self.register(name, 1)?, _t: PhantomData })
    }
    /// Declares keyed list state.
    pub fn list_state<T: Codec>(&self, name: &str) -> Result<ListState<T>> {
        Ok(ListState { id: self.register(name, 2)?, keyed: true, _t: PhantomData })
    }
    /// Declares keyed map state.
    pub fn map_state<K: Codec, V: Codec>(&self, name: &str) -> Result<MapState<K, V>> {
        Ok(MapState { id: self.register(name, 3)?, keyed: true, _t: PhantomData })
    }
    /// Declares operator list state: one list per subtask, its items split
    /// among the subtasks when the job is restored at another parallelism.
    pub fn operator_list_state<T: Codec>(&self, name: &str) -> Result<ListState<T>> {
        Ok(ListState { id: self.register(name, 4)?, keyed: false, _t: PhantomData })
    }
    /// Declares union list state: every subtask gets the union on restore.
    pub fn union_list_state<T: Codec>(&self, name: &str) -> Result<ListState<T>> {
        Ok(ListState { id: self.register(name, 5)?, keyed: false, _t: PhantomData })
    }
    /// Declares broadcast (map) state, the same in every subtask.
    pub fn broadcast_state<K: Codec, V: Codec>(&self, name: &str) -> Result<MapState<K, V>> {
        Ok(MapState { id: self.register(name, 6)?, keyed: false, _t: PhantomData })
    }
}

// ------------------------------------------------------------------ state

const ST_GET: i32 = 1;
const ST_PUT: i32 = 2;
const ST_DELETE: i32 = 3;
const ST_ENTRIES: i32 = 4;
const ST_CLEAR: i32 = 5;

fn scope(id: i32, keyed: bool, what: &str) -> Result<(*const u8, u32)> {
    if id < 0 {
        return Err(Error::usage(format!("{}: the state was not declared in open", what)));
    }
    if !keyed {
        return Ok((1 as *const u8, 0));
    }
    let g = g();
    if !g.keyed {
        return Err(no_key(what));
    }
    Ok((g.key_ptr, g.key_len as u32))
}

fn state_write(op: i32, id: i32, keyed: bool, what: &str, u: &[u8], v: &[u8]) -> Result {
    let (kp, kl) = scope(id, keyed, what)?;
    unsafe { sys::state(op, id, kp, kl, u.as_ptr(), u.len() as u32, v.as_ptr() as *mut u8, v.len() as u32) };
    Ok(())
}

/// Reads with op into a pooled buffer and hands the bytes to f; None when
/// there is nothing.
fn state_read<R>(op: i32, id: i32, keyed: bool, what: &str, u: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
    let (kp, kl) = scope(id, keyed, what)?;
    let mut buf = g().take_buf();
    loop {
        let cap = buf.capacity();
        let n = unsafe { sys::state(op, id, kp, kl, u.as_ptr(), u.len() as u32, buf.as_mut_ptr(), cap as u32) };
        if n < 0 {
            g().give_buf(buf);
            return Ok(None);
        }
        let n = n as usize;
        if n <= cap {
            unsafe { buf.set_len(n) };
            let r = f(&buf);
            g().give_buf(buf);
            return Ok(Some(r));
        }
        if n > 1 << 30 {
            return Err(Error::with_kind(ErrorKind::Host, format!("{}: a state value of {} bytes", what, n)));
        }
        buf.reserve(n);
    }
}

/// Encodes v into a pooled buffer and hands the bytes to f.
fn with_encoded<T: Codec, R>(v: &T, f: impl FnOnce(&[u8]) -> R) -> R {
    let mut buf = g().take_buf();
    v.encode(&mut buf);
    let r = f(&buf);
    g().give_buf(buf);
    r
}

/// Walks length-prefixed items.
fn items<'a>(mut b: &'a [u8], mut f: impl FnMut(&'a [u8]) -> Result<bool>) -> Result {
    while !b.is_empty() {
        if b.len() < 4 {
            return Err(Error::decode("list state: truncated item length"));
        }
        let n = rd32(b) as usize;
        if n > b.len() - 4 {
            return Err(Error::decode("list state: truncated item"));
        }
        if !f(&b[4..4 + n])? {
            break;
        }
        b = &b[4 + n..];
    }
    Ok(())
}

/// Keyed value state, declared with [`Open::value_state`]. The default
/// handle is not declared: using it is an error.
pub struct ValueState<T> {
    id: i32,
    _t: PhantomData<fn() -> T>,
}

impl<T> Default for ValueState<T> {
    fn default() -> Self {
        ValueState { id: -1, _t: PhantomData }
    }
}

impl<T: Codec> ValueState<T> {
    /// The value for the current key, if any.
    pub fn get(&self, _ctx: &Context) -> Result<Option<T>> {
        match state_read(ST_GET, self.id, true, "ValueState::get", &[], T::decode)? {
            None => Ok(None),
            Some(r) => r.map(Some).map_err(|e| e.context("value state")),
        }
    }
    /// Hands the stored bytes to f without decoding them.
    pub fn with_bytes<R>(&self, _ctx: &Context, f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        state_read(ST_GET, self.id, true, "ValueState::with_bytes", &[], f)
    }
    /// Sets the value for the current key.
    pub fn set(&self, _ctx: &Context, v: &T) -> Result {
        with_encoded(v, |b| state_write(ST_PUT, self.id, true, "ValueState::set", &[], b))
    }
    /// Sets the stored bytes.
    pub fn set_bytes(&self, _ctx: &Context, b: &[u8]) -> Result {
        state_write(ST_PUT, self.id, true, "ValueState::set_bytes", &[], b)
    }
    /// Clears the value for the current key.
    pub fn clear(&self, _ctx: &Context) -> Result {
        state_write(ST_CLEAR, self.id, true, "ValueState::clear", &[], &[])
    }
}

/// List state: keyed ([`Open::list_state`]) or operator state
/// ([`Open::operator_list_state`], [`Open::union_list_state`]).
pub struct ListState<T> {
    id: i32,
    keyed: bool,
    _t: PhantomData<fn() -> T>,
}

impl<T> Default for ListState<T> {
    fn default() -> Self {
        ListState { id: -1, keyed: true, _t: PhantomData }
    }
}

impl<T: Codec> ListState<T> {
    /// Appends v.
    pub fn add(&self, _ctx: &Context, v: &T) -> Result {
        with_encoded(v, |b| state_write(ST_PUT, self.id, self.keyed, "ListState::add", &[], b))
    }
    /// Appends encoded bytes.
    pub fn add_bytes(&self, _ctx: &Context, b: &[u8]) -> Result {
        state_write(ST_PUT, self.id, self.keyed, "ListState::add_bytes", &[], b)
    }
    /// Calls f with each item in order, until it returns false.
    pub fn for_each(&self, _ctx: &Context, mut f: impl FnMut(T) -> Result<bool>) -> Result {
        state_read(ST_GET, self.id, self.keyed, "ListState::for_each", &[], |b| {
            items(b, |it| f(T::decode(it).map_err(|e| e.context("list state"))?))
        })?
        .unwrap_or(Ok(()))
    }
    /// Calls f with each item's bytes in order, until it returns false.
    pub fn for_each_bytes(&self, _ctx: &Context, f: impl FnMut(&[u8]) -> Result<bool>) -> Result {
        state_read(ST_GET, self.id, self.keyed, "ListState::for_each_bytes", &[], |b| items(b, f))?.unwrap_or(Ok(()))
    }
    /// All items (allocates a Vec; [`ListState::for_each`] does not).
    pub fn get(&self, ctx: &Context) -> Result<Vec<T>> {
        let mut v = Vec::new();
        self.for_each(ctx, |t| {
            v.push(t);
            Ok(true)
        })?;
        Ok(v)
    }
    /// Clears the list.
    pub fn clear(&self, _ctx: &Context) -> Result {
        state_write(ST_CLEAR, self.id, self.keyed, "ListState::clear", &[], &[])
    }
}

/// Map state: keyed ([`Open::map_state`], user key -> value within the
/// current key) or broadcast ([`Open::broadcast_state`]).
pub struct MapState<K, V> {
    id: i32,
    keyed: bool,
    _t: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Default for MapState<K, V> {
    fn default() -> Self {
        MapState { id: -1, keyed: true, _t: PhantomData }
    }
}

impl<K: Codec, V: Codec> MapState<K, V> {
    /// The value of k.
    pub fn get(&self, _ctx: &Context, k: &K) -> Result<Option<V>> {
        let r = with_encoded(k, |u| state_read(ST_GET, self.id, self.keyed, "MapState::get", u, V::decode))?;
        match r {
            None => Ok(None),
            Some(r) => r.map(Some).map_err(|e| e.context("map state")),
        }
    }
    /// Hands the stored bytes of k to f without decoding them.
    pub fn with_bytes<R>(&self, _ctx: &Context, k: &K, f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        with_encoded(k, |u| state_read(ST_GET, self.id, self.keyed, "MapState::with_bytes", u, f))
    }
    /// Sets k to the encoded value b.
    pub fn put_bytes(&self, _ctx: &Context, k: &K, b: &[u8]) -> Result {
        with_encoded(k, |u| state_write(ST_PUT, self.id, self.keyed, "MapState::put_bytes", u, b))
    }
    /// Whether k has a value.
    pub fn contains(&self, _ctx: &Context, k: &K) -> Result<bool> {
        Ok(with_encoded(k, |u| state_read(ST_GET, self.id, self.keyed, "MapState::contains", u, |_| ()))?.is_some())
    }
    /// Sets k to v.
    pub fn put(&self, _ctx: &Context, k: &K, v: &V) -> Result {
        with_encoded(k, |u| with_encoded(v, |b| state_write(ST_PUT, self.id, self.keyed, "MapState::put", u, b)))
    }
    /// Removes k.
    pub fn delete(&self, _ctx: &Context, k: &K) -> Result {
        with_encoded(k, |u| state_write(ST_DELETE, self.id, self.keyed, "MapState::delete", u, &[]))
    }
    /// Calls f with every entry (in the host's order, sorted by encoded
    /// key), until it returns false.
    pub fn for_each(&self, _ctx: &Context, mut f: impl FnMut(K, V) -> Result<bool>) -> Result {
        state_read(ST_ENTRIES, self.id, self.keyed, "MapState::for_each", &[], |b| {
            let mut key: Option<&[u8]> = None;
            items(b, |it| match key.take() {
                None => {
                    key = Some(it);
                    Ok(true)
                }
                Some(k) => f(
                    K::decode(k).map_err(|e| e.context("map state key"))?,
                    V::decode(it).map_err(|e| e.context("map state value"))?,
                ),
            })
        })?
        .unwrap_or(Ok(()))
    }
    /// Removes every entry.
    pub fn clear(&self, _ctx: &Context) -> Result {
        state_write(ST_CLEAR, self.id, self.keyed, "MapState::clear", &[], &[])
    }
}

// ---------------------------------------------------------------- writers

/// Writes a value straight into the output (see [`Context::emit_with`]),
/// with helpers for decimal numbers and JSON.
#[repr(transparent)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    #[inline(always)]
    fn wrap(v: &mut Vec<u8>) -> &mut Writer {
        // Writer is a transparent wrapper of Vec<u8>.
        unsafe { &mut *(v as *mut Vec<u8> as *mut Writer) }
    }
    /// Appends bytes.
    #[inline(always)]
    pub fn push(&mut self, b: &[u8]) -> &mut Writer {
        put(&mut self.buf, b);
        self
    }
    /// Appends one byte.
    #[inline(always)]
    pub fn byte(&mut self, b: u8) -> &mut Writer {
        put_byte(&mut self.buf, b);
        self
    }
    /// Appends v in decimal.
    #[inline]
    pub fn int(&mut self, v: i64) -> &mut Writer {
        append_i64(&mut self.buf, v);
        self
    }
    /// Appends s as a JSON string (quoted, escaped as Go's encoding/json
    /// does, invalid UTF-8 replaced by U+FFFD).
    #[inline]
    pub fn json_str(&mut self, s: &[u8]) -> &mut Writer {
        json_string(&mut self.buf, s);
        self
    }
    /// Appends `"name":v` after sep (`{` or `,`).
    #[inline]
    pub fn json_int(&mut self, sep: u8, name: &str, v: i64) -> &mut Writer {
        self.json_name(sep, name);
        self.int(v)
    }
    /// Appends `"name":"s"` after sep (`{` or `,`).
    #[inline]
    pub fn json_field_str(&mut self, sep: u8, name: &str, s: &[u8]) -> &mut Writer {
        self.json_name(sep, name);
        self.json_str(s)
    }
    /// Writes `sep"name":` with one capacity check.
    #[inline(always)]
    fn json_name(&mut self, sep: u8, name: &str) {
        let b = &mut self.buf;
        let n = name.len();
        b.reserve(n + 4);
        unsafe {
            let len = b.len();
            let p = b.as_mut_ptr().add(len);
            *p = sep;
            *p.add(1) = b'"';
            copy_small(p.add(2), name.as_ptr(), n);
            *p.add(2 + n) = b'"';
            *p.add(3 + n) = b':';
            b.set_len(len + n + 4);
        }
    }
}

const DIGITS2: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// The number of decimal digits of v.
#[inline(always)]
fn dec_len(v: u64) -> usize {
    if v < 100_000_000 {
        let w = v as u32;
        return if w < 10_000 {
            if w < 100 {
                1 + (w >= 10) as usize
            } else {
                3 + (w >= 1000) as usize
            }
        } else if w < 1_000_000 {
            5 + (w >= 100_000) as usize
        } else {
            7 + (w >= 10_000_000) as usize
        };
    }
    let mut n = 9;
    let mut t = 1_000_000_000u64;
    while n < 20 && v >= t {
        n += 1;
        t = t.wrapping_mul(10);
    }
    n
}

/// The 8 decimal digits of v < 10^8 as ASCII, the most significant (a
/// leading zero, maybe) in the lowest byte: multiplications and shifts in
/// one register (SWAR). WebAssembly has no multiply-high, so a division by
/// a constant is a real div instruction (tens of cycles) where native code
/// would multiply; this has none.
#[inline(always)]
fn dec8(v: u32) -> u64 {
    let v = v as u64;
    let hi = (v * 3518437209) >> 45; // v / 10000
    let x = hi | (v - hi * 10000) << 32;
    let q = ((x * 10486) >> 20) & 0x0000_007F_0000_007F; // / 100 in each 32-bit lane
    let y = q | (x - q * 100) << 16;
    let t = ((y * 103) >> 10) & 0x000F_000F_000F_000F; // / 10 in each 16-bit lane
    (t | (y - t * 10) << 8) + 0x3030_3030_3030_3030
}

/// Writes the digits of v at p and returns how many. Writes up to 8 bytes
/// past the last digit's start: p needs 24 bytes of room.
#[inline(always)]
unsafe fn put_u64_digits(p: *mut u8, v: u64) -> usize {
    use std::ptr::write_unaligned as wr;
    const E8: u64 = 100_000_000;
    if v < E8 {
        let n = dec_len(v);
        wr(p as *mut u64, (dec8(v as u32) >> (8 * (8 - n))).to_le());
        return n;
    }
    let hi = v / E8;
    let lo = (v - hi * E8) as u32;
    if hi < E8 {
        let n = dec_len(hi);
        wr(p as *mut u64, (dec8(hi as u32) >> (8 * (8 - n))).to_le());
        wr(p.add(n) as *mut u64, dec8(lo).to_le());
        return n + 8;
    }
    let hh = hi / E8;
    let hl = (hi - hh * E8) as u32;
    let n = dec_len(hh);
    wr(p as *mut u64, (dec8(hh as u32) >> (8 * (8 - n))).to_le());
    wr(p.add(n) as *mut u64, dec8(hl).to_le());
    wr(p.add(n + 8) as *mut u64, dec8(lo).to_le());
    n + 16
}

/// Writes v in decimal at the end of buf and returns the number of digits.
#[inline]
pub fn fmt_u64(v: u64, buf: &mut [u8; 20]) -> usize {
    let mut t = [0u8; 24];
    let n = unsafe { put_u64_digits(t.as_mut_ptr(), v) };
    buf[20 - n..].copy_from_slice(&t[..n]);
    n
}

/// Writes v in decimal at the end of buf (a '-' included) and returns the
/// length.
#[inline]
pub fn fmt_i64(v: i64, buf: &mut [u8; 20]) -> usize {
    if v >= 0 {
        return fmt_u64(v as u64, buf);
    }
    let n = fmt_u64(v.unsigned_abs(), buf);
    buf[19 - n] = b'-';
    n + 1
}

/// Appends v in decimal to dst, the digits written in place.
#[inline]
pub fn append_i64(dst: &mut Vec<u8>, v: i64) {
    dst.reserve(25);
    unsafe {
        let len = dst.len();
        let mut p = dst.as_mut_ptr().add(len);
        let mut n = 0;
        if v < 0 {
            *p = b'-';
            p = p.add(1);
            n = 1;
        }
        n += put_u64_digits(p, v.unsigned_abs());
        dst.set_len(len + n);
    }
}

/// The decimal key form: parses an optionally signed decimal of at most 18
/// digits.
pub fn parse_i64(b: &[u8]) -> Result<i64> {
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 18 {
        return Err(Error::decode(format!("{:?} is not a decimal id", String::from_utf8_lossy(b))));
    }
    let mut n: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return Err(Error::decode(format!("{:?} is not a decimal id", String::from_utf8_lossy(b))));
        }
        n = n * 10 + (c - b'0') as i64;
    }
    Ok(if neg { -n } else { n })
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends s as a JSON string: quotes, backslashes and control characters
/// escaped, U+2028 and U+2029 escaped, invalid UTF-8 replaced by U+FFFD
/// (what Go's encoding/json writes).
pub fn json_string(dst: &mut Vec<u8>, s: &[u8]) {
    put_byte(dst, b'"');
    let mut i = 0;
    loop {
        // Eight plain bytes at a time, checked and copied with one load and
        // one store (no memory.copy call): room for the rest of s is made
        // first, so the stores need no capacity checks.
        unsafe {
            if dst.capacity() - dst.len() < s.len() - i + 8 {
                dst.reserve(s.len() - i + 8);
            }
            let base = dst.as_mut_ptr();
            let mut len = dst.len();
            while i + 8 <= s.len() {
                let x = std::ptr::read_unaligned(s.as_ptr().add(i) as *const u64);
                if !plain8(u64::from_le(x)) {
                    break;
                }
                std::ptr::write_unaligned(base.add(len) as *mut u64, x);
                len += 8;
                i += 8;
            }
            // A tail shorter than a word: the string's last eight bytes,
            // overlapping bytes already written (with the same values).
            let rest = s.len() - i;
            if rest > 0 && rest < 8 && s.len() >= 8 {
                let x = std::ptr::read_unaligned(s.as_ptr().add(s.len() - 8) as *const u64);
                if plain8(u64::from_le(x)) {
                    std::ptr::write_unaligned(base.add(len + rest - 8) as *mut u64, x);
                    len += rest;
                    i += rest;
                }
            }
            dst.set_len(len);
        }
        if i >= s.len() {
            break;
        }
        let c = s[i];
        if (0x20..0x80).contains(&c) && c != b'"' && c != b'\\' {
            put_byte(dst, c);
            i += 1;
            continue;
        }
        if c < 0x80 {
            match c {
                b'"' | b'\\' => put(dst, &[b'\\', c]),
                b'\n' => put(dst, b"\\n"),
                b'\r' => put(dst, b"\\r"),
                b'\t' => put(dst, b"\\t"),
                _ => put(dst, &[b'\\', b'u', b'0', b'0', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]]),
            }
            i += 1;
            continue;
        }
        let n = match c {
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            _ => 0,
        };
        if n == 0 || i + n > s.len() || std::str::from_utf8(&s[i..i + n]).is_err() {
            put(dst, b"\\ufffd");
            i += 1;
            continue;
        }
        if n == 3 && c == 0xe2 && s[i + 1] == 0x80 && (s[i + 2] == 0xa8 || s[i + 2] == 0xa9) {
            put(dst, if s[i + 2] == 0xa8 { b"\\u2028" } else { b"\\u2029" });
        } else {
            put(dst, &s[i..i + n]);
        }
        i += n;
    }
    put_byte(dst, b'"');
}

/// Whether all eight bytes of x need no escape in a JSON string: none
/// below 0x20 or from 0x80, no quote, no backslash ("has a byte below n"
/// and "has a zero byte" word tricks, exact for the word as a whole).
#[inline(always)]
fn plain8(x: u64) -> bool {
    const ONES: u64 = 0x0101010101010101;
    const HIGHS: u64 = 0x8080808080808080;
    let q = x ^ (ONES * b'"' as u64);
    let bs = x ^ (ONES * b'\\' as u64);
    let bad = (x.wrapping_sub(ONES * 0x20) & !x) | (q.wrapping_sub(ONES) & !q) | (bs.wrapping_sub(ONES) & !bs) | x;
    bad & HIGHS == 0
}

// --------------------------------------------------------- operator traits

/// A map or flat_map with open, finish and operator state
/// (`map_with` / `flat_map_with` in [`operators!`]).
pub trait Stateless: Default {
    /// Once per instance, before any record: declare operator state here.
    fn open(&mut self, _o: &Open) -> Result {
        Ok(())
    }
    /// One record; a map emits exactly one record.
    fn process(&mut self, r: &Record, ctx: &Context) -> Result;
    /// At the end of a bounded input.
    fn finish(&mut self, _ctx: &Context) -> Result {
        Ok(())
    }
}

/// A keyed process function: state and timers are scoped to the key of the
/// record or timer at hand.
pub trait Process: Default {
    /// Once per instance, before any record: declare state here.
    fn open(&mut self, _o: &Open) -> Result {
        Ok(())
    }
    /// One record.
    fn process(&mut self, r: &Record, ctx: &Context) -> Result;
    /// A due timer.
    fn on_timer(&mut self, _t: Timer, _ctx: &Context) -> Result {
        Ok(())
    }
    /// At the end of a bounded input; no current key.
    fn finish(&mut self, _ctx: &Context) -> Result {
        Ok(())
    }
}

/// A keyed operator with two inputs.
pub trait CoProcess: Default {
    fn open(&mut self, _o: &Open) -> Result {
        Ok(())
    }
    /// A record of input 0.
    fn process1(&mut self, r: &Record, ctx: &Context) -> Result;
    /// A record of input 1.
    fn process2(&mut self, r: &Record, ctx: &Context) -> Result;
    fn on_timer(&mut self, _t: Timer, _ctx: &Context) -> Result {
        Ok(())
    }
    fn finish(&mut self, _ctx: &Context) -> Result {
        Ok(())
    }
}

/// A window aggregate: the host groups records by key and window and keeps
/// the accumulators (encoded with their [`Codec`]).
pub trait Aggregate: Default {
    type Acc: Codec;
    fn open(&mut self, _o: &Open) -> Result {
        Ok(())
    }
    /// A new accumulator.
    fn create(&mut self) -> Self::Acc;
    /// Adds a record.
    fn add(&mut self, acc: &mut Self::Acc, r: &Record) -> Result;
    /// Merges other into acc (session windows, partial aggregates).
    fn merge(&mut self, acc: &mut Self::Acc, other: Self::Acc) -> Result;
    /// Emits the result records of a final accumulator: ctx.key() is the
    /// group key and ctx.timestamp() the window's last millisecond.
    fn result(&mut self, acc: Self::Acc, ctx: &Context) -> Result;
}

// ---------------------------------------------------------------- runtime

#[doc(hidden)]
pub mod rt {
    use super::*;

    /// Where a call failed: "record 3", "timer 0", "open"...
    pub struct Fail {
        what: &'static str,
        index: i64,
        err: Error,
    }

    fn fail_at(what: &'static str, index: usize, err: Error) -> Fail {
        Fail { what, index: index as i64, err }
    }
    fn fail(what: &'static str, msg: &str) -> Fail {
        Fail { what, index: -1, err: Error::usage(msg) }
    }

    pub fn init() {
        g().init();
    }

    pub fn describe(ops: &[OpDesc]) {
        let g = g();
        g.init();
        let mut d = Vec::with_capacity(256);
        d.extend_from_slice(b"{\"sdk\":\"");
        d.extend_from_slice(SDK_NAME.as_bytes());
        d.extend_from_slice(b"\",\"operators\":[");
        for (i, o) in ops.iter().enumerate() {
            if i > 0 {
                d.push(b',');
            }
            d.extend_from_slice(b"{\"name\":");
            json_string(&mut d, o.name.as_bytes());
            d.extend_from_slice(b",\"kind\":\"");
            d.extend_from_slice(o.kind.name().as_bytes());
            d.push(b'"');
            if !o.side_outputs.is_empty() {
                d.extend_from_slice(b",\"side_outputs\":[");
                for (j, s) in o.side_outputs.iter().enumerate() {
                    if j > 0 {
                        d.push(b',');
                    }
                    json_string(&mut d, s.as_bytes());
                }
                d.push(b']');
            }
            d.push(b'}');
        }
        d.extend_from_slice(b"]}");
        unsafe { sys::output(d.as_ptr(), d.len() as u32) };
    }

    pub fn buffer(size: i32) -> i32 {
        let g = g();
        g.init();
        let size = (size.max(64)) as usize;
        if g.input.len() < size {
            g.input = vec![0u8; size];
        }
        g.input.as_mut_ptr() as i32
    }

    /// The input of a call: its batch header read, the entries after it.
    pub struct Batch {
        pub count: u32,
        pub p: usize,
        pub end: usize,
    }

    /// Starts a call of method on op over len input bytes.
    pub fn begin(op: &'static OpDesc, method: i32, len: i32) -> std::result::Result<Batch, Fail> {
        let g = g();
        g.init();
        g.discard();
        g.op = op;
        g.keyed = false;
        g.key_ptr = 1 as *const u8;
        g.key_len = 0;
        g.ts = 0;
        let len = len as u32 as usize;
        if len > g.input.len() {
            return Err(fail("call", "input longer than the buffer from weir_buffer"));
        }
        let base = g.input.as_ptr() as usize;
        if method == 0 {
            g.watermark = NO_WATERMARK;
            g.ptime = 0;
            return Ok(Batch { count: 0, p: base, end: base + len });
        }
        if len < 24 {
            return Err(fail("batch", "shorter than its 24-byte header"));
        }
        unsafe {
            let p = base as *const u8;
            g.watermark = rd64p(p.add(8)) as i64;
            g.ptime = rd64p(p.add(16)) as i64;
            Ok(Batch { count: rd32p(p), p: base + 24, end: base + len })
        }
    }

    /// Ends a call: 0, or 1 after weir.fail.
    pub fn end(r: std::result::Result<(), Fail>) -> i32 {
        let g = g();
        g.cur = 0;
        g.keyed = false;
        match r {
            Ok(()) => {
                g.finish_output();
                if g.ncounters > 0 {
                    g.send_counters();
                }
                0
            }
            Err(f) => {
                g.discard();
                let msg = if f.index >= 0 {
                    format!("{} {}: {}", f.what, f.index, f.err.msg)
                } else {
                    format!("{}: {}", f.what, f.err.msg)
                };
                let n = msg.len().min(4096);
                unsafe { sys::fail(msg.as_ptr(), n as u32) };
                1
            }
        }
    }

    /// One entry of the input, bounds-checked.
    struct Entry {
        kind: u8,
        flags: u8,
        port: u16,
        kl: usize,
        vl: usize,
        hl: usize,
        ts: i64,
        next: usize,
    }

    #[inline(always)]
    fn entry(p: usize, end: usize) -> Option<Entry> {
        if end - p < 24 {
            return None;
        }
        unsafe {
            let h0 = rd64p(p as *const u8);
            let h2 = rd64p((p + 16) as *const u8);
            let (kl, vl, hl) = ((h0 >> 32) as usize, h2 as u32 as usize, (h2 >> 32) as usize);
            let payload = kl as u64 + vl as u64 + hl as u64;
            if payload > (end - p - 24) as u64 {
                return None;
            }
            Some(Entry {
                kind: h0 as u8,
                flags: (h0 >> 8) as u8,
                port: (h0 >> 16) as u16,
                kl,
                vl,
                hl,
                ts: rd64p((p + 8) as *const u8) as i64,
                next: p + 24 + payload as usize,
            })
        }
    }

    #[inline(always)]
    unsafe fn record<'a>(p: usize, e: &Entry) -> Record<'a> {
        let k = p + 24;
        Record { key: slice(k, e.kl), value: slice(k + e.kl, e.vl), headers: slice(k + e.kl + e.vl, e.hl), timestamp: e.ts }
    }

    /// Runs f over the record entries of a batch. mode: 0 any number of
    /// outputs, 1 exactly one (map); keyed sets the key scope.
    #[inline(always)]
    pub fn records(b: Batch, exactly_one: bool, keyed: bool, mut f: impl FnMut(&Record, u16) -> Result) -> std::result::Result<(), Fail> {
        let mut p = b.p;
        for i in 0..b.count as usize {
            let e = match entry(p, b.end) {
                Some(e) => e,
                None => return Err(fail_at("record", i, Error::decode("truncated entry"))),
            };
            if e.kind != 1 {
                return Err(fail_at("record", i, Error::decode("not a record entry")));
            }
            if e.flags != 0 || e.port != 0 {
                // Clear them in the input buffer (the module's) so the entry
                // reads as the output entry of an unchanged record and can
                // be passed through.
                unsafe { std::ptr::write_bytes((p + 1) as *mut u8, 0, 3) };
            }
            let r = unsafe { record(p, &e) };
            {
                let g = g();
                g.cur = p;
                g.cur_end = e.next;
                g.cur_ts = e.ts;
                g.emitted = 0;
                if keyed {
                    g.keyed = true;
                    g.key_ptr = r.key.as_ptr();
                    g.key_len = r.key.len();
                }
                g.ts = e.ts;
            }
            if let Err(err) = f(&r, e.port) {
                return Err(fail_at("record", i, err));
            }
            let g = g();
            if exactly_one {
                let n = g.emitted;
                if n != 1 {
                    let why = if n == 0 {
                        "a map operator emitted no record (use flat_map or filter)"
                    } else {
                        "a map operator emitted more than one record (use flat_map)"
                    };
                    return Err(fail_at("record", i, Error::usage(why)));
                }
            }
            if g.out.len() >= FLUSH {
                g.flush_out();
            }
            p = e.next;
        }
        g().cur = 0;
        if p != b.end {
            return Err(fail("batch", "bytes left after the last entry of the count"));
        }
        Ok(())
    }

    /// Runs a filter over a batch: kept records pass through unchanged.
    #[inline(always)]
    pub fn filter(b: Batch, mut f: impl FnMut(&Record) -> Result<bool>) -> std::result::Result<(), Fail> {
        records(b, false, false, |r, _| {
            if f(r)? {
                g().pass();
            }
            Ok(())
        })
    }

    /// Runs f over the timer entries of a batch.
    pub fn timers(b: Batch, mut f: impl FnMut(Timer) -> Result) -> std::result::Result<(), Fail> {
        let mut p = b.p;
        for i in 0..b.count as usize {
            let e = match entry(p, b.end) {
                Some(e) => e,
                None => return Err(fail_at("timer", i, Error::decode("truncated entry"))),
            };
            if e.kind != 3 {
                return Err(fail_at("timer", i, Error::decode("not a timer entry")));
            }
            let g = g();
            g.keyed = true;
            g.key_ptr = (p + 24) as *const u8;
            g.key_len = e.kl;
            g.ts = e.ts;
            let domain = if e.flags == 1 { TimeDomain::ProcessingTime } else { TimeDomain::EventTime };
            if let Err(err) = f(Timer { timestamp: e.ts, domain }) {
                return Err(fail_at("timer", i, err));
            }
            p = e.next;
        }
        if p != b.end {
            return Err(fail("batch", "bytes left after the last entry of the count"));
        }
        Ok(())
    }

    fn set_scope(p: usize, e: &Entry) {
        let g = g();
        g.keyed = false;
        g.key_ptr = (p + 24) as *const u8;
        g.key_len = e.kl;
        g.ts = e.ts;
    }

    fn emit_acc<A: Codec>(p: usize, e: &Entry, acc: &A) {
        let g = g();
        g.open_out();
        let start = g.out.len();
        put_header(&mut g.out, 4, 0, 0, e.kl, e.ts, 0, 0);
        put(&mut g.out, unsafe { slice(p + 24, e.kl) });
        let vstart = g.out.len();
        acc.encode(&mut g.out);
        let vl = (g.out.len() - vstart) as u32;
        g.out[start + 16..start + 20].copy_from_slice(&vl.to_le_bytes());
        g.after_entry();
    }

    fn acc_of<A: Aggregate>(a: &mut A, p: usize, e: &Entry) -> Result<A::Acc> {
        if e.flags & 1 != 0 {
            return Ok(a.create());
        }
        A::Acc::decode(unsafe { slice(p + 24 + e.kl, e.vl) }).map_err(|err| err.context("accumulator"))
    }

    pub fn agg_add<A: Aggregate>(a: &mut A, b: Batch) -> std::result::Result<(), Fail> {
        let mut p = b.p;
        let mut open: Option<(usize, Entry, A::Acc)> = None;
        for i in 0..b.count as usize {
            let e = match entry(p, b.end) {
                Some(e) => e,
                None => return Err(fail_at("record", i, Error::decode("truncated entry"))),
            };
            let next = e.next;
            match e.kind {
                4 => {
                    if let Some((ap, ae, acc)) = open.take() {
                        emit_acc(ap, &ae, &acc);
                    }
                    set_scope(p, &e);
                    let acc = acc_of(a, p, &e).map_err(|err| fail_at("record", i, err))?;
                    open = Some((p, e, acc));
                }
                1 => match open.as_mut() {
                    None => return Err(fail_at("record", i, Error::decode("a record before the first accumulator of an agg_add batch"))),
                    Some((_, _, acc)) => {
                        let r = unsafe { record(p, &e) };
                        a.add(acc, &r).map_err(|err| fail_at("record", i, err))?;
                    }
                },
                k => return Err(fail_at("record", i, Error::decode(format!("entry kind {} in an agg_add batch", k)))),
            }
            p = next;
        }
        if let Some((ap, ae, acc)) = open.take() {
            emit_acc(ap, &ae, &acc);
        }
        if p != b.end {
            return Err(fail("batch", "bytes left after the last entry of the count"));
        }
        Ok(())
    }

    pub fn agg_merge<A: Aggregate>(a: &mut A, b: Batch) -> std::result::Result<(), Fail> {
        if b.count % 2 != 0 {
            return Err(fail("batch", "agg_merge batch of an odd number of accumulators"));
        }
        let mut p = b.p;
        let mut i = 0;
        while i < b.count as usize {
            let e1 = entry(p, b.end).ok_or_else(|| fail_at("record", i, Error::decode("truncated entry")))?;
            let p2 = e1.next;
            let e2 = entry(p2, b.end).ok_or_else(|| fail_at("record", i + 1, Error::decode("truncated entry")))?;
            if e1.kind != 4 || e2.kind != 4 {
                return Err(fail_at("record", i, Error::decode("agg_merge takes accumulator entries")));
            }
            set_scope(p, &e1);
            let mut x = acc_of(a, p, &e1).map_err(|err| fail_at("record", i, err))?;
            let y = acc_of(a, p2, &e2).map_err(|err| fail_at("record", i + 1, err))?;
            a.merge(&mut x, y).map_err(|err| fail_at("record", i, err))?;
            emit_acc(p, &e1, &x);
            p = e2.next;
            i += 2;
        }
        if p != b.end {
            return Err(fail("batch", "bytes left after the last entry of the count"));
        }
        Ok(())
    }

    pub fn agg_result<A: Aggregate>(a: &mut A, b: Batch) -> std::result::Result<(), Fail> {
        let mut p = b.p;
        for i in 0..b.count as usize {
            let e = entry(p, b.end).ok_or_else(|| fail_at("record", i, Error::decode("truncated entry")))?;
            if e.kind != 4 {
                return Err(fail_at("record", i, Error::decode("agg_result takes accumulator entries")));
            }
            set_scope(p, &e);
            let acc = acc_of(a, p, &e).map_err(|err| fail_at("record", i, err))?;
            a.result(acc, &CTX).map_err(|err| fail_at("record", i, err))?;
            p = e.next;
        }
        if p != b.end {
            return Err(fail("batch", "bytes left after the last entry of the count"));
        }
        Ok(())
    }

    fn open_ctx(b: &Batch) -> Open<'static> {
        Open { params: unsafe { slice(b.p, b.end - b.p) } }
    }

    fn not_supported(method: i32) -> Fail {
        fail("call", &format!("method {} is not one this operator's kind takes", method))
    }

    fn at(what: &'static str, r: Result) -> std::result::Result<(), Fail> {
        r.map_err(|err| Fail { what, index: -1, err })
    }

    pub fn ctx() -> &'static Context {
        &CTX
    }

    /// A map, filter or flat_map given as a function.
    // One function per operator: the record loop with the operator inlined
    // into it, small enough for the engine's register allocator.
    #[inline(never)]
    pub fn call_map(op: &'static OpDesc, method: i32, len: i32, f: impl Fn(&Record, &Context) -> Result) -> i32 {
        end(begin(op, method, len).and_then(|b| match method {
            0 | 6 => Ok(()),
            1 => records(b, op.kind == Kind::Map, false, |r, _| f(r, &CTX)),
            m => Err(not_supported(m)),
        }))
    }

    // One function per operator: the record loop with the operator inlined
    // into it, small enough for the engine's register allocator.
    #[inline(never)]
    pub fn call_filter(op: &'static OpDesc, method: i32, len: i32, f: impl Fn(&Record) -> Result<bool>) -> i32 {
        end(begin(op, method, len).and_then(|b| match method {
            0 | 6 => Ok(()),
            1 => filter(b, f),
            m => Err(not_supported(m)),
        }))
    }

    // One function per operator: the record loop with the operator inlined
    // into it, small enough for the engine's register allocator.
    #[inline(never)]
    pub fn call_stateless<S: Stateless>(op: &'static OpDesc, s: &mut S, method: i32, len: i32) -> i32 {
        end(begin(op, method, len).and_then(|b| match method {
            0 => at("open", s.open(&open_ctx(&b))),
            1 => records(b, op.kind == Kind::Map, false, |r, _| s.process(r, &CTX)),
            6 => at("finish", s.finish(&CTX)),
            m => Err(not_supported(m)),
        }))
    }

    // One function per operator: the record loop with the operator inlined
    // into it, small enough for the engine's register allocator.
    #[inline(never)]
    pub fn call_process<P: Process>(op: &'static OpDesc, s: &mut P, method: i32, len: i32) -> i32 {
        end(begin(op, method, len).and_then(|b| match method {
            0 => at("open", s.open(&open_ctx(&b))),
            1 => records(b, false, true, |r, _| s.process(r, &CTX)),
            2 => timers(b, |t| s.on_timer(t, &CTX)),
            6 => at("finish", s.finish(&CTX)),
            m => Err(not_supported(m)),
        }))
    }

    // One function per operator: the record loop with the operator inlined
    // into it, small enough for the engine's register allocator.
    #[inline(never)]
    pub fn call_co_process<P: CoProcess>(op: &'static OpDesc, s: &mut P, method: i32, len: i32) -> i32 {
        end(begin(op, method, len).and_then(|b| match method {
            0 => at("open", s.open(&open_ctx(&b))),
            1 => records(b, false, true, |r, port| match port {
                0 => s.process1(r, &CTX),
                1 => s.process2(r, &CTX),
                n => Err(Error::decode(format!("input port {} of a two-input operator", n))),
            }),
            2 => timers(b, |t| s.on_timer(t, &CTX)),
            6 => at("finish", s.finish(&CTX)),
            m => Err(not_supported(m)),
        }))
    }

    // One function per operator: the record loop with the operator inlined
    // into it, small enough for the engine's register allocator.
    #[inline(never)]
    pub fn call_aggregate<A: Aggregate>(op: &'static OpDesc, s: &mut A, method: i32, len: i32) -> i32 {
        end(begin(op, method, len).and_then(|b| match method {
            0 => at("open", s.open(&open_ctx(&b))),
            3 => agg_add(s, b),
            4 => agg_merge(s, b),
            5 => agg_result(s, b),
            6 => Ok(()),
            m => Err(not_supported(m)),
        }))
    }

    pub fn no_operator() -> i32 {
        end(Err(fail("call", "no operator with this index in the descriptor")))
    }

    /// The one instance of an operator type per module instance.
    pub struct Slot<T>(pub std::cell::UnsafeCell<Option<T>>);
    unsafe impl<T> Sync for Slot<T> {}
    impl<T: Default> Slot<T> {
        #[allow(clippy::mut_from_ref)]
        #[inline(always)]
        pub fn get(&self) -> &mut T {
            unsafe { (*self.0.get()).get_or_insert_with(T::default) }
        }
    }
}

/// Lists the module's operators and defines its exports (`_initialize`,
/// `weir_abi_version`, `weir_describe`, `weir_buffer`, `weir_call`). Use it
/// once, at the crate root:
///
/// ```ignore
/// weir::operators! {
///     map "upper" => upper;                       // fn(&Record, &Context) -> Result
///     filter "nonempty" => nonempty;              // fn(&Record) -> Result<bool>
///     flat_map "split" => split, side_outputs ["long"];
///     process "count" => Counter;                 // Counter: weir::Process + Default
///     co_process "join" => Join;
///     aggregate "sum" => Sum;
///     map_with "tag" => Tagger;                   // Tagger: weir::Stateless + Default
/// }
/// ```
///
/// The order is the operator's index in the descriptor.
#[macro_export]
macro_rules! operators {
    ($($kind:ident $name:literal => $target:path $(, side_outputs [$($side:literal),* $(,)?])?);+ $(;)?) => {
        #[doc(hidden)]
        static __WEIR_OPS: &[$crate::OpDesc] = &[
            $($crate::OpDesc { name: $name, kind: $crate::operators!(@kind $kind), side_outputs: &[$($($side),*)?] },)+
        ];

        extern "C" {
            fn __wasm_call_ctors();
        }

        #[no_mangle]
        pub extern "C" fn _initialize() {
            static mut DONE: bool = false;
            unsafe {
                if !DONE {
                    DONE = true;
                    __wasm_call_ctors();
                }
            }
            $crate::rt::init();
        }

        #[no_mangle]
        pub extern "C" fn weir_abi_version() -> i32 {
            $crate::rt::init();
            $crate::ABI_VERSION
        }

        #[no_mangle]
        pub extern "C" fn weir_describe() {
            $crate::rt::describe(__WEIR_OPS);
        }

        #[no_mangle]
        pub extern "C" fn weir_buffer(size: i32) -> i32 {
            $crate::rt::buffer(size)
        }

        #[no_mangle]
        pub extern "C" fn weir_call(op: i32, method: i32, len: i32) -> i32 {
            let mut __i: i32 = 0;
            $(
                if op == __i {
                    return $crate::operators!(@call $kind $target, &__WEIR_OPS[__i as usize], method, len);
                }
                __i += 1;
            )+
            let _ = __i;
            $crate::rt::no_operator()
        }
    };

    (@kind map) => { $crate::Kind::Map };
    (@kind map_with) => { $crate::Kind::Map };
    (@kind filter) => { $crate::Kind::Filter };
    (@kind flat_map) => { $crate::Kind::FlatMap };
    (@kind flat_map_with) => { $crate::Kind::FlatMap };
    (@kind process) => { $crate::Kind::Process };
    (@kind co_process) => { $crate::Kind::CoProcess };
    (@kind aggregate) => { $crate::Kind::Aggregate };

    (@call map $f:path, $op:expr, $m:expr, $l:expr) => { $crate::rt::call_map($op, $m, $l, $f) };
    (@call flat_map $f:path, $op:expr, $m:expr, $l:expr) => { $crate::rt::call_map($op, $m, $l, $f) };
    (@call filter $f:path, $op:expr, $m:expr, $l:expr) => { $crate::rt::call_filter($op, $m, $l, $f) };
    (@call map_with $t:path, $op:expr, $m:expr, $l:expr) => { $crate::operators!(@slot call_stateless $t, $op, $m, $l) };
    (@call flat_map_with $t:path, $op:expr, $m:expr, $l:expr) => { $crate::operators!(@slot call_stateless $t, $op, $m, $l) };
    (@call process $t:path, $op:expr, $m:expr, $l:expr) => { $crate::operators!(@slot call_process $t, $op, $m, $l) };
    (@call co_process $t:path, $op:expr, $m:expr, $l:expr) => { $crate::operators!(@slot call_co_process $t, $op, $m, $l) };
    (@call aggregate $t:path, $op:expr, $m:expr, $l:expr) => { $crate::operators!(@slot call_aggregate $t, $op, $m, $l) };
    (@slot $run:ident $t:path, $op:expr, $m:expr, $l:expr) => {{
        static SLOT: $crate::rt::Slot<$t> = $crate::rt::Slot(::std::cell::UnsafeCell::new(None));
        $crate::rt::$run($op, SLOT.get(), $m, $l)
    }};
}
