package nexmark

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Queries lists the implemented Nexmark queries, in benchmark order.
var Queries = []string{"q0", "q1", "q2", "q3", "q4", "q5", "q7", "q8", "q9", "q11"}

// RunBaseline runs query over events 0..events-1 of g on the calling goroutine and
// returns the number of rows produced, calling emit (if not nil) for each. It is the
// COST baseline (McSherry et al., "Scalability! But at what COST?"): what one core does
// with plain maps and no framework, against which the engine's throughput is judged.
//
// Event-time semantics: the watermark is (max dateTime seen) - OutOfOrderness, taken
// after each event, and promises that every later event has dateTime >= watermark
// (which the generator guarantees). A window [s, e) fires once the watermark reaches e;
// an auction closes once the watermark exceeds its expires; a q11 session ends once the
// watermark exceeds last bid + gap (a bid exactly gap later would still join it). The
// end of input fires and closes everything. Windowed queries (q5, q7, q8, q11) drop
// events older than the watermark; the generator never produces such late events.
//
// Person and auction ids are assumed unique, as the generator guarantees.
//
// The Row passed to emit is only valid during the call: the baseline reuses its storage
// to stay allocation-free. Serialize or copy it before returning.
func RunBaseline(query string, g *Generator, events int64, emit func(Row)) (int64, error) {
	q, err := newProcessor(query, emit)
	if err != nil {
		return 0, err
	}
	var (
		p     Person
		a     Auction
		b     Bid
		maxTs = int64(math.MinInt64)
		ooo   = g.oooMs
	)
	for n := int64(0); n < events; n++ {
		var ts int64
		switch g.fill(n, &p, &a, &b) {
		case PersonEvent:
			q.person(&p)
			ts = p.DateTime
		case AuctionEvent:
			q.auction(&a)
			ts = a.DateTime
		default:
			q.bid(&b)
			ts = b.DateTime
		}
		if ts > maxTs {
			maxTs = ts
			q.advance(ts - ooo)
		}
	}
	q.finish()
	return q.rowCount(), nil
}

// runBaselineEvents is RunBaseline over an explicit event slice with a watermark lag of
// oooMs; tests use it to feed hand-made streams.
func runBaselineEvents(query string, events []Event, oooMs int64, emit func(Row)) (int64, error) {
	q, err := newProcessor(query, emit)
	if err != nil {
		return 0, err
	}
	maxTs := int64(math.MinInt64)
	for i := range events {
		e := &events[i]
		switch e.Type {
		case PersonEvent:
			q.person(e.Person)
		case AuctionEvent:
			q.auction(e.Auction)
		case BidEvent:
			q.bid(e.Bid)
		default:
			return 0, fmt.Errorf("baseline %s: event %d: unknown type %d", query, i, e.Type)
		}
		if ts := e.Timestamp(); ts > maxTs {
			maxTs = ts
			q.advance(ts - oooMs)
		}
	}
	q.finish()
	return q.rowCount(), nil
}

// processor is one query's state machine. The event pointers are only valid during the
// call (the driver reuses them); processors copy what they keep. One dynamic call per
// event is the only indirection: everything inside is concrete code on plain maps.
type processor interface {
	person(*Person)
	auction(*Auction)
	bid(*Bid)
	// advance is called whenever the watermark increases.
	advance(wm int64)
	// finish is called at the end of input: fire and close everything.
	finish()
	rowCount() int64
}

func newProcessor(query string, emit func(Row)) (processor, error) {
	s := sink{emit: emit}
	switch query {
	case "q0":
		return &q0{sink: s}, nil
	case "q1":
		return &q1{sink: s}, nil
	case "q2":
		return &q2{sink: s}, nil
	case "q3":
		return &q3{sink: s, sellers: map[int64]q3Seller{}, waiting: map[int64][]int64{}}, nil
	case "q4":
		q := &q4{sink: s, cats: map[int64]q4Agg{}}
		q.auctions.init(q.closed)
		return q, nil
	case "q5":
		return &q5{sink: s, wm: math.MinInt64, panes: map[int64]map[int64]int64{}, counts: map[int64]int64{}}, nil
	case "q7":
		return &q7{sink: s, wm: math.MinInt64, wins: map[int64]*q7Window{}, minEnd: math.MaxInt64}, nil
	case "q8":
		return &q8{sink: s, wm: math.MinInt64, wins: map[int64]*q8Window{}, minEnd: math.MaxInt64}, nil
	case "q9":
		q := &q9{sink: s}
		q.auctions.init(q.closed)
		return q, nil
	case "q11":
		return &q11{sink: s, wm: math.MinInt64, heads: map[int64]int32{}}, nil
	}
	return nil, fmt.Errorf("unknown query %q (valid: %s)", query, strings.Join(Queries, ", "))
}

