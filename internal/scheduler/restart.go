package scheduler

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// RestartKind names a restart strategy, with Flink's names.
type RestartKind string

const (
	// RestartNone fails the job at its first task failure. The empty kind
	// means the same, so a zero RestartStrategy is "none".
	RestartNone RestartKind = "none"
	// RestartFixedDelay restarts up to Attempts times, Delay apart.
	RestartFixedDelay RestartKind = "fixed-delay"
	// RestartExponentialDelay restarts with a backoff that grows by
	// Multiplier from InitialBackoff up to MaxBackoff, and falls back to
	// InitialBackoff once the job has run ResetThreshold without failing.
	RestartExponentialDelay RestartKind = "exponential-delay"
	// RestartFailureRate restarts after Delay unless more than MaxFailures
	// failures fell within Interval.
	RestartFailureRate RestartKind = "failure-rate"
)

// RestartStrategy says whether and when a failed job is restarted. It is
// plain data (JSON-serialisable, so it can ride in a job's settings across
// processes): a kind and the parameters of that kind only, the others nil.
// The zero value is the strategy "none". Build it with NoRestart,
// FixedDelayRestart, ExponentialDelayRestart or FailureRateRestart, or
// decode it; New validates it.
type RestartStrategy struct {
	Kind             RestartKind       `json:"kind,omitempty"`
	FixedDelay       *FixedDelay       `json:"fixed_delay,omitempty"`
	ExponentialDelay *ExponentialDelay `json:"exponential_delay,omitempty"`
	FailureRate      *FailureRate      `json:"failure_rate,omitempty"`
}

// FixedDelay are the parameters of the fixed-delay strategy.
type FixedDelay struct {
	// Attempts is the number of restarts allowed over the job's life (at
	// least 1); the failure after the last one fails the job.
	Attempts int `json:"attempts"`
	// Delay is the wait between the end of the failed attempt's last task
	// and the restart.
	Delay time.Duration `json:"delay"`
}

// ExponentialDelay are the parameters of the exponential-delay strategy
// (Flink's, defaults in ExponentialDelayRestart).
type ExponentialDelay struct {
	InitialBackoff time.Duration `json:"initial_backoff"`
	MaxBackoff     time.Duration `json:"max_backoff"`
	// Multiplier grows the backoff after each restart (at least 1).
	Multiplier float64 `json:"multiplier"`
	// ResetThreshold: a failure this long after the last restart starts
	// again from InitialBackoff (and from zero Attempts).
	ResetThreshold time.Duration `json:"reset_threshold"`
	// JitterFactor in [0, 1] moves each delay by up to ±factor × backoff,
	// so jobs that failed together do not restart together.
	JitterFactor float64 `json:"jitter_factor"`
	// Seed drives the jitter: the scheduler reads no randomness of its
	// own, so a run is reproducible from its events and this seed.
	Seed uint64 `json:"seed,omitempty"`
	// Attempts bounds the restarts between two resets; 0: unbounded.
	Attempts int `json:"attempts,omitempty"`
}

// FailureRate are the parameters of the failure-rate strategy.
type FailureRate struct {
	// MaxFailures is the number of failures tolerated within Interval (at
	// least 1); one more fails the job.
	MaxFailures int           `json:"max_failures"`
	Interval    time.Duration `json:"interval"`
	Delay       time.Duration `json:"delay"`
}

// NoRestart is the strategy "none": the first task failure fails the job.
func NoRestart() RestartStrategy { return RestartStrategy{Kind: RestartNone} }

// FixedDelayRestart restarts up to attempts times, delay apart.
func FixedDelayRestart(attempts int, delay time.Duration) RestartStrategy {
	return RestartStrategy{Kind: RestartFixedDelay, FixedDelay: &FixedDelay{Attempts: attempts, Delay: delay}}
}

// ExponentialDelayRestart is the exponential-delay strategy with Flink's
// defaults (1s initial backoff, 1 min max, multiplier 1.5, reset after 1 h
// without failure, jitter 0.1, unbounded attempts); change what differs.
func ExponentialDelayRestart() RestartStrategy {
	return RestartStrategy{Kind: RestartExponentialDelay, ExponentialDelay: &ExponentialDelay{
		InitialBackoff: time.Second, MaxBackoff: time.Minute, Multiplier: 1.5,
		ResetThreshold: time.Hour, JitterFactor: 0.1,
	}}
}

