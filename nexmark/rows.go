package nexmark

// Row is one output row of a query. AppendJSON appends the row as one JSON object (no
// newline) with exactly the query's field names in their documented order; tests compare
// these bytes, so every implementation of a query must produce the same row type.
//
// All row types implement Row with value receivers, so both T and *T are Rows.
type Row interface {
	AppendJSON(dst []byte) []byte
}

// Q0Row is q0's row: every bid unchanged (pass-through).
type Q0Row struct {
	Auction  int64  `json:"auction"`
	Bidder   int64  `json:"bidder"`
	Price    int64  `json:"price"`
	Channel  string `json:"channel"`
	URL      string `json:"url"`
	DateTime int64  `json:"dateTime"`
	Extra    string `json:"extra"`
}

// AppendJSON implements Row.
func (r Q0Row) AppendJSON(dst []byte) []byte {
	dst = appendIntField(dst, `{"auction":`, r.Auction)
	dst = appendIntField(dst, `,"bidder":`, r.Bidder)
	dst = appendIntField(dst, `,"price":`, r.Price)
	dst = appendStringField(dst, `,"channel":`, r.Channel)
	dst = appendStringField(dst, `,"url":`, r.URL)
	dst = appendIntField(dst, `,"dateTime":`, r.DateTime)
	dst = appendStringField(dst, `,"extra":`, r.Extra)
	return append(dst, '}')
}

// Q1DollarToEuro is q1's currency conversion factor.
const Q1DollarToEuro = 0.908

// Q1Price returns q1's converted price. Implementations must use it (or the identical
// expression) so that the float64 results match bit for bit.
func Q1Price(price int64) float64 { return Q1DollarToEuro * float64(price) }

// Q1Row is q1's row: every bid with its price converted by Q1Price.
type Q1Row struct {
	Auction  int64   `json:"auction"`
	Bidder   int64   `json:"bidder"`
	Price    float64 `json:"price"`
	DateTime int64   `json:"dateTime"`
	Extra    string  `json:"extra"`
}

// AppendJSON implements Row.
func (r Q1Row) AppendJSON(dst []byte) []byte {
	dst = appendIntField(dst, `{"auction":`, r.Auction)
	dst = appendIntField(dst, `,"bidder":`, r.Bidder)
	dst = appendFloatField(dst, `,"price":`, r.Price)
	dst = appendIntField(dst, `,"dateTime":`, r.DateTime)
	dst = appendStringField(dst, `,"extra":`, r.Extra)
	return append(dst, '}')
}

// Q2Modulus selects q2's auctions: auction % Q2Modulus == 0.
const Q2Modulus = 123

// Q2Row is q2's row.
type Q2Row struct {
	Auction int64 `json:"auction"`
	Price   int64 `json:"price"`
}

// AppendJSON implements Row.
func (r Q2Row) AppendJSON(dst []byte) []byte {
	dst = appendIntField(dst, `{"auction":`, r.Auction)
	dst = appendIntField(dst, `,"price":`, r.Price)
	return append(dst, '}')
}

// Q3Category is the auction category q3 selects.
const Q3Category = 10

// Q3State reports whether a seller's state passes q3's filter (OR, ID or CA).
func Q3State(s string) bool { return s == "OR" || s == "ID" || s == "CA" }

// Q3Row is q3's row: a seller of a category-10 auction; ID is the auction's id.
type Q3Row struct {
	Name  string `json:"name"`
	City  string `json:"city"`
	State string `json:"state"`
	ID    int64  `json:"id"`
}

// AppendJSON implements Row.
func (r Q3Row) AppendJSON(dst []byte) []byte {
	dst = appendStringField(dst, `{"name":`, r.Name)
	dst = appendStringField(dst, `,"city":`, r.City)
	dst = appendStringField(dst, `,"state":`, r.State)
	dst = appendIntField(dst, `,"id":`, r.ID)
	return append(dst, '}')
}

// Q4Average is q4's average: the exact integer sum of winning prices divided by the
// number of closed auctions. Implementations must compute Final with it so that results
// match bit for bit (a running float mean would differ in the last bits).
func Q4Average(sum, count int64) float64 { return float64(sum) / float64(count) }

// Q4Row is q4's row: ID is the category, Final the average winning price so far.
type Q4Row struct {
	ID    int64   `json:"id"`
	Final float64 `json:"final"`
}

// AppendJSON implements Row.
func (r Q4Row) AppendJSON(dst []byte) []byte {
	dst = appendIntField(dst, `{"id":`, r.ID)
	dst = appendFloatField(dst, `,"final":`, r.Final)
	return append(dst, '}')
}

