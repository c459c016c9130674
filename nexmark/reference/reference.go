// Package reference is the test oracle for the Nexmark queries: deliberately simple
// implementations over the whole event slice in memory, written as literal readings of
// the query definitions (enumerate every window, scan every auction's bids, sort each
// bidder's bids) and sharing no algorithm with the incremental baseline or the engine.
// It ignores arrival order and watermarks entirely, so it gives the result that any
// correct event-time implementation must reach when no event is late.
package reference

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/strom-dev/strom/nexmark"
)

// Run computes query over events. For q4 the rows are in auction close order (expires,
// then auction id); for every other query the order is unspecified: compare results
// with Canonical.
func Run(query string, events []nexmark.Event) ([]nexmark.Row, error) {
	var persons []*nexmark.Person
	var auctions []*nexmark.Auction
	var bids []*nexmark.Bid
	for i, e := range events {
		switch {
		case e.Type == nexmark.PersonEvent && e.Person != nil:
			persons = append(persons, e.Person)
		case e.Type == nexmark.AuctionEvent && e.Auction != nil:
			auctions = append(auctions, e.Auction)
		case e.Type == nexmark.BidEvent && e.Bid != nil:
			bids = append(bids, e.Bid)
		default:
			return nil, fmt.Errorf("reference %s: event %d: type %d without its member", query, i, e.Type)
		}
	}
	switch query {
	case "q0":
		return q0(bids), nil
	case "q1":
		return q1(bids), nil
	case "q2":
		return q2(bids), nil
	case "q3":
		return q3(persons, auctions), nil
	case "q4":
		return q4(auctions, bids), nil
	case "q5":
		return q5(bids), nil
	case "q7":
		return q7(bids), nil
	case "q8":
		return q8(persons, auctions), nil
	case "q9":
		return q9(auctions, bids), nil
	case "q11":
		return q11(bids), nil
	}
	return nil, fmt.Errorf("reference: unknown query %q (valid: %s)", query, strings.Join(nexmark.Queries, ", "))
}

func q0(bids []*nexmark.Bid) []nexmark.Row {
	var rows []nexmark.Row
	for _, b := range bids {
		rows = append(rows, nexmark.Q0Row{Auction: b.Auction, Bidder: b.Bidder, Price: b.Price,
			Channel: b.Channel, URL: b.URL, DateTime: b.DateTime, Extra: b.Extra})
	}
	return rows
}

func q1(bids []*nexmark.Bid) []nexmark.Row {
	var rows []nexmark.Row
	for _, b := range bids {
		rows = append(rows, nexmark.Q1Row{Auction: b.Auction, Bidder: b.Bidder,
			Price: 0.908 * float64(b.Price), DateTime: b.DateTime, Extra: b.Extra})
	}
	return rows
}

func q2(bids []*nexmark.Bid) []nexmark.Row {
	var rows []nexmark.Row
	for _, b := range bids {
		if b.Auction%123 == 0 {
			rows = append(rows, nexmark.Q2Row{Auction: b.Auction, Price: b.Price})
		}
	}
	return rows
}

// q3 is the relational join: every (auction, person) pair with a matching id.
func q3(persons []*nexmark.Person, auctions []*nexmark.Auction) []nexmark.Row {
	byID := map[int64][]*nexmark.Person{}
	for _, p := range persons {
		byID[p.ID] = append(byID[p.ID], p)
	}
	var rows []nexmark.Row
	for _, a := range auctions {
		if a.Category != 10 {
			continue
		}
		for _, p := range byID[a.Seller] {
			if p.State == "OR" || p.State == "ID" || p.State == "CA" {
				rows = append(rows, nexmark.Q3Row{Name: p.Name, City: p.City, State: p.State, ID: a.ID})
			}
		}
	}
	return rows
}

// winner returns a's winning bid: the first of its qualifying bids sorted by price
// (descending), then dateTime, bidder and extra (ascending).
func winner(a *nexmark.Auction, bidsOf map[int64][]*nexmark.Bid) *nexmark.Bid {
	var ok []*nexmark.Bid
	for _, b := range bidsOf[a.ID] {
		if a.DateTime <= b.DateTime && b.DateTime <= a.Expires {
			ok = append(ok, b)
		}
	}
	if len(ok) == 0 {
		return nil
	}
	slices.SortFunc(ok, func(x, y *nexmark.Bid) int {
		return cmp.Or(cmp.Compare(y.Price, x.Price), cmp.Compare(x.DateTime, y.DateTime),
			cmp.Compare(x.Bidder, y.Bidder), strings.Compare(x.Extra, y.Extra))
	})
	return ok[0]
}

// byClose returns the auctions in close order with their winning bids (nil if none).
func byClose(auctions []*nexmark.Auction, bids []*nexmark.Bid) ([]*nexmark.Auction, []*nexmark.Bid) {
	bidsOf := map[int64][]*nexmark.Bid{}
	for _, b := range bids {
		bidsOf[b.Auction] = append(bidsOf[b.Auction], b)
	}
	sorted := slices.Clone(auctions)
	slices.SortStableFunc(sorted, func(x, y *nexmark.Auction) int {
		return cmp.Or(cmp.Compare(x.Expires, y.Expires), cmp.Compare(x.ID, y.ID))
	})
	wins := make([]*nexmark.Bid, len(sorted))
	for i, a := range sorted {
		wins[i] = winner(a, bidsOf)
	}
	return sorted, wins
}

