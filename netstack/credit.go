package netstack

import "fmt"

// The credit protocol, as deterministic cores: plain types driven by
// events, returning actions, owned by one goroutine, with no clocks.
//
// A credit is a buffer the consumer has reserved for a channel. Each
// channel owns a few exclusive buffers; the gate has a pool of floating
// buffers. The consumer announces credit in Grant messages; the producer
// sends at most that many buffers, and each buffer carries the producer's
// backlog (buffers queued behind it), which the consumer uses to lend its
// floating buffers to the channels with the largest backlog.

// SenderCredits is the producer's side of one channel: the credit the
// consumer granted and the filled buffers waiting for it.
type SenderCredits[B any] struct {
	credits   int
	queue     fifo[B]
	announced int // backlog last announced while out of credit
}

// SenderAction is what the producer must do next.
type SenderAction[B any] struct {
	// Transmit, when set, sends Buf with Backlog; otherwise the action
	// announces Backlog alone (the producer is out of credit and its
	// backlog grew).
	Transmit bool
	Buf      B
	Backlog  int
}

func (a SenderAction[B]) String() string {
	if a.Transmit {
		return fmt.Sprintf("transmit %v backlog=%d", a.Buf, a.Backlog)
	}
	return fmt.Sprintf("announce backlog=%d", a.Backlog)
}

// Grant adds n credits from the consumer and appends the transmissions
// they allow.
func (s *SenderCredits[B]) Grant(n int, out []SenderAction[B]) []SenderAction[B] {
	s.credits += n
	return s.drain(out)
}

// Enqueue queues a filled buffer and appends what follows: its
// transmission if there is credit, else a backlog announcement when the
// backlog grew past what the consumer was last told.
func (s *SenderCredits[B]) Enqueue(b B, out []SenderAction[B]) []SenderAction[B] {
	s.queue.push(b)
	if s.credits > 0 {
		return s.drain(out)
	}
	if n := s.queue.len(); n > s.announced {
		s.announced = n
		out = append(out, SenderAction[B]{Backlog: n})
	}
	return out
}

func (s *SenderCredits[B]) drain(out []SenderAction[B]) []SenderAction[B] {
	for s.credits > 0 {
		b, ok := s.queue.pop()
		if !ok {
			break
		}
		s.credits--
		out = append(out, SenderAction[B]{Transmit: true, Buf: b, Backlog: s.queue.len()})
	}
	s.announced = 0
	return out
}

// Credits is the credit not yet used.
func (s *SenderCredits[B]) Credits() int { return s.credits }

// Backlog is the number of buffers waiting for credit.
func (s *SenderCredits[B]) Backlog() int { return s.queue.len() }

// Grant is a credit announcement: n more buffers reserved for channel Ch.
type Grant struct {
	Ch int
	N  int
}

// ReceiverCredits is the consumer's side of the channels of one gate: the
// exclusive buffers of each channel, the floating pool, and who holds
// what. Every method appends the Grants to announce.
type ReceiverCredits struct {
	exclusive int
	pool      int // free floating buffers
	chans     []receiverChannel
}

type receiverChannel struct {
	outstanding int // granted, not yet received
	held        int // received, not yet released
	floating    int // floating buffers lent to the channel (in outstanding or held)
	backlog     int // what the producer last said it has queued
	ended       bool
}

// NewReceiverCredits sets up n channels with exclusive buffers each and a
// floating pool, and appends the initial grants.
func NewReceiverCredits(n, exclusive, floating int, out []Grant) (*ReceiverCredits, []Grant) {
	r := &ReceiverCredits{exclusive: exclusive, pool: floating, chans: make([]receiverChannel, n)}
	for ch := range r.chans {
		r.chans[ch].outstanding = exclusive
		if exclusive > 0 {
			out = append(out, Grant{Ch: ch, N: exclusive})
		}
	}
	return r, out
}

// Received records a buffer that arrived on ch carrying the producer's
// backlog. A buffer without credit is a protocol violation.
func (r *ReceiverCredits) Received(ch, backlog int, out []Grant) ([]Grant, error) {
	c, err := r.channel(ch)
	if err != nil {
		return out, err
	}
	if c.outstanding == 0 {
		return out, fmt.Errorf("%w: channel %d sent a buffer without credit", ErrProtocol, ch)
	}
	if backlog < 0 {
		return out, fmt.Errorf("%w: channel %d announced backlog %d", ErrProtocol, ch, backlog)
	}
	c.outstanding--
	c.held++
	c.backlog = backlog
	return r.lend(out), nil
}

// Backlog records a backlog announcement from ch's producer.
func (r *ReceiverCredits) Backlog(ch, backlog int, out []Grant) ([]Grant, error) {
	c, err := r.channel(ch)
	if err != nil {
		return out, err
	}
	if backlog < 0 {
		return out, fmt.Errorf("%w: channel %d announced backlog %d", ErrProtocol, ch, backlog)
	}
	c.backlog = backlog
	return r.lend(out), nil
}

// Released records that a buffer of ch was processed. The buffer becomes
// credit for ch again, unless it was a floating one the channel no longer
// needs, which goes back to the pool for the busiest channel.
func (r *ReceiverCredits) Released(ch int, out []Grant) []Grant {
	c := &r.chans[ch]
	if c.held == 0 {
		panic(fmt.Sprintf("netstack: release on channel %d without a held buffer", ch))
	}
	c.held--
	switch {
	case c.ended:
		if c.floating > 0 {
			c.floating--
			r.pool++
		}
	case c.floating > 0 && c.backlog <= c.outstanding:
		c.floating--
		r.pool++
	default:
		c.outstanding++
		out = append(out, Grant{Ch: ch, N: 1})
	}
	return r.lend(out)
}

// Ended records that ch's producer ended the stream: its floating credit
// not yet used goes back to the pool, and it gets no more.
func (r *ReceiverCredits) Ended(ch int, out []Grant) []Grant {
	c := &r.chans[ch]
	c.ended = true
	back := min(c.floating, c.outstanding)
	c.floating -= back
	r.pool += back
	c.outstanding, c.backlog = 0, 0
	return r.lend(out)
}

// Pool is the number of free floating buffers.
func (r *ReceiverCredits) Pool() int { return r.pool }

// Outstanding is the credit ch's producer has not used.
func (r *ReceiverCredits) Outstanding(ch int) int { return r.chans[ch].outstanding }

func (r *ReceiverCredits) channel(ch int) (*receiverChannel, error) {
	if ch < 0 || ch >= len(r.chans) {
		return nil, fmt.Errorf("%w: unknown channel %d", ErrProtocol, ch)
	}
	c := &r.chans[ch]
	if c.ended {
		return nil, fmt.Errorf("%w: channel %d sent after its end", ErrProtocol, ch)
	}
	return c, nil
}

// lend gives free floating buffers, one at a time, to the channel whose
// backlog exceeds its credit the most (the lowest index on a tie).
func (r *ReceiverCredits) lend(out []Grant) []Grant {
	for r.pool > 0 {
		best, need := -1, 0
		for ch := range r.chans {
			c := &r.chans[ch]
			if c.ended {
				continue
			}
			if n := c.backlog - c.outstanding; n > need {
				best, need = ch, n
			}
		}
		if best < 0 {
			return out
		}
		c := &r.chans[best]
		c.floating++
		c.outstanding++
		r.pool--
		if k := len(out); k > 0 && out[k-1].Ch == best {
			out[k-1].N++
		} else {
			out = append(out, Grant{Ch: best, N: 1})
		}
	}
	return out
}