// Window parameters of the windowed queries, in milliseconds.
const (
	Q5WindowMs  = 10_000
	Q5SlideMs   = 2_000
	Q7WindowMs  = 10_000
	Q8WindowMs  = 10_000
	Q11GapMs    = 10_000
	q5PerWindow = Q5WindowMs / Q5SlideMs
)

// Q5Row is q5's row: an auction with the most bids in the window [StartTime, EndTime).
type Q5Row struct {
	Auction   int64 `json:"auction"`
	Num       int64 `json:"num"`
	StartTime int64 `json:"starttime"`
	EndTime   int64 `json:"endtime"`
}

// AppendJSON implements Row.
func (r Q5Row) AppendJSON(dst []byte) []byte {
	dst = appendIntField(dst, `{"auction":`, r.Auction)
	dst = appendIntField(dst, `,"num":`, r.Num)
	dst = appendIntField(dst, `,"starttime":`, r.StartTime)
	dst = appendIntField(dst, `,"endtime":`, r.EndTime)
	return append(dst, '}')
}

// Q7Row is q7's row: a bid with its tumbling window's highest price.
type Q7Row struct {
	Auction  int64  `json:"auction"`
	Price    int64  `json:"price"`
	Bidder   int64  `json:"bidder"`
	DateTime int64  `json:"dateTime"`
	Extra    string `json:"extra"`
}

// AppendJSON implements Row.
func (r Q7Row) AppendJSON(dst []byte) []byte {
	dst = appendIntField(dst, `{"auction":`, r.Auction)
	dst = appendIntField(dst, `,"price":`, r.Price)
	dst = appendIntField(dst, `,"bidder":`, r.Bidder)
	dst = appendIntField(dst, `,"dateTime":`, r.DateTime)
	dst = appendStringField(dst, `,"extra":`, r.Extra)
	return append(dst, '}')
}

// Q8Row is q8's row: a person who registered and created an auction in the tumbling
// window starting at STime.
type Q8Row struct {
	ID    int64  `json:"id"`
	Name  string `json:"name"`
	STime int64  `json:"stime"`
}

// AppendJSON implements Row.
func (r Q8Row) AppendJSON(dst []byte) []byte {
	dst = appendIntField(dst, `{"id":`, r.ID)
	dst = appendStringField(dst, `,"name":`, r.Name)
	dst = appendIntField(dst, `,"stime":`, r.STime)
	return append(dst, '}')
}

// Q9Row is q9's row: a closed auction (the embedded Auction's fields come first, under
// their input names) and its winning bid. BidAuction is the bid's "auction" field, equal
// to the auction's ID.
type Q9Row struct {
	Auction
	BidAuction  int64  `json:"auction"`
	Bidder      int64  `json:"bidder"`
	Price       int64  `json:"price"`
	BidDateTime int64  `json:"bid_dateTime"`
	BidExtra    string `json:"bid_extra"`
}

// AppendJSON implements Row.
func (r Q9Row) AppendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	dst = appendAuctionFields(dst, &r.Auction)
	dst = appendIntField(dst, `,"auction":`, r.BidAuction)
	dst = appendIntField(dst, `,"bidder":`, r.Bidder)
	dst = appendIntField(dst, `,"price":`, r.Price)
	dst = appendIntField(dst, `,"bid_dateTime":`, r.BidDateTime)
	dst = appendStringField(dst, `,"bid_extra":`, r.BidExtra)
	return append(dst, '}')
}

// Q11Row is q11's row: a bidder's session; EndTime is the last bid's time plus the gap.
type Q11Row struct {
	Bidder    int64 `json:"bidder"`
	BidCount  int64 `json:"bid_count"`
	StartTime int64 `json:"starttime"`
	EndTime   int64 `json:"endtime"`
}

// AppendJSON implements Row.
func (r Q11Row) AppendJSON(dst []byte) []byte {
	dst = appendIntField(dst, `{"bidder":`, r.Bidder)
	dst = appendIntField(dst, `,"bid_count":`, r.BidCount)
	dst = appendIntField(dst, `,"starttime":`, r.StartTime)
	dst = appendIntField(dst, `,"endtime":`, r.EndTime)
	return append(dst, '}')
}

// BetterBid reports whether bid x beats bid y for an auction's win: higher price, then
// earlier dateTime, then lower bidder id, then smaller extra (the last only so that the
// winner is a function of the set of bids, never of their arrival order).
func BetterBid(xPrice, xTime, xBidder int64, xExtra string, yPrice, yTime, yBidder int64, yExtra string) bool {
	if xPrice != yPrice {
		return xPrice > yPrice
	}
	if xTime != yTime {
		return xTime < yTime
	}
	if xBidder != yBidder {
		return xBidder < yBidder
	}
	return xExtra < yExtra
}