// sink counts rows and hands them to the caller's emit.
type sink struct {
	emit func(Row)
	rows int64
}

func (s *sink) out(r Row) {
	s.rows++
	if s.emit != nil {
		s.emit(r)
	}
}

func (s *sink) rowCount() int64 { return s.rows }

// Embeddable no-op handlers for the inputs and time a query ignores.
type (
	noPersons  struct{}
	noAuctions struct{}
	noTime     struct{}
)

func (noPersons) person(*Person)    {}
func (noAuctions) auction(*Auction) {}
func (noTime) advance(int64)        {}
func (noTime) finish()              {}

// floorDiv is division rounding toward negative infinity, for aligning windows to epoch
// 0 even before 1970.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// q0: pass-through.
type q0 struct {
	sink
	noPersons
	noAuctions
	noTime
	row Q0Row
}

func (q *q0) bid(b *Bid) {
	q.row = Q0Row{Auction: b.Auction, Bidder: b.Bidder, Price: b.Price, Channel: b.Channel, URL: b.URL, DateTime: b.DateTime, Extra: b.Extra}
	q.out(&q.row)
}

// q1: currency conversion.
type q1 struct {
	sink
	noPersons
	noAuctions
	noTime
	row Q1Row
}

func (q *q1) bid(b *Bid) {
	q.row = Q1Row{Auction: b.Auction, Bidder: b.Bidder, Price: Q1Price(b.Price), DateTime: b.DateTime, Extra: b.Extra}
	q.out(&q.row)
}

// q2: selection.
type q2 struct {
	sink
	noPersons
	noAuctions
	noTime
	row Q2Row
}

func (q *q2) bid(b *Bid) {
	if b.Auction%Q2Modulus == 0 {
		q.row = Q2Row{Auction: b.Auction, Price: b.Price}
		q.out(&q.row)
	}
}

// q3: incremental join of category-10 auctions with their sellers from OR/ID/CA. Both
// sides are kept forever (an unbounded join, as in Flink's q3); auctions whose seller
// has not arrived yet wait in waiting.
type q3Seller struct{ name, city, state string }

type q3 struct {
	sink
	noTime
	sellers map[int64]q3Seller
	waiting map[int64][]int64 // seller id -> ids of its auctions seen before it
	row     Q3Row
}

func (q *q3) person(p *Person) {
	if !Q3State(p.State) {
		return
	}
	s := q3Seller{name: p.Name, city: p.City, state: p.State}
	q.sellers[p.ID] = s
	if ids, ok := q.waiting[p.ID]; ok {
		for _, id := range ids {
			q.emit3(s, id)
		}
		delete(q.waiting, p.ID)
	}
}

func (q *q3) auction(a *Auction) {
	if a.Category != Q3Category {
		return
	}
	if s, ok := q.sellers[a.Seller]; ok {
		q.emit3(s, a.ID)
		return
	}
	q.waiting[a.Seller] = append(q.waiting[a.Seller], a.ID)
}

func (q *q3) bid(*Bid) {}

func (q *q3) emit3(s q3Seller, id int64) {
	q.row = Q3Row{Name: s.name, City: s.city, State: s.state, ID: id}
	q.out(&q.row)
}

// winBid is the part of a bid that decides and reports an auction's winner.
type winBid struct {
	price, dateTime, bidder int64
	extra                   string
}

func (w *winBid) beats(o *winBid) bool {
	return BetterBid(w.price, w.dateTime, w.bidder, w.extra, o.price, o.dateTime, o.bidder, o.extra)
}

type openAuction struct {
	a    Auction
	best winBid
	has  bool // best is set: some bid qualified
}

func (s *openAuction) offer(b *winBid) {
	if b.dateTime < s.a.DateTime || b.dateTime > s.a.Expires {
		return
	}
	if !s.has || b.beats(&s.best) {
		s.best, s.has = *b, true
	}
}

type closeItem struct {
	expires, id int64
	slot        int32
}

