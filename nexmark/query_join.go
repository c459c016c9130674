package nexmark

import (
	"time"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/state"
	"github.com/strom-dev/strom/window"
)

// sellerKey is the key that joins persons with the auctions they sell: the person's id
// or the auction's seller.
func sellerKey(e Event) int64 {
	if e.Type == PersonEvent {
		return e.Person.ID
	}
	return e.Auction.Seller
}

// ---- q3: local item suggestion --------------------------------------------------------

// query3 joins category-Q3Category auctions with their sellers from OR, ID or CA: an
// unbounded incremental join (as Flink's q3), keyed by seller. Both inputs are filtered
// in the source task, so only about 1.5% of the events are shuffled; persons and
// auctions travel in one keyed stream (no two-input operator needed), and an auction
// that arrives before its seller waits in list state.
func query3(events strom.Stream[Event], out *Output) {
	sides := strom.Filter(events, func(e Event) bool {
		switch e.Type {
		case PersonEvent:
			return Q3State(e.Person.State)
		case AuctionEvent:
			return e.Auction.Category == Q3Category
		}
		return false
	}).Name("q3: OR/ID/CA persons, category-10 auctions")
	rows := strom.KeyedProcess(strom.KeyBy(sides, sellerKey), func() strom.KeyedProcessFunction[int64, Event, Q3Row] {
		return &q3Join{}
	}).Name("q3: join")
	sinkRows(rows, out)
}

// q3Person is what q3 keeps of a seller.
type q3Person struct{ Name, City, State string }

var (
	q3SellerDesc  = state.ValueDescriptor[q3Person]{Name: "seller"}
	q3WaitingDesc = state.ListDescriptor[int64]{Name: "waiting-auctions"}
)

type q3Join struct {
	seller  state.ValueState[q3Person]
	waiting state.ListState[int64]
}

func (j *q3Join) Open(ctx *strom.KeyedContext[int64, Q3Row]) error {
	var err error
	if j.seller, err = state.GetValue(ctx, q3SellerDesc); err != nil {
		return err
	}
	j.waiting, err = state.GetList(ctx, q3WaitingDesc)
	return err
}

func (j *q3Join) ProcessElement(ctx *strom.KeyedContext[int64, Q3Row], e Event) error {
	if e.Type == PersonEvent {
		p := e.Person
		s := q3Person{Name: p.Name, City: p.City, State: p.State}
		j.seller.Update(s)
		for _, id := range j.waiting.Get() {
			ctx.Collect(Q3Row{Name: s.Name, City: s.City, State: s.State, ID: id})
		}
		j.waiting.Clear()
		return nil
	}
	if s, ok := j.seller.Value(); ok {
		ctx.Collect(Q3Row{Name: s.Name, City: s.City, State: s.State, ID: e.Auction.ID})
	} else {
		j.waiting.Add(e.Auction.ID)
	}
	return nil
}

// ---- q8: monitor new users ------------------------------------------------------------

// q8Acc is q8's window state for one person id: the person's name if they registered in
// the window, and whether they created an auction in it.
type q8Acc struct {
	Name             string
	Person, Auctions bool
}

// query8 finds the persons who registered and created an auction in the same 10 s
// tumbling window: persons and auctions, keyed by person id / seller, go into
// event-time tumbling windows with an incremental aggregate of two flags (so each
// (person, window) costs one small state entry, unlike a window join, which would buffer
// every record and emit one row per auction).
func query8(events strom.Stream[Event], out *Output) {
	sides := strom.Filter(events, func(e Event) bool {
		return e.Type == PersonEvent || e.Type == AuctionEvent
	}).Name("q8: persons and auctions")
	w := strom.Window(strom.KeyBy(sides, sellerKey), window.Tumbling(Q8WindowMs*time.Millisecond)).Name("q8: window")
	rows := strom.WindowAggregateWith(w, state.Aggregator[Event, q8Acc, q8Acc]{
		Create: func() q8Acc { return q8Acc{} },
		Add: func(a q8Acc, e Event) q8Acc {
			if e.Type == PersonEvent {
				a.Name, a.Person = e.Person.Name, true
			} else {
				a.Auctions = true
			}
			return a
		},
		Result: func(a q8Acc) q8Acc { return a },
	}, func(ctx *strom.WindowContext[int64, Q8Row], a q8Acc) error {
		if a.Person && a.Auctions {
			ctx.Collect(Q8Row{ID: ctx.Key(), Name: a.Name, STime: ctx.Window().Start})
		}
		return nil
	})
	sinkRows(rows, out)
}
