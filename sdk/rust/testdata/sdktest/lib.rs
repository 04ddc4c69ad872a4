//! Operators that exercise every kind and corner of the Rust SDK, for
//! rust_test.go (run through the real host by worker/modtest).

use weir::{Aggregate, CoProcess, Context, Error, ListState, MapState, Open, Process, Record, Result, Stateless, TimeDomain, Timer, ValueState};

/// map: upper-cases the value into a new value.
fn upper(r: &Record, ctx: &Context) -> Result {
    ctx.emit_value(r, r.value.len(), |v| {
        for (d, c) in v.iter_mut().zip(r.value) {
            *d = c.to_ascii_uppercase();
        }
    })
}

/// map: the record unchanged (passed through, no copy).
fn ident(r: &Record, ctx: &Context) -> Result {
    ctx.emit(r)
}

/// map: fails on the value "x"; emits two records on "two", none on "none"
/// (both break the map contract).
fn picky(r: &Record, ctx: &Context) -> Result {
    match r.value {
        b"x" => Err(Error::new("bad value x")),
        b"two" => {
            ctx.emit(r)?;
            ctx.emit(r)
        }
        b"none" => Ok(()),
        _ => ctx.emit(r),
    }
}

/// filter: keeps values that are even decimal numbers.
fn even(r: &Record) -> Result<bool> {
    Ok(weir::parse_i64(r.value)? % 2 == 0)
}

/// flat_map: one record per word, keyed by the word, value its length;
/// words longer than 5 bytes go to side output "long" instead; the value
/// "wm" emits a watermark at the record's time. Counts words and logs.
fn split(r: &Record, ctx: &Context) -> Result {
    if r.value == b"wm" {
        return ctx.emit_watermark(r.timestamp);
    }
    let mut n = 0;
    for w in r.value.split(|&c| c == b' ').filter(|w| !w.is_empty()) {
        n += 1;
        let mut d = [0u8; 20];
        let k = weir::fmt_i64(w.len() as i64, &mut d);
        let out = Record::new(w, &d[20 - k..], r.timestamp);
        if w.len() > 5 {
            ctx.emit_to("long", &out)?;
        } else {
            ctx.emit(&out)?;
        }
    }
    ctx.counter("words", n);
    if n == 0 {
        ctx.log(weir::Level::Warn, "no words");
    }
    Ok(())
}

/// flat_map_with: operator state. Emits each record with its value
/// followed by "#n", n the number of records this subtask has seen,
/// counted in operator list state; union list and broadcast state are
/// declared and written too.
#[derive(Default)]
struct Tagger {
    seen: ListState<i64>,
    union: ListState<Vec<u8>>,
    bcast: MapState<Vec<u8>, i64>,
    n: i64,
}

impl Stateless for Tagger {
    fn open(&mut self, o: &Open) -> Result {
        self.seen = o.operator_list_state("seen")?;
        self.union = o.union_list_state("union")?;
        self.bcast = o.broadcast_state("bcast")?;
        if !o.params().is_empty() {
            o.log(std::str::from_utf8(o.params()).unwrap_or("?"));
        }
        Ok(())
    }
    fn process(&mut self, r: &Record, ctx: &Context) -> Result {
        self.seen.add(ctx, &1)?;
        self.union.add(ctx, &r.value.to_vec())?;
        self.bcast.put(ctx, &r.key.to_vec(), &r.timestamp)?;
        let mut n = 0;
        self.seen.for_each(ctx, |_| {
            n += 1;
            Ok(true)
        })?;
        self.n = n;
        ctx.emit_with(0, r.key, r.timestamp, |w| {
            w.push(r.value).byte(b'#').int(n);
        })
    }
    fn finish(&mut self, ctx: &Context) -> Result {
        let mut keys = 0;
        self.bcast.for_each(ctx, |_, _| {
            keys += 1;
            Ok(true)
        })?;
        ctx.emit_with(0, b"finish", 0, |w| {
            w.push(b"records=").int(self.n).push(b" keys=").int(keys);
        })
    }
}

/// process: the running list of values per key (list state), emitted as
/// "a,b,c" after each record, and the running count (value state).
#[derive(Default)]
struct Collect {
    items: ListState<Vec<u8>>,
    count: ValueState<i64>,
}

impl Process for Collect {
    fn open(&mut self, o: &Open) -> Result {
        self.items = o.list_state("items")?;
        self.count = o.value_state("count")?;
        Ok(())
    }
    fn process(&mut self, r: &Record, ctx: &Context) -> Result {
        self.items.add(ctx, &r.value.to_vec())?;
        let n = self.count.get(ctx)?.unwrap_or(0) + 1;
        self.count.set(ctx, &n)?;
        let all = self.items.get(ctx)?;
        if all.len() as i64 != n {
            return Err(Error::new(format!("list has {} items, count is {}", all.len(), n)));
        }
        let joined = all.join(&b","[..]);
        ctx.emit(&r.with_value(&joined))
    }
}

/// process: per key and 100 ms window (map state: window start -> (sum,
/// n)), an event-time timer at the window's last ms emits "w=START sum=S
/// n=N"; a processing-time timer at ts+1000 emits "pt=T".
#[derive(Default)]
struct Windows {
    wins: MapState<i64, (i64, i64)>,
}

