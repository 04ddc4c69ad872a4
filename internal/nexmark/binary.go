package nexmark

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"unsafe"
)

// The binary encoding of an Event is one byte, the Kind, followed by the
// fields of the struct that Kind selects in declaration order: int64 fields
// as 8 bytes little-endian, strings as their length in bytes (an unsigned
// LEB128 varint, encoding/binary's Uvarint, in its shortest form) followed
// by their bytes. The zero Event (KindNone) is the single byte 0. Sizes:
//
//	person:  1 + 2*8 + 6 strings
//	auction: 1 + 7*8 + 3 strings
//	bid:     1 + 4*8 + 3 strings
//
// The encoding is canonical: DecodeBinary accepts exactly the outputs of
// AppendBinary.

// Errors wrapped by the *DecodeError that DecodeBinary returns.
var (
	ErrTruncated     = errors.New("nexmark: truncated event")
	ErrUnknownKind   = errors.New("nexmark: unknown event kind")
	ErrBadLength     = errors.New("nexmark: malformed string length")
	ErrTrailingBytes = errors.New("nexmark: trailing bytes after event")
)

// DecodeError says why and where DecodeBinary rejected its input.
type DecodeError struct {
	Kind   Kind   // the kind byte, KindNone for empty input
	Field  string // the field being decoded; "" for the kind byte and trailing bytes
	Offset int    // where in the input the problem starts
	Err    error  // ErrTruncated, ErrUnknownKind, ErrBadLength or ErrTrailingBytes
}

// Error describes the problem, the kind, the field and the byte offset.
func (e *DecodeError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%v (%v event, byte %d)", e.Err, e.Kind, e.Offset)
	}
	return fmt.Sprintf("%v (%v event, field %s, byte %d)", e.Err, e.Kind, e.Field, e.Offset)
}

// Unwrap returns e.Err, for errors.Is.
func (e *DecodeError) Unwrap() error { return e.Err }

// BinarySize returns the length of the binary encoding of e.
func BinarySize(e *Event) int {
	switch e.Kind {
	case KindPerson:
		p := &e.Person
		return int(1 + 2*8 + strSize(p.Name) + strSize(p.EmailAddress) + strSize(p.CreditCard) +
			strSize(p.City) + strSize(p.State) + strSize(p.Extra))
	case KindAuction:
		a := &e.Auction
		return int(1 + 7*8 + strSize(a.ItemName) + strSize(a.Description) + strSize(a.Extra))
	case KindBid:
		b := &e.Bid
		return int(1 + 4*8 + strSize(b.Channel) + strSize(b.URL) + strSize(b.Extra))
	}
	return 1
}

