package netstack

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
)

// encode writes f back in the wire format (the payload of a data frame
// is given separately).
func encode(f frame, payload []byte) []byte {
	switch f.typ {
	case frameHello:
		return appendHello(nil, f.id, f.size)
	case frameData:
		return appendData(nil, f.count, f.n, payload)
	case frameEvent:
		return appendEvent(nil, f.event)
	case frameCredit, frameBacklog:
		return appendCount(nil, f.typ, f.n)
	case frameClose:
		return appendClose(nil, f.code, f.msg)
	}
	panic("unknown frame type")
}

func decodeAll(data []byte, maxPayload int) (frames []frame, payloads [][]byte, err error) {
	r := bufio.NewReader(bytes.NewReader(data))
	for {
		var f frame
		if err := readFrame(r, maxPayload, &f); err != nil {
			if err == io.EOF {
				return frames, payloads, nil
			}
			return frames, payloads, err
		}
		var p []byte
		if f.typ == frameData {
			p = make([]byte, f.payloadLen)
			if _, err := io.ReadFull(r, p); err != nil {
				return frames, payloads, truncated(err)
			}
		}
		frames = append(frames, f)
		payloads = append(payloads, p)
	}
}

func TestFrameRoundTrip(t *testing.T) {
	var data []byte
	data = appendHello(data, "job/1/edge/0/3", 32<<10)
	data = appendData(data, 7, 3, []byte("seven entries"))
	data = appendData(data, 0, 0, nil)
	data = appendEvent(data, Event{Kind: 4, Priority: true, Value: -12345678901})
	data = appendEvent(data, Event{Kind: 255, Value: 1 << 62})
	data = appendCount(data, frameCredit, 9)
	data = appendCount(data, frameBacklog, 0)
	data = appendClose(data, closeFailed, "why")
	frames, payloads, err := decodeAll(data, 64)
	if err != nil {
		t.Fatal(err)
	}
	want := []frame{
		{typ: frameHello, id: "job/1/edge/0/3", size: 32 << 10},
		{typ: frameData, count: 7, n: 3, payloadLen: 13},
		{typ: frameData},
		{typ: frameEvent, event: Event{Kind: 4, Priority: true, Value: -12345678901}},
		{typ: frameEvent, event: Event{Kind: 255, Value: 1 << 62}},
		{typ: frameCredit, n: 9},
		{typ: frameBacklog},
		{typ: frameClose, code: closeFailed, msg: "why"},
	}
	if !reflect.DeepEqual(frames, want) {
		t.Fatalf("decoded\n%+v\nwant\n%+v", frames, want)
	}
	if string(payloads[1]) != "seven entries" {
		t.Fatalf("payload %q", payloads[1])
	}
}

func TestFrameRejects(t *testing.T) {
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"version":        {[]byte{2, byte(frameCredit), 1}, "frame version 2"},
		"type":           {[]byte{1, 99}, "unknown frame type 99"},
		"payload":        {appendData(nil, 1, 0, make([]byte, 65)), "payload length 65 exceeds 64"},
		"credit zero":    {appendCount(nil, frameCredit, 0), "credit 0"},
		"credit huge":    {appendCount(nil, frameCredit, maxCredit+1), "credit 1048577 exceeds"},
		"empty id":       {[]byte{1, byte(frameHello), 0, 1}, "empty channel id"},
		"long id":        {appendHello(nil, ChannelID(strings.Repeat("x", 256)), 1), "channel id length 256"},
		"size":           {appendHello(nil, "a", MaxBufferSize+1), "buffer size"},
		"event flags":    {[]byte{1, byte(frameEvent), 0, 2, 0}, "event flags 0x2"},
		"close code":     {[]byte{1, byte(frameClose), 9, 0}, "close code 9"},
		"close message":  {append([]byte{1, byte(frameClose), 0}, 0x81, 0x10), "close message length 2049"},
		"truncated":      {appendData(nil, 1, 0, []byte("abc"))[:6], "truncated frame"},
		"truncated head": {[]byte{1}, "truncated frame"},
		"overflow":       {append([]byte{1, byte(frameBacklog)}, bytes.Repeat([]byte{0xff}, 11)...), "overflows"},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := decodeAll(tc.data, 64)
			if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrProtocol mentioning %q", err, tc.want)
			}
		})
	}
}

