package nexmark

import (
	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/state"
)

// q4 and q9 share the winning-bid operator: auctions and bids keyed by auction id, each
// auction closed by an event-time timer at its expiry with its best qualifying bid.

// bidWin is the part of a bid that decides and reports an auction's win.
type bidWin struct {
	Price, DateTime, Bidder int64
	Extra                   string
}

func (w *bidWin) beats(o *bidWin) bool {
	return BetterBid(w.Price, w.DateTime, w.Bidder, w.Extra, o.Price, o.DateTime, o.Bidder, o.Extra)
}

// auctionState is one auction's state in the winning-bid operator. After the auction
// closes, a tombstone (Closed) stays for a while so that the many bids that still arrive
// for it (the generator keeps bidding on the hot auction after it expired, and on
// random recent ones) are dropped with one state lookup.
type auctionState struct {
	Auction *Auction
	Best    bidWin
	HasBest bool
	Closed  bool
}

// tombstoneUntil is when (event time) a closed auction's tombstone goes: as long after
// the close as the auction was open, which scales with the stream's event-time rate (the
// generator's auction lengths do) and keeps the state small. A bid for the auction after
// that takes the pending path below, which is correct, only slower.
func tombstoneUntil(a *Auction) int64 { return a.Expires + max(a.Expires-a.DateTime, 1) }

var (
	auctionDesc = state.ValueDescriptor[auctionState]{Name: "auction"}
	pendingDesc = state.ListDescriptor[bidWin]{Name: "pending-bids"}
)

// winningBids is Flink's q4/q9 core, written as a KeyedProcessFunction: per auction id it
// keeps the auction and its best bid so far among those within [dateTime, expires], and
// when the watermark reaches expires — no bid with dateTime <= expires can come any
// more — it emits close(auction, best) if some bid qualified.
//
// A bid can arrive before its auction (the generator bids a few ids ahead; with
// disorder the auction may also simply be late). Such bids wait in list state with an
// event-time timer at the first one's dateTime: once the watermark passes a pending
// bid's dateTime, every auction still to come starts after it, so it can never qualify
// and is dropped.
type winningBids[OUT any] struct {
	close   func(a *Auction, best *bidWin) OUT
	auction state.ValueState[auctionState]
	pending state.ListState[bidWin]
}

func (f *winningBids[OUT]) Open(ctx *strom.KeyedContext[int64, OUT]) error {
	var err error
	if f.auction, err = state.GetValue(ctx, auctionDesc); err != nil {
		return err
	}
	f.pending, err = state.GetList(ctx, pendingDesc)
	return err
}

func (f *winningBids[OUT]) ProcessElement(ctx *strom.KeyedContext[int64, OUT], e Event) error {
	if e.Type == AuctionEvent {
		a := e.Auction
		st := auctionState{Auction: a}
		if bids := f.pending.Get(); len(bids) > 0 {
			for i := range bids {
				st.offer(&bids[i])
			}
			f.pending.Clear()
		}
		f.auction.Update(st)
		ctx.RegisterEventTimeTimer(a.Expires)
		return nil
	}
	b := e.Bid
	w := bidWin{Price: b.Price, DateTime: b.DateTime, Bidder: b.Bidder, Extra: b.Extra}
	if st, ok := f.auction.Value(); ok {
		if !st.Closed && st.offer(&w) {
			f.auction.Update(st)
		}
		return nil
	}
	if b.DateTime <= ctx.CurrentWatermark() {
		return nil // every auction still to come starts after this bid
	}
	pending := f.pending.Get()
	if len(pending) == 0 {
		ctx.RegisterEventTimeTimer(b.DateTime)
	}
	f.pending.Add(w)
	return nil
}

// offer makes w the best bid if it qualifies and beats the best so far.
func (st *auctionState) offer(w *bidWin) bool {
	a := st.Auction
	if w.DateTime < a.DateTime || w.DateTime > a.Expires {
		return false
	}
	if st.HasBest && !w.beats(&st.Best) {
		return false
	}
	st.Best, st.HasBest = *w, true
	return true
}

