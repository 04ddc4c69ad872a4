//! The Nexmark queries q0, q1, q2, q3, q4, q5, q7 and q8 with the weir Rust
//! SDK: the same operators, names, record formats and results as the Go
//! operators of examples/nexmark/queries (see its doc.go for the table), so
//! the job specs examples/nexmark/q*.yaml run either module:
//!
//!   modules:
//!     nexmark: ./rust      # instead of .
//!
//! Every operator decodes events in place (nexmark.rs) and writes results
//! straight into the output; the record path allocates nothing.

mod nexmark;

use nexmark::{decode, Event};
use weir::{Aggregate, CoProcess, Codec, Context, Error, ListState, MapState, Open, Process, Record, Result, Timer, ValueState, Writer};

/// The exchange rate of q1 in thousandths (integer division).
const DOLLARS_TO_EUROS: i64 = 908;
/// q2 keeps the auctions whose id is a multiple of this.
const Q2_MODULUS: i64 = 123;
/// The auction category q3 looks for.
const Q3_CATEGORY: i64 = 10;
/// The tumbling windows of q7 and q8: 10 s.
const WINDOW: i64 = 10_000;

#[inline(always)]
fn event<'a>(op: &str, r: &Record<'a>) -> Result<Event<'a>> {
    decode(r.value).map_err(|e| decode_error(op, e))
}

#[inline(never)]
fn decode_error(op: &str, e: Error) -> Error {
    e.context(&format!("{}: decoding a nexmark event", op))
}

/// The decimal text of id, the form of every key.
struct Key {
    d: [u8; 20],
    n: usize,
}

impl Key {
    #[inline(always)]
    fn of(id: i64) -> Key {
        let mut d = [0u8; 20];
        let n = weir::fmt_i64(id, &mut d);
        Key { d, n }
    }
    #[inline(always)]
    fn bytes(&self) -> &[u8] {
        &self.d[20 - self.n..]
    }
}

fn parse_key(op: &str, b: &[u8]) -> Result<i64> {
    weir::parse_i64(b).map_err(|e| e.context(op))
}

fn window_start(ts: i64) -> i64 {
    ts - ts.rem_euclid(WINDOW)
}

/// Two i64s as 16 bytes little endian: the values between stages of q4 and q5.
#[derive(Clone, Copy, Default)]
struct Pair(i64, i64);

impl Pair {
    fn bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.0.to_le_bytes());
        b[8..].copy_from_slice(&self.1.to_le_bytes());
        b
    }
    fn from(b: &[u8]) -> Result<Pair> {
        if b.len() != 16 {
            return Err(Error::decode(format!("value of {} bytes, want a 16-byte pair", b.len())));
        }
        let mut x = [0u8; 8];
        let mut y = [0u8; 8];
        x.copy_from_slice(&b[..8]);
        y.copy_from_slice(&b[8..]);
        Ok(Pair(i64::from_le_bytes(x), i64::from_le_bytes(y)))
    }
}

impl Codec for Pair {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.bytes())
    }
    fn decode(b: &[u8]) -> Result<Pair> {
        Pair::from(b)
    }
}

// ------------------------------------------------------------ q0, q1, q2

fn q0(r: &Record, ctx: &Context) -> Result {
    if let Event::Bid(b) = event("q0", r)? {
        ctx.emit_with(0, &[], r.timestamp, |w| {
            w.json_int(b'{', "auction", b.auction)
                .json_int(b',', "bidder", b.bidder)
                .json_int(b',', "price", b.price)
                .json_field_str(b',', "channel", b.channel)
                .json_field_str(b',', "url", b.url)
                .json_int(b',', "dateTime", b.date_time)
                .json_field_str(b',', "extra", b.extra)
                .byte(b'}');
        })?;
    }
    Ok(())
}

fn q1(r: &Record, ctx: &Context) -> Result {
    if let Event::Bid(b) = event("q1", r)? {
        ctx.emit_with(0, &[], r.timestamp, |w| {
            w.json_int(b'{', "auction", b.auction)
                .json_int(b',', "bidder", b.bidder)
                .json_int(b',', "price", b.price * DOLLARS_TO_EUROS / 1000)
                .json_int(b',', "dateTime", b.date_time)
                .byte(b'}');
        })?;
    }
    Ok(())
}

