package nexmark_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/strom-dev/strom/nexmark"
	"github.com/strom-dev/strom/nexmark/reference"
)

// jsonRow is a Row holding serialized JSON: the baseline's rows are only valid during
// emit, so tests keep their bytes.
type jsonRow []byte

func (j jsonRow) AppendJSON(dst []byte) []byte { return append(dst, j...) }

func collect(rows *[]nexmark.Row) func(nexmark.Row) {
	return func(r nexmark.Row) { *rows = append(*rows, jsonRow(r.AppendJSON(nil))) }
}

func lines(rows []nexmark.Row) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = string(r.AppendJSON(nil))
	}
	return out
}

// TestBaselineMatchesReference runs every query on generated streams, in order and out
// of order, and compares the baseline with the reference.
func TestBaselineMatchesReference(t *testing.T) {
	type config struct {
		name   string
		cfg    nexmark.GeneratorConfig
		events int64
	}
	var configs []config
	for _, seed := range []int64{1, 2, 3} {
		// 1000 events/s: 50 s of event time, i.e. 5 tumbling windows, ~25 sliding ones,
		// thousands of auctions lasting up to 3.3 s and many bidder sessions.
		configs = append(configs,
			config{fmt.Sprintf("seed%d/in-order", seed), nexmark.GeneratorConfig{Seed: seed, EventsPerSecond: 1000}, 50_000},
			config{fmt.Sprintf("seed%d/out-of-order", seed), nexmark.GeneratorConfig{Seed: seed, EventsPerSecond: 1000, OutOfOrderness: 3 * time.Second}, 50_000})
		if testing.Short() {
			break
		}
	}
	// Many events per millisecond: ties in dateTime, auctions of a few ms.
	configs = append(configs, config{"seed4/dense", nexmark.GeneratorConfig{Seed: 4, EventsPerSecond: 20_000, OutOfOrderness: 50 * time.Millisecond}, 50_000})

	for _, c := range configs {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			g := nexmark.NewGenerator(c.cfg)
			events := make([]nexmark.Event, c.events)
			g.Fill(events, 0, 1, new(nexmark.Slab))
			for _, q := range nexmark.Queries {
				var got []nexmark.Row
				n, err := nexmark.RunBaseline(q, g, c.events, collect(&got))
				require.NoError(t, err)
				require.Equal(t, int64(len(got)), n)
				want, err := reference.Run(q, events)
				require.NoError(t, err)
				require.NotEmpty(t, want, "%s: the stream must exercise the query", q)
				require.Equal(t, reference.Canonical(q, want), reference.Canonical(q, got), "%s", q)
				if q == "q4" {
					require.Equal(t, lines(want), lines(got), "q4 closes auctions in (expires, id) order")
				}
			}
		})
	}
}

// TestBaselineMatchesReferenceRandom compares on small random streams with few distinct
// keys, prices and times, which provoke ties, sessions bridged by late-arriving bids,
// bids before their auction, gaps in time and negative times.
func TestBaselineMatchesReferenceRandom(t *testing.T) {
	defer nexmark.SetPendingSweepMin(1)() // exercise the sweep of q4/q9's pending bids
	rapid.Check(t, func(t *rapid.T) {
		events, ooo := randomStream(t)
		for _, q := range nexmark.Queries {
			var got []nexmark.Row
			_, err := nexmark.RunBaselineEvents(q, events, ooo, collect(&got))
			if err != nil {
				t.Fatal(err)
			}
			want, err := reference.Run(q, events)
			if err != nil {
				t.Fatal(err)
			}
			w, g := reference.Canonical(q, want), reference.Canonical(q, got)
			if q == "q4" {
				w, g = lines(want), lines(got)
			}
			if !slices.Equal(w, g) {
				t.Fatalf("%s differs:\nreference %v\nbaseline  %v", q, w, g)
			}
		}
	})
}

