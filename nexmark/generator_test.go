package nexmark_test

import (
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/nexmark"
)

func TestGeneratorDeterministic(t *testing.T) {
	cfg := nexmark.GeneratorConfig{Seed: 42, EventsPerSecond: 1000, OutOfOrderness: time.Second}
	g1, g2 := nexmark.NewGenerator(cfg), nexmark.NewGenerator(cfg)
	other := nexmark.NewGenerator(nexmark.GeneratorConfig{Seed: 43, EventsPerSecond: 1000, OutOfOrderness: time.Second})
	var slab nexmark.Slab
	differ := 0
	for n := int64(0); n < 5000; n++ {
		e := g1.Event(n)
		check(t, reflect.DeepEqual(e, g2.Event(n)), "event %d differs", n)
		check(t, reflect.DeepEqual(e, g1.EventInto(n, &slab)), "EventInto %d differs", n)
		if string(nexmark.AppendEventJSON(nil, e)) != string(nexmark.AppendEventJSON(nil, other.Event(n))) {
			differ++
		}
	}
	require.Greater(t, differ, 4900, "another seed must give another stream")
}

func TestGeneratorDefaults(t *testing.T) {
	c := nexmark.GeneratorConfig{}.WithDefaults()
	require.Equal(t, float64(nexmark.DefaultEventsPerSecond), c.EventsPerSecond)
	require.Equal(t, int64(nexmark.DefaultBaseTime), c.BaseTime)
	require.Zero(t, c.BaseTime%10_000)
	require.Equal(t, []int{1, 3, 46}, []int{c.PersonProportion, c.AuctionProportion, c.BidProportion})
	require.Equal(t, []int{2, 4, 4}, []int{c.HotAuctionRatio, c.HotSellersRatio, c.HotBiddersRatio})
	require.Equal(t, []int{1000, 100}, []int{c.NumActivePeople, c.NumInFlightAuctions})
	require.Equal(t, []int{200, 500, 100}, []int{c.AvgPersonByteSize, c.AvgAuctionByteSize, c.AvgBidByteSize})
	g := nexmark.NewGenerator(nexmark.GeneratorConfig{})
	require.Equal(t, c, g.Config())
	require.Equal(t, int64(nexmark.DefaultBaseTime), g.Event(0).Timestamp())
}

// TestGeneratorSplit: p readers taking every p-th event number, concurrently, produce
// exactly the single reader's events.
func TestGeneratorSplit(t *testing.T) {
	const total = 20_000
	g := nexmark.NewGenerator(nexmark.GeneratorConfig{Seed: 7, EventsPerSecond: 5000, OutOfOrderness: 500 * time.Millisecond})
	var want []string
	for n := int64(0); n < total; n++ {
		want = append(want, string(nexmark.AppendEventJSON(nil, g.Event(n))))
	}
	slices.Sort(want)
	for _, p := range []int64{2, 3, 7} {
		var (
			mu  sync.Mutex
			got []string
			wg  sync.WaitGroup
		)
		for r := range p {
			wg.Go(func() {
				var slab nexmark.Slab
				var lines []string
				buf := make([]nexmark.Event, 64)
				for start := r; start < total; start += int64(len(buf)) * p {
					k := min(int64(len(buf)), (total-start+p-1)/p)
					g.Fill(buf[:k], start, p, &slab)
					for _, e := range buf[:k] {
						lines = append(lines, string(nexmark.AppendEventJSON(nil, e)))
					}
				}
				mu.Lock()
				got = append(got, lines...)
				mu.Unlock()
			})
		}
		wg.Wait()
		slices.Sort(got)
		require.Equal(t, want, got, "p=%d", p)
	}
}

// TestGeneratorShape checks the nexmark-flink stream shape: proportions, id spaces,
// references, hot keys, categories and prices.
func TestGeneratorShape(t *testing.T) {
	const total = 200_000
	g := nexmark.NewGenerator(nexmark.GeneratorConfig{Seed: 3, EventsPerSecond: 1000})
	var (
		nextPerson, nextAuction   int64 = nexmark.FirstPersonID, nexmark.FirstAuctionID
		counts                    [3]int
		hotAuction, hotBidder     int
		hotSeller, futureAuctions int
		categories                = map[int64]int{}
	)
	for n := int64(0); n < total; n++ {
		e := g.Event(n)
		counts[e.Type]++
		switch e.Type {
		case nexmark.PersonEvent:
			check(t, e.Person.ID == nextPerson, "person ids are consecutive: %d", e.Person.ID)
			nextPerson++
		case nexmark.AuctionEvent:
			a := e.Auction
			check(t, a.ID == nextAuction, "auction ids are consecutive: %d", a.ID)
			nextAuction++
			categories[a.Category]++
			check(t, a.Seller >= nexmark.FirstPersonID && a.Seller < nextPerson+nexmark.PersonIDLead,
				"seller %d exists or is just ahead", a.Seller)
			if a.Seller == (nextPerson-1-nexmark.FirstPersonID)/100*100+nexmark.FirstPersonID {
				hotSeller++
			}
			check(t, a.Expires > a.DateTime && a.Reserve >= a.InitialBid, "auction %+v", a)
		case nexmark.BidEvent:
			b := e.Bid
			check(t, b.Auction >= nexmark.FirstAuctionID && b.Auction < nextAuction+nexmark.AuctionIDLead,
				"auction %d exists or is just ahead", b.Auction)
			if b.Auction >= nextAuction {
				futureAuctions++
			}
			if b.Auction == (nextAuction-1-nexmark.FirstAuctionID)/100*100+nexmark.FirstAuctionID {
				hotAuction++
			}
			check(t, b.Bidder >= nexmark.FirstPersonID && b.Bidder < nextPerson+nexmark.PersonIDLead,
				"bidder %d exists or is just ahead", b.Bidder)
			if b.Bidder == (nextPerson-1-nexmark.FirstPersonID)/100*100+1+nexmark.FirstPersonID {
				hotBidder++
			}
			check(t, b.Price >= 100 && b.Price <= 100_000_000 && b.Channel != "" && b.URL != "", "bid %+v", b)
		}
	}
	require.Equal(t, [3]int{total / 50, 3 * total / 50, 46 * total / 50}, counts, "person:auction:bid = 1:3:46")
	require.Len(t, categories, nexmark.NumCategories)
	for c, k := range categories {
		require.GreaterOrEqual(t, c, int64(10))
		require.LessOrEqual(t, c, int64(14))
		require.InDelta(t, 0.2, float64(k)/float64(counts[1]), 0.02, "category %d", c)
	}
	require.InDelta(t, 0.5, float64(hotAuction)/float64(counts[2]), 0.03, "hot auction ratio 2")
	require.InDelta(t, 0.75, float64(hotBidder)/float64(counts[2]), 0.03, "hot bidder ratio 4")
	require.InDelta(t, 0.75, float64(hotSeller)/float64(counts[1]), 0.03, "hot seller ratio 4")
	require.Positive(t, futureAuctions, "some bids precede their auction")
	require.Less(t, float64(futureAuctions)/float64(counts[2]), 0.06)
}