fn q2(r: &Record, ctx: &Context) -> Result {
    if let Event::Bid(b) = event("q2", r)? {
        if b.auction % Q2_MODULUS == 0 {
            ctx.emit_with(0, &[], r.timestamp, |w| {
                w.json_int(b'{', "auction", b.auction).json_int(b',', "price", b.price).byte(b'}');
            })?;
        }
    }
    Ok(())
}

// -------------------------------------------------------------------- q3

fn q3_split(r: &Record, ctx: &Context) -> Result {
    match event("q3_split", r)? {
        Event::Person(p) if matches!(p.state, b"OR" | b"ID" | b"CA") => ctx.emit(&r.with_key(Key::of(p.id).bytes())),
        Event::Auction(a) if a.category == Q3_CATEGORY => ctx.emit_to_port(1, &r.with_key(Key::of(a.seller).bytes())),
        _ => Ok(()),
    }
}

/// The incremental join of q3 (see queries/q3.go): the person (time, then
/// name, city and state, each u32-length-prefixed) in value state,
/// auctions that came first as (id, time) pairs in list state.
#[derive(Default)]
struct Q3Join {
    person: ValueState<Vec<u8>>,
    pending: ListState<Pair>,
}

fn q3_fields(b: &[u8]) -> Result<(i64, [&[u8]; 3])> {
    let bad = || Error::decode("q3 person: truncated");
    if b.len() < 8 {
        return Err(bad());
    }
    let mut t = [0u8; 8];
    t.copy_from_slice(&b[..8]);
    let mut rest = &b[8..];
    let mut f: [&[u8]; 3] = [&[]; 3];
    for s in f.iter_mut() {
        if rest.len() < 4 {
            return Err(bad());
        }
        let n = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if n > rest.len() - 4 {
            return Err(bad());
        }
        *s = &rest[4..4 + n];
        rest = &rest[4 + n..];
    }
    Ok((i64::from_le_bytes(t), f))
}

fn q3_emit(ctx: &Context, f: &[&[u8]; 3], person_time: i64, auction: i64, auction_time: i64) -> Result {
    ctx.emit_with(0, Key::of(auction).bytes(), person_time.max(auction_time), |w| {
        w.json_field_str(b'{', "name", f[0])
            .json_field_str(b',', "city", f[1])
            .json_field_str(b',', "state", f[2])
            .json_int(b',', "auction", auction)
            .byte(b'}');
    })
}

impl CoProcess for Q3Join {
    fn open(&mut self, o: &Open) -> Result {
        self.person = o.value_state("person")?;
        self.pending = o.list_state("pending")?;
        Ok(())
    }

    fn process1(&mut self, r: &Record, ctx: &Context) -> Result {
        let p = match event("q3_join", r)? {
            Event::Person(p) => p,
            e => return Err(Error::new(format!("q3_join: input 0 wants persons, got a {}", e.kind()))),
        };
        let mut buf = [0u8; 512];
        let mut n = 8;
        buf[..8].copy_from_slice(&r.timestamp.to_le_bytes());
        let fields = [p.name, p.city, p.state];
        let mut big = Vec::new();
        let v: &[u8] = if 8 + 12 + p.name.len() + p.city.len() + p.state.len() <= buf.len() {
            for s in fields.iter() {
                buf[n..n + 4].copy_from_slice(&(s.len() as u32).to_le_bytes());
                buf[n + 4..n + 4 + s.len()].copy_from_slice(s);
                n += 4 + s.len();
            }
            &buf[..n]
        } else {
            big.extend_from_slice(&r.timestamp.to_le_bytes());
            for s in fields.iter() {
                big.extend_from_slice(&(s.len() as u32).to_le_bytes());
                big.extend_from_slice(s);
            }
            &big
        };
        self.person.set_bytes(ctx, v)?;
        let mut any = false;
        self.pending.for_each(ctx, |a| {
            any = true;
            q3_emit(ctx, &fields, r.timestamp, a.0, a.1)?;
            Ok(true)
        })?;
        if any {
            self.pending.clear(ctx)?;
        }
        Ok(())
    }

