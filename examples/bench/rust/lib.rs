//! The operators `weir bench abi` measures, with the Rust SDK: "identity"
//! (a map that emits its input unchanged: the SDK hands the input bytes
//! back without copying) and "rewrite" (parses `id=NNNNNN;amt=N;note=...`
//! and emits key = the six id digits, value = amt*2 in decimal, headers and
//! timestamp kept).

use weir::{Context, Error, Record, Result};

fn identity(r: &Record, ctx: &Context) -> Result {
    ctx.emit(r)
}

fn unparsable() -> Error {
    Error::decode("unparsable value: want id=<6 digits>;amt=<digits>;note=<text>")
}

fn rewrite(r: &Record, ctx: &Context) -> Result {
    let s = r.value;
    if s.len() < 14 || &s[..3] != b"id=" || s[9] != b';' || &s[10..14] != b"amt=" || !s[3..9].iter().all(u8::is_ascii_digit) {
        return Err(unparsable());
    }
    let mut amt: i64 = 0;
    let mut i = 14;
    while i < s.len() && s[i].is_ascii_digit() {
        if i - 14 == 18 {
            return Err(Error::decode("unparsable value: amt has more than 18 digits"));
        }
        amt = amt * 10 + (s[i] - b'0') as i64;
        i += 1;
    }
    if i == 14 || !s[i..].starts_with(b";note=") {
        return Err(unparsable());
    }
    ctx.emit_with_headers(0, &s[3..9], r.timestamp, r.headers, |w| {
        w.int(amt * 2);
    })
}

weir::operators! {
    map "identity" => identity;
    map "rewrite" => rewrite;
}
