package heartbeat

import (
	"sync"
	"time"
)

// Shell is the thin shell a role's loop keeps around its Monitor: the
// clock (every event is preceded by a tick with time.Now), one timer for
// NextTick, and a queue for connection losses reported by the transport
// on its own goroutines (rpc.NetworkOptions.OnUnreachable), which the loop
// drains when Lost is ready. Everything but ConnectionLost belongs to the
// loop's goroutine.
type Shell struct {
	mon   *Monitor
	timer *time.Timer

	mu     sync.Mutex
	losses []Loss
	lost   chan struct{} // has a value while losses is not empty
}

// Loss is a connection loss as the transport reports it: by address, which
// only the loop can map to its target.
type Loss struct{ Address, Reason string }

// NewShell returns a shell around a new monitor with cfg.
func NewShell(cfg Config) (*Shell, error) {
	m, err := New(cfg, time.Now())
	if err != nil {
		return nil, err
	}
	return &Shell{mon: m, lost: make(chan struct{}, 1)}, nil
}

// Monitor is the shell's monitor (for reading its targets).
func (s *Shell) Monitor() *Monitor { return s.mon }

// Handle ticks the monitor with the current time, feeds ev (nil: only the
// tick) and sets the timer for the next tick.
func (s *Shell) Handle(ev Event) []Action {
	acts := s.mon.Handle(EvTick{Now: time.Now()})
	if ev != nil {
		acts = append(acts, s.mon.Handle(ev)...)
	}
	s.arm()
	return acts
}

func (s *Shell) arm() {
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	if next, ok := s.mon.NextTick(); ok {
		s.timer = time.NewTimer(time.Until(next))
	}
}

// C is the timer's channel (nil, never ready, when no tick is due); when
// it fires the loop calls Handle(nil).
func (s *Shell) C() <-chan time.Time {
	if s.timer == nil {
		return nil
	}
	return s.timer.C
}

// ConnectionLost queues a transport's report that address cannot be
// reached; safe on any goroutine and never blocks.
func (s *Shell) ConnectionLost(address, reason string) {
	s.mu.Lock()
	s.losses = append(s.losses, Loss{address, reason})
	s.mu.Unlock()
	select {
	case s.lost <- struct{}{}:
	default:
	}
}

// Lost is ready when connection losses wait; the loop then calls
// TakeLosses.
func (s *Shell) Lost() <-chan struct{} { return s.lost }

// TakeLosses returns the queued losses, oldest first.
func (s *Shell) TakeLosses() []Loss {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.losses
	s.losses = nil
	return l
}

// Stop stops the timer; the loop calls it when it returns.
func (s *Shell) Stop() {
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
}
