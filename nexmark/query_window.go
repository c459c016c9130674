package nexmark

import (
	"errors"
	"math"
	"slices"
	"time"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/state"
	"github.com/strom-dev/strom/window"
)

// q5 and q7 aggregate in two steps. The first runs in the task that reads the events
// (strom.Process, chained to the source): each subtask buffers its own bids per
// window — a pane count per auction for q5, the highest bids for q7 — and emits a
// window's buffer when its watermark completes the window (end − 1 ≤ watermark), before
// that watermark goes downstream. So only these partial results cross the shuffle, not
// every bid, and they are never late at the keyed phase that combines them: every
// channel's partials precede the channel's watermark that would close their window.
//
// Before a checkpoint's barrier both emit what they buffer (PrepareSnapshot), so a
// restored job loses no bid that only this phase had seen.
//
// A bid that arrives after its window was emitted here (later than this subtask's own
// watermark allows, which the generator never produces) is passed on alone, and the
// keyed phase decides whether it is late by its own watermark, exactly as it did when
// every bid went through it.

var errBidWithoutTimestamp = errors.New("bid without event timestamp: assign timestamps (nexmark.Events does)")

// localWindows buffers per-window state S of one subtask, keyed by window start, with a
// one-entry cache for the window of the last bid (nearly every bid falls into the
// newest window) and the earliest window end, so most watermarks cost one comparison.
type localWindows[S any] struct {
	size     int64
	wins     map[int64]*S
	spare    []*S
	cur      *S
	curStart int64
	minEnd   int64 // earliest end among wins; MaxInt64 if none
	due      []int64
}

func newLocalWindows[S any](size int64) localWindows[S] {
	return localWindows[S]{size: size, wins: map[int64]*S{}, minEnd: math.MaxInt64}
}

// get returns the state of the window starting at start, creating it (from spare, reset
// by the caller's emit) if needed; nil if the watermark wm has already completed it.
func (l *localWindows[S]) get(start, wm int64) *S {
	if l.cur != nil && start == l.curStart {
		return l.cur
	}
	end := start + l.size
	if end-1 <= wm {
		return nil
	}
	s := l.wins[start]
	if s == nil {
		if n := len(l.spare); n > 0 {
			s, l.spare = l.spare[n-1], l.spare[:n-1]
		} else {
			s = new(S)
		}
		l.wins[start] = s
		l.minEnd = min(l.minEnd, end)
	}
	l.cur, l.curStart = s, start
	return s
}

// fire calls emit, in window order, for every window that watermark wm completes, then
// recycles its state; emit must leave the state empty.
func (l *localWindows[S]) fire(wm int64, emit func(start int64, s *S)) {
	if wm < l.minEnd-1 {
		return
	}
	l.due = l.due[:0]
	l.minEnd = math.MaxInt64
	for start := range l.wins {
		if end := start + l.size; end-1 <= wm {
			l.due = append(l.due, start)
		} else {
			l.minEnd = min(l.minEnd, end)
		}
	}
	slices.Sort(l.due)
	for _, start := range l.due {
		s := l.wins[start]
		emit(start, s)
		delete(l.wins, start)
		l.spare = append(l.spare, s)
		if s == l.cur {
			l.cur = nil
		}
	}
}

// ---- q5: hot items ----------------------------------------------------------------------

// q5Count is a number of bids on an auction in a window (a pane, or a sliding window).
type q5Count struct {
	Auction, Count, Start int64
}

// sumCounts adds up pane counts.
var sumCounts = state.Aggregator[q5Count, int64, int64]{
	Create: func() int64 { return 0 },
	Add:    func(n int64, c q5Count) int64 { return n + c.Count },
	Result: func(n int64) int64 { return n },
	Merge:  func(a, b int64) int64 { return a + b },
}

// q5Panes counts one subtask's bids per 2 s pane and auction, and emits a pane's counts
// (timestamped with the pane's max timestamp) once the watermark completes the pane.
type q5Panes struct {
	panes localWindows[map[int64]int64]
}

func (f *q5Panes) ProcessElement(ctx *strom.ProcessContext[q5Count], e Event) error {
	if e.Type != BidEvent {
		return nil
	}
	ts, ok := ctx.Timestamp()
	if !ok {
		return errBidWithoutTimestamp
	}
	start := window.StartWithOffset(ts, 0, Q5SlideMs)
	m := f.panes.get(start, ctx.CurrentWatermark())
	if m == nil { // the pane was emitted already: pass the bid on alone
		ctx.Collect(q5Count{Auction: e.Bid.Auction, Count: 1, Start: start})
		return nil
	}
	if *m == nil {
		*m = map[int64]int64{}
	}
	(*m)[e.Bid.Auction]++
	return nil
}