func (f *winningBids[OUT]) OnTimer(ctx *strom.KeyedContext[int64, OUT], ts int64) error {
	st, ok := f.auction.Value()
	switch {
	case ok && st.Closed:
		if ts >= tombstoneUntil(st.Auction) {
			f.auction.Clear()
		}
	case ok:
		if ts != st.Auction.Expires {
			return nil // a pending-bid timer from before the auction arrived
		}
		if st.HasBest {
			ctx.Collect(f.close(st.Auction, &st.Best))
		}
		f.auction.Update(auctionState{Auction: st.Auction, Closed: true})
		ctx.RegisterEventTimeTimer(tombstoneUntil(st.Auction))
	default:
		// Drop the pending bids the watermark has passed; wait for the others.
		bids := f.pending.Get()
		keep := make([]bidWin, 0, len(bids))
		next := int64(0)
		for _, w := range bids {
			if w.DateTime > ts {
				if len(keep) == 0 || w.DateTime < next {
					next = w.DateTime
				}
				keep = append(keep, w)
			}
		}
		if len(keep) == 0 {
			f.pending.Clear()
			return nil
		}
		f.pending.Update(keep)
		ctx.RegisterEventTimeTimer(next)
	}
	return nil
}

// closedAuctions is the stream of close(auction, winning bid) for every auction with a
// qualifying bid.
func closedAuctions[OUT any](events strom.Stream[Event], name string, close func(a *Auction, best *bidWin) OUT) strom.Stream[OUT] {
	sides := strom.Filter(events, func(e Event) bool {
		return e.Type == AuctionEvent || e.Type == BidEvent
	}).Name(name + ": auctions and bids")
	byAuction := strom.KeyBy(sides, func(e Event) int64 {
		if e.Type == BidEvent {
			return e.Bid.Auction
		}
		return e.Auction.ID
	})
	return strom.KeyedProcess(byAuction, func() strom.KeyedProcessFunction[int64, Event, OUT] {
		return &winningBids[OUT]{close: close}
	}).Name(name + ": winning bids")
}

// ---- q4: average price per category ----------------------------------------------------

// q4Win is a closed auction's category and winning price.
type q4Win struct{ Category, Price int64 }

type q4Sum struct{ Sum, Count int64 }

var q4SumDesc = state.ValueDescriptor[q4Sum]{Name: "category-sum"}

// query4 emits, every time an auction closes, its category's average winning price so
// far: winning bids, then a running sum and count per category (Q4Average of the exact
// integer sum, as the reference computes it).
func query4(events strom.Stream[Event], out *Output) {
	wins := closedAuctions(events, "q4", func(a *Auction, best *bidWin) q4Win {
		return q4Win{Category: a.Category, Price: best.Price}
	})
	rows := strom.KeyedProcessFunc(strom.KeyBy(wins, func(w q4Win) int64 { return w.Category }),
		func(ctx *strom.KeyedContext[int64, Q4Row], w q4Win) error {
			s, err := state.GetValue(ctx, q4SumDesc)
			if err != nil {
				return err
			}
			acc, _ := s.Value()
			acc.Sum += w.Price
			acc.Count++
			s.Update(acc)
			ctx.Collect(Q4Row{ID: w.Category, Final: Q4Average(acc.Sum, acc.Count)})
			return nil
		}).Name("q4: average per category")
	sinkRows(rows, out)
}

// ---- q9: winning bids -------------------------------------------------------------------

// query9 emits every closed auction with its winning bid.
func query9(events strom.Stream[Event], out *Output) {
	rows := closedAuctions(events, "q9", func(a *Auction, best *bidWin) Q9Row {
		return Q9Row{Auction: *a, BidAuction: a.ID, Bidder: best.Bidder, Price: best.Price,
			BidDateTime: best.DateTime, BidExtra: best.Extra}
	})
	sinkRows(rows, out)
}