func closesBefore(x, y closeItem) bool {
	return x.expires < y.expires || (x.expires == y.expires && x.id < y.id)
}

// auctions tracks open auctions and their best qualifying bid for q4 and q9, closing
// them in (expires, id) order as the watermark passes expires.
//
// A bid may arrive before its auction (the generator draws auction ids a little ahead,
// and with out-of-orderness the auction may simply be late). Such bids wait in pending
// until the auction arrives. Because every auction still to come has dateTime >= the
// watermark, a pending bid older than the watermark can never qualify; pending is swept
// of those once it has grown by as many entries as survived the last sweep, which keeps
// it proportional to the out-of-orderness at O(1) amortized cost per bid. Bids for
// already-closed auctions take the same path.
type auctions struct {
	wm      int64
	open    map[int64]int32 // auction id -> index in slots
	slots   []openAuction
	free    []int32
	heap    []closeItem
	pending map[int64][]winBid // auction id -> bids seen before it
	spare   [][]winBid         // emptied pending slices, reused to avoid allocation
	pendLen int                // bids in pending
	sweepAt int                // sweep when pendLen reaches this
	onClose func(*openAuction)
}

func (t *auctions) init(onClose func(*openAuction)) {
	t.wm = math.MinInt64
	t.open = map[int64]int32{}
	t.pending = map[int64][]winBid{}
	t.sweepAt = pendingSweepMin
	t.onClose = onClose
}

func (t *auctions) auction(a *Auction) {
	var slot int32
	if n := len(t.free); n > 0 {
		slot, t.free = t.free[n-1], t.free[:n-1]
	} else {
		slot = int32(len(t.slots))
		t.slots = append(t.slots, openAuction{})
	}
	s := &t.slots[slot]
	*s = openAuction{a: *a}
	t.open[a.ID] = slot
	t.heap = heapPush(t.heap, closeItem{expires: a.Expires, id: a.ID, slot: slot}, closesBefore)
	if bids, ok := t.pending[a.ID]; ok {
		for i := range bids {
			s.offer(&bids[i])
		}
		t.pendLen -= len(bids)
		delete(t.pending, a.ID)
		t.spare = append(t.spare, bids[:0])
	}
	if a.Expires < t.wm {
		t.closeUntil(t.wm)
	}
}

func (t *auctions) bid(b *Bid) {
	w := winBid{price: b.Price, dateTime: b.DateTime, bidder: b.Bidder, extra: b.Extra}
	if slot, ok := t.open[b.Auction]; ok {
		t.slots[slot].offer(&w)
		return
	}
	if b.DateTime < t.wm {
		return // no auction still to come can start at or before this bid
	}
	bids, ok := t.pending[b.Auction]
	if !ok {
		if n := len(t.spare); n > 0 {
			bids, t.spare = t.spare[n-1], t.spare[:n-1]
		}
	}
	t.pending[b.Auction] = append(bids, w)
	if t.pendLen++; t.pendLen >= t.sweepAt {
		t.sweep()
	}
}

func (t *auctions) sweep() {
	for id, bids := range t.pending {
		keep := bids[:0]
		for _, w := range bids {
			if w.dateTime >= t.wm {
				keep = append(keep, w)
			}
		}
		t.pendLen -= len(bids) - len(keep)
		if len(keep) == 0 {
			delete(t.pending, id)
			t.spare = append(t.spare, keep)
		} else {
			t.pending[id] = keep
		}
	}
	t.sweepAt = max(pendingSweepMin, 2*t.pendLen)
}

// pendingSweepMin is the smallest pending size that triggers a sweep (a variable so that
// tests can sweep on every bid).
var pendingSweepMin = 1024

func (t *auctions) advance(wm int64) {
	t.wm = wm
	if len(t.heap) > 0 && t.heap[0].expires < wm {
		t.closeUntil(wm)
	}
}

func (t *auctions) closeUntil(wm int64) {
	for len(t.heap) > 0 && t.heap[0].expires < wm {
		var it closeItem
		t.heap, it = heapPop(t.heap, closesBefore)
		delete(t.open, it.id)
		t.onClose(&t.slots[it.slot])
		t.slots[it.slot] = openAuction{} // drop string references
		t.free = append(t.free, it.slot)
	}
}

func (t *auctions) finish() {
	t.wm = math.MaxInt64
	t.closeUntil(math.MaxInt64)
	clear(t.pending)
}