func q4(auctions []*nexmark.Auction, bids []*nexmark.Bid) []nexmark.Row {
	sorted, wins := byClose(auctions, bids)
	sum, n := map[int64]int64{}, map[int64]int64{}
	var rows []nexmark.Row
	for i, a := range sorted {
		if wins[i] == nil {
			continue
		}
		sum[a.Category] += wins[i].Price
		n[a.Category]++
		rows = append(rows, nexmark.Q4Row{ID: a.Category, Final: float64(sum[a.Category]) / float64(n[a.Category])})
	}
	return rows
}

func q9(auctions []*nexmark.Auction, bids []*nexmark.Bid) []nexmark.Row {
	sorted, wins := byClose(auctions, bids)
	var rows []nexmark.Row
	for i, a := range sorted {
		if w := wins[i]; w != nil {
			rows = append(rows, nexmark.Q9Row{Auction: *a, BidAuction: w.Auction, Bidder: w.Bidder,
				Price: w.Price, BidDateTime: w.DateTime, BidExtra: w.Extra})
		}
	}
	return rows
}

// floorTo rounds t down to a multiple of step (toward negative infinity).
func floorTo(t, step int64) int64 {
	return int64(math.Floor(float64(t)/float64(step))) * step
}

// q5 enumerates every 2 s-aligned window start from the earliest window that can hold a
// bid to the last bid, and counts each window's bids by scanning all bids.
func q5(bids []*nexmark.Bid) []nexmark.Row {
	if len(bids) == 0 {
		return nil
	}
	lo, hi := bids[0].DateTime, bids[0].DateTime
	for _, b := range bids {
		lo, hi = min(lo, b.DateTime), max(hi, b.DateTime)
	}
	var rows []nexmark.Row
	for start := floorTo(lo, 2000) - 8000; start <= hi; start += 2000 {
		count := map[int64]int64{}
		for _, b := range bids {
			if start <= b.DateTime && b.DateTime < start+10000 {
				count[b.Auction]++
			}
		}
		most := int64(0)
		for _, c := range count {
			most = max(most, c)
		}
		for a, c := range count {
			if c == most {
				rows = append(rows, nexmark.Q5Row{Auction: a, Num: c, StartTime: start, EndTime: start + 10000})
			}
		}
	}
	return rows
}

func q7(bids []*nexmark.Bid) []nexmark.Row {
	byWindow := map[int64][]*nexmark.Bid{}
	for _, b := range bids {
		w := floorTo(b.DateTime, 10000)
		byWindow[w] = append(byWindow[w], b)
	}
	var rows []nexmark.Row
	for _, ws := range byWindow {
		most := ws[0].Price
		for _, b := range ws {
			most = max(most, b.Price)
		}
		for _, b := range ws {
			if b.Price == most {
				rows = append(rows, nexmark.Q7Row{Auction: b.Auction, Price: b.Price, Bidder: b.Bidder, DateTime: b.DateTime, Extra: b.Extra})
			}
		}
	}
	return rows
}

func q8(persons []*nexmark.Person, auctions []*nexmark.Auction) []nexmark.Row {
	type key struct{ seller, window int64 }
	created := map[key]bool{}
	for _, a := range auctions {
		created[key{a.Seller, floorTo(a.DateTime, 10000)}] = true
	}
	emitted := map[key]bool{}
	var rows []nexmark.Row
	for _, p := range persons {
		k := key{p.ID, floorTo(p.DateTime, 10000)}
		if created[k] && !emitted[k] {
			emitted[k] = true
			rows = append(rows, nexmark.Q8Row{ID: p.ID, Name: p.Name, STime: k.window})
		}
	}
	return rows
}

// q11 sorts each bidder's bid times and cuts a session wherever two consecutive bids are
// more than 10 s apart.
func q11(bids []*nexmark.Bid) []nexmark.Row {
	times := map[int64][]int64{}
	for _, b := range bids {
		times[b.Bidder] = append(times[b.Bidder], b.DateTime)
	}
	var rows []nexmark.Row
	for bidder, ts := range times {
		slices.Sort(ts)
		first := 0
		for i := 1; i <= len(ts); i++ {
			if i == len(ts) || ts[i]-ts[i-1] > 10000 {
				rows = append(rows, nexmark.Q11Row{Bidder: bidder, BidCount: int64(i - first),
					StartTime: ts[first], EndTime: ts[i-1] + 10000})
				first = i
			}
		}
	}
	return rows
}

// Canonical returns rows in a form that is equal for two correct implementations of
// query: the rows' JSON lines, sorted. For q4, whose intermediate rows depend on the
// order in which auctions close, only the last row of each category is kept.
func Canonical(query string, rows []nexmark.Row) []string {
	if query == "q4" {
		last := map[int64]nexmark.Row{}
		for _, r := range rows {
			last[q4Category(r)] = r
		}
		rows = rows[:0:0]
		for _, r := range last {
			rows = append(rows, r)
		}
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = string(r.AppendJSON(nil))
	}
	slices.Sort(out)
	return out
}

// q4Category returns a q4 row's category, reading the JSON for row types other than
// nexmark.Q4Row.
func q4Category(r nexmark.Row) int64 {
	switch v := r.(type) {
	case nexmark.Q4Row:
		return v.ID
	case *nexmark.Q4Row:
		return v.ID
	}
	var v struct {
		ID int64 `json:"id"`
	}
	if err := json.Unmarshal(r.AppendJSON(nil), &v); err != nil {
		return math.MinInt64 // not a q4 row: keep all such rows under one key
	}
	return v.ID
}
