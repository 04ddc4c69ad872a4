// Package restart decides, when a job fails, whether it restarts and after
// how long, by the restart strategy of its spec (jobspec.Restart): none,
// fixed-delay, exponential-delay or failure-rate.
//
// A Policy is a deterministic core: it holds no clock and starts no timer.
// The caller passes the monotonic time of each failure and waits the
// returned delay itself; jitter comes from an injected Rand, so tests (and
// script tests of the execution graph) replay exactly.
package restart

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/weirstream/weir/coordinator/jobspec"
)

// ErrInvalid is returned by New for a strategy that does not validate;
// jobspec.Parse refuses such specs, so seeing it means a Restart built by
// hand.
var ErrInvalid = errors.New("restart: invalid strategy")

// Rand is the source of jitter: Float64 returns a number in [0, 1).
// *math/rand/v2.Rand satisfies it.
type Rand interface {
	Float64() float64
}

// Failure is one failure of the job, as the execution graph saw it.
type Failure struct {
	// Cause says what failed, for the reason of a give-up.
	Cause string
	// Unrecoverable is true for a failure that a restart cannot cure
	// (slots the cluster can never have, a module that does not exist):
	// the job fails whatever the strategy.
	Unrecoverable bool
}

// Decision is what to do about a failure.
type Decision struct {
	// Restart is true when the job restarts after Delay; false when it
	// fails, for Reason.
	Restart bool
	Delay   time.Duration
	// Restarts counts the restarts decided so far, this one included.
	Restarts int
	Reason   string
}

// String formats d for logs and script tests.
func (d Decision) String() string {
	if d.Restart {
		return fmt.Sprintf("restart #%d after %s", d.Restarts, d.Delay)
	}
	return "give up: " + d.Reason
}

// Policy applies one job's restart strategy to its failures, in order. It
// is not safe for concurrent use: the job's goroutine owns it.
type Policy struct {
	cfg      jobspec.Restart
	rnd      Rand
	restarts int // restarts decided in total

	// exponential-delay
	streak    int           // restarts since the delay last started over
	next      time.Duration // the next delay before jitter
	restarted bool          // a restart was decided ...
	restartAt time.Duration // ... to happen at this time

	// failure-rate: times of the failures within the interval, oldest
	// first; at most MaxFailures+1 of them.
	failures []time.Duration

	last time.Duration // latest now seen; time never goes back
}

// New returns the policy of a restart strategy. rnd may be nil when the
// strategy has no jitter.
func New(cfg jobspec.Restart, rnd Rand) (*Policy, error) {
	if err := check(cfg); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, cfg.Strategy, err)
	}
	if cfg.Strategy == jobspec.RestartExponentialDelay && cfg.Jitter > 0 && rnd == nil {
		return nil, fmt.Errorf("%w: exponential-delay with jitter %g needs a random source", ErrInvalid, cfg.Jitter)
	}
	return &Policy{cfg: cfg, rnd: rnd, next: cfg.InitialDelay}, nil
}

// check is the part of jobspec's validation the arithmetic here relies on.
func check(c jobspec.Restart) error {
	switch c.Strategy {
	case jobspec.RestartNone:
	case jobspec.RestartFixedDelay:
		if c.Attempts < 1 || c.Delay < 0 {
			return fmt.Errorf("attempts %d, delay %s; want attempts 1 or more and a delay of 0 or more", c.Attempts, c.Delay)
		}
	case jobspec.RestartExponentialDelay:
		switch {
		case c.Attempts < 0:
			return fmt.Errorf("attempts %d; want 0 (no limit) or more", c.Attempts)
		case c.InitialDelay <= 0 || c.MaxDelay < c.InitialDelay:
			return fmt.Errorf("initial delay %s, max delay %s; want 0 < initial <= max", c.InitialDelay, c.MaxDelay)
		case !(c.Multiplier >= 1) || math.IsInf(c.Multiplier, 0):
			return fmt.Errorf("multiplier %g; want 1 or more", c.Multiplier)
		case c.ResetAfter <= 0:
			return fmt.Errorf("reset after %s; want more than 0", c.ResetAfter)
		case !(c.Jitter >= 0 && c.Jitter <= 1):
			return fmt.Errorf("jitter %g; want 0 to 1", c.Jitter)
		}
	case jobspec.RestartFailureRate:
		if c.MaxFailures < 1 || c.Interval <= 0 || c.Delay < 0 {
			return fmt.Errorf("max failures %d, interval %s, delay %s; want 1 or more failures in an interval of more than 0", c.MaxFailures, c.Interval, c.Delay)
		}
	default:
		return errors.New("unknown strategy")
	}
	return nil
}

// Decide returns what to do about a failure at now (monotonic time, as
// every other event of the job carries it).
func (p *Policy) Decide(now time.Duration, f Failure) Decision {
	if now < p.last {
		now = p.last // a clock step back must not reset a streak
	}
	p.last = now
	if f.Unrecoverable {
		return p.giveUp(f, "the failure is not recoverable by a restart")
	}
	c := &p.cfg
	var delay time.Duration
	switch c.Strategy {
	case jobspec.RestartNone:
		return p.giveUp(f, "the restart strategy is none")
	case jobspec.RestartFixedDelay:
		if p.restarts >= c.Attempts {
			return p.giveUp(f, fmt.Sprintf("restarted %d times, all the attempts (%d) of fixed-delay", p.restarts, c.Attempts))
		}
		delay = c.Delay
	case jobspec.RestartExponentialDelay:
		if p.restarted && now-p.restartAt >= c.ResetAfter {
			// The job ran stably for reset_after: this failure is a new
			// incident, not the next in a series.
			p.next, p.streak = c.InitialDelay, 0
		}
		if c.Attempts > 0 && p.streak >= c.Attempts {
			return p.giveUp(f, fmt.Sprintf("restarted %d times without running %s stably, all the attempts (%d) of exponential-delay", p.streak, c.ResetAfter, c.Attempts))
		}
		delay = p.jittered(p.next)
		p.next = grow(p.next, c.Multiplier, c.MaxDelay)
		p.streak++
		p.restarted, p.restartAt = true, now+delay
	case jobspec.RestartFailureRate:
		keep := p.failures[:0]
		for _, t := range p.failures {
			if now-t < c.Interval {
				keep = append(keep, t)
			}
		}
		p.failures = append(keep, now)
		if len(p.failures) > c.MaxFailures {
			return p.giveUp(f, fmt.Sprintf("%d failures within %s, more than max_failures (%d) of failure-rate", len(p.failures), c.Interval, c.MaxFailures))
		}
		delay = c.Delay
	}
	p.restarts++
	return Decision{Restart: true, Delay: delay, Restarts: p.restarts}
}

func (p *Policy) giveUp(f Failure, why string) Decision {
	if f.Cause != "" {
		why += "; last failure: " + f.Cause
	}
	return Decision{Restarts: p.restarts, Reason: why}
}

// jittered spreads d by up to ±Jitter of it, within [0, MaxDelay].
func (p *Policy) jittered(d time.Duration) time.Duration {
	if p.cfg.Jitter == 0 {
		return d
	}
	spread := float64(d) * p.cfg.Jitter * (2*p.rnd.Float64() - 1)
	out := time.Duration(float64(d) + spread)
	return min(max(out, 0), p.cfg.MaxDelay)
}

// grow returns d times m, at most limit, without overflowing.
func grow(d time.Duration, m float64, limit time.Duration) time.Duration {
	x := float64(d) * m
	if x >= float64(limit) {
		return limit
	}
	return time.Duration(x)
}