    fn process2(&mut self, r: &Record, ctx: &Context) -> Result {
        let a = match event("q3_join", r)? {
            Event::Auction(a) => a,
            e => return Err(Error::new(format!("q3_join: input 1 wants auctions, got a {}", e.kind()))),
        };
        let joined = self.person.with_bytes(ctx, |b| -> Result {
            let (t, f) = q3_fields(b)?;
            q3_emit(ctx, &f, t, a.id, r.timestamp)
        })?;
        match joined {
            Some(res) => res,
            None => {
                self.pending.add(ctx, &Pair(a.id, r.timestamp))?;
                ctx.register_event_timer(r.timestamp)
            }
        }
    }

    fn on_timer(&mut self, _t: Timer, ctx: &Context) -> Result {
        if self.person.with_bytes(ctx, |_| ())?.is_none() {
            self.pending.clear(ctx)?;
        }
        Ok(())
    }
}

// -------------------------------------------------------------------- q4

fn q4_split(r: &Record, ctx: &Context) -> Result {
    match event("q4_split", r)? {
        Event::Auction(a) => ctx.emit(&r.with_key(Key::of(a.id).bytes())),
        Event::Bid(b) => ctx.emit_to_port(1, &r.with_key(Key::of(b.auction).bytes())),
        _ => Ok(()),
    }
}

/// What q4 keeps of an auction: start, expires, category.
#[derive(Clone, Copy)]
struct Q4Auction(i64, i64, i64);

impl Q4Auction {
    fn valid(&self, bid_time: i64) -> bool {
        bid_time >= self.0 && bid_time <= self.1
    }
}

impl Codec for Q4Auction {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_le_bytes());
        out.extend_from_slice(&self.1.to_le_bytes());
        out.extend_from_slice(&self.2.to_le_bytes());
    }
    fn decode(b: &[u8]) -> Result<Self> {
        if b.len() != 24 {
            return Err(Error::decode("q4 auction: want 24 bytes"));
        }
        let i = |k: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[8 * k..8 * k + 8]);
            i64::from_le_bytes(a)
        };
        Ok(Q4Auction(i(0), i(1), i(2)))
    }
}

/// The winning price of each auction (see queries/q4.go).
#[derive(Default)]
struct Q4Max {
    auction: ValueState<Q4Auction>,
    best: ValueState<i64>,
    early: ListState<Pair>, // (price, time) of bids before their auction
}

impl CoProcess for Q4Max {
    fn open(&mut self, o: &Open) -> Result {
        self.auction = o.value_state("auction")?;
        self.best = o.value_state("best")?;
        self.early = o.list_state("early")?;
        Ok(())
    }

    fn process1(&mut self, r: &Record, ctx: &Context) -> Result {
        let a = match event("q4_max", r)? {
            Event::Auction(a) => Q4Auction(a.date_time, a.expires, a.category),
            e => return Err(Error::new(format!("q4_max: input 0 wants auctions, got a {}", e.kind()))),
        };
        self.auction.set(ctx, &a)?;
        ctx.register_event_timer(a.1)?;
        let (mut best, mut found, mut early) = (0i64, false, false);
        self.early.for_each(ctx, |b| {
            early = true;
            if a.valid(b.1) && (!found || b.0 > best) {
                best = b.0;
                found = true;
            }
            Ok(true)
        })?;
        if early {
            self.early.clear(ctx)?;
        }
        if found {
            self.best.set(ctx, &best)?;
        }
        Ok(())
    }

    fn process2(&mut self, r: &Record, ctx: &Context) -> Result {
        let b = match event("q4_max", r)? {
            Event::Bid(b) => b,
            e => return Err(Error::new(format!("q4_max: input 1 wants bids, got a {}", e.kind()))),
        };
        let a = match self.auction.get(ctx)? {
            Some(a) => a,
            None => {
                self.early.add(ctx, &Pair(b.price, b.date_time))?;
                return ctx.register_event_timer(r.timestamp);
            }
        };
        if !a.valid(b.date_time) {
            return Ok(());
        }
        match self.best.get(ctx)? {
            Some(best) if best >= b.price => Ok(()),
            _ => self.best.set(ctx, &b.price),
        }
    }