// q4: average winning price per category, updated on every close.
type q4Agg struct{ sum, n int64 }

type q4 struct {
	sink
	noPersons
	auctions
	cats map[int64]q4Agg
	row  Q4Row
}

func (q *q4) closed(s *openAuction) {
	if !s.has {
		return
	}
	agg := q.cats[s.a.Category]
	agg.sum += s.best.price
	agg.n++
	q.cats[s.a.Category] = agg
	q.row = Q4Row{ID: s.a.Category, Final: Q4Average(agg.sum, agg.n)}
	q.out(&q.row)
}

// q9: each auction with its winning bid, on close.
type q9 struct {
	sink
	noPersons
	auctions
	row Q9Row
}

func (q *q9) closed(s *openAuction) {
	if !s.has {
		return
	}
	q.row = Q9Row{Auction: s.a, BidAuction: s.a.ID, Bidder: s.best.bidder, Price: s.best.price,
		BidDateTime: s.best.dateTime, BidExtra: s.best.extra}
	q.out(&q.row)
}

// q5: hot items over sliding windows. Bids are counted per 2 s pane; a 10 s window is
// the sum of its five panes, computed when it fires. Each bid thus costs one map
// increment instead of five, and each pane is merged five times per its lifetime.
type q5 struct {
	sink
	noPersons
	noAuctions
	wm      int64
	panes   map[int64]map[int64]int64 // pane index -> auction -> bids
	spare   []map[int64]int64
	next    int64 // lowest window index not fired yet; meaningful while panes is non-empty
	counts  map[int64]int64
	winners []int64
	row     Q5Row
}

func (q *q5) bid(b *Bid) {
	if b.DateTime < q.wm {
		return
	}
	p := floorDiv(b.DateTime, Q5SlideMs)
	m := q.panes[p]
	if m == nil {
		if n := len(q.spare); n > 0 {
			m, q.spare = q.spare[n-1], q.spare[:n-1]
		} else {
			m = map[int64]int64{}
		}
		// Windows p-4..p contain the bid; none of them has fired since they end after
		// the watermark.
		if first := p - (q5PerWindow - 1); len(q.panes) == 0 || first < q.next {
			q.next = first
		}
		q.panes[p] = m
	}
	m[b.Auction]++
}

func (q *q5) advance(wm int64) {
	q.wm = wm
	for len(q.panes) > 0 && (q.next+q5PerWindow)*Q5SlideMs <= wm {
		w := q.next
		q.fire(w)
		if m, ok := q.panes[w]; ok { // no later window covers pane w
			delete(q.panes, w)
			clear(m)
			q.spare = append(q.spare, m)
		}
		q.next++
		if len(q.panes) > 0 && !q.hasPanes(q.next) {
			// Skip a gap in the data: jump to the first window of the lowest pane.
			lo := int64(math.MaxInt64)
			for p := range q.panes {
				lo = min(lo, p)
			}
			q.next = max(q.next, lo-(q5PerWindow-1))
		}
	}
}

func (q *q5) hasPanes(w int64) bool {
	for k := int64(0); k < q5PerWindow; k++ {
		if _, ok := q.panes[w+k]; ok {
			return true
		}
	}
	return false
}

func (q *q5) fire(w int64) {
	clear(q.counts)
	for k := int64(0); k < q5PerWindow; k++ {
		for a, c := range q.panes[w+k] {
			q.counts[a] += c
		}
	}
	if len(q.counts) == 0 {
		return
	}
	best := int64(0)
	q.winners = q.winners[:0]
	for a, c := range q.counts {
		switch {
		case c > best:
			best = c
			q.winners = append(q.winners[:0], a)
		case c == best:
			q.winners = append(q.winners, a)
		}
	}
	slices.Sort(q.winners)
	start := w * Q5SlideMs
	for _, a := range q.winners {
		q.row = Q5Row{Auction: a, Num: best, StartTime: start, EndTime: start + Q5WindowMs}
		q.out(&q.row)
	}
}

func (q *q5) finish() { q.advance(math.MaxInt64) }

// q7: highest bids per tumbling window. A window keeps its current maximum and the bids
// at it, so state is O(1) per window in practice.
type q7Window struct {
	max  int64
	bids []Q7Row
}