// randomStream draws events whose dateTime is a non-decreasing nominal time minus at
// most ooo, so that no event is late for a watermark of max-ooo. Time steps and delays
// are drawn mostly from round values so that events land exactly on window bounds,
// session gaps and auction expiries.
func randomStream(t *rapid.T) ([]nexmark.Event, int64) {
	ooo := rapid.SampledFrom([]int64{0, 1, 500, 3000, 15000}).Draw(t, "ooo")
	scale := rapid.SampledFrom([]int64{1, 100, 1000, 2000, 5000}).Draw(t, "scale")
	nominal := rapid.SampledFrom([]int64{0, -20_000, 1_700_000_000_000}).Draw(t, "base") +
		rapid.Int64Range(-3, 3).Draw(t, "offset")*scale
	n := rapid.IntRange(0, 200).Draw(t, "n")
	timeStep := func(label string, limit int64) int64 {
		switch rapid.IntRange(0, 3).Draw(t, label+"Kind") {
		case 0:
			return 0
		case 1:
			return limit
		case 2:
			return min(limit, rapid.SampledFrom([]int64{1, 10_000, 10_001, 2000, 1999}).Draw(t, label+"Round"))
		}
		return rapid.Int64Range(0, limit).Draw(t, label)
	}
	var (
		events                []nexmark.Event
		persons, auctionCount int64
	)
	for range n {
		nominal += rapid.Int64Range(0, 3).Draw(t, "advance") * scale
		ts := nominal - timeStep("delay", ooo)
		switch k := rapid.IntRange(0, 9).Draw(t, "kind"); {
		case k == 0:
			events = append(events, nexmark.Event{Type: nexmark.PersonEvent, Person: &nexmark.Person{
				ID: 1000 + persons, Name: fmt.Sprint("p", persons), City: "c",
				State: rapid.SampledFrom([]string{"OR", "ID", "CA", "WA"}).Draw(t, "state"), DateTime: ts}})
			persons++
		case k <= 2:
			events = append(events, nexmark.Event{Type: nexmark.AuctionEvent, Auction: &nexmark.Auction{
				ID: 1000 + auctionCount, Seller: 1000 + rapid.Int64Range(0, persons+2).Draw(t, "seller"),
				Category: rapid.Int64Range(10, 11).Draw(t, "category"), DateTime: ts,
				Expires: ts + timeStep("length", 4*scale)}})
			auctionCount++
		default:
			events = append(events, nexmark.Event{Type: nexmark.BidEvent, Bid: &nexmark.Bid{
				Auction: 1000 + rapid.Int64Range(0, auctionCount+2).Draw(t, "auction"),
				Bidder:  1000 + rapid.Int64Range(0, 3).Draw(t, "bidder"),
				Price:   rapid.SampledFrom([]int64{1, 2, 3, 123}).Draw(t, "price"),
				Extra:   rapid.SampledFrom([]string{"a", "b"}).Draw(t, "extra"), DateTime: ts}})
		}
	}
	return events, ooo
}

