package nexmark

import (
	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/state"
)

// ---- q11: user sessions -----------------------------------------------------------------

// q11Open is one open session of a bidder: the first and last bid times and the
// number of bids.
type q11Open struct {
	Start, Last, Count int64
}

var q11SessionsDesc = state.ValueDescriptor[[]q11Open]{Name: "sessions"}

// query11 counts the bids of every bidder's session, a session ending after Q11GapMs
// without bids. It is a KeyedProcessFunction rather than an event-time session window,
// for two reasons:
//
//   - semantics: two bids exactly Q11GapMs apart belong to the same session, so a
//     session may only end once no bid at last+gap can come, that is when the
//     watermark reaches last+gap. A session window [first, last+gap) fires one
//     millisecond earlier, at its max timestamp last+gap-1, when such a bid may still
//     arrive;
//   - cost: a merging window operator merges the new bid's window into the session for
//     every bid (window set, trigger and timer bookkeeping); here a bid updates the
//     bidder's (almost always single) session in place.
//
// Timers are lazy: a session registers one at last+gap when it opens, and when that
// fires after the session grew, it registers again at the new end — one timer per gap
// of session length instead of one per bid.
func query11(events strom.Stream[Event], out *Output) {
	bids := strom.Filter(events, func(e Event) bool { return e.Type == BidEvent }).Name("q11: bids")
	rows := strom.KeyedProcess(strom.KeyBy(bids, func(e Event) int64 { return e.Bid.Bidder }),
		func() strom.KeyedProcessFunction[int64, Event, Q11Row] { return &q11Sessions{} }).Name("q11: sessions")
	sinkRows(rows, out)
}

type q11Sessions struct {
	sessions state.ValueState[[]q11Open]
}

func (f *q11Sessions) Open(ctx *strom.KeyedContext[int64, Q11Row]) error {
	var err error
	f.sessions, err = state.GetValue(ctx, q11SessionsDesc)
	return err
}

func (f *q11Sessions) ProcessElement(ctx *strom.KeyedContext[int64, Q11Row], e Event) error {
	t := e.Bid.DateTime
	ss, _ := f.sessions.Value()
	hit := -1
	for i := 0; i < len(ss); i++ {
		s := &ss[i]
		if t < s.Start-Q11GapMs || t > s.Last+Q11GapMs {
			continue
		}
		if hit < 0 {
			hit = i
			s.Start, s.Last, s.Count = min(s.Start, t), max(s.Last, t), s.Count+1
			continue
		}
		// t bridges two sessions: merge s into the first.
		h := &ss[hit]
		h.Start, h.Last, h.Count = min(h.Start, s.Start), max(h.Last, s.Last), h.Count+s.Count
		ss[i] = ss[len(ss)-1]
		ss = ss[:len(ss)-1]
		i--
	}
	if hit < 0 {
		ss = append(ss, q11Open{Start: t, Last: t, Count: 1})
		ctx.RegisterEventTimeTimer(t + Q11GapMs)
	}
	f.sessions.Update(ss)
	return nil
}

func (f *q11Sessions) OnTimer(ctx *strom.KeyedContext[int64, Q11Row], ts int64) error {
	ss, _ := f.sessions.Value()
	for i := 0; i < len(ss); i++ {
		s := ss[i]
		end := s.Last + Q11GapMs
		if end > ts {
			ctx.RegisterEventTimeTimer(end) // the session grew since this timer was set
			continue
		}
		ctx.Collect(Q11Row{Bidder: ctx.Key(), BidCount: s.Count, StartTime: s.Start, EndTime: end})
		ss[i] = ss[len(ss)-1]
		ss = ss[:len(ss)-1]
		i--
	}
	if len(ss) == 0 {
		f.sessions.Clear()
	} else {
		f.sessions.Update(ss)
	}
	return nil
}
