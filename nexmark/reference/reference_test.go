package reference_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/strom-dev/strom/nexmark"
	"github.com/strom-dev/strom/nexmark/reference"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type jsonRow string

func (j jsonRow) AppendJSON(dst []byte) []byte { return append(dst, j...) }

func TestCanonicalSorts(t *testing.T) {
	rows := []nexmark.Row{nexmark.Q2Row{Auction: 246, Price: 1}, &nexmark.Q2Row{Auction: 123, Price: 2}, jsonRow(`{"auction":123,"price":1}`)}
	require.Equal(t, []string{`{"auction":123,"price":1}`, `{"auction":123,"price":2}`, `{"auction":246,"price":1}`},
		reference.Canonical("q2", rows))
}

// TestCanonicalQ4 keeps the last row of each category, whatever the row type.
func TestCanonicalQ4(t *testing.T) {
	rows := []nexmark.Row{
		nexmark.Q4Row{ID: 11, Final: 1}, &nexmark.Q4Row{ID: 10, Final: 2}, jsonRow(`{"id":11,"final":3}`),
		nexmark.Q4Row{ID: 10, Final: 4.5},
	}
	require.Equal(t, []string{`{"id":10,"final":4.5}`, `{"id":11,"final":3}`}, reference.Canonical("q4", rows))
	require.Len(t, rows, 4, "the input is not modified")
}

func TestRunEmptyInput(t *testing.T) {
	for _, q := range nexmark.Queries {
		rows, err := reference.Run(q, nil)
		require.NoError(t, err, q)
		require.Empty(t, rows, q)
	}
}

func TestRunRejectsBadEvents(t *testing.T) {
	_, err := reference.Run("q0", []nexmark.Event{{Type: nexmark.BidEvent}})
	require.EqualError(t, err, "reference q0: event 0: type 2 without its member")
}

// TestQ4ClosesInOrder: rows follow (expires, id) and carry the running average; auctions
// without a qualifying bid do not count.
func TestQ4ClosesInOrder(t *testing.T) {
	events := []nexmark.Event{
		{Type: nexmark.AuctionEvent, Auction: &nexmark.Auction{ID: 2, Category: 10, DateTime: 0, Expires: 50}},
		{Type: nexmark.AuctionEvent, Auction: &nexmark.Auction{ID: 1, Category: 10, DateTime: 0, Expires: 50}},
		{Type: nexmark.AuctionEvent, Auction: &nexmark.Auction{ID: 3, Category: 10, DateTime: 0, Expires: 10}},
		{Type: nexmark.AuctionEvent, Auction: &nexmark.Auction{ID: 4, Category: 11, DateTime: 0, Expires: 10}},
		{Type: nexmark.BidEvent, Bid: &nexmark.Bid{Auction: 1, Price: 10, DateTime: 5}},
		{Type: nexmark.BidEvent, Bid: &nexmark.Bid{Auction: 2, Price: 20, DateTime: 5}},
		{Type: nexmark.BidEvent, Bid: &nexmark.Bid{Auction: 2, Price: 25, DateTime: 51}},
		{Type: nexmark.BidEvent, Bid: &nexmark.Bid{Auction: 3, Price: 3, DateTime: 10}},
	}
	rows, err := reference.Run("q4", events)
	require.NoError(t, err)
	require.Equal(t, []nexmark.Row{
		nexmark.Q4Row{ID: 10, Final: 3},   // auction 3 closes first (expires 10)
		nexmark.Q4Row{ID: 10, Final: 6.5}, // then 1: (3+10)/2
		nexmark.Q4Row{ID: 10, Final: 11},  // then 2: (3+10+20)/3, the bid at 51 is too late
	}, rows)
}

// TestQ3IsAJoin: every matching (auction, seller) pair, whichever came first.
func TestQ3IsAJoin(t *testing.T) {
	events := []nexmark.Event{
		{Type: nexmark.AuctionEvent, Auction: &nexmark.Auction{ID: 1, Seller: 7, Category: 10, DateTime: 0}},
		{Type: nexmark.PersonEvent, Person: &nexmark.Person{ID: 7, Name: "n", City: "c", State: "CA", DateTime: 1}},
		{Type: nexmark.AuctionEvent, Auction: &nexmark.Auction{ID: 2, Seller: 7, Category: 11, DateTime: 2}},
		{Type: nexmark.AuctionEvent, Auction: &nexmark.Auction{ID: 3, Seller: 7, Category: 10, DateTime: 3}},
	}
	rows, err := reference.Run("q3", events)
	require.NoError(t, err)
	require.Equal(t, []string{`{"name":"n","city":"c","state":"CA","id":1}`, `{"name":"n","city":"c","state":"CA","id":3}`},
		reference.Canonical("q3", rows))
}
