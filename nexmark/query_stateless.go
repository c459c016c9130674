package nexmark

import "github.com/strom-dev/strom"

// The stateless queries: one chained FlatMap per source subtask that picks the bids and
// builds the row, so a bid never leaves the task that generated it.

// query0 is the pass-through: every bid as it is.
func query0(events strom.Stream[Event], out *Output) {
	rows := strom.FlatMap(events, func(e Event, c strom.Collector[Q0Row]) {
		if e.Type == BidEvent {
			b := e.Bid
			c.Collect(Q0Row{Auction: b.Auction, Bidder: b.Bidder, Price: b.Price, Channel: b.Channel,
				URL: b.URL, DateTime: b.DateTime, Extra: b.Extra})
		}
	}).Name("q0: bids")
	sinkRows(rows, out)
}

// query1 converts every bid's price from dollars to euros.
func query1(events strom.Stream[Event], out *Output) {
	rows := strom.FlatMap(events, func(e Event, c strom.Collector[Q1Row]) {
		if e.Type == BidEvent {
			b := e.Bid
			c.Collect(Q1Row{Auction: b.Auction, Bidder: b.Bidder, Price: Q1Price(b.Price),
				DateTime: b.DateTime, Extra: b.Extra})
		}
	}).Name("q1: currency conversion")
	sinkRows(rows, out)
}

// query2 selects the bids on every Q2Modulus-th auction.
func query2(events strom.Stream[Event], out *Output) {
	rows := strom.FlatMap(events, func(e Event, c strom.Collector[Q2Row]) {
		if e.Type == BidEvent && e.Bid.Auction%Q2Modulus == 0 {
			c.Collect(Q2Row{Auction: e.Bid.Auction, Price: e.Bid.Price})
		}
	}).Name("q2: selection")
	sinkRows(rows, out)
}
