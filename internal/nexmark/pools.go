package nexmark

import (
	"strconv"
	"sync"
)

// pools holds the precomputed strings events are made of. It is built once
// per process (lazily, so that a WebAssembly module that only decodes events
// does not pay for it) and never modified afterwards.
type pools struct {
	names       []string // "First Last"
	emails      []string
	creditCards []string
	cities      []string
	states      []string
	channels    []channel // hotChannels first, then "channel-<i>"
	text        string    // textSize bytes of lowercase words and spaces
	prices      []int64   // see price
}

type channel struct{ name, url string }

const (
	textSize       = 64 << 10
	numEmails      = 1024
	numCreditCards = 1024
	numColdChans   = 1024
	poolSeed       = 0x6e65786d61726b // "nexmark"
)

// Hot channels: a bid uses one of these with probability
// 1-1/hotChannelRatio, otherwise one of the numColdChans others.
var hotChannels = [...]string{"Google", "Facebook", "Baidu", "Apple"}

const hotChannelRatio = 100

var firstNames = [...]string{
	"Ada", "Bruno", "Clara", "Dmitri", "Elena", "Farid", "Greta", "Hiro",
	"Ines", "Jonas", "Kira", "Luca", "Maya", "Nils", "Olga", "Pavel",
}

var lastNames = [...]string{
	"Abbott", "Brandt", "Castillo", "Dumont", "Eriksen", "Fischer",
	"Garcia", "Holm", "Ivanova", "Jensen", "Kowalski", "Lindqvist",
}

// A person's city and state are drawn independently, each uniformly from
// these lists, as the standard generator does (so "Phoenix, WY" happens).
// The states include OR, ID and CA, which Nexmark query 3 filters on: half
// of the people live in one of them.
var usStates = [...]string{"AZ", "CA", "ID", "OR", "WA", "WY"}

var usCities = [...]string{
	"Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland",
	"Bend", "Redmond", "Seattle", "Kent", "Cheyenne",
}

var (
	poolsOnce sync.Once
	thePools  *pools
)

func getPools() *pools {
	poolsOnce.Do(func() { thePools = buildPools() })
	return thePools
}

func buildPools() *pools {
	r := rng{s: poolSeed}
	p := &pools{cities: usCities[:], states: usStates[:], prices: priceTable()}

	for _, f := range firstNames {
		for _, l := range lastNames {
			p.names = append(p.names, f+" "+l)
		}
	}

	letters := func(dst []byte, min, max int) []byte {
		n := min + int(r.intn(int64(max-min+1)))
		for range n {
			dst = append(dst, 'a'+byte(r.intn(26)))
		}
		return dst
	}
	for range numEmails {
		b := letters(nil, 3, 9)
		b = append(b, '@')
		b = letters(b, 3, 7)
		b = append(b, ".com"...)
		p.emails = append(p.emails, string(b))
	}
	for range numCreditCards {
		b := make([]byte, 0, 19)
		for g := range 4 {
			if g > 0 {
				b = append(b, ' ')
			}
			for range 4 {
				b = append(b, '0'+byte(r.intn(10)))
			}
		}
		p.creditCards = append(p.creditCards, string(b))
	}

	// Each channel has its own URL; the cold ones carry their number.
	url := func(query string) string {
		b := append([]byte(nil), "https://www.nexmark.com/"...)
		b = letters(b, 4, 4)
		b = append(b, "/item.htm?query=1"...)
		b = append(b, query...)
		return string(b)
	}
	for _, c := range hotChannels {
		p.channels = append(p.channels, channel{c, url("")})
	}
	for i := range numColdChans {
		n := strconv.Itoa(i)
		p.channels = append(p.channels, channel{"channel-" + n, url("&channel_id=" + n)})
	}

	// Words of 2 to 9 letters separated by single spaces.
	text := make([]byte, 0, textSize+16)
	for len(text) < textSize {
		text = letters(text, 2, 9)
		text = append(text, ' ')
	}
	p.text = string(text[:textSize])
	return p
}

// cut returns a substring of the text block of length n (0 <= n <= textSize).
func (p *pools) cut(r *rng, n int64) string {
	start := r.intn(textSize - n + 1)
	return p.text[start : start+n]
}