func TestGeneratorOutOfOrderness(t *testing.T) {
	const total = 50_000
	in := nexmark.NewGenerator(nexmark.GeneratorConfig{Seed: 5, EventsPerSecond: 1000})
	last := int64(0)
	for n := int64(0); n < total; n++ {
		ts := in.Event(n).Timestamp()
		check(t, ts == in.NominalTime(n) && ts >= last, "event %d at %d out of order", n, ts)
		last = ts
	}
	const ooo = 2 * time.Second
	g := nexmark.NewGenerator(nexmark.GeneratorConfig{Seed: 5, EventsPerSecond: 1000, OutOfOrderness: ooo})
	maxSeen, disordered := int64(0), 0
	for n := int64(0); n < total; n++ {
		e := g.Event(n)
		ts := e.Timestamp()
		check(t, ts <= g.NominalTime(n) && ts >= g.NominalTime(n)-ooo.Milliseconds() && ts >= g.MinTimestampFrom(n),
			"event %d at %d, nominal %d", n, ts, g.NominalTime(n))
		check(t, ts >= maxSeen-ooo.Milliseconds(), "event %d would be late", n)
		if ts < maxSeen {
			disordered++
		}
		maxSeen = max(maxSeen, ts)
		// Only the time differs from the in-order stream.
		o := in.Event(n)
		switch e.Type {
		case nexmark.BidEvent:
			o.Bid.DateTime = ts
		case nexmark.PersonEvent:
			o.Person.DateTime = ts
		case nexmark.AuctionEvent:
			o.Auction.Expires += ts - o.Auction.DateTime
			o.Auction.DateTime = ts
		}
		check(t, reflect.DeepEqual(o, e), "event %d differs beyond its time", n)
	}
	require.Greater(t, disordered, total/2)
}

// TestGeneratorSizes checks the padding: records average 200/500/100 bytes counted as
// nexmark-flink does, and auctions last about the in-flight horizon.
func TestGeneratorSizes(t *testing.T) {
	const total = 200_000
	g := nexmark.NewGenerator(nexmark.GeneratorConfig{Seed: 9, EventsPerSecond: 1000})
	var sum, count [3]float64
	var length float64
	extras := map[int]bool{}
	for n := int64(0); n < total; n++ {
		e := g.Event(n)
		switch e.Type {
		case nexmark.PersonEvent:
			p := e.Person
			sum[0] += float64(8 + len(p.Name) + len(p.EmailAddress) + len(p.CreditCard) + len(p.City) + len(p.State) + len(p.Extra))
		case nexmark.AuctionEvent:
			a := e.Auction
			sum[1] += float64(8 + len(a.ItemName) + len(a.Description) + 5*8 + len(a.Extra))
			length += float64(a.Expires - a.DateTime)
		case nexmark.BidEvent:
			sum[2] += float64(4*8 + len(e.Bid.Extra))
			extras[len(e.Bid.Extra)] = true
		}
		count[e.Type]++
	}
	require.InEpsilon(t, 200, sum[0]/count[0], 0.02, "person size")
	require.InEpsilon(t, 500, sum[1]/count[1], 0.02, "auction size")
	require.InEpsilon(t, 100, sum[2]/count[2], 0.02, "bid size")
	require.Greater(t, len(extras), 20, "extra sizes vary")
	// 100 in-flight auctions take 100*50/3 events = 1666 ms at 1000 events/s.
	require.InEpsilon(t, 1666, length/count[1], 0.05, "average auction length")
}

func TestGeneratorNegativeEventPanics(t *testing.T) {
	g := nexmark.NewGenerator(nexmark.GeneratorConfig{})
	require.Panics(t, func() { g.Event(-1) })
}

// check is a cheap assertion for per-event loops, where require's reflection would
// dominate the test's run time.
func check(t *testing.T, ok bool, format string, args ...any) {
	t.Helper()
	if !ok {
		t.Fatalf(format, args...)
	}
}
