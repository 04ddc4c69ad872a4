package netstack

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

// The wire format of a remote channel: a stream of frames, each
//
//	version u8 | type u8 | fields
//
// with integers as unsigned varints. The producer writes hello, then
// data, event, backlog and close frames; the consumer writes credit and
// close frames. Every length is bounded before anything is allocated: a
// data frame's payload by the buffer size the channel negotiated, a
// channel id by maxChannelID, a close message by maxCloseMessage. A frame
// that breaks a bound is a protocol violation of that channel only.

const frameVersion = 1

type frameType uint8

const (
	frameHello   frameType = 1 // channel id, buffer size
	frameData    frameType = 2 // count, backlog, payload length, payload
	frameEvent   frameType = 3 // kind u8, flags u8, value (zigzag varint)
	frameCredit  frameType = 4 // n
	frameBacklog frameType = 5 // n
	frameClose   frameType = 6 // code u8, message length, message
)

func (t frameType) String() string {
	switch t {
	case frameHello:
		return "hello"
	case frameData:
		return "data"
	case frameEvent:
		return "event"
	case frameCredit:
		return "credit"
	case frameBacklog:
		return "backlog"
	case frameClose:
		return "close"
	}
	return fmt.Sprintf("frame type %d", uint8(t))
}

// Close codes.
const (
	closeDone    = 0 // the producer closed the channel after its last frame
	closeRefused = 1 // the consumer refused the channel (unknown id, size)
	closeFailed  = 2 // the sender of the frame saw a protocol violation
)

// Bounds of the format.
const (
	maxChannelID    = 255
	maxCloseMessage = 1024
	maxCount        = 1 << 31
	maxCredit       = 1 << 20
	// MaxBufferSize is the largest buffer size a channel may negotiate.
	MaxBufferSize = 16 << 20
	// frameOverhead bounds a data frame's header.
	frameOverhead = 2 + 3*binary.MaxVarintLen64
)

const eventPriority = 1 // event flags

// frame is one decoded frame. A data frame's payload is not part of it:
// the reader reads it into a buffer the receiver reserved.
type frame struct {
	typ        frameType
	id         ChannelID // hello
	size       int       // hello: buffer size
	count      int       // data
	n          int       // data: backlog; credit; backlog
	payloadLen int       // data
	event      Event
	code       uint8 // close
	msg        string
}

// readFrame decodes the next frame header from r. maxPayload bounds a data
// frame's payload, which stays unread in r.
func readFrame(r *bufio.Reader, maxPayload int, f *frame) error {
	v, err := r.ReadByte()
	if err != nil {
		return err // io.EOF between frames is a clean end
	}
	if v != frameVersion {
		return fmt.Errorf("%w: frame version %d, this side speaks %d", ErrProtocol, v, frameVersion)
	}
	t, err := r.ReadByte()
	if err != nil {
		return truncated(err)
	}
	*f = frame{typ: frameType(t)}
	switch f.typ {
	case frameHello:
		n, err := readUint(r, maxChannelID, "channel id length")
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("%w: empty channel id", ErrProtocol)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return truncated(err)
		}
		f.id = ChannelID(b)
		if f.size, err = readUint(r, MaxBufferSize, "buffer size"); err != nil {
			return err
		}
		if f.size == 0 {
			return fmt.Errorf("%w: buffer size 0", ErrProtocol)
		}
	case frameData:
		if f.count, err = readUint(r, maxCount, "entry count"); err != nil {
			return err
		}
		if f.n, err = readUint(r, maxCount, "backlog"); err != nil {
			return err
		}
		if f.payloadLen, err = readUint(r, maxPayload, "payload length"); err != nil {
			return err
		}
	case frameEvent:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return truncated(err)
		}
		if b[1]&^eventPriority != 0 {
			return fmt.Errorf("%w: event flags %#x", ErrProtocol, b[1])
		}
		f.event.Kind, f.event.Priority = b[0], b[1]&eventPriority != 0
		if f.event.Value, err = binary.ReadVarint(r); err != nil {
			return truncated(err)
		}
	case frameCredit:
		if f.n, err = readUint(r, maxCredit, "credit"); err != nil {
			return err
		}
		if f.n == 0 {
			return fmt.Errorf("%w: credit 0", ErrProtocol)
		}
	case frameBacklog:
		if f.n, err = readUint(r, maxCount, "backlog"); err != nil {
			return err
		}
	case frameClose:
		if f.code, err = r.ReadByte(); err != nil {
			return truncated(err)
		}
		if f.code > closeFailed {
			return fmt.Errorf("%w: close code %d", ErrProtocol, f.code)
		}
		n, err := readUint(r, maxCloseMessage, "close message length")
		if err != nil {
			return err
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return truncated(err)
		}
		f.msg = string(b)
	default:
		return fmt.Errorf("%w: unknown frame type %d", ErrProtocol, t)
	}
	return nil
}

func readUint(r *bufio.Reader, limit int, what string) (int, error) {
	v, err := binary.ReadUvarint(r)
	if err != nil {
		return 0, truncated(err)
	}
	if v > uint64(limit) {
		return 0, fmt.Errorf("%w: %s %d exceeds %d", ErrProtocol, what, v, limit)
	}
	return int(v), nil
}

func truncated(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: truncated frame", ErrProtocol)
	}
	if err == errVarintOverflow {
		return fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	return err
}

// errVarintOverflow is encoding/binary's (unexported) overflow error.
var errVarintOverflow = func() error {
	_, err := binary.ReadUvarint(bytes.NewReader(bytes.Repeat([]byte{0xff}, 11)))
	return err
}()

func appendHeader(b []byte, t frameType) []byte { return append(b, frameVersion, byte(t)) }

func appendHello(b []byte, id ChannelID, size int) []byte {
	b = appendHeader(b, frameHello)
	b = binary.AppendUvarint(b, uint64(len(id)))
	b = append(b, id...)
	return binary.AppendUvarint(b, uint64(size))
}

func appendData(b []byte, count, backlog int, payload []byte) []byte {
	b = appendHeader(b, frameData)
	b = binary.AppendUvarint(b, uint64(count))
	b = binary.AppendUvarint(b, uint64(backlog))
	b = binary.AppendUvarint(b, uint64(len(payload)))
	return append(b, payload...)
}

func appendEvent(b []byte, e Event) []byte {
	b = appendHeader(b, frameEvent)
	var flags byte
	if e.Priority {
		flags = eventPriority
	}
	b = append(b, e.Kind, flags)
	return binary.AppendVarint(b, e.Value)
}

func appendCount(b []byte, t frameType, n int) []byte {
	return binary.AppendUvarint(appendHeader(b, t), uint64(n))
}

func appendClose(b []byte, code uint8, msg string) []byte {
	if len(msg) > maxCloseMessage {
		msg = msg[:maxCloseMessage]
	}
	b = append(appendHeader(b, frameClose), code)
	b = binary.AppendUvarint(b, uint64(len(msg)))
	return append(b, msg...)
}
