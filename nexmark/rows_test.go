package nexmark_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/nexmark"
)

// Both values and pointers of every row type are Rows.
var _ = []nexmark.Row{
	nexmark.Q0Row{}, &nexmark.Q0Row{}, nexmark.Q1Row{}, &nexmark.Q1Row{}, nexmark.Q2Row{}, &nexmark.Q2Row{},
	nexmark.Q3Row{}, &nexmark.Q3Row{}, nexmark.Q4Row{}, &nexmark.Q4Row{}, nexmark.Q5Row{}, &nexmark.Q5Row{},
	nexmark.Q7Row{}, &nexmark.Q7Row{}, nexmark.Q8Row{}, &nexmark.Q8Row{}, nexmark.Q9Row{}, &nexmark.Q9Row{},
	nexmark.Q11Row{}, &nexmark.Q11Row{},
}

// TestRowJSON: AppendJSON writes what encoding/json writes for the struct tags, i.e.
// exactly the documented field names in the documented order.
func TestRowJSON(t *testing.T) {
	g := nexmark.NewGenerator(nexmark.GeneratorConfig{Seed: 1})
	a := *g.Event(1).Auction
	b := *g.Event(10).Bid
	rows := []nexmark.Row{
		nexmark.Q0Row{Auction: b.Auction, Bidder: b.Bidder, Price: b.Price, Channel: b.Channel, URL: "u\"\\\n", DateTime: b.DateTime, Extra: b.Extra},
		nexmark.Q1Row{Auction: 1, Bidder: 2, Price: nexmark.Q1Price(12345), DateTime: 3, Extra: "x"},
		nexmark.Q1Row{Price: nexmark.Q1Price(100_000_000)},
		nexmark.Q2Row{Auction: 1230, Price: 7},
		nexmark.Q3Row{Name: "Peter Shultz", City: "Boise", State: "ID", ID: 1001},
		nexmark.Q4Row{ID: 10, Final: nexmark.Q4Average(10, 3)},
		nexmark.Q4Row{ID: 11, Final: nexmark.Q4Average(90_000_000_000, 1)},
		nexmark.Q5Row{Auction: 1, Num: 2, StartTime: 3, EndTime: 4},
		nexmark.Q7Row{Auction: 1, Price: 2, Bidder: 3, DateTime: 4, Extra: "e"},
		nexmark.Q8Row{ID: 1, Name: "n", STime: 10000},
		nexmark.Q9Row{Auction: a, BidAuction: a.ID, Bidder: 5, Price: 6, BidDateTime: 7, BidExtra: "be"},
		nexmark.Q11Row{Bidder: 1, BidCount: 2, StartTime: 3, EndTime: 4},
	}
	for _, r := range rows {
		want, err := json.Marshal(r)
		require.NoError(t, err)
		require.Equal(t, string(want), string(r.AppendJSON(nil)))
	}
	require.Equal(t, `{"auction":0,"bidder":0,"price":90800000,"dateTime":0,"extra":""}`, string(rows[2].AppendJSON(nil)))
	require.Equal(t, `{"id":10,"final":3.3333333333333335}`, string(rows[5].AppendJSON([]byte{})))
	require.Equal(t, `{"id":1000,"itemName":`, string(rows[10].AppendJSON(nil)[:22]))
}

func TestBetterBid(t *testing.T) {
	require.True(t, nexmark.BetterBid(2, 9, 9, "z", 1, 0, 0, "a"), "higher price")
	require.True(t, nexmark.BetterBid(1, 0, 9, "z", 1, 1, 0, "a"), "earlier")
	require.True(t, nexmark.BetterBid(1, 0, 0, "z", 1, 0, 1, "a"), "lower bidder")
	require.True(t, nexmark.BetterBid(1, 0, 0, "a", 1, 0, 0, "b"), "smaller extra")
	require.False(t, nexmark.BetterBid(1, 0, 0, "a", 1, 0, 0, "a"), "equal")
}