    fn on_timer(&mut self, t: Timer, ctx: &Context) -> Result {
        let a = match self.auction.get(ctx)? {
            Some(a) => a,
            None => return self.early.clear(ctx),
        };
        if t.timestamp != a.1 {
            return Ok(());
        }
        if let Some(best) = self.best.get(ctx)? {
            let id = parse_key("q4_max", ctx.key())?;
            ctx.emit(&Record::new(Key::of(a.2).bytes(), &Pair(id, best).bytes(), a.1))?;
        }
        self.auction.clear(ctx)?;
        self.best.clear(ctx)
    }
}

/// The running average price per category (see queries/q4.go): closed
/// auctions wait in map state under their expires until a timer then
/// applies them in auction id order.
#[derive(Default)]
struct Q4Average {
    totals: ValueState<Pair>,       // (auctions, sum)
    pending: MapState<i64, Vec<u8>>, // expires -> (auction, price) pairs
    scratch: Vec<u8>,
    closed: Vec<Pair>,
}

impl Process for Q4Average {
    fn open(&mut self, o: &Open) -> Result {
        self.totals = o.value_state("totals")?;
        self.pending = o.map_state("pending")?;
        Ok(())
    }

    fn process(&mut self, r: &Record, ctx: &Context) -> Result {
        let p = Pair::from(r.value).map_err(|e| e.context("q4_average"))?;
        let s = &mut self.scratch;
        s.clear();
        self.pending.with_bytes(ctx, &r.timestamp, |b| s.extend_from_slice(b))?;
        s.extend_from_slice(&p.bytes());
        self.pending.put_bytes(ctx, &r.timestamp, s)?;
        ctx.register_event_timer(r.timestamp)
    }

    fn on_timer(&mut self, t: Timer, ctx: &Context) -> Result {
        let closed = &mut self.closed;
        closed.clear();
        let found = self.pending.with_bytes(ctx, &t.timestamp, |b| -> Result {
            if b.len() % 16 != 0 {
                return Err(Error::decode(format!("q4 pending closings: {} bytes, not a multiple of 16", b.len())));
            }
            for c in b.chunks(16) {
                closed.push(Pair::from(c)?);
            }
            Ok(())
        })?;
        match found {
            None => return Ok(()),
            Some(r) => r?,
        }
        self.pending.delete(ctx, &t.timestamp)?;
        closed.sort_by_key(|p| p.0);
        let mut totals = self.totals.get(ctx)?.unwrap_or_default();
        let category = parse_key("q4_average", ctx.key())?;
        for c in closed.iter() {
            totals.0 += 1;
            totals.1 += c.1;
            ctx.emit_with(0, ctx.key(), t.timestamp, |w| {
                w.json_int(b'{', "category", category)
                    .json_int(b',', "auctions", totals.0)
                    .json_int(b',', "sum", totals.1)
                    .json_int(b',', "avg", totals.1 / totals.0)
                    .byte(b'}');
            })?;
        }
        self.totals.set(ctx, &totals)
    }
}

// -------------------------------------------------------------------- q5

fn q5_bids(r: &Record, ctx: &Context) -> Result {
    if let Event::Bid(b) = event("q5_bids", r)? {
        ctx.emit(&Record::new(Key::of(b.auction).bytes(), &[], r.timestamp))?;
    }
    Ok(())
}

/// Counts the bids of an auction in a window; the result is keyed by the
/// window's (exclusive) end with value (auction, count).
#[derive(Default)]
struct Q5Count;

impl Aggregate for Q5Count {
    type Acc = i64;
    fn create(&mut self) -> i64 {
        0
    }
    fn add(&mut self, n: &mut i64, _r: &Record) -> Result {
        *n += 1;
        Ok(())
    }
    fn merge(&mut self, n: &mut i64, m: i64) -> Result {
        *n += m;
        Ok(())
    }
    fn result(&mut self, n: i64, ctx: &Context) -> Result {
        let auction = parse_key("q5_count", ctx.key())?;
        let end = ctx.timestamp();
        ctx.emit(&Record::new(Key::of(end + 1).bytes(), &Pair(auction, n).bytes(), end))
    }
}

/// Per window (the key), the auctions with the most bids (ties all).
#[derive(Default)]
struct Q5Hot {
    max: ValueState<i64>,
    auctions: ListState<i64>,
}

