package nexmark_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/nexmark"
	"github.com/strom-dev/strom/nexmark/reference"
)

// Hand-made streams that put events exactly on the boundaries the queries decide on —
// window ends, auction expiry, the session gap — with a watermark after every event, so
// that the watermark sits right below a boundary when the event on it arrives.

func person(id, ts int64, state string) nexmark.Event {
	return nexmark.Event{Type: nexmark.PersonEvent, Person: &nexmark.Person{ID: id, Name: fmt.Sprintf("p%d", id),
		City: "c", State: state, DateTime: ts}}
}

func auction(id, seller, category, ts, expires int64) nexmark.Event {
	return nexmark.Event{Type: nexmark.AuctionEvent, Auction: &nexmark.Auction{ID: id, Seller: seller,
		Category: category, DateTime: ts, Expires: expires, ItemName: fmt.Sprintf("item%d", id)}}
}

func bid(auction, bidder, price, ts int64) nexmark.Event {
	return nexmark.Event{Type: nexmark.BidEvent, Bid: &nexmark.Bid{Auction: auction, Bidder: bidder, Price: price,
		DateTime: ts, Extra: fmt.Sprintf("x%d", bidder)}}
}

// punctuated emits the watermark maxSeen − ooo − 1 after every event: the latest the
// stream allows.
type punctuated struct{ max, ooo int64 }

func (p *punctuated) OnEvent(ts int64, out strom.WatermarkOutput) {
	if ts > p.max {
		p.max = ts
		out.EmitWatermark(ts - p.ooo - 1)
	}
}

func (p *punctuated) OnPeriodicEmit(strom.WatermarkOutput) {}

// runEvents runs query over events (arriving in slice order, at most ooo out of order).
func runEvents(t *testing.T, query string, events []nexmark.Event, ooo time.Duration, p int) []string {
	t.Helper()
	env := strom.NewEnvironment(strom.Config{Parallelism: p})
	src := strom.FromSlice(env, events).Parallelism(1) // one reader: the slice order is the arrival order
	timed := strom.AssignTimestamps(src, strom.CustomWatermarks[nexmark.Event](func() strom.WatermarkGenerator {
		return &punctuated{max: -1 << 62, ooo: ooo.Milliseconds()}
	}).WithTimestamps(nexmark.Event.Timestamp)).Parallelism(1)
	out, lines := nexmark.CollectLines()
	require.NoError(t, nexmark.BuildQuery(query, strom.Rebalance(timed), out))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := env.Execute(ctx, "edge "+query)
	require.NoError(t, err)
	return lines()
}