// FailureRateRestart restarts after delay while at most maxFailures
// failures fall within interval.
func FailureRateRestart(maxFailures int, interval, delay time.Duration) RestartStrategy {
	return RestartStrategy{Kind: RestartFailureRate, FailureRate: &FailureRate{MaxFailures: maxFailures, Interval: interval, Delay: delay}}
}

// DefaultRestartStrategy is Flink's choice: without checkpointing a
// restarted job would start from empty state and replay its sources, so
// the default is not to restart; with checkpointing it is exponential
// delay.
func DefaultRestartStrategy(checkpointing bool) RestartStrategy {
	if checkpointing {
		return ExponentialDelayRestart()
	}
	return NoRestart()
}

// Validate reports the first thing wrong with the strategy.
func (r RestartStrategy) Validate() error {
	params := 0
	for _, set := range []bool{r.FixedDelay != nil, r.ExponentialDelay != nil, r.FailureRate != nil} {
		if set {
			params++
		}
	}
	switch r.Kind {
	case "", RestartNone:
		if params != 0 {
			return fmt.Errorf("restart strategy none takes no parameters")
		}
		return nil
	case RestartFixedDelay:
		p := r.FixedDelay
		if p == nil || params != 1 {
			return errors.New("restart strategy fixed-delay needs its parameters (fixed_delay) and no others")
		}
		switch {
		case p.Attempts < 1:
			return fmt.Errorf("restart strategy fixed-delay: attempts must be at least 1, got %d", p.Attempts)
		case p.Delay < 0:
			return fmt.Errorf("restart strategy fixed-delay: delay must not be negative, got %v", p.Delay)
		}
	case RestartExponentialDelay:
		p := r.ExponentialDelay
		if p == nil || params != 1 {
			return errors.New("restart strategy exponential-delay needs its parameters (exponential_delay) and no others")
		}
		switch {
		case p.InitialBackoff <= 0:
			return fmt.Errorf("restart strategy exponential-delay: initial backoff must be positive, got %v", p.InitialBackoff)
		case p.MaxBackoff < p.InitialBackoff:
			return fmt.Errorf("restart strategy exponential-delay: max backoff %v is below the initial backoff %v", p.MaxBackoff, p.InitialBackoff)
		case !(p.Multiplier >= 1): // also rejects NaN
			return fmt.Errorf("restart strategy exponential-delay: multiplier must be at least 1, got %v", p.Multiplier)
		case p.ResetThreshold <= 0:
			return fmt.Errorf("restart strategy exponential-delay: reset threshold must be positive, got %v", p.ResetThreshold)
		case !(p.JitterFactor >= 0 && p.JitterFactor <= 1):
			return fmt.Errorf("restart strategy exponential-delay: jitter factor must be within [0, 1], got %v", p.JitterFactor)
		case p.Attempts < 0:
			return fmt.Errorf("restart strategy exponential-delay: attempts must not be negative, got %d", p.Attempts)
		}
	case RestartFailureRate:
		p := r.FailureRate
		if p == nil || params != 1 {
			return errors.New("restart strategy failure-rate needs its parameters (failure_rate) and no others")
		}
		switch {
		case p.MaxFailures < 1:
			return fmt.Errorf("restart strategy failure-rate: max failures must be at least 1, got %d", p.MaxFailures)
		case p.Interval <= 0:
			return fmt.Errorf("restart strategy failure-rate: interval must be positive, got %v", p.Interval)
		case p.Delay < 0:
			return fmt.Errorf("restart strategy failure-rate: delay must not be negative, got %v", p.Delay)
		}
	default:
		return fmt.Errorf("unknown restart strategy %q (want none, fixed-delay, exponential-delay or failure-rate)", r.Kind)
	}
	return nil
}

