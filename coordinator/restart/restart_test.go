package restart

import (
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/weirstream/weir/coordinator/jobspec"
	"github.com/weirstream/weir/internal/scripttest"
)

// seq is a Rand that returns its values in turn, over and over.
type seq struct {
	vals []float64
	i    int
}

func (s *seq) Float64() float64 {
	v := s.vals[s.i%len(s.vals)]
	s.i++
	return v
}

// TestScripts runs testdata/*.txt. Commands:
//
//	new strategy=S [attempts=N] [delay=D] [initial=D] [max=D] [multiplier=F]
//	    [reset=D] [jitter=F] [max-failures=N] [interval=D] [rand=(f,...)]
//	fail now=D [cause=TEXT] [unrecoverable]
func TestScripts(t *testing.T) {
	scripttest.Walk(t, "testdata", func(t *testing.T) scripttest.Handler {
		var p *Policy
		return func(t *testing.T, c *scripttest.Cmd) string {
			switch c.Name {
			case "new":
				cfg := jobspec.Restart{
					Strategy:     jobspec.RestartStrategy(c.MustStr("strategy")),
					Attempts:     c.Int("attempts", 0),
					Delay:        c.Duration("delay", 0),
					InitialDelay: c.Duration("initial", 0),
					MaxDelay:     c.Duration("max", 0),
					Multiplier:   c.Float("multiplier", 0),
					ResetAfter:   c.Duration("reset", 0),
					Jitter:       c.Float("jitter", 0),
					MaxFailures:  c.Int("max-failures", 0),
					Interval:     c.Duration("interval", 0),
				}
				r := &seq{vals: []float64{0.5}}
				if vs := c.Strs("rand"); vs != nil {
					r.vals = nil
					for _, v := range vs {
						f, err := strconv.ParseFloat(v, 64)
						if err != nil {
							c.Fatalf("rand: %v", err)
						}
						r.vals = append(r.vals, f)
					}
				}
				var err error
				p, err = New(cfg, r)
				if err != nil {
					return "error: " + err.Error()
				}
				return "ok"
			case "fail":
				d := p.Decide(c.Duration("now", 0), Failure{Cause: c.Str("cause", ""), Unrecoverable: c.Has("unrecoverable")})
				return d.String()
			}
			c.Fatalf("unknown command")
			return ""
		}
	})
}

// TestExponentialDelays checks the delays without jitter against the
// closed form min(initial * multiplier^k, max), and with jitter that each
// delay stays within ±jitter of it (and within max).
func TestExponentialDelays(t *testing.T) {
	for _, jitter := range []float64{0, 0.25} {
		cfg := jobspec.Restart{Strategy: jobspec.RestartExponentialDelay, InitialDelay: 300 * time.Millisecond,
			MaxDelay: 40 * time.Second, Multiplier: 1.7, ResetAfter: time.Hour, Jitter: jitter}
		p, err := New(cfg, rand.New(rand.NewPCG(1, 2)))
		if err != nil {
			t.Fatal(err)
		}
		now := time.Duration(0)
		for k := 0; k < 30; k++ {
			d := p.Decide(now, Failure{})
			base := math.Min(float64(cfg.InitialDelay)*math.Pow(cfg.Multiplier, float64(k)), float64(cfg.MaxDelay))
			lo, hi := base*(1-jitter)-1, math.Min(base*(1+jitter), float64(cfg.MaxDelay))+1
			if !d.Restart || d.Restarts != k+1 || float64(d.Delay) < lo || float64(d.Delay) > hi {
				t.Fatalf("jitter %g, failure %d: %v; want a delay in [%s, %s]", jitter, k, d, time.Duration(lo), time.Duration(hi))
			}
			// The job fails again soon after each restart.
			now += d.Delay + time.Second
		}
	}
}

// TestFailureRateWindow replays random failure times and checks each
// decision against a count of the failures in the trailing interval.
func TestFailureRateWindow(t *testing.T) {
	cfg := jobspec.Restart{Strategy: jobspec.RestartFailureRate, MaxFailures: 3, Interval: 10 * time.Second, Delay: time.Second}
	r := rand.New(rand.NewPCG(3, 4))
	for run := 0; run < 200; run++ {
		p, err := New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		var times []time.Duration
		now := time.Duration(0)
		for {
			now += time.Duration(r.IntN(8000)) * time.Millisecond
			times = append(times, now)
			in := 0
			for _, at := range times {
				if now-at < cfg.Interval {
					in++
				}
			}
			d := p.Decide(now, Failure{})
			if d.Restart != (in <= cfg.MaxFailures) {
				t.Fatalf("run %d: failures at %v: %v, with %d in the last %s", run, times, d, in, cfg.Interval)
			}
			if !d.Restart {
				break
			}
		}
	}
}

func TestNewRefuses(t *testing.T) {
	for _, cfg := range []jobspec.Restart{
		{Strategy: "always"},
		{Strategy: jobspec.RestartFixedDelay},
		{Strategy: jobspec.RestartExponentialDelay, InitialDelay: time.Second, MaxDelay: time.Second, Multiplier: math.NaN(), ResetAfter: time.Hour},
		{Strategy: jobspec.RestartFailureRate, MaxFailures: 1},
	} {
		if _, err := New(cfg, nil); !errors.Is(err, ErrInvalid) {
			t.Errorf("New(%+v) = %v; want ErrInvalid", cfg, err)
		}
	}
	jit := jobspec.Restart{Strategy: jobspec.RestartExponentialDelay, InitialDelay: time.Second, MaxDelay: time.Second, Multiplier: 2, ResetAfter: time.Hour, Jitter: 0.1}
	if _, err := New(jit, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("jitter without a random source: %v", err)
	}
}
