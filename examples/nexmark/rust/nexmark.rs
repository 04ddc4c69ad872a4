//! The binary encoding of Nexmark events (internal/nexmark/binary.go),
//! decoded in place: one kind byte, then the fields of the kind's struct in
//! order, int64s as 8 bytes little endian, strings as a uvarint length (in
//! its shortest form) and their bytes. Exactly the inputs Go's DecodeBinary
//! accepts are accepted.

use weir::{Error, Result};

#[derive(Default, Clone, Copy)]
pub struct Person<'a> {
    pub id: i64,
    pub name: &'a [u8],
    pub email: &'a [u8],
    pub credit_card: &'a [u8],
    pub city: &'a [u8],
    pub state: &'a [u8],
    pub date_time: i64,
    pub extra: &'a [u8],
}

#[derive(Default, Clone, Copy)]
pub struct Auction<'a> {
    pub id: i64,
    pub item_name: &'a [u8],
    pub description: &'a [u8],
    pub initial_bid: i64,
    pub reserve: i64,
    pub date_time: i64,
    pub expires: i64,
    pub seller: i64,
    pub category: i64,
    pub extra: &'a [u8],
}

#[derive(Default, Clone, Copy)]
pub struct Bid<'a> {
    pub auction: i64,
    pub bidder: i64,
    pub price: i64,
    pub channel: &'a [u8],
    pub url: &'a [u8],
    pub date_time: i64,
    pub extra: &'a [u8],
}

pub enum Event<'a> {
    None,
    Person(Person<'a>),
    Auction(Auction<'a>),
    Bid(Bid<'a>),
}

impl<'a> Event<'a> {
    pub fn kind(&self) -> &'static str {
        match self {
            Event::None => "none",
            Event::Person(_) => "person",
            Event::Auction(_) => "auction",
            Event::Bid(_) => "bid",
        }
    }
}

struct Dec<'a> {
    b: &'a [u8],
    off: usize,
    bad: Option<(&'static str, &'static str)>,
}

impl<'a> Dec<'a> {
    #[inline(always)]
    fn fail(&mut self, field: &'static str, why: &'static str) {
        if self.bad.is_none() {
            self.bad = Some((field, why));
        }
        self.off = self.b.len() + 1;
    }

    #[inline(always)]
    fn i64(&mut self, field: &'static str) -> i64 {
        if self.off + 8 > self.b.len() {
            self.fail(field, "truncated event");
            return 0;
        }
        let mut a = [0u8; 8];
        a.copy_from_slice(&self.b[self.off..self.off + 8]);
        self.off += 8;
        i64::from_le_bytes(a)
    }

    #[inline(always)]
    fn str(&mut self, field: &'static str) -> &'a [u8] {
        if self.off >= self.b.len() {
            self.fail(field, "truncated event");
            return &[];
        }
        let mut n = self.b[self.off] as u64;
        let mut k = 1;
        if n >= 0x80 {
            // A longer uvarint: at most 10 bytes, no overflow, shortest form.
            n = 0;
            let mut shift = 0;
            let mut i = self.off;
            loop {
                if i >= self.b.len() {
                    self.fail(field, "truncated event");
                    return &[];
                }
                let c = self.b[i];
                if k == 10 && c > 1 {
                    self.fail(field, "malformed string length");
                    return &[];
                }
                n |= ((c & 0x7f) as u64) << shift;
                if c < 0x80 {
                    if c == 0 {
                        self.fail(field, "malformed string length");
                        return &[];
                    }
                    break;
                }
                shift += 7;
                k += 1;
                i += 1;
            }
        }
        let start = self.off + k;
        if n > (self.b.len() - start) as u64 {
            self.fail(field, "truncated event");
            return &[];
        }
        self.off = start + n as usize;
        &self.b[start..self.off]
    }
}

/// Decodes one event, all of b.
#[inline(always)]
pub fn decode(b: &[u8]) -> Result<Event<'_>> {
    if b.is_empty() {
        return Err(Error::decode("nexmark: truncated event (empty)"));
    }
    let mut d = Dec { b, off: 1, bad: None };
    let e = match b[0] {
        0 => Event::None,
        1 => Event::Person(Person {
            id: d.i64("id"),
            name: d.str("name"),
            email: d.str("emailAddress"),
            credit_card: d.str("creditCard"),
            city: d.str("city"),
            state: d.str("state"),
            date_time: d.i64("dateTime"),
            extra: d.str("extra"),
        }),
        2 => Event::Auction(Auction {
            id: d.i64("id"),
            item_name: d.str("itemName"),
            description: d.str("description"),
            initial_bid: d.i64("initialBid"),
            reserve: d.i64("reserve"),
            date_time: d.i64("dateTime"),
            expires: d.i64("expires"),
            seller: d.i64("seller"),
            category: d.i64("category"),
            extra: d.str("extra"),
        }),
        3 => Event::Bid(Bid {
            auction: d.i64("auction"),
            bidder: d.i64("bidder"),
            price: d.i64("price"),
            channel: d.str("channel"),
            url: d.str("url"),
            date_time: d.i64("dateTime"),
            extra: d.str("extra"),
        }),
        k => return Err(Error::decode(format!("nexmark: unknown event kind {}", k))),
    };
    if let Some((field, why)) = d.bad {
        return Err(Error::decode(format!("nexmark: {} (field {})", why, field)));
    }
    if d.off != b.len() {
        return Err(Error::decode(format!("nexmark: trailing bytes after event (byte {})", d.off)));
    }
    Ok(e)
}