type q7 struct {
	sink
	noPersons
	noAuctions
	wm     int64
	wins   map[int64]*q7Window // window index -> state
	spare  []*q7Window
	minEnd int64 // earliest end among wins
	due    []int64
}

func (q *q7) bid(b *Bid) {
	if b.DateTime < q.wm {
		return
	}
	w := floorDiv(b.DateTime, Q7WindowMs)
	win := q.wins[w]
	if win == nil {
		if n := len(q.spare); n > 0 {
			win, q.spare = q.spare[n-1], q.spare[:n-1]
		} else {
			win = &q7Window{}
		}
		q.wins[w] = win
		q.minEnd = min(q.minEnd, (w+1)*Q7WindowMs)
	}
	if len(win.bids) == 0 || b.Price > win.max {
		win.max = b.Price
		win.bids = win.bids[:0]
	}
	if b.Price == win.max {
		win.bids = append(win.bids, Q7Row{Auction: b.Auction, Price: b.Price, Bidder: b.Bidder, DateTime: b.DateTime, Extra: b.Extra})
	}
}

func (q *q7) advance(wm int64) {
	q.wm = wm
	if wm < q.minEnd {
		return
	}
	q.due = q.due[:0]
	q.minEnd = math.MaxInt64
	for w := range q.wins {
		if end := (w + 1) * Q7WindowMs; end <= wm {
			q.due = append(q.due, w)
		} else {
			q.minEnd = min(q.minEnd, end)
		}
	}
	slices.Sort(q.due)
	for _, w := range q.due {
		win := q.wins[w]
		for i := range win.bids {
			q.out(&win.bids[i])
		}
		delete(q.wins, w)
		clear(win.bids) // drop string references
		win.bids = win.bids[:0]
		q.spare = append(q.spare, win)
	}
}

func (q *q7) finish() { q.advance(math.MaxInt64) }

// q8: persons who registered and created an auction in the same tumbling window.
type q8Window struct {
	persons map[int64]string   // id -> name of persons registered in the window
	sellers map[int64]struct{} // sellers of auctions created in the window
}

type q8 struct {
	sink
	wm     int64
	wins   map[int64]*q8Window
	spare  []*q8Window
	minEnd int64
	due    []int64
	ids    []int64
	row    Q8Row
}

func (q *q8) window(ts int64) *q8Window {
	w := floorDiv(ts, Q8WindowMs)
	win := q.wins[w]
	if win == nil {
		if n := len(q.spare); n > 0 {
			win, q.spare = q.spare[n-1], q.spare[:n-1]
		} else {
			win = &q8Window{persons: map[int64]string{}, sellers: map[int64]struct{}{}}
		}
		q.wins[w] = win
		q.minEnd = min(q.minEnd, (w+1)*Q8WindowMs)
	}
	return win
}

func (q *q8) person(p *Person) {
	if p.DateTime >= q.wm {
		q.window(p.DateTime).persons[p.ID] = p.Name
	}
}

func (q *q8) auction(a *Auction) {
	if a.DateTime >= q.wm {
		q.window(a.DateTime).sellers[a.Seller] = struct{}{}
	}
}

func (q *q8) bid(*Bid) {}

func (q *q8) advance(wm int64) {
	q.wm = wm
	if wm < q.minEnd {
		return
	}
	q.due = q.due[:0]
	q.minEnd = math.MaxInt64
	for w := range q.wins {
		if end := (w + 1) * Q8WindowMs; end <= wm {
			q.due = append(q.due, w)
		} else {
			q.minEnd = min(q.minEnd, end)
		}
	}
	slices.Sort(q.due)
	for _, w := range q.due {
		win := q.wins[w]
		q.ids = q.ids[:0]
		for id := range win.persons {
			if _, ok := win.sellers[id]; ok {
				q.ids = append(q.ids, id)
			}
		}
		slices.Sort(q.ids)
		for _, id := range q.ids {
			q.row = Q8Row{ID: id, Name: win.persons[id], STime: w * Q8WindowMs}
			q.out(&q.row)
		}
		delete(q.wins, w)
		clear(win.persons)
		clear(win.sellers)
		q.spare = append(q.spare, win)
	}
}

func (q *q8) finish() { q.advance(math.MaxInt64) }

