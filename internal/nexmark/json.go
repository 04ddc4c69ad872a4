package nexmark

import (
	"strconv"

	"github.com/weirstream/weir/internal/jsontext"
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
	return jsontext.AppendString(append(dst, name...), s)
}