// FuzzReadFrame: whatever the bytes, the decoder returns frames within
// the bounds or an ErrProtocol (never a panic or an allocation past the
// bounds), and what it decodes encodes back to the same bytes.
func FuzzReadFrame(f *testing.F) {
	f.Add(appendHello(nil, "a/b/c", 1024))
	f.Add(appendData(nil, 3, 1, []byte("xyz")))
	f.Add(appendEvent(nil, Event{Kind: 1, Priority: true, Value: -1}))
	f.Add(appendCount(nil, frameCredit, 5))
	f.Add(appendClose(nil, closeRefused, "no"))
	f.Add([]byte{1, byte(frameData), 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		const maxPayload = 256
		frames, payloads, err := decodeAll(data, maxPayload)
		if err != nil && !errors.Is(err, ErrProtocol) {
			t.Fatalf("error %v is not ErrProtocol", err)
		}
		var again []byte
		for i, fr := range frames {
			if fr.typ == frameData && (fr.payloadLen > maxPayload || fr.count > maxCount) {
				t.Fatalf("frame %d out of bounds: %+v", i, fr)
			}
			again = append(again, encode(fr, payloads[i])...)
		}
		if err == nil && !bytes.Equal(again, data) {
			// Varints have one shortest form; a longer one decodes to the
			// same value, so compare decoded frames instead.
			f2, p2, err2 := decodeAll(again, maxPayload)
			if err2 != nil || !reflect.DeepEqual(f2, frames) || !reflect.DeepEqual(p2, payloads) {
				t.Fatalf("re-encoding changed the frames: %v\n%+v\n%+v", err2, frames, f2)
			}
		}
	})
}

// FuzzReceiver feeds arbitrary bytes to a consumer channel's read loop,
// as a hostile producer would send them after its hello: it ends with nil
// (a close frame) or an error, never a panic, and the gate never holds
// more buffers than the credits allow, whatever the bytes say.
func FuzzReceiver(f *testing.F) {
	f.Add(appendData(appendData(nil, 1, 5, []byte("ab")), 2, 0, []byte("cd")))
	f.Add(appendData(appendCount(nil, frameBacklog, 9), 1, 9, []byte("x")))
	f.Add(appendClose(appendEvent(nil, Event{Kind: 3, Priority: true}), closeDone, ""))
	f.Add(appendData(appendData(appendData(appendData(nil, 1, 0, nil), 1, 0, nil), 1, 0, nil), 1, 0, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		const exclusive, floating, size = 2, 1, 16
		gate := NewInputGate()
		g := &RemoteGate{gate: gate, opts: GateOptions{Exclusive: exclusive, Floating: floating, BufferSize: size}, limit: 2*exclusive + floating}
		for i := range 2 {
			g.chans = append(g.chans, &remoteIn{g: g, idx: i, ch: gate.AddChannel(nil), id: ChannelID(fmt.Sprint(i)), wake: make(chan struct{}, 1)})
			gate.SetTransport(i, g.chans[i])
		}
		g.mu.credits, g.mu.grants = NewReceiverCredits(2, exclusive, floating, nil)
		g.dispatchLocked()
		err := g.chans[0].read(nil, bufio.NewReader(bytes.NewReader(data)))
		if err != nil && !errors.Is(err, ErrProtocol) {
			t.Fatalf("error %v is not ErrProtocol", err)
		}
		bufs := 0
		for {
			_, m, ok := gate.Next()
			if !ok {
				break
			}
			if m.Buf != nil {
				bufs++
				if len(m.Buf.B) > size {
					t.Fatalf("buffer of %d bytes over the size %d", len(m.Buf.B), size)
				}
			}
		}
		if bufs > exclusive+floating {
			t.Fatalf("%d buffers on one channel, credits allow %d", bufs, exclusive+floating)
		}
	})
}
