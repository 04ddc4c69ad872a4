package nexmark

import (
	"strconv"
	"unicode/utf8"
)

// AppendJSON appends e as one JSON object in the style of the Beam and
// Flink Nexmark implementations and returns the extended slice:
//
//	{"event_type":0,"person":{...},"auction":null,"bid":null}
//
// event_type is 0 for a person, 1 for an auction and 2 for a bid; the
// object of the event uses the json tags of Person, Auction and Bid, so
// encoding/json decodes it into those structs. Times are numbers (ms since
// the Unix epoch). Strings that are not valid UTF-8 have each invalid byte
// replaced with U+FFFD, as encoding/json does. The zero Event is "null".
// No newline is appended. It allocates only to grow dst. It panics if
// e.Kind is not one of the Kind constants.
func AppendJSON(dst []byte, e *Event) []byte {
	switch e.Kind {
	case KindNone:
		return append(dst, "null"...)
	case KindPerson:
		p := &e.Person
		dst = append(dst, `{"event_type":0,"person":{"id":`...)
		dst = strconv.AppendInt(dst, p.ID, 10)
		dst = appendJSONField(dst, `,"name":`, p.Name)
		dst = appendJSONField(dst, `,"emailAddress":`, p.EmailAddress)
		dst = appendJSONField(dst, `,"creditCard":`, p.CreditCard)
		dst = appendJSONField(dst, `,"city":`, p.City)
		dst = appendJSONField(dst, `,"state":`, p.State)
		dst = append(dst, `,"dateTime":`...)
		dst = strconv.AppendInt(dst, p.DateTime, 10)
		dst = appendJSONField(dst, `,"extra":`, p.Extra)
		return append(dst, `},"auction":null,"bid":null}`...)
	case KindAuction:
		a := &e.Auction
		dst = append(dst, `{"event_type":1,"person":null,"auction":{"id":`...)
		dst = strconv.AppendInt(dst, a.ID, 10)
		dst = appendJSONField(dst, `,"itemName":`, a.ItemName)
		dst = appendJSONField(dst, `,"description":`, a.Description)
		dst = append(dst, `,"initialBid":`...)
		dst = strconv.AppendInt(dst, a.InitialBid, 10)
		dst = append(dst, `,"reserve":`...)
		dst = strconv.AppendInt(dst, a.Reserve, 10)
		dst = append(dst, `,"dateTime":`...)
		dst = strconv.AppendInt(dst, a.DateTime, 10)
		dst = append(dst, `,"expires":`...)
		dst = strconv.AppendInt(dst, a.Expires, 10)
		dst = append(dst, `,"seller":`...)
		dst = strconv.AppendInt(dst, a.Seller, 10)
		dst = append(dst, `,"category":`...)
		dst = strconv.AppendInt(dst, a.Category, 10)
		dst = appendJSONField(dst, `,"extra":`, a.Extra)
		return append(dst, `},"bid":null}`...)
	case KindBid:
		b := &e.Bid
		dst = append(dst, `{"event_type":2,"person":null,"auction":null,"bid":{"auction":`...)
		dst = strconv.AppendInt(dst, b.Auction, 10)
		dst = append(dst, `,"bidder":`...)
		dst = strconv.AppendInt(dst, b.Bidder, 10)
		dst = append(dst, `,"price":`...)
		dst = strconv.AppendInt(dst, b.Price, 10)
		dst = appendJSONField(dst, `,"channel":`, b.Channel)
		dst = appendJSONField(dst, `,"url":`, b.URL)
		dst = append(dst, `,"dateTime":`...)
		dst = strconv.AppendInt(dst, b.DateTime, 10)
		dst = appendJSONField(dst, `,"extra":`, b.Extra)
		return append(dst, `}}`...)
	}
	panic("nexmark: AppendJSON: invalid " + e.Kind.String())
}

func appendJSONField(dst []byte, name, s string) []byte {
	return appendJSONString(append(dst, name...), s)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. It escapes what JSON
// requires (quote, backslash, control characters) and, like encoding/json,
// U+2028 and U+2029, and replaces invalid UTF-8 bytes with U+FFFD.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0 // s[start:i] is pending, needing no escape
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