impl Process for Q5Hot {
    fn open(&mut self, o: &Open) -> Result {
        self.max = o.value_state("max")?;
        self.auctions = o.list_state("auctions")?;
        Ok(())
    }

    fn process(&mut self, r: &Record, ctx: &Context) -> Result {
        let p = Pair::from(r.value).map_err(|e| e.context("q5_hot"))?;
        match self.max.get(ctx)? {
            Some(max) if p.1 < max => {}
            Some(max) if p.1 == max => self.auctions.add(ctx, &p.0)?,
            _ => {
                self.max.set(ctx, &p.1)?;
                self.auctions.clear(ctx)?;
                self.auctions.add(ctx, &p.0)?;
            }
        }
        ctx.register_event_timer(r.timestamp)
    }

    fn on_timer(&mut self, t: Timer, ctx: &Context) -> Result {
        let max = match self.max.get(ctx)? {
            Some(m) => m,
            None => return Ok(()),
        };
        let end = parse_key("q5_hot", ctx.key())?;
        self.auctions.for_each(ctx, |a| {
            ctx.emit_with(0, Key::of(a).bytes(), t.timestamp, |w| {
                w.json_int(b'{', "auction", a).json_int(b',', "count", max).json_int(b',', "window_end", end).byte(b'}');
            })?;
            Ok(true)
        })?;
        self.max.clear(ctx)?;
        self.auctions.clear(ctx)
    }
}

// -------------------------------------------------------------------- q7

fn q7_bids(r: &Record, ctx: &Context) -> Result {
    if let Event::Bid(b) = event("q7_bids", r)? {
        ctx.emit(&r.with_key(Key::of(window_start(b.date_time)).bytes()))?;
    }
    Ok(())
}

/// The highest bid of a window so far (see queries/q7.go for ties).
#[derive(Clone, Copy, Default)]
struct Q7Best {
    set: bool,
    price: i64,
    auction: i64,
    bidder: i64,
    date_time: i64,
}

impl Q7Best {
    fn better(&self, b: &Q7Best) -> bool {
        if !self.set {
            return b.set;
        }
        if !b.set {
            return false;
        }
        if b.price != self.price {
            return b.price > self.price;
        }
        if b.date_time != self.date_time {
            return b.date_time < self.date_time;
        }
        if b.auction != self.auction {
            return b.auction < self.auction;
        }
        b.bidder < self.bidder
    }
}

impl Codec for Q7Best {
    fn encode(&self, out: &mut Vec<u8>) {
        if !self.set {
            out.push(0);
            return;
        }
        out.push(1);
        for v in [self.price, self.auction, self.bidder, self.date_time] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    fn decode(b: &[u8]) -> Result<Self> {
        match b.len() {
            1 if b[0] == 0 => Ok(Q7Best::default()),
            33 if b[0] == 1 => {
                let i = |k: usize| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(&b[1 + 8 * k..9 + 8 * k]);
                    i64::from_le_bytes(a)
                };
                Ok(Q7Best { set: true, price: i(0), auction: i(1), bidder: i(2), date_time: i(3) })
            }
            n => Err(Error::decode(format!("q7 accumulator of {} bytes, want 1 or 33", n))),
        }
    }
}

#[derive(Default)]
struct Q7Max;

impl Aggregate for Q7Max {
    type Acc = Q7Best;
    fn create(&mut self) -> Q7Best {
        Q7Best::default()
    }
    fn add(&mut self, acc: &mut Q7Best, r: &Record) -> Result {
        let b = match event("q7_max", r)? {
            Event::Bid(b) => Q7Best { set: true, price: b.price, auction: b.auction, bidder: b.bidder, date_time: b.date_time },
            e => return Err(Error::new(format!("q7_max: wants bids, got a {}", e.kind()))),
        };
        if acc.better(&b) {
            *acc = b;
        }
        Ok(())
    }
    fn merge(&mut self, acc: &mut Q7Best, b: Q7Best) -> Result {
        if acc.better(&b) {
            *acc = b;
        }
        Ok(())
    }
    fn result(&mut self, acc: Q7Best, ctx: &Context) -> Result {
        ctx.emit_with(0, ctx.key(), ctx.timestamp(), |w: &mut Writer| {
            if !acc.set {
                w.push(b"{}");
                return;
            }
            w.json_int(b'{', "auction", acc.auction)
                .json_int(b',', "price", acc.price)
                .json_int(b',', "bidder", acc.bidder)
                .json_int(b',', "dateTime", acc.date_time)
                .byte(b'}');
        })
    }
}