func (r RestartStrategy) String() string {
	if r.Validate() != nil {
		return fmt.Sprintf("invalid restart strategy %q", r.Kind)
	}
	switch r.Kind {
	case "", RestartNone:
		return string(RestartNone)
	case RestartFixedDelay:
		return fmt.Sprintf("%s(attempts=%d, delay=%v)", r.Kind, r.FixedDelay.Attempts, r.FixedDelay.Delay)
	case RestartFailureRate:
		p := r.FailureRate
		return fmt.Sprintf("%s(max-failures=%d, interval=%v, delay=%v)", r.Kind, p.MaxFailures, p.Interval, p.Delay)
	case RestartExponentialDelay:
		p := r.ExponentialDelay
		return fmt.Sprintf("%s(initial=%v, max=%v, multiplier=%v, reset=%v, jitter=%v, attempts=%d)",
			r.Kind, p.InitialBackoff, p.MaxBackoff, p.Multiplier, p.ResetThreshold, p.JitterFactor, p.Attempts)
	}
	return string(r.Kind)
}

// restarter is a strategy's state over the job's life: it sees every
// failure that reaches the job (once per failover, not once per failed
// task) and decides.
type restarter interface {
	// failed records a failure at now; lastRestart is when the current
	// attempt was deployed (zero for the first) and restarts the number of
	// restarts so far. It returns the delay before the restart, or an error
	// naming the strategy when the job must fail instead (nil error and
	// ok false: strategy none, the cause alone is the job's error).
	failed(now, lastRestart time.Time, restarts int) (delay time.Duration, ok bool, err error)
}

func newRestarter(r RestartStrategy) restarter {
	switch r.Kind {
	case RestartFixedDelay:
		return &fixedDelay{p: *r.FixedDelay}
	case RestartExponentialDelay:
		p := *r.ExponentialDelay
		return &exponentialDelay{p: p, rng: rand.New(rand.NewPCG(p.Seed, p.Seed^0x9e3779b97f4a7c15))}
	case RestartFailureRate:
		return &failureRate{p: *r.FailureRate}
	}
	return noRestart{}
}

type noRestart struct{}

func (noRestart) failed(time.Time, time.Time, int) (time.Duration, bool, error) {
	return 0, false, nil
}

type fixedDelay struct{ p FixedDelay }

func (f *fixedDelay) failed(_, _ time.Time, restarts int) (time.Duration, bool, error) {
	if restarts >= f.p.Attempts {
		return 0, false, fmt.Errorf("restart strategy fixed-delay: all %d restart attempts used", f.p.Attempts)
	}
	return f.p.Delay, true, nil
}

type exponentialDelay struct {
	p          ExponentialDelay
	rng        *rand.Rand
	backoff    time.Duration // of the last restart; 0: none since the reset
	sinceReset int           // restarts since the last reset
}

func (e *exponentialDelay) failed(now, lastRestart time.Time, _ int) (time.Duration, bool, error) {
	if e.backoff != 0 && !lastRestart.IsZero() && now.Sub(lastRestart) >= e.p.ResetThreshold {
		// The job ran long enough since its restart: this failure is not
		// part of the same streak.
		e.backoff, e.sinceReset = 0, 0
	}
	if e.p.Attempts > 0 && e.sinceReset >= e.p.Attempts {
		return 0, false, fmt.Errorf("restart strategy exponential-delay: %d restarts without a reset, the maximum", e.sinceReset)
	}
	if e.backoff == 0 {
		e.backoff = e.p.InitialBackoff
	} else {
		next := time.Duration(float64(e.backoff) * e.p.Multiplier)
		if next > e.p.MaxBackoff || next < e.backoff { // the latter: overflow
			next = e.p.MaxBackoff
		}
		e.backoff = next
	}
	e.sinceReset++
	delay := e.backoff
	if e.p.JitterFactor > 0 {
		// Uniform in [-factor, +factor] × backoff, from the seeded source.
		delay += time.Duration((2*e.rng.Float64() - 1) * e.p.JitterFactor * float64(e.backoff))
	}
	return max(delay, 0), true, nil
}

type failureRate struct {
	p        FailureRate
	failures []time.Time // within the interval before the latest
}

func (f *failureRate) failed(now, _ time.Time, _ int) (time.Duration, bool, error) {
	kept := f.failures[:0]
	for _, t := range f.failures {
		if now.Sub(t) < f.p.Interval {
			kept = append(kept, t)
		}
	}
	f.failures = append(kept, now)
	if n := len(f.failures); n > f.p.MaxFailures {
		return 0, false, fmt.Errorf("restart strategy failure-rate: %d failures within %v, more than the %d allowed", n, f.p.Interval, f.p.MaxFailures)
	}
	return f.p.Delay, true, nil
}
