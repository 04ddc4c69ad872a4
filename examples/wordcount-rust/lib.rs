//! Word count in Rust: the same two operators as examples/wordcount (Go),
//! written with the weir Rust SDK (sdk/rust, docs/sdk-rust.md).
//!
//! - "split" (flat_map): each record's value is a line of text; it emits one
//!   record per word, with the lowercased word as key and value and the
//!   line's timestamp. A word is a run of letters and digits (Unicode
//!   alphabetic or numeric characters); everything else separates words.
//! - "count" (process): keyed by word, a running count in keyed value state;
//!   for every record it emits the word as key and its count so far in
//!   decimal as value, with the record's timestamp.
//!
//!   weir module build examples/wordcount-rust
//!   weir run examples/wordcount-rust/job.yaml

use weir::{Context, Open, Process, Record, Result, ValueState};

fn split(r: &Record, ctx: &Context) -> Result {
    if r.value.is_ascii() {
        // The common case: words are ASCII runs, lowercased into a stack
        // buffer (long words go through a Vec), no allocation.
        let mut buf = [0u8; 64];
        for w in r.value.split(|c| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()) {
            if w.len() <= buf.len() {
                let lw = &mut buf[..w.len()];
                lw.copy_from_slice(w);
                lw.make_ascii_lowercase();
                ctx.emit(&Record::new(lw, lw, r.timestamp))?;
            } else {
                let lw = w.to_ascii_lowercase();
                ctx.emit(&Record::new(&lw, &lw, r.timestamp))?;
            }
        }
        return Ok(());
    }
    let line = String::from_utf8_lossy(r.value).to_lowercase();
    for w in line.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        ctx.emit(&Record::new(w.as_bytes(), w.as_bytes(), r.timestamp))?;
    }
    Ok(())
}

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
        let n = self.count.get(ctx)?.unwrap_or(0) + 1;
        self.count.set(ctx, &n)?;
        ctx.emit_with(0, r.key, r.timestamp, |w| {
            w.int(n);
        })
    }
}

weir::operators! {
    flat_map "split" => split;
    process "count" => Count;
}
