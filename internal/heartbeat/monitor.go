package heartbeat

import (
	"fmt"
	"slices"
	"time"
)

// Defaults of Config.
const (
	DefaultInterval = time.Second
	DefaultTimeout  = 5 * time.Second
)

// Config says how often a monitor asks and how long it waits. The zero
// Config is valid and means the defaults.
type Config struct {
	// Interval between two heartbeat requests to a target (0: 1 s).
	Interval time.Duration
	// Timeout is how long a target may stay silent before it is declared
	// dead (0: 5 s; not below Interval, or a healthy target that answers
	// each request a little late would be declared dead).
	Timeout time.Duration
	// Passive monitors send no requests: the targets' own requests are
	// their signs of life (a TaskManager watching its ResourceManager and
	// JobMasters, which ask it for heartbeats).
	Passive bool
}

func (c Config) withDefaults() (Config, error) {
	if c.Interval < 0 || c.Timeout < 0 {
		return c, fmt.Errorf("heartbeat: interval %v and timeout %v must not be negative", c.Interval, c.Timeout)
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Timeout < c.Interval {
		return c, fmt.Errorf("heartbeat: timeout %v is shorter than the interval %v", c.Timeout, c.Interval)
	}
	return c, nil
}

// Event is an input to the Monitor. The set is closed: only the Ev* types
// of this package implement it.
type Event interface{ isEvent() }

// Events.
type (
	// EvTick tells the monitor the time; it reads no clock itself.
	// Requests and timeouts happen on ticks: the shell ticks at NextTick
	// and before each batch of other events. A tick earlier than the last
	// one counts as the last one: time does not go back.
	EvTick struct{ Now time.Time }
	// EvAdd starts monitoring a target: a TaskManager registered, a
	// JobMaster connected. It starts a new incarnation, alive as of now,
	// also when the target is known already (it registered again).
	EvAdd struct{ Target string }
	// EvRemove stops monitoring a target (it unregistered, the owner
	// released it, or it was declared dead and the owner is done with it).
	// Later events for it are dropped until it is added again.
	EvRemove struct{ Target string }
	// EvHeartbeat is a sign of life of a target: its answer to a request,
	// or, on the receiving side, its own request. Payload is the owner's
	// (a TaskManager's slot report, a JobMaster's allocated slots) and
	// comes back in ActHeartbeat or ActResumed.
	EvHeartbeat struct {
		Target  string
		Payload any
	}
	// EvConnectionLost is the transport's report that the connection to
	// a target broke (its process died): the target is declared dead at
	// once, without waiting for the timeout.
	EvConnectionLost struct {
		Target string
		Reason string
	}
)

func (EvTick) isEvent()           {}
func (EvAdd) isEvent()            {}
func (EvRemove) isEvent()         {}
func (EvHeartbeat) isEvent()      {}
func (EvConnectionLost) isEvent() {}

// Action is an output of the Monitor, for the shell to carry out. The set
// is closed: only the Act* types of this package implement it.
type Action interface{ isAction() }

// Actions. Incarnation is the target's incarnation the action is about
// (numbers are unique within a Monitor and only grow).
type (
	// ActSendRequest asks the shell to send a heartbeat request to the
	// target. A send that fails because the target is unreachable is
	// reported back as EvConnectionLost.
	ActSendRequest struct {
		Target      string
		Incarnation int
	}
	// ActHeartbeat hands the payload of a live target's heartbeat to the
	// owner.
	ActHeartbeat struct {
		Target      string
		Incarnation int
		Payload     any
	}
	// ActTimedOut declares a target dead: nothing was heard from it for
	// Timeout since LastSeen. The owner fails what ran there.
	ActTimedOut struct {
		Target      string
		Incarnation int
		LastSeen    time.Time
	}
	// ActLost declares a target dead because its connection broke.
	ActLost struct {
		Target      string
		Incarnation int
		Reason      string
	}
	// ActResumed says a target declared dead sent a heartbeat: it is alive
	// again as incarnation Incarnation (Previous was declared dead). The
	// owner failed Previous's work already, so it must fence the target
	// (its attempt ids are stale) before trusting Payload.
	ActResumed struct {
		Target      string
		Incarnation int
		Previous    int
		Payload     any
	}
)

func (ActSendRequest) isAction() {}
func (ActHeartbeat) isAction()   {}
func (ActTimedOut) isAction()    {}
func (ActLost) isAction()        {}
func (ActResumed) isAction()     {}

// State is what the monitor thinks of a target.
type State uint8

const (
	// Alive: heard from within the timeout.
	Alive State = iota
	// TimedOut: declared dead by the timeout.
	TimedOut
	// Lost: declared dead because its connection broke.
	Lost
)

func (s State) String() string {
	switch s {
	case Alive:
		return "alive"
	case TimedOut:
		return "timed-out"
	case Lost:
		return "lost"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Target is a monitored target as Targets reports it.
type Target struct {
	ID          string
	Incarnation int
	State       State
	// LastSeen is the time of its last sign of life (or of its EvAdd).
	LastSeen time.Time
	// NextRequest is when the next request goes (zero when none will:
	// the target is dead or the monitor passive).
	NextRequest time.Time
}

// Monitor is a heartbeat monitor for a set of targets. It is not safe for
// concurrent use: one shell goroutine owns it.
type Monitor struct {
	cfg         Config
	now         time.Time
	targets     map[string]*Target
	incarnation int // the last one handed out
}

// New returns a monitor with no targets whose clock reads now.
func New(cfg Config, now time.Time) (*Monitor, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Monitor{cfg: cfg, now: now, targets: map[string]*Target{}}, nil
}

// Config is the monitor's configuration with the defaults filled in.
func (m *Monitor) Config() Config { return m.cfg }

// Now is the time of the last tick (or of New).
func (m *Monitor) Now() time.Time { return m.now }

// Handle feeds one event and returns what the shell must do, in order.
func (m *Monitor) Handle(ev Event) []Action {
	switch ev := ev.(type) {
	case EvTick:
		return m.tick(ev.Now)
	case EvAdd:
		t := &Target{ID: ev.Target}
		m.targets[ev.Target] = t
		m.revive(t)
		if m.cfg.Passive {
			return nil
		}
		// The first request goes at once: the owner wants the target's
		// payload (its slots) without waiting an interval.
		return []Action{ActSendRequest{Target: t.ID, Incarnation: t.Incarnation}}
	case EvRemove:
		delete(m.targets, ev.Target)
	case EvHeartbeat:
		t, ok := m.targets[ev.Target]
		if !ok {
			return nil
		}
		if t.State == Alive {
			t.LastSeen = m.now
			return []Action{ActHeartbeat{Target: t.ID, Incarnation: t.Incarnation, Payload: ev.Payload}}
		}
		previous := t.Incarnation
		m.revive(t)
		return []Action{ActResumed{Target: t.ID, Incarnation: t.Incarnation, Previous: previous, Payload: ev.Payload}}
	case EvConnectionLost:
		t, ok := m.targets[ev.Target]
		if !ok || t.State != Alive {
			// Declared dead once per incarnation.
			return nil
		}
		m.kill(t, Lost)
		return []Action{ActLost{Target: t.ID, Incarnation: t.Incarnation, Reason: ev.Reason}}
	default:
		panic(fmt.Sprintf("heartbeat: unknown event %T", ev))
	}
	return nil
}

// revive starts a new incarnation of t, alive as of now.
func (m *Monitor) revive(t *Target) {
	m.incarnation++
	t.Incarnation = m.incarnation
	t.State = Alive
	t.LastSeen = m.now
	t.NextRequest = time.Time{}
	if !m.cfg.Passive {
		t.NextRequest = m.now.Add(m.cfg.Interval)
	}
}

func (m *Monitor) kill(t *Target, s State) {
	t.State = s
	t.NextRequest = time.Time{}
}

func (m *Monitor) tick(now time.Time) []Action {
	if now.After(m.now) {
		m.now = now
	}
	var acts []Action
	for _, id := range m.sortedIDs() {
		t := m.targets[id]
		if t.State != Alive {
			continue
		}
		// Silent for exactly Timeout is dead: the timeout has elapsed.
		if !m.now.Before(t.LastSeen.Add(m.cfg.Timeout)) {
			m.kill(t, TimedOut)
			acts = append(acts, ActTimedOut{Target: t.ID, Incarnation: t.Incarnation, LastSeen: t.LastSeen})
			continue
		}
		if !m.cfg.Passive && !m.now.Before(t.NextRequest) {
			// From now, not from the missed time: after a stalled shell,
			// one request, not a burst of them.
			t.NextRequest = m.now.Add(m.cfg.Interval)
			acts = append(acts, ActSendRequest{Target: t.ID, Incarnation: t.Incarnation})
		}
	}
	return acts
}

func (m *Monitor) sortedIDs() []string {
	ids := make([]string, 0, len(m.targets))
	for id := range m.targets {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// NextTick is when the monitor next has something to do (a request, a
// timeout); false when nothing is alive. The shell keeps one timer for it,
// set again after every Handle.
func (m *Monitor) NextTick() (time.Time, bool) {
	var next time.Time
	for _, t := range m.targets {
		if t.State != Alive {
			continue
		}
		at := t.LastSeen.Add(m.cfg.Timeout)
		if !t.NextRequest.IsZero() && t.NextRequest.Before(at) {
			at = t.NextRequest
		}
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return next, !next.IsZero()
}

// Targets lists the known targets by id (for status pages: time since the
// last heartbeat, as Flink's /taskmanagers shows).
func (m *Monitor) Targets() []Target {
	out := make([]Target, 0, len(m.targets))
	for _, id := range m.sortedIDs() {
		out = append(out, *m.targets[id])
	}
	return out
}

// Get returns one target, false when it is not known.
func (m *Monitor) Get(id string) (Target, bool) {
	t, ok := m.targets[id]
	if !ok {
		return Target{}, false
	}
	return *t, true
}
