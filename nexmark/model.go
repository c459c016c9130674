// Package nexmark provides the data model, a deterministic event generator, a JSON-lines
// codec, output row types and a single-threaded baseline for the Nexmark benchmark.
//
// The generator follows the one in the nexmark-flink project (person:auction:bid =
// 1:3:46, hot auctions/sellers/bidders, ids from 1000, categories 10..14, padded extra
// strings) so that Strom's numbers are comparable with published Flink numbers, but it is
// written so that event n is a pure function of (config, n): parallel source readers can
// each generate a stride of event numbers and their union is exactly the single-reader
// stream, which makes engine output reproducible and checkable against the baseline and
// the reference implementation in nexmark/reference.
package nexmark

import "fmt"

// Person is a user registering on the auction site.
type Person struct {
	ID           int64  `json:"id"`
	Name         string `json:"name"`
	EmailAddress string `json:"emailAddress"`
	CreditCard   string `json:"creditCard"`
	City         string `json:"city"`
	State        string `json:"state"`
	DateTime     int64  `json:"dateTime"` // event time, epoch milliseconds
	Extra        string `json:"extra"`
}

// Auction is an item put up for sale by Seller. Bids count for it when their dateTime
// lies in [DateTime, Expires].
type Auction struct {
	ID          int64  `json:"id"`
	ItemName    string `json:"itemName"`
	Description string `json:"description"`
	InitialBid  int64  `json:"initialBid"`
	Reserve     int64  `json:"reserve"`
	DateTime    int64  `json:"dateTime"` // event time, epoch milliseconds
	Expires     int64  `json:"expires"`  // epoch milliseconds
	Seller      int64  `json:"seller"`
	Category    int64  `json:"category"`
	Extra       string `json:"extra"`
}

// Bid is a bid of Bidder on Auction.
type Bid struct {
	Auction  int64  `json:"auction"`
	Bidder   int64  `json:"bidder"`
	Price    int64  `json:"price"`
	Channel  string `json:"channel"`
	URL      string `json:"url"`
	DateTime int64  `json:"dateTime"` // event time, epoch milliseconds
	Extra    string `json:"extra"`
}

// EventType tells which member of an Event is set. The values are the event_type numbers
// of the JSON input format.
type EventType int8

// The event types, numbered as in the input format.
const (
	PersonEvent  EventType = 0
	AuctionEvent EventType = 1
	BidEvent     EventType = 2
)

// String returns "person", "auction" or "bid".
func (t EventType) String() string {
	switch t {
	case PersonEvent:
		return "person"
	case AuctionEvent:
		return "auction"
	case BidEvent:
		return "bid"
	}
	return fmt.Sprintf("EventType(%d)", int8(t))
}

// Event is one element of the Nexmark stream: exactly one of Person, Auction and Bid is
// set, the one named by Type. Pointers (rather than a union by value) keep Event at 32
// bytes so that it is cheap to pass through channels and batches.
type Event struct {
	Type    EventType
	Person  *Person
	Auction *Auction
	Bid     *Bid
}

// Timestamp returns the event time (dateTime, epoch ms) of the set member, or 0 when the
// member named by Type is nil.
func (e Event) Timestamp() int64 {
	switch e.Type {
	case PersonEvent:
		if e.Person != nil {
			return e.Person.DateTime
		}
	case AuctionEvent:
		if e.Auction != nil {
			return e.Auction.DateTime
		}
	case BidEvent:
		if e.Bid != nil {
			return e.Bid.DateTime
		}
	}
	return 0
}