func TestQueryBoundaries(t *testing.T) {
	cases := []struct {
		query  string
		ooo    time.Duration
		events []nexmark.Event
	}{
		// Two bids exactly the gap apart are one session, even when the watermark has
		// reached last+gap−1 before the second arrives; 10001 ms apart are two.
		{"q11", 0, []nexmark.Event{bid(1, 7, 1, 0), bid(1, 8, 1, 9_999), bid(1, 9, 1, 10_000), bid(1, 7, 1, 10_000),
			bid(1, 7, 1, 20_001), bid(1, 9, 1, 40_000)}},
		// Sessions merged by a bid that bridges them (out of order).
		{"q11", 15 * time.Second, []nexmark.Event{bid(1, 7, 1, 0), bid(1, 7, 1, 20_000), bid(1, 7, 1, 10_000),
			bid(1, 8, 1, 60_000)}},
		// A bid at expires counts, also when the watermark is at expires−1 when it comes;
		// bids before dateTime or after expires do not; price ties go to the earlier bid,
		// then the lower bidder.
		{"q9", 0, []nexmark.Event{bid(1000, 5, 50, 999), auction(1000, 1, 10, 1000, 5000), bid(1000, 6, 5, 1000),
			bid(1001, 6, 5, 4000), bid(1000, 9, 7, 5000), bid(1000, 4, 7, 5000), bid(1000, 3, 100, 5001),
			auction(1001, 1, 11, 5002, 6000), bid(1001, 2, 8, 5002), bid(1001, 1, 8, 5002), bid(1, 1, 1, 9000)}},
		// A bid before its auction (out of order), and one for an auction that never comes.
		{"q4", 200 * time.Millisecond, []nexmark.Event{bid(1000, 1, 10, 1100), auction(1000, 1, 10, 1050, 2000),
			bid(1002, 1, 10, 1100), auction(1001, 1, 10, 1150, 1500), bid(1001, 2, 20, 1200),
			auction(1003, 1, 11, 1300, 1400), bid(1003, 2, 20, 1400), bid(1, 1, 1, 3000)}},
		// Window ends: 9999 is in the first window, 10000 in the next.
		{"q7", 0, []nexmark.Event{bid(1, 1, 5, 1), bid(1, 2, 9, 5000), bid(1, 3, 9, 9999), bid(1, 4, 50, 10_000),
			bid(1, 5, 3, 25_000)}},
		{"q5", 0, []nexmark.Event{bid(1, 1, 1, 0), bid(2, 1, 1, 1999), bid(2, 1, 1, 2000), bid(1, 1, 1, 9999),
			bid(3, 1, 1, 10_000), bid(3, 1, 1, 10_001), bid(4, 1, 1, 30_000)}},
		{"q8", 0, []nexmark.Event{person(1, 9_999, "OR"), auction(1000, 1, 10, 10_000, 20_000),
			person(2, 10_000, "OR"), auction(1001, 2, 10, 19_999, 30_000), auction(1002, 2, 10, 19_999, 30_000),
			person(3, 20_000, "CA"), auction(1003, 4, 10, 20_001, 30_000)}},
		// Auctions before and after their seller; sellers outside OR/ID/CA; other categories.
		{"q3", 0, []nexmark.Event{auction(1000, 1, 10, 1, 100), person(1, 2, "OR"), auction(1001, 1, 10, 3, 100),
			auction(1002, 1, 11, 4, 100), person(2, 5, "WA"), auction(1003, 2, 10, 6, 100), auction(1004, 1, 10, 7, 100)}},
	}
	for i, c := range cases {
		want, err := reference.Run(c.query, c.events)
		require.NoError(t, err)
		require.NotEmpty(t, want, "case %d", i)
		for _, p := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/%d/p%d", c.query, i, p), func(t *testing.T) {
				got := runEvents(t, c.query, c.events, c.ooo, p)
				rows := make([]nexmark.Row, len(got))
				for i, l := range got {
					rows[i] = rawRow(l)
				}
				require.Equal(t, reference.Canonical(c.query, want), reference.Canonical(c.query, rows))
			})
		}
	}
}

// A bid later than the stream's declared out-of-orderness, after the watermark has
// completed its window, is late: the windowed queries drop it (the reference, which
// knows no watermarks, counts it; so it is left out of the reference's input). One that
// is out of order but whose window is still open counts. q5 and q7 buffer bids per
// window in the source task and pass a late bid on alone to the keyed phase, which
// drops it as it did before that buffering existed. Parallelism 1 only: with more, a
// late bid races the other channels' watermarks to the keyed phase.
func TestLateBidsAreDropped(t *testing.T) {
	cases := []struct {
		query  string
		events []nexmark.Event
		late   int // index of the late bid in events
	}{
		// At 2000 (out of order, window open) a bid ties the maximum 9 and counts; the
		// watermark 11_999 completes [0, 10_000); then a bid of 100 at 3000 is late.
		{"q7", []nexmark.Event{bid(1, 1, 5, 1000), bid(1, 2, 9, 5000), bid(1, 3, 7, 8000), bid(1, 6, 9, 2000),
			bid(1, 3, 7, 12_000), bid(1, 4, 100, 3000), bid(1, 5, 3, 25_000)}, 5},
		// At 150 (out of order, pane open) a bid ties auction 2 with auction 1; the
		// watermark 2499 completes pane [0, 2000); then a bid on auction 2 at 500 is late.
		{"q5", []nexmark.Event{bid(1, 1, 1, 100), bid(1, 1, 1, 200), bid(2, 1, 1, 300), bid(2, 1, 1, 150),
			bid(1, 1, 1, 2500), bid(2, 1, 1, 500), bid(3, 1, 1, 2600), bid(3, 1, 1, 30_000)}, 5},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			onTime := append(append([]nexmark.Event(nil), c.events[:c.late]...), c.events[c.late+1:]...)
			want, err := reference.Run(c.query, onTime)
			require.NoError(t, err)
			all, err := reference.Run(c.query, c.events)
			require.NoError(t, err)
			require.NotEqual(t, reference.Canonical(c.query, all), reference.Canonical(c.query, want),
				"the late bid would change the result")
			got := runEvents(t, c.query, c.events, 0, 1)
			rows := make([]nexmark.Row, len(got))
			for i, l := range got {
				rows[i] = rawRow(l)
			}
			require.Equal(t, reference.Canonical(c.query, want), reference.Canonical(c.query, rows))
		})
	}
}