// TestBaselineEdgeCases pins boundary semantics with hand-computed results, for both
// the baseline and the reference.
func TestBaselineEdgeCases(t *testing.T) {
	person := func(id, ts int64, state string) nexmark.Event {
		return nexmark.Event{Type: nexmark.PersonEvent, Person: &nexmark.Person{ID: id, Name: fmt.Sprint("p", id), City: "c", State: state, DateTime: ts}}
	}
	auction := func(id, seller, ts, expires int64) nexmark.Event {
		return nexmark.Event{Type: nexmark.AuctionEvent, Auction: &nexmark.Auction{ID: id, Seller: seller, Category: 10, DateTime: ts, Expires: expires}}
	}
	bid := func(auction, bidder, price, ts int64, extra string) nexmark.Event {
		return nexmark.Event{Type: nexmark.BidEvent, Bid: &nexmark.Bid{Auction: auction, Bidder: bidder, Price: price, DateTime: ts, Extra: extra}}
	}
	for _, c := range []struct {
		name, query string
		ooo         int64
		events      []nexmark.Event
		want        []string
	}{
		{"session gap is inclusive", "q11", 0,
			[]nexmark.Event{bid(1, 1, 1, 0, ""), bid(1, 2, 1, 10000, ""), bid(1, 1, 1, 10000, ""), bid(1, 1, 1, 20001, "")},
			[]string{
				`{"bidder":1,"bid_count":1,"starttime":20001,"endtime":30001}`,
				`{"bidder":1,"bid_count":2,"starttime":0,"endtime":20000}`,
				`{"bidder":2,"bid_count":1,"starttime":10000,"endtime":20000}`,
			}},
		{"late bid bridges two sessions", "q11", 30000,
			[]nexmark.Event{bid(1, 1, 1, 30000, ""), bid(1, 1, 1, 12000, ""), bid(1, 1, 1, 21000, "")},
			[]string{`{"bidder":1,"bid_count":3,"starttime":12000,"endtime":40000}`}},
		{"winning bid ties and bounds", "q9", 0,
			[]nexmark.Event{
				auction(1, 7, 10, 100), bid(1, 3, 5, 50, ""), bid(1, 2, 5, 50, ""), bid(1, 9, 5, 40, "b"), bid(1, 9, 5, 40, "a"),
				bid(1, 1, 9, 101, ""), bid(2, 1, 1, 101, ""),
			},
			[]string{`{"id":1,"itemName":"","description":"","initialBid":0,"reserve":0,"dateTime":10,"expires":100,"seller":7,"category":10,"extra":"","auction":1,"bidder":9,"price":5,"bid_dateTime":40,"bid_extra":"a"}`}},
		{"bid before its auction, at both bounds", "q4", 5,
			[]nexmark.Event{bid(2, 1, 7, 5, ""), bid(2, 1, 8, 4, ""), auction(2, 1, 5, 9), bid(2, 1, 6, 9, ""), bid(2, 1, 99, 10, "")},
			[]string{`{"id":10,"final":7}`}},
		{"auction before its seller", "q3", 0,
			[]nexmark.Event{auction(1, 7, 0, 5), auction(2, 8, 0, 5), person(7, 1, "OR"), person(8, 1, "WA"), auction(3, 7, 2, 5)},
			[]string{`{"name":"p7","city":"c","state":"OR","id":1}`, `{"name":"p7","city":"c","state":"OR","id":3}`}},
		{"one bid is in five sliding windows", "q5", 0,
			[]nexmark.Event{bid(1, 1, 1, 1000, "")},
			[]string{
				`{"auction":1,"num":1,"starttime":-2000,"endtime":8000}`,
				`{"auction":1,"num":1,"starttime":-4000,"endtime":6000}`,
				`{"auction":1,"num":1,"starttime":-6000,"endtime":4000}`,
				`{"auction":1,"num":1,"starttime":-8000,"endtime":2000}`,
				`{"auction":1,"num":1,"starttime":0,"endtime":10000}`,
			}},
		{"tumbling maximum with ties", "q7", 0,
			[]nexmark.Event{bid(1, 1, 5, 0, "x"), bid(2, 2, 5, 9999, "y"), bid(3, 3, 4, 10000, "z")},
			[]string{
				`{"auction":1,"price":5,"bidder":1,"dateTime":0,"extra":"x"}`,
				`{"auction":2,"price":5,"bidder":2,"dateTime":9999,"extra":"y"}`,
				`{"auction":3,"price":4,"bidder":3,"dateTime":10000,"extra":"z"}`,
			}},
		{"same window only", "q8", 0,
			[]nexmark.Event{person(1, 9999, "OR"), auction(1, 1, 10000, 20000), person(2, 10000, "OR"), auction(2, 2, 19999, 20000), auction(3, 2, 19999, 20000)},
			[]string{`{"id":2,"name":"p2","stime":10000}`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got []nexmark.Row
			_, err := nexmark.RunBaselineEvents(c.query, c.events, c.ooo, collect(&got))
			require.NoError(t, err)
			require.Equal(t, c.want, reference.Canonical(c.query, got), "baseline")
			want, err := reference.Run(c.query, c.events)
			require.NoError(t, err)
			require.Equal(t, c.want, reference.Canonical(c.query, want), "reference")
		})
	}
}

func TestBaselineUnknownQuery(t *testing.T) {
	_, err := nexmark.RunBaseline("q6", nexmark.NewGenerator(nexmark.GeneratorConfig{}), 10, nil)
	require.EqualError(t, err, `unknown query "q6" (valid: q0, q1, q2, q3, q4, q5, q7, q8, q9, q11)`)
	_, err = reference.Run("q6", nil)
	require.ErrorContains(t, err, `unknown query "q6"`)
}

// TestBaselineAllocations: the stateless queries allocate nothing per event, and the
// stateful ones far less than one allocation per event.
func TestBaselineAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts only")
	}
	g := nexmark.NewGenerator(nexmark.GeneratorConfig{Seed: 1, EventsPerSecond: 100_000})
	const events = 50_000
	for _, q := range nexmark.Queries {
		allocs := testing.AllocsPerRun(2, func() {
			_, err := nexmark.RunBaseline(q, g, events, nil)
			require.NoError(t, err)
		})
		limit := 0.05 // per event
		if q == "q3" {
			limit = 0.2 // the unbounded join keeps every matching seller
		}
		require.Less(t, allocs/events, limit, "%s: %.0f allocations for %d events", q, allocs, events)
	}
}