// q11: per-bidder session windows. A bidder's open sessions form a linked list through
// sess (almost always one entry; out-of-order bids can open a second one that a later
// bid bridges). The heap holds one entry per session keyed by its end as of when the
// entry was pushed; since a session's end only grows, a popped entry whose session has
// grown is pushed again rather than updating the heap on every bid.
type q11Session struct {
	bidder, start, last, count int64
	next                       int32 // next session of the same bidder, -1 at the end
	gen                        uint32
}

type q11Item struct {
	end  int64
	slot int32
	gen  uint32
}

func endsBefore(x, y q11Item) bool { return x.end < y.end }

type q11 struct {
	sink
	noPersons
	noAuctions
	wm    int64
	heads map[int64]int32 // bidder -> first open session
	sess  []q11Session
	free  []int32
	heap  []q11Item
	row   Q11Row
}

func (q *q11) bid(b *Bid) {
	t := b.DateTime
	if t < q.wm {
		return
	}
	head, ok := q.heads[b.Bidder]
	if !ok {
		head = -1
	}
	hit, prev := int32(-1), int32(-1)
	for i := head; i != -1; {
		s := &q.sess[i]
		next := s.next
		if t >= s.start-Q11GapMs && t <= s.last+Q11GapMs {
			if hit < 0 {
				hit, prev = i, i
				s.start, s.last, s.count = min(s.start, t), max(s.last, t), s.count+1
			} else { // t bridges two sessions: merge s into hit
				h := &q.sess[hit]
				h.start, h.last, h.count = min(h.start, s.start), max(h.last, s.last), h.count+s.count
				q.sess[prev].next = next
				q.release(i)
			}
		} else {
			prev = i
		}
		i = next
	}
	if hit >= 0 {
		return
	}
	var slot int32
	if n := len(q.free); n > 0 {
		slot, q.free = q.free[n-1], q.free[:n-1]
	} else {
		slot = int32(len(q.sess))
		q.sess = append(q.sess, q11Session{})
	}
	s := &q.sess[slot]
	s.bidder, s.start, s.last, s.count, s.next = b.Bidder, t, t, 1, head
	q.heads[b.Bidder] = slot
	q.heap = heapPush(q.heap, q11Item{end: t + Q11GapMs, slot: slot, gen: s.gen}, endsBefore)
}

// release frees a session slot; bumping gen invalidates its heap entries.
func (q *q11) release(i int32) {
	q.sess[i].gen++
	q.free = append(q.free, i)
}

func (q *q11) advance(wm int64) {
	q.wm = wm
	for len(q.heap) > 0 && q.heap[0].end < wm {
		var it q11Item
		q.heap, it = heapPop(q.heap, endsBefore)
		s := &q.sess[it.slot]
		if s.gen != it.gen {
			continue // merged away
		}
		end := s.last + Q11GapMs
		if end >= wm {
			q.heap = heapPush(q.heap, q11Item{end: end, slot: it.slot, gen: it.gen}, endsBefore)
			continue
		}
		q.row = Q11Row{Bidder: s.bidder, BidCount: s.count, StartTime: s.start, EndTime: end}
		q.out(&q.row)
		q.unlink(it.slot)
		q.release(it.slot)
	}
}

func (q *q11) unlink(slot int32) {
	s := &q.sess[slot]
	head := q.heads[s.bidder]
	if head == slot {
		if s.next < 0 {
			delete(q.heads, s.bidder)
		} else {
			q.heads[s.bidder] = s.next
		}
		return
	}
	for i := head; i >= 0; i = q.sess[i].next {
		if q.sess[i].next == slot {
			q.sess[i].next = s.next
			return
		}
	}
}

func (q *q11) finish() { q.advance(math.MaxInt64) }

// heapPush and heapPop implement a binary min-heap on a slice (container/heap would box
// every element in an interface).
func heapPush[T any](h []T, x T, less func(a, b T) bool) []T {
	h = append(h, x)
	i := len(h) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if !less(h[i], h[parent]) {
			break
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
	return h
}

func heapPop[T any](h []T, less func(a, b T) bool) ([]T, T) {
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	var zero T
	h[last] = zero
	h = h[:last]
	i := 0
	for {
		l, small := 2*i+1, i
		if l < len(h) && less(h[l], h[small]) {
			small = l
		}
		if r := l + 1; r < len(h) && less(h[r], h[small]) {
			small = r
		}
		if small == i {
			return h, top
		}
		h[i], h[small] = h[small], h[i]
		i = small
	}
}
