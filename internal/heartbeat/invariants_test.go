package heartbeat

import (
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// TestInvariants feeds random event sequences — heartbeats of unknown,
// removed and dead targets, repeated losses, re-adds, ticks that stall or
// go back — and checks against a model of what the monitor was told:
//
//   - a target is declared dead (timed out or lost) at most once per
//     incarnation, and only while alive;
//   - never timed out before Timeout has elapsed since its last sign of
//     life, and always by the first tick at or after that;
//   - incarnations only grow, and a new one starts exactly on an add or a
//     resume (a heartbeat of a dead target), never silently;
//   - payloads reach the owner only from live targets (ActHeartbeat) or
//     with a resume, never from removed or unknown ones;
//   - requests go only to live targets of an active monitor, at most one
//     per Interval per incarnation, and none is ever skipped: after each
//     tick no live target's request is overdue.
func TestInvariants(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		interval := time.Duration(rapid.IntRange(1, 4).Draw(t, "interval")) * 250 * time.Millisecond
		cfg := Config{
			Interval: interval,
			Timeout:  interval + time.Duration(rapid.IntRange(0, 8).Draw(t, "timeout extra"))*250*time.Millisecond,
			Passive:  rapid.IntRange(0, 4).Draw(t, "passive") == 0,
		}
		m, err := New(cfg, epoch)
		if err != nil {
			t.Fatal(err)
		}
		type model struct {
			inc         int
			alive       bool
			dead        bool // declared dead in this incarnation
			lastSeen    time.Time
			lastRequest time.Time // of this incarnation
		}
		known := map[string]*model{}
		now := epoch
		lastInc := 0
		ids := []string{"a", "b", "c", "d"}

		newIncarnation := func(id string, inc int) *model {
			if inc <= lastInc {
				t.Fatalf("incarnation %d of %s after %d", inc, id, lastInc)
			}
			lastInc = inc
			// A new incarnation's requests are scheduled from now (an
			// added one's first goes at once, checked below).
			k := &model{inc: inc, alive: true, lastSeen: now, lastRequest: now}
			known[id] = k
			return k
		}
		for range rapid.IntRange(50, 300).Draw(t, "events") {
			var ev Event
			id := rapid.SampledFrom(ids).Draw(t, "target")
			switch rapid.IntRange(0, 9).Draw(t, "event") {
			case 0, 1, 2, 3:
				step := time.Duration(rapid.IntRange(-1, 12).Draw(t, "tick")) * 125 * time.Millisecond
				if step > 0 {
					now = now.Add(step)
				}
				ev = EvTick{Now: m.Now().Add(step)}
			case 4:
				ev = EvAdd{Target: id}
			case 5:
				ev = EvRemove{Target: id}
			case 6, 7, 8:
				ev = EvHeartbeat{Target: id, Payload: id}
			case 9:
				ev = EvConnectionLost{Target: id, Reason: "reset"}
			}
			requested := map[string]bool{}
			acts := m.Handle(ev)
			if add, ok := ev.(EvAdd); ok {
				tgt, _ := m.Get(add.Target)
				newIncarnation(add.Target, tgt.Incarnation)
				// The first request to an added target goes at once and
				// names its new incarnation; it is the only action.
				want := []Action{ActSendRequest{Target: add.Target, Incarnation: tgt.Incarnation}}
				if cfg.Passive {
					want = nil
				}
				if !slices.Equal(acts, want) {
					t.Fatalf("%#v on %#v", acts, ev)
				}
			}
			for _, a := range acts {
				switch a := a.(type) {
				case ActSendRequest:
					k := known[a.Target]
					if cfg.Passive || k == nil || !k.alive || k.inc != a.Incarnation || requested[a.Target] {
						t.Fatalf("%#v on %#v: model %+v, passive %v", a, ev, k, cfg.Passive)
					}
					if _, add := ev.(EvAdd); !add && now.Sub(k.lastRequest) < cfg.Interval {
						t.Fatalf("%#v at %v: the last went at %v", a, rel(now), rel(k.lastRequest))
					}
					requested[a.Target] = true
					k.lastRequest = now
				case ActHeartbeat:
					k := known[a.Target]
					if k == nil || !k.alive || k.inc != a.Incarnation || a.Payload != a.Target {
						t.Fatalf("%#v on %#v: model %+v", a, ev, k)
					}
					k.lastSeen = now
				case ActTimedOut, ActLost:
					target, inc := "", 0
					if to, ok := a.(ActTimedOut); ok {
						target, inc = to.Target, to.Incarnation
						if k := known[target]; k != nil && now.Sub(k.lastSeen) < cfg.Timeout {
							t.Fatalf("%#v at %v: last seen %v, timeout %v", a, rel(now), rel(k.lastSeen), cfg.Timeout)
						}
						if !to.LastSeen.Equal(known[target].lastSeen) {
							t.Fatalf("%#v: model last seen %v", a, rel(known[target].lastSeen))
						}
					} else {
						l := a.(ActLost)
						target, inc = l.Target, l.Incarnation
						if lost, ok := ev.(EvConnectionLost); !ok || lost.Target != target {
							t.Fatalf("%#v on %#v", a, ev)
						}
					}
					k := known[target]
					if k == nil || !k.alive || k.dead || k.inc != inc {
						t.Fatalf("%#v on %#v: model %+v", a, ev, k)
					}
					k.alive, k.dead = false, true
				case ActResumed:
					k := known[a.Target]
					if k == nil || k.alive || k.inc != a.Previous || a.Payload != a.Target {
						t.Fatalf("%#v on %#v: model %+v", a, ev, k)
					}
					if hb, ok := ev.(EvHeartbeat); !ok || hb.Target != a.Target {
						t.Fatalf("%#v on %#v", a, ev)
					}
					newIncarnation(a.Target, a.Incarnation)
				default:
					t.Fatalf("unknown action %T", a)
				}
			}
			switch ev := ev.(type) {
			case EvRemove:
				delete(known, ev.Target)
			case EvHeartbeat:
				if k := known[ev.Target]; k != nil && k.alive && !k.lastSeen.Equal(now) {
					t.Fatalf("heartbeat of live %s not reported", ev.Target)
				}
			case EvConnectionLost:
				if k := known[ev.Target]; k != nil && k.alive {
					t.Fatalf("loss of live %s not reported", ev.Target)
				}
			case EvTick:
				// Every deadline and request due by now was acted on.
				for id, k := range known {
					if !k.alive {
						continue
					}
					if now.Sub(k.lastSeen) >= cfg.Timeout {
						t.Fatalf("%s alive at %v, last seen %v, timeout %v", id, rel(now), rel(k.lastSeen), cfg.Timeout)
					}
					if !cfg.Passive && now.Sub(k.lastRequest) >= cfg.Interval {
						t.Fatalf("%s: no request at %v, the last went at %v", id, rel(now), rel(k.lastRequest))
					}
				}
			}
			// The monitor agrees with the model on who is known and alive.
			if len(m.Targets()) != len(known) {
				t.Fatalf("monitor knows %v, model %d targets", m.Targets(), len(known))
			}
			for _, tgt := range m.Targets() {
				k := known[tgt.ID]
				if k == nil || k.inc != tgt.Incarnation || k.alive != (tgt.State == Alive) || !k.lastSeen.Equal(tgt.LastSeen) {
					t.Fatalf("monitor %+v, model %+v", tgt, k)
				}
				if next, ok := m.NextTick(); tgt.State == Alive && (!ok || next.After(tgt.LastSeen.Add(cfg.Timeout))) {
					t.Fatalf("next tick %v after %s's deadline", next, tgt.ID)
				}
			}
		}
	})
}