impl Process for Windows {
    fn open(&mut self, o: &Open) -> Result {
        self.wins = o.map_state("wins")?;
        Ok(())
    }
    fn process(&mut self, r: &Record, ctx: &Context) -> Result {
        let v = weir::parse_i64(r.value)?;
        let w = r.timestamp - r.timestamp.rem_euclid(100);
        let (s, n) = self.wins.get(ctx, &w)?.unwrap_or((0, 0));
        self.wins.put(ctx, &w, &(s + v, n + 1))?;
        ctx.register_event_timer(w + 99)?;
        ctx.register_processing_timer(r.timestamp + 1000)
    }
    fn on_timer(&mut self, t: Timer, ctx: &Context) -> Result {
        if t.domain == TimeDomain::ProcessingTime {
            return ctx.emit_with(0, ctx.key(), t.timestamp, |w| {
                w.push(b"pt=").int(t.timestamp);
            });
        }
        let w = t.timestamp - 99;
        let (s, n) = match self.wins.get(ctx, &w)? {
            Some(x) => x,
            None => return Err(Error::new(format!("no window {} at its timer", w))),
        };
        self.wins.delete(ctx, &w)?;
        if self.wins.contains(ctx, &w)? {
            return Err(Error::new("delete did not delete"));
        }
        ctx.emit_with(0, ctx.key(), t.timestamp, |wr| {
            wr.push(b"w=").int(w).push(b" sum=").int(s).push(b" n=").int(n);
        })
    }
}

/// co_process: input 0 names (key id), input 1 orders (key id); emits
/// "name:order" for every pair, whichever comes first (orders wait in list
/// state until their name comes).
#[derive(Default)]
struct Join {
    name: ValueState<Vec<u8>>,
    waiting: ListState<Vec<u8>>,
}

impl CoProcess for Join {
    fn open(&mut self, o: &Open) -> Result {
        self.name = o.value_state("name")?;
        self.waiting = o.list_state("waiting")?;
        Ok(())
    }
    fn process1(&mut self, r: &Record, ctx: &Context) -> Result {
        self.name.set_bytes(ctx, r.value)?;
        self.waiting.for_each_bytes(ctx, |order| {
            emit_pair(ctx, r.key, r.value, order, r.timestamp)?;
            Ok(true)
        })?;
        self.waiting.clear(ctx)
    }
    fn process2(&mut self, r: &Record, ctx: &Context) -> Result {
        let done = self.name.with_bytes(ctx, |name| emit_pair(ctx, r.key, name, r.value, r.timestamp))?;
        match done {
            Some(res) => res,
            None => self.waiting.add_bytes(ctx, r.value),
        }
    }
}

fn emit_pair(ctx: &Context, key: &[u8], name: &[u8], order: &[u8], ts: i64) -> Result {
    ctx.emit_with(0, key, ts, |w| {
        w.push(name).byte(b':').push(order);
    })
}

/// aggregate: the sum of the values (decimal) and their count; the result
/// is {"key":..,"sum":..,"n":..} as JSON.
#[derive(Default)]
struct Sum;

impl Aggregate for Sum {
    type Acc = (i64, i64);
    fn create(&mut self) -> (i64, i64) {
        (0, 0)
    }
    fn add(&mut self, acc: &mut (i64, i64), r: &Record) -> Result {
        acc.0 += weir::parse_i64(r.value)?;
        acc.1 += 1;
        Ok(())
    }
    fn merge(&mut self, acc: &mut (i64, i64), other: (i64, i64)) -> Result {
        acc.0 += other.0;
        acc.1 += other.1;
        Ok(())
    }
    fn result(&mut self, acc: (i64, i64), ctx: &Context) -> Result {
        ctx.emit_with(0, ctx.key(), ctx.timestamp(), |w| {
            w.byte(b'{').push(b"\"key\":").json_str(ctx.key()).json_int(b',', "sum", acc.0).json_int(b',', "n", acc.1).byte(b'}');
        })
    }
}

/// map: the value as a JSON string (escaping checked against Go's).
fn json(r: &Record, ctx: &Context) -> Result {
    ctx.emit_with(0, r.key, r.timestamp, |w| {
        w.json_str(r.value);
    })
}

/// map: the value, a decimal i64 parsed by std, formatted back by the SDK:
/// key with fmt_i64, value with Writer::int.
fn dec(r: &Record, ctx: &Context) -> Result {
    let v: i64 = std::str::from_utf8(r.value).ok().and_then(|s| s.parse().ok()).ok_or_else(|| Error::new("not an i64"))?;
    let mut d = [0u8; 20];
    let n = weir::fmt_i64(v, &mut d);
    ctx.emit_with(0, &d[20 - n..], r.timestamp, |w| {
        w.int(v);
    })
}

weir::operators! {
    map "upper" => upper;
    map "ident" => ident;
    map "picky" => picky;
    filter "even" => even;
    flat_map "split" => split, side_outputs ["long"];
    flat_map_with "tagger" => Tagger;
    process "collect" => Collect;
    process "windows" => Windows;
    co_process "join" => Join;
    aggregate "sum" => Sum;
    map "json" => json;
    map "dec" => dec;
}