func (f *q5Panes) OnWatermark(ctx *strom.ProcessContext[q5Count], wm int64) error {
	f.panes.fire(wm, func(start int64, m *map[int64]int64) {
		for a, n := range *m {
			ctx.CollectAt(q5Count{Auction: a, Count: n, Start: start}, start+Q5SlideMs-1)
		}
		clear(*m)
	})
	return nil
}

// PrepareSnapshot emits the pane counts buffered so far, before a checkpoint's
// barrier: the keyed phase sums pane counts, so a pane may arrive in parts, and no bid
// that the snapshot's source position has passed lives only in this function's memory
// (which a snapshot does not hold). The panes stay open for the bids after it.
func (f *q5Panes) PrepareSnapshot(ctx *strom.ProcessContext[q5Count]) error {
	for start, m := range f.panes.wins {
		for a, n := range *m {
			ctx.CollectAt(q5Count{Auction: a, Count: n, Start: start}, start+Q5SlideMs-1)
		}
		clear(*m)
	}
	return nil
}

// Finish emits what no watermark completed (nothing, after the final watermark).
func (f *q5Panes) Finish(ctx *strom.ProcessContext[q5Count]) error {
	return f.OnWatermark(ctx, math.MaxInt64)
}

// query5 finds, for every 10 s window sliding by 2 s, the auctions with the most bids.
//
// A sliding window operator keyed by auction would add every bid to five windows and
// then emit one count per auction and window, to be reduced to each window's maximum.
// Instead bids are counted per auction and 2 s pane, first in each source subtask
// (q5Panes), then those partial counts are summed per auction and pane (a tumbling
// window keyed by auction); each pane count is sent to the five windows that contain it,
// keyed by window; and each window sums its pane counts per auction and, when the
// watermark passes its end, emits the auctions with the highest sum. So a bid costs one
// map increment in the task that reads it, a window's counts arrive as one record per
// auction and pane, and there is one timer per window instead of one per auction and
// window.
func query5(events strom.Stream[Event], out *Output) {
	local := strom.Process(events, func() strom.ProcessFunction[Event, q5Count] {
		return &q5Panes{panes: newLocalWindows[map[int64]int64](Q5SlideMs)}
	}).Name("q5: bids per pane and subtask")
	panes := strom.WindowAggregateWith(
		strom.Window(strom.KeyBy(local, func(c q5Count) int64 { return c.Auction }),
			window.Tumbling(Q5SlideMs*time.Millisecond)).Name("q5: bids per pane"),
		sumCounts,
		func(ctx *strom.WindowContext[int64, q5Count], n int64) error {
			ctx.Collect(q5Count{Auction: ctx.Key(), Count: n, Start: ctx.Window().Start})
			return nil
		})
	perWindow := strom.FlatMap(panes, func(p q5Count, c strom.Collector[q5Count]) {
		for s := p.Start - (Q5WindowMs - Q5SlideMs); s <= p.Start; s += Q5SlideMs {
			c.Collect(q5Count{Auction: p.Auction, Count: p.Count, Start: s})
		}
	}).Name("q5: panes to windows")
	rows := strom.KeyedProcess(strom.KeyBy(perWindow, func(p q5Count) int64 { return p.Start }),
		func() strom.KeyedProcessFunction[int64, q5Count, Q5Row] { return &q5Hottest{} }).Name("q5: hottest per window")
	sinkRows(rows, out)
}

var q5CountsDesc = state.MapDescriptor[int64, int64]{Name: "bids-per-auction"}

// q5Hottest sums one window's pane counts per auction (the window's start is the key)
// and emits the auctions with the highest sum when the watermark reaches the window's
// max timestamp: by then every pane of the window has ended, and the pane counts are
// emitted before the watermark that ends their pane.
type q5Hottest struct {
	counts  state.MapState[int64, int64]
	winners []int64
}

func (f *q5Hottest) Open(ctx *strom.KeyedContext[int64, Q5Row]) error {
	var err error
	f.counts, err = state.GetMap(ctx, q5CountsDesc)
	return err
}

func (f *q5Hottest) ProcessElement(ctx *strom.KeyedContext[int64, Q5Row], p q5Count) error {
	if f.counts.IsEmpty() {
		ctx.RegisterEventTimeTimer(p.Start + Q5WindowMs - 1)
	}
	n, _ := f.counts.Get(p.Auction)
	f.counts.Put(p.Auction, n+p.Count)
	return nil
}

func (f *q5Hottest) OnTimer(ctx *strom.KeyedContext[int64, Q5Row], _ int64) error {
	start := ctx.Key()
	best := int64(0)
	f.winners = f.winners[:0]
	for a, n := range f.counts.Entries() {
		switch {
		case n > best:
			best, f.winners = n, append(f.winners[:0], a)
		case n == best:
			f.winners = append(f.winners, a)
		}
	}
	for _, a := range f.winners {
		ctx.Collect(Q5Row{Auction: a, Num: best, StartTime: start, EndTime: start + Q5WindowMs})
	}
	f.counts.Clear()
	return nil
}