// -------------------------------------------------------------------- q8

fn q8_split(r: &Record, ctx: &Context) -> Result {
    match event("q8_split", r)? {
        Event::Person(p) => ctx.emit(&r.with_key(Key::of(p.id).bytes())),
        Event::Auction(a) => ctx.emit_to_port(1, &r.with_key(Key::of(a.seller).bytes())),
        _ => Ok(()),
    }
}

/// Persons who opened an auction in the window they registered in (see
/// queries/q8.go): the person as (window, name) in value state, the
/// windows the key opened auctions in as map state.
#[derive(Default)]
struct Q8Join {
    person: ValueState<Vec<u8>>,
    auctions: MapState<i64, i64>,
}

impl CoProcess for Q8Join {
    fn open(&mut self, o: &Open) -> Result {
        self.person = o.value_state("person")?;
        self.auctions = o.map_state("auctions")?;
        Ok(())
    }

    fn process1(&mut self, r: &Record, ctx: &Context) -> Result {
        let p = match event("q8_join", r)? {
            Event::Person(p) => p,
            e => return Err(Error::new(format!("q8_join: input 0 wants persons, got a {}", e.kind()))),
        };
        let w = window_start(p.date_time);
        let mut buf = [0u8; 256];
        if p.name.len() <= 248 {
            buf[..8].copy_from_slice(&w.to_le_bytes());
            buf[8..8 + p.name.len()].copy_from_slice(p.name);
            self.person.set_bytes(ctx, &buf[..8 + p.name.len()])?;
        } else {
            let mut v = w.to_le_bytes().to_vec();
            v.extend_from_slice(p.name);
            self.person.set_bytes(ctx, &v)?;
        }
        ctx.register_event_timer(w + WINDOW - 1)
    }

    fn process2(&mut self, r: &Record, ctx: &Context) -> Result {
        let a = match event("q8_join", r)? {
            Event::Auction(a) => a,
            e => return Err(Error::new(format!("q8_join: input 1 wants auctions, got a {}", e.kind()))),
        };
        let w = window_start(a.date_time);
        self.auctions.put(ctx, &w, &1)?;
        ctx.register_event_timer(w + WINDOW - 1)
    }

    fn on_timer(&mut self, t: Timer, ctx: &Context) -> Result {
        let w = t.timestamp + 1 - WINDOW;
        let opened = self.auctions.contains(ctx, &w)?;
        if opened {
            self.auctions.delete(ctx, &w)?;
        }
        let mut clear = false;
        let r = self.person.with_bytes(ctx, |b| -> Result {
            if b.len() < 8 {
                return Err(Error::decode("q8 person: truncated"));
            }
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[..8]);
            if i64::from_le_bytes(x) != w {
                return Ok(());
            }
            clear = true;
            if !opened {
                return Ok(());
            }
            let id = parse_key("q8_join", ctx.key())?;
            let name = &b[8..];
            ctx.emit_with(0, ctx.key(), t.timestamp, |wr| {
                wr.json_int(b'{', "id", id).json_field_str(b',', "name", name).json_int(b',', "window_start", w).byte(b'}');
            })
        })?;
        if let Some(r) = r {
            r?;
        }
        if clear {
            self.person.clear(ctx)?;
        }
        Ok(())
    }
}

weir::operators! {
    flat_map "q0" => q0;
    flat_map "q1" => q1;
    flat_map "q2" => q2;
    flat_map "q3_split" => q3_split, side_outputs ["auctions"];
    co_process "q3_join" => Q3Join;
    flat_map "q4_split" => q4_split, side_outputs ["bids"];
    co_process "q4_max" => Q4Max;
    process "q4_average" => Q4Average;
    flat_map "q5_bids" => q5_bids;
    aggregate "q5_count" => Q5Count;
    process "q5_hot" => Q5Hot;
    flat_map "q7_bids" => q7_bids;
    aggregate "q7_max" => Q7Max;
    flat_map "q8_split" => q8_split, side_outputs ["auctions"];
    co_process "q8_join" => Q8Join;
}