// AppendBinary appends the binary encoding of e to dst and returns the
// extended slice. It allocates only to grow dst. It panics if e.Kind is not
// one of the Kind constants.
func AppendBinary(dst []byte, e *Event) []byte {
	dst = slices.Grow(dst, BinarySize(e))
	dst = append(dst, byte(e.Kind))
	switch e.Kind {
	case KindNone:
	case KindPerson:
		p := &e.Person
		dst = binary.LittleEndian.AppendUint64(dst, uint64(p.ID))
		dst = appendString(dst, p.Name)
		dst = appendString(dst, p.EmailAddress)
		dst = appendString(dst, p.CreditCard)
		dst = appendString(dst, p.City)
		dst = appendString(dst, p.State)
		dst = binary.LittleEndian.AppendUint64(dst, uint64(p.DateTime))
		dst = appendString(dst, p.Extra)
	case KindAuction:
		a := &e.Auction
		dst = binary.LittleEndian.AppendUint64(dst, uint64(a.ID))
		dst = appendString(dst, a.ItemName)
		dst = appendString(dst, a.Description)
		dst = binary.LittleEndian.AppendUint64(dst, uint64(a.InitialBid))
		dst = binary.LittleEndian.AppendUint64(dst, uint64(a.Reserve))
		dst = binary.LittleEndian.AppendUint64(dst, uint64(a.DateTime))
		dst = binary.LittleEndian.AppendUint64(dst, uint64(a.Expires))
		dst = binary.LittleEndian.AppendUint64(dst, uint64(a.Seller))
		dst = binary.LittleEndian.AppendUint64(dst, uint64(a.Category))
		dst = appendString(dst, a.Extra)
	case KindBid:
		b := &e.Bid
		dst = binary.LittleEndian.AppendUint64(dst, uint64(b.Auction))
		dst = binary.LittleEndian.AppendUint64(dst, uint64(b.Bidder))
		dst = binary.LittleEndian.AppendUint64(dst, uint64(b.Price))
		dst = appendString(dst, b.Channel)
		dst = appendString(dst, b.URL)
		dst = binary.LittleEndian.AppendUint64(dst, uint64(b.DateTime))
		dst = appendString(dst, b.Extra)
	default:
		panic(fmt.Sprintf("nexmark: AppendBinary: invalid %v", e.Kind))
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	if len(s) < 0x80 {
		dst = append(dst, byte(len(s)))
	} else {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
	}
	return append(dst, s...)
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// DecodeBinary decodes one event, the whole of b, into e. It does not
// allocate (except to report an error): the strings of the decoded event
// point into b, so they are valid only as long as b is neither modified nor
// reused; copy them (strings.Clone) to keep them longer. The structs of e
// other than the one Kind selects are set to zero.
//
// Any input other than an output of AppendBinary is rejected with a
// *DecodeError, never a panic: it is safe on untrusted bytes. After an
// error the contents of e are unspecified.
func DecodeBinary(b []byte, e *Event) error {
	if len(b) == 0 {
		return &DecodeError{Err: ErrTruncated}
	}
	d := decoder{b: b, off: 1}
	switch k := Kind(b[0]); k {
	case KindNone:
		*e = Event{}
	case KindPerson:
		e.Kind = k
		e.Auction = Auction{}
		e.Bid = Bid{}
		p := &e.Person
		p.ID = d.int64("id")
		p.Name = d.string("name")
		p.EmailAddress = d.string("emailAddress")
		p.CreditCard = d.string("creditCard")
		p.City = d.string("city")
		p.State = d.string("state")
		p.DateTime = d.int64("dateTime")
		p.Extra = d.string("extra")
	case KindAuction:
		e.Kind = k
		e.Person = Person{}
		e.Bid = Bid{}
		a := &e.Auction
		a.ID = d.int64("id")
		a.ItemName = d.string("itemName")
		a.Description = d.string("description")
		a.InitialBid = d.int64("initialBid")
		a.Reserve = d.int64("reserve")
		a.DateTime = d.int64("dateTime")
		a.Expires = d.int64("expires")
		a.Seller = d.int64("seller")
		a.Category = d.int64("category")
		a.Extra = d.string("extra")
	case KindBid:
		e.Kind = k
		e.Person = Person{}
		e.Auction = Auction{}
		bd := &e.Bid
		bd.Auction = d.int64("auction")
		bd.Bidder = d.int64("bidder")
		bd.Price = d.int64("price")
		bd.Channel = d.string("channel")
		bd.URL = d.string("url")
		bd.DateTime = d.int64("dateTime")
		bd.Extra = d.string("extra")
	default:
		return &DecodeError{Kind: k, Err: ErrUnknownKind}
	}
	if d.err != nil {
		return &DecodeError{Kind: Kind(b[0]), Field: d.field, Offset: d.errOff, Err: d.err}
	}
	if d.off != len(b) {
		return &DecodeError{Kind: Kind(b[0]), Offset: d.off, Err: ErrTrailingBytes}
	}
	return nil
}

// decoder reads fields from b at off. After the first failure it records
// where and why and reads nothing more: its methods return zero values.
type decoder struct {
	b      []byte
	off    int
	err    error
	field  string
	errOff int
}

func (d *decoder) fail(field string, err error) {
	if d.err == nil {
		d.err, d.field, d.errOff = err, field, d.off
	}
	d.off = len(d.b) + 1 // every later read fails (and does not overwrite)
}

func (d *decoder) int64(field string) int64 {
	if d.off > len(d.b)-8 {
		d.fail(field, ErrTruncated)
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b[d.off:])
	d.off += 8
	return int64(v)
}

func (d *decoder) string(field string) string {
	if d.off >= len(d.b) {
		d.fail(field, ErrTruncated)
		return ""
	}
	n, k := uint64(d.b[d.off]), 1
	if n >= 0x80 {
		n, k = binary.Uvarint(d.b[d.off:])
		switch {
		case k == 0:
			d.fail(field, ErrTruncated)
			return ""
		case k < 0, d.b[d.off+k-1] == 0: // overflow, or not the shortest form
			d.fail(field, ErrBadLength)
			return ""
		}
	}
	start := d.off + k
	if n > uint64(len(d.b)-start) {
		d.fail(field, ErrTruncated)
		return ""
	}
	d.off = start + int(n)
	if n == 0 {
		return ""
	}
	return unsafe.String(&d.b[start], int(n))
}

// BidFields returns the integer fields of the binary encoding of a bid
// without decoding its strings. ok is false, and the other results zero,
// if b is not a bid that DecodeBinary would accept. It does not allocate.
func BidFields(b []byte) (auction, bidder, price, dateTime int64, ok bool) {
	if len(b) == 0 || Kind(b[0]) != KindBid {
		return 0, 0, 0, 0, false
	}
	d := decoder{b: b, off: 1}
	auction = d.int64("auction")
	bidder = d.int64("bidder")
	price = d.int64("price")
	d.string("channel")
	d.string("url")
	dateTime = d.int64("dateTime")
	d.string("extra")
	if d.err != nil || d.off != len(b) {
		return 0, 0, 0, 0, false
	}
	return auction, bidder, price, dateTime, true
}