// ---- q7: highest bid ----------------------------------------------------------------------

// q7Max is the highest bids of a window: the price and every bid at it.
type q7Max struct {
	Price int64
	Bids  []Q7Row
}

// add keeps r if its price is at or above the maximum so far.
func (m *q7Max) add(r Q7Row) {
	switch {
	case len(m.Bids) == 0 || r.Price > m.Price:
		clear(m.Bids)
		m.Price, m.Bids = r.Price, append(m.Bids[:0], r)
	case r.Price == m.Price:
		m.Bids = append(m.Bids, r)
	}
}

// maxAgg keeps the highest-priced rows.
var maxAgg = state.Aggregator[Q7Row, q7Max, q7Max]{
	Create: func() q7Max { return q7Max{} },
	Add: func(m q7Max, r Q7Row) q7Max {
		m.add(r)
		return m
	},
	Result: func(m q7Max) q7Max { return m },
}

func emitMax(ctx *strom.WindowContext[int64, Q7Row], m q7Max) error {
	for _, r := range m.Bids {
		ctx.Collect(r)
	}
	return nil
}

func q7RowOf(b *Bid) Q7Row {
	return Q7Row{Auction: b.Auction, Price: b.Price, Bidder: b.Bidder, DateTime: b.DateTime, Extra: b.Extra}
}

// q7Candidates keeps, per 10 s window, one subtask's highest price and the bids at it,
// and emits them (timestamped with the window's max timestamp) once the watermark
// completes the window.
type q7Candidates struct {
	wins localWindows[q7Max]
}

func (f *q7Candidates) ProcessElement(ctx *strom.ProcessContext[Q7Row], e Event) error {
	if e.Type != BidEvent {
		return nil
	}
	ts, ok := ctx.Timestamp()
	if !ok {
		return errBidWithoutTimestamp
	}
	m := f.wins.get(window.StartWithOffset(ts, 0, Q7WindowMs), ctx.CurrentWatermark())
	switch b := e.Bid; {
	case m == nil: // the window was emitted already: pass the bid on alone
		ctx.Collect(q7RowOf(b))
	case len(m.Bids) == 0 || b.Price >= m.Price: // build the row only for a candidate
		m.add(q7RowOf(b))
	}
	return nil
}

func (f *q7Candidates) OnWatermark(ctx *strom.ProcessContext[Q7Row], wm int64) error {
	f.wins.fire(wm, func(start int64, m *q7Max) {
		for _, r := range m.Bids {
			ctx.CollectAt(r, start+Q7WindowMs-1)
		}
		clear(m.Bids) // drop string references
		m.Bids = m.Bids[:0]
	})
	return nil
}

// PrepareSnapshot emits each window's candidates so far, before a checkpoint's
// barrier, for the same reason as q5Panes: the keyed phase keeps the highest of all
// candidates it gets, so a window may arrive in parts, and each bid is emitted once
// (the window's buffer starts again empty).
func (f *q7Candidates) PrepareSnapshot(ctx *strom.ProcessContext[Q7Row]) error {
	for start, m := range f.wins.wins {
		for _, r := range m.Bids {
			ctx.CollectAt(r, start+Q7WindowMs-1)
		}
		clear(m.Bids)
		m.Bids = m.Bids[:0]
	}
	return nil
}

// Finish emits what no watermark completed (nothing, after the final watermark).
func (f *q7Candidates) Finish(ctx *strom.ProcessContext[Q7Row]) error {
	return f.OnWatermark(ctx, math.MaxInt64)
}

// query7 finds the highest bids of every 10 s tumbling window, in two phases: each
// source subtask keeps its highest bids per window (q7Candidates), and those few
// candidates are reduced per window.
func query7(events strom.Stream[Event], out *Output) {
	candidates := strom.Process(events, func() strom.ProcessFunction[Event, Q7Row] {
		return &q7Candidates{wins: newLocalWindows[q7Max](Q7WindowMs)}
	}).Name("q7: highest bids per subtask")
	rows := strom.WindowAggregateWith(
		strom.Window(strom.KeyBy(candidates, func(r Q7Row) int64 { return window.StartWithOffset(r.DateTime, 0, Q7WindowMs) }),
			window.Tumbling(Q7WindowMs*time.Millisecond)).Name("q7: highest bids"),
		maxAgg, emitMax)
	sinkRows(rows, out)
}

var (
	_ strom.ProcessSnapshotHook[q5Count] = (*q5Panes)(nil)
	_ strom.ProcessSnapshotHook[Q7Row]   = (*q7Candidates)(nil)
)
