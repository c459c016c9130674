package nexmark

import (
	"time"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/state"
	"github.com/strom-dev/strom/window"
)

// ---- q5: hot items ----------------------------------------------------------------------

// q5Count is a number of bids on an auction in a window (a pane, or a sliding window).
type q5Count struct {
	Auction, Count, Start int64
}

// countAgg counts records.
func countAgg[T any]() state.Aggregator[T, int64, int64] {
	return state.Aggregator[T, int64, int64]{
		Create: func() int64 { return 0 },
		Add:    func(n int64, _ T) int64 { return n + 1 },
		Result: func(n int64) int64 { return n },
		Merge:  func(a, b int64) int64 { return a + b },
	}
}

// query5 finds, for every 10 s window sliding by 2 s, the auctions with the most bids.
//
// A sliding window operator keyed by auction would add every bid to five windows and
// then emit one count per auction and window, to be reduced to each window's maximum.
// Instead bids are counted per auction and 2 s pane (a tumbling window: one state
// update per bid); each pane count is sent to the five windows that contain it, keyed
// by window; and each window sums its pane counts per auction and, when the watermark
// passes its end, emits the auctions with the highest sum. A window's counts thus
// arrive as one record per auction and pane, and there is one timer per window instead
// of one per auction and window.
func query5(events strom.Stream[Event], out *Output) {
	bids := strom.Filter(events, func(e Event) bool { return e.Type == BidEvent }).Name("q5: bids")
	panes := strom.WindowAggregateWith(
		strom.Window(strom.KeyBy(bids, func(e Event) int64 { return e.Bid.Auction }),
			window.Tumbling(Q5SlideMs*time.Millisecond)).Name("q5: bids per pane"),
		countAgg[Event](),
		func(auction int64, w window.TimeWindow, n int64, c strom.Collector[q5Count]) error {
			c.Collect(q5Count{Auction: auction, Count: n, Start: w.Start})
			return nil
		})
	perWindow := strom.FlatMap(panes, func(p q5Count, c strom.Collector[q5Count]) {
		for s := p.Start - (Q5WindowMs - Q5SlideMs); s <= p.Start; s += Q5SlideMs {
			c.Collect(q5Count{Auction: p.Auction, Count: p.Count, Start: s})
		}
	}).Name("q5: panes to windows")
	rows := strom.Process(strom.KeyBy(perWindow, func(p q5Count) int64 { return p.Start }),
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

// q7Buckets is the number of keys the first phase of q7 spreads bids over.
const q7Buckets = 64

// q7Max is the highest bids of a window: the price and every bid at it.
type q7Max struct {
	Price int64
	Bids  []Q7Row
}

// maxAgg keeps the highest-priced rows; the row is only built for a bid at or above
// the maximum so far.
func maxAgg[T any](price func(T) int64, row func(T) Q7Row) state.Aggregator[T, q7Max, q7Max] {
	return state.Aggregator[T, q7Max, q7Max]{
		Create: func() q7Max { return q7Max{} },
		Add: func(m q7Max, v T) q7Max {
			switch p := price(v); {
			case len(m.Bids) == 0 || p > m.Price:
				m.Price, m.Bids = p, append(m.Bids[:0], row(v))
			case p == m.Price:
				m.Bids = append(m.Bids, row(v))
			}
			return m
		},
		Result: func(m q7Max) q7Max { return m },
	}
}

func emitMax(_ int64, _ window.TimeWindow, m q7Max, c strom.Collector[Q7Row]) error {
	for _, r := range m.Bids {
		c.Collect(r)
	}
	return nil
}

// query7 finds the highest bids of every 10 s tumbling window, in two phases: the bids,
// spread over q7Buckets keys, are reduced in parallel to each bucket's highest bids per
// window; those few candidates are then reduced per window.
func query7(events strom.Stream[Event], out *Output) {
	bids := strom.Filter(events, func(e Event) bool { return e.Type == BidEvent }).Name("q7: bids")
	tumbling := window.Tumbling(Q7WindowMs * time.Millisecond)
	candidates := strom.WindowAggregateWith(
		strom.Window(strom.KeyBy(bids, func(e Event) int64 { return (e.Bid.Bidder ^ e.Bid.DateTime ^ e.Bid.Price) % q7Buckets }),
			tumbling).Name("q7: highest bids per bucket"),
		maxAgg(func(e Event) int64 { return e.Bid.Price }, func(e Event) Q7Row {
			b := e.Bid
			return Q7Row{Auction: b.Auction, Price: b.Price, Bidder: b.Bidder, DateTime: b.DateTime, Extra: b.Extra}
		}),
		emitMax)
	rows := strom.WindowAggregateWith(
		strom.Window(strom.KeyBy(candidates, func(r Q7Row) int64 { return window.StartWithOffset(r.DateTime, 0, Q7WindowMs) }),
			tumbling).Name("q7: highest bids"),
		maxAgg(func(r Q7Row) int64 { return r.Price }, func(r Q7Row) Q7Row { return r }),
		emitMax)
	sinkRows(rows, out)
}
