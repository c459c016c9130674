package nexmark

import (
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Constants of the nexmark-flink generator that are not configurable there either.
const (
	// FirstPersonID, FirstAuctionID and FirstCategoryID start the id spaces away from 0
	// so that the queries' literal constants (e.g. q2's auction % 123) find matches even
	// on small runs.
	FirstPersonID   = 1000
	FirstAuctionID  = 1000
	FirstCategoryID = 10
	// NumCategories is the number of auction categories (10..14).
	NumCategories = 5

	// personIDLead and auctionIDLead let random references point a few ids past the last
	// generated one, so that a bid can arrive before its auction and an auction before its
	// seller, as in nexmark-flink: joins must cope with either side arriving first.
	personIDLead  = 10
	auctionIDLead = 10
	// hotBatch: a hot seller/bidder/auction is the first of the current batch of this
	// many ids, so hot keys drift slowly over time instead of being fixed forever.
	hotBatch = 100
)

// Defaults used by GeneratorConfig.WithDefaults.
const (
	DefaultEventsPerSecond = 10_000_000
	// DefaultBaseTime is a fixed epoch-ms instant (a multiple of 10 s, so the first
	// tumbling window starts at event 0) that keeps default runs reproducible.
	DefaultBaseTime = 1_700_000_000_000
)

// GeneratorConfig parameterises the event stream. The zero value of every field except
// Seed and OutOfOrderness means "the nexmark-flink default"; call WithDefaults to see
// the effective values.
type GeneratorConfig struct {
	// Seed selects the stream; equal configs produce identical streams.
	Seed int64
	// EventsPerSecond is the event-time rate: the nominal dateTime of event n is
	// BaseTime + n/EventsPerSecond seconds. It does not throttle generation.
	EventsPerSecond float64
	// BaseTime is the nominal dateTime (epoch ms) of event 0.
	BaseTime int64
	// OutOfOrderness is the largest delay subtracted from an event's nominal dateTime
	// (millisecond granularity, drawn per event). Every event's dateTime is therefore at
	// least (max dateTime seen so far) - OutOfOrderness, so a watermark of
	// maxSeen - OutOfOrderness never makes an event late. 0 keeps the stream in order.
	OutOfOrderness time.Duration

	// Proportions of persons, auctions and bids (default 1:3:46).
	PersonProportion, AuctionProportion, BidProportion int
	// A bid is for the hot auction with probability 1-1/HotAuctionRatio (default 2),
	// an auction is by a hot seller with probability 1-1/HotSellersRatio (default 4) and
	// a bid by a hot bidder with probability 1-1/HotBiddersRatio (default 4).
	HotAuctionRatio, HotSellersRatio, HotBiddersRatio int
	// NumActivePeople bounds the persons that random sellers/bidders are drawn from
	// (default 1000); NumInFlightAuctions the auctions random bids go to and sets the
	// average auction length (default 100).
	NumActivePeople, NumInFlightAuctions int
	// Average serialized sizes the extra field pads the records to (default 200, 500
	// and 100 bytes, counted as nexmark-flink does: 8 bytes per number plus string
	// lengths, channel and url excluded).
	AvgPersonByteSize, AvgAuctionByteSize, AvgBidByteSize int
}

// WithDefaults returns c with every unset (zero or negative) field replaced by its
// default, and a negative OutOfOrderness replaced by 0.
func (c GeneratorConfig) WithDefaults() GeneratorConfig {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if !(c.EventsPerSecond > 0) || math.IsInf(c.EventsPerSecond, 0) {
		c.EventsPerSecond = DefaultEventsPerSecond
	}
	if c.BaseTime <= 0 {
		c.BaseTime = DefaultBaseTime
	}
	if c.OutOfOrderness < 0 {
		c.OutOfOrderness = 0
	}
	def(&c.PersonProportion, 1)
	def(&c.AuctionProportion, 3)
	def(&c.BidProportion, 46)
	def(&c.HotAuctionRatio, 2)
	def(&c.HotSellersRatio, 4)
	def(&c.HotBiddersRatio, 4)
	def(&c.NumActivePeople, 1000)
	def(&c.NumInFlightAuctions, 100)
	def(&c.AvgPersonByteSize, 200)
	def(&c.AvgAuctionByteSize, 500)
	def(&c.AvgBidByteSize, 100)
	return c
}

// Generator produces the Nexmark stream. Event n is a pure function of the config and
// n, so a Generator is immutable and safe for concurrent use, and reader i of p can
// generate events i, i+p, i+2p, ... independently of the other readers.
type Generator struct {
	cfg GeneratorConfig

	seedHash uint64
	delayUs  float64 // event-time microseconds between consecutive events
	oooMs    int64

	total, persons, auctions int64
	hotAuction, hotSeller    uint64
	hotBidder                uint64
	activePeople, inFlight   int64
	// horizonEvents is how many events it takes to generate NumInFlightAuctions
	// auctions; auction lengths average the event time this many events take.
	horizonEvents int64

	avgPerson, avgAuction, avgBid int

	pool *stringPool
}

// NewGenerator returns a generator for cfg.WithDefaults(). It is cheap: the string pools
// it slices names and padding out of are built once per process.
func NewGenerator(cfg GeneratorConfig) *Generator {
	cfg = cfg.WithDefaults()
	g := &Generator{
		cfg:          cfg,
		seedHash:     mix64(uint64(cfg.Seed) ^ 0x6a09e667f3bcc909),
		delayUs:      1e6 / cfg.EventsPerSecond,
		oooMs:        cfg.OutOfOrderness.Milliseconds(),
		persons:      int64(cfg.PersonProportion),
		auctions:     int64(cfg.AuctionProportion),
		total:        int64(cfg.PersonProportion + cfg.AuctionProportion + cfg.BidProportion),
		hotAuction:   uint64(cfg.HotAuctionRatio),
		hotSeller:    uint64(cfg.HotSellersRatio),
		hotBidder:    uint64(cfg.HotBiddersRatio),
		activePeople: int64(cfg.NumActivePeople),
		inFlight:     int64(cfg.NumInFlightAuctions),
		avgPerson:    cfg.AvgPersonByteSize,
		avgAuction:   cfg.AvgAuctionByteSize,
		avgBid:       cfg.AvgBidByteSize,
		pool:         sharedPool(),
	}
	g.horizonEvents = g.inFlight * g.total / g.auctions
	if need := max(g.avgPerson, g.avgAuction, g.avgBid) * 2; need > len(g.pool.letters)-poolSpan {
		// Unusually large padding: give this generator its own, longer letter pool.
		p := *g.pool
		p.letters = randomLetters(newRNG(poolSeed+1), poolSpan+need)
		g.pool = &p
	}
	return g
}

// Config returns the effective configuration (with defaults applied).
func (g *Generator) Config() GeneratorConfig { return g.cfg }

// NominalTime returns the dateTime event n has before any out-of-orderness delay. It is
// non-decreasing in n.
func (g *Generator) NominalTime(n int64) int64 {
	return g.cfg.BaseTime + int64(float64(n)*g.delayUs)/1000
}

// MinTimestampFrom returns a lower bound of the dateTime of every event numbered n or
// more: a source reader that has emitted all its events below n may emit it as its
// watermark.
func (g *Generator) MinTimestampFrom(n int64) int64 {
	return g.NominalTime(n) - g.oooMs
}

// Event returns event n (n >= 0), allocating its member. See EventInto for a cheaper
// variant.
func (g *Generator) Event(n int64) Event {
	switch g.kind(n) {
	case PersonEvent:
		p := new(Person)
		g.person(n, p)
		return Event{Type: PersonEvent, Person: p}
	case AuctionEvent:
		a := new(Auction)
		g.auction(n, a)
		return Event{Type: AuctionEvent, Auction: a}
	default:
		b := new(Bid)
		g.bid(n, b)
		return Event{Type: BidEvent, Bid: b}
	}
}

// EventInto returns event n with its member allocated from slab (nil: as Event).
func (g *Generator) EventInto(n int64, slab *Slab) Event {
	if slab == nil {
		return g.Event(n)
	}
	switch g.kind(n) {
	case PersonEvent:
		p := slab.person()
		g.person(n, p)
		return Event{Type: PersonEvent, Person: p}
	case AuctionEvent:
		a := slab.auction()
		g.auction(n, a)
		return Event{Type: AuctionEvent, Auction: a}
	default:
		b := slab.bid()
		g.bid(n, b)
		return Event{Type: BidEvent, Bid: b}
	}
}

// Fill sets dst[i] to event start+i*stride for every i, allocating members from slab
// (nil: one allocation per event). Reader r of p readers calls it with start r (then
// r+len(dst)*p, ...) and stride p.
func (g *Generator) Fill(dst []Event, start, stride int64, slab *Slab) {
	n := start
	for i := range dst {
		dst[i] = g.EventInto(n, slab)
		n += stride
	}
}

// fill generates event n into whichever of p, a and b its type needs, without
// allocating, and returns the type. The baseline and WriteEvents use it with reused
// structs.
func (g *Generator) fill(n int64, p *Person, a *Auction, b *Bid) EventType {
	switch t := g.kind(n); t {
	case PersonEvent:
		g.person(n, p)
		return t
	case AuctionEvent:
		g.auction(n, a)
		return t
	default:
		g.bid(n, b)
		return BidEvent
	}
}

// Slab hands out Person/Auction/Bid structs from chunks of slabChunk, replacing one heap
// allocation per event by one per chunk. Memory is never reused, so returned pointers
// stay valid for good; the price is that a retained struct keeps its whole chunk alive.
// A Slab is not safe for concurrent use: give each reader its own. The zero value is
// ready to use.
type Slab struct {
	persons  []Person
	auctions []Auction
	bids     []Bid
}

const slabChunk = 256

func (s *Slab) person() *Person {
	if len(s.persons) == 0 {
		s.persons = make([]Person, slabChunk)
	}
	p := &s.persons[0]
	s.persons = s.persons[1:]
	return p
}

func (s *Slab) auction() *Auction {
	if len(s.auctions) == 0 {
		s.auctions = make([]Auction, slabChunk)
	}
	a := &s.auctions[0]
	s.auctions = s.auctions[1:]
	return a
}

func (s *Slab) bid() *Bid {
	if len(s.bids) == 0 {
		s.bids = make([]Bid, slabChunk)
	}
	b := &s.bids[0]
	s.bids = s.bids[1:]
	return b
}

// kind returns the type of event n: the first PersonProportion of every
// total-proportion block are persons, then auctions, then bids.
func (g *Generator) kind(n int64) EventType {
	if n < 0 {
		panic(fmt.Sprintf("nexmark: negative event number %d", n))
	}
	rem := n % g.total
	if rem < g.persons {
		return PersonEvent
	}
	if rem < g.persons+g.auctions {
		return AuctionEvent
	}
	return BidEvent
}

// lastBase0PersonID is the id (minus FirstPersonID) of the last person generated at or
// before event n.
func (g *Generator) lastBase0PersonID(n int64) int64 {
	epoch, off := n/g.total, n%g.total
	if off >= g.persons {
		off = g.persons - 1
	}
	return epoch*g.persons + off
}

// lastBase0AuctionID is the id (minus FirstAuctionID) of the last auction generated at
// or before event n; -1 before the first auction.
func (g *Generator) lastBase0AuctionID(n int64) int64 {
	epoch, off := n/g.total, n%g.total
	switch {
	case off < g.persons:
		epoch--
		off = g.auctions - 1
	case off >= g.persons+g.auctions:
		off = g.auctions - 1
	default:
		off -= g.persons
	}
	return epoch*g.auctions + off
}

// randomPerson picks one of the active persons, or one of the next few not yet
// generated.
func (g *Generator) randomPerson(n int64, r *rng) int64 {
	num := g.lastBase0PersonID(n) + 1
	active := min(num, g.activePeople)
	return num - active + int64(r.intn(uint64(active+personIDLead)))
}

// randomAuction picks one of the in-flight auctions, or one of the next few not yet
// generated.
func (g *Generator) randomAuction(n int64, r *rng) int64 {
	hi := g.lastBase0AuctionID(n)
	lo := max(hi-g.inFlight, 0)
	return lo + int64(r.intn(uint64(hi-lo+1+auctionIDLead)))
}

// start seeds the per-event PRNG and returns the event's (possibly delayed) dateTime.
// The delay is always drawn so that the rest of an event does not depend on
// OutOfOrderness.
func (g *Generator) start(n int64, r *rng) int64 {
	r.s = mix64(uint64(n)*0x9e3779b97f4a7c15 ^ g.seedHash)
	d := r.intn(uint64(g.oooMs) + 1)
	return g.NominalTime(n) - int64(d)
}

func (g *Generator) person(n int64, p *Person) {
	var r rng
	p.DateTime = g.start(n, &r)
	pl := g.pool
	p.ID = g.lastBase0PersonID(n) + FirstPersonID
	p.Name = pl.names[r.intn(uint64(len(pl.names)))]
	p.EmailAddress = pl.emails[r.intn(uint64(len(pl.emails)))]
	p.CreditCard = pl.cards[r.intn(uint64(len(pl.cards)))]
	p.City = usCities[r.intn(uint64(len(usCities)))]
	p.State = usStates[r.intn(uint64(len(usStates)))]
	cur := 8 + len(p.Name) + len(p.EmailAddress) + len(p.CreditCard) + len(p.City) + len(p.State)
	p.Extra = g.extra(&r, cur, g.avgPerson)
}

func (g *Generator) auction(n int64, a *Auction) {
	var r rng
	a.DateTime = g.start(n, &r)
	a.ID = g.lastBase0AuctionID(n) + FirstAuctionID
	if r.intn(g.hotSeller) > 0 {
		a.Seller = g.lastBase0PersonID(n) / hotBatch * hotBatch
	} else {
		a.Seller = g.randomPerson(n, &r)
	}
	a.Seller += FirstPersonID
	a.Category = FirstCategoryID + int64(r.intn(NumCategories))
	a.InitialBid = r.price()
	// Lengths are uniform in [1, 2*horizon] ms, horizon being the event time until
	// NumInFlightAuctions more auctions exist, so about that many are open at once.
	horizon := g.NominalTime(n+g.horizonEvents) - g.NominalTime(n)
	a.Expires = a.DateTime + 1 + int64(r.intn(uint64(max(2*horizon, 1))))
	a.ItemName = g.text(&r, 20)
	a.Description = g.text(&r, 100)
	a.Reserve = a.InitialBid + r.price()
	cur := 8 + len(a.ItemName) + len(a.Description) + 8 + 8 + 8 + 8 + 8
	a.Extra = g.extra(&r, cur, g.avgAuction)
}

func (g *Generator) bid(n int64, b *Bid) {
	var r rng
	b.DateTime = g.start(n, &r)
	if r.intn(g.hotAuction) > 0 {
		b.Auction = g.lastBase0AuctionID(n) / hotBatch * hotBatch
	} else {
		b.Auction = g.randomAuction(n, &r)
	}
	b.Auction += FirstAuctionID
	if r.intn(g.hotBidder) > 0 {
		// The second person of the batch, so hot bidders and hot sellers differ.
		b.Bidder = g.lastBase0PersonID(n)/hotBatch*hotBatch + 1
	} else {
		b.Bidder = g.randomPerson(n, &r)
	}
	b.Bidder += FirstPersonID
	b.Price = r.price()
	pl := g.pool
	if r.next()&1 != 0 {
		i := r.intn(uint64(len(hotChannels)))
		b.Channel, b.URL = hotChannels[i], pl.hotURLs[i]
	} else {
		i := r.intn(numChannels)
		b.Channel, b.URL = pl.channels[i], pl.urls[i]
	}
	b.Extra = g.extra(&r, 8+8+8+8, g.avgBid)
}

// extra returns padding of random letters so that cur+len(extra) averages avg, varying
// by ±20% of the padding like nexmark-flink. It is a substring of the shared pool, so it
// costs no allocation.
func (g *Generator) extra(r *rng, cur, avg int) string {
	if cur > avg {
		return ""
	}
	want := avg - cur
	delta := (2*want + 5) / 10 // round(want * 0.2)
	size := want - delta
	if delta > 0 {
		size += int(r.intn(uint64(2 * delta)))
	}
	off := int(r.intn(poolSpan))
	return g.pool.letters[off : off+size]
}

// text returns 3..maxLen-1 characters of lowercase words (trimmed, so possibly
// shorter), like nexmark-flink's nextString.
func (g *Generator) text(r *rng, maxLen int) string {
	size := 3 + int(r.intn(uint64(maxLen-3)))
	off := int(r.intn(poolSpan))
	return strings.TrimSpace(g.pool.text[off : off+size])
}

// rng is splitmix64: a full-period 64-bit generator with a strong output mix, a few
// cycles per draw, seeded per event from hash(seed, n).
type rng struct{ s uint64 }

func newRNG(seed uint64) *rng { return &rng{s: seed} }

func mix64(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	return mix64(r.s)
}

// intn returns a value in [0, n) by Lemire's multiply-shift (bias below 2^-40 for the
// bounds used here); n must be > 0.
func (r *rng) intn(n uint64) uint64 {
	hi, _ := bits.Mul64(r.next(), n)
	return hi
}

// price returns about round(100 * 10^(6u)) for uniform u, i.e. log-uniform in
// [100, 10^8] as in nexmark-flink. 10^(6u) is computed as 2^x with x's integer part as
// an exponent and its fraction by linear interpolation in a 1025-entry table (relative
// error below 6e-8), because math.Exp was a fifth of the cost of generating a bid.
func (r *rng) price() int64 {
	x := float64(r.next()>>11) * (priceLog2Span / (1 << 53)) // [0, 6*log2(10))
	i := int(x)
	j := (x - float64(i)) * exp2Steps
	k := int(j)
	v := exp2Table[k] + (exp2Table[k+1]-exp2Table[k])*(j-float64(k))
	return int64(v*float64(uint64(100)<<i) + 0.5)
}

const (
	priceLog2Span = 6 * math.Ln10 / math.Ln2
	exp2Steps     = 1024
)

// exp2Table[k] = 2^(k/exp2Steps).
var exp2Table = func() (t [exp2Steps + 1]float64) {
	for k := range t {
		t[k] = math.Exp2(float64(k) / exp2Steps)
	}
	return t
}()

// String pools. They are derived from a fixed seed (not the config's Seed) so that they
// are built once per process; the per-event choices among them depend on Seed.
const (
	poolSeed    = 0x243f6a8885a308d3
	poolSpan    = 1 << 16 // random offsets into letters/text are drawn from [0, poolSpan)
	poolTail    = 4096    // slack after poolSpan for the longest substring
	numChannels = 10_000
	poolEmails  = 4096
	poolCards   = 4096
)

var (
	usStates    = []string{"AZ", "CA", "ID", "OR", "WA", "WY"}
	usCities    = []string{"Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland", "Bend", "Redmond", "Seattle", "Kent", "Cheyenne"}
	firstNames  = []string{"Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter"}
	lastNames   = []string{"Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris"}
	hotChannels = []string{"Google", "Facebook", "Baidu", "Apple"}
)

type stringPool struct {
	letters  string // random lowercase letters, for extra
	text     string // lowercase letters with a space about every 13 characters
	names    []string
	emails   []string
	cards    []string
	hotURLs  []string
	channels []string
	urls     []string
}

var sharedPool = sync.OnceValue(func() *stringPool { return buildPool(newRNG(poolSeed)) })

func randomLetters(r *rng, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(r.intn(26))
	}
	return string(b)
}

// randomWord is nexmark-flink's nextString: 3..maxLen-1 letters, each a `space` with
// probability 1/13, trimmed of spaces.
func randomWord(r *rng, maxLen int, space byte) string {
	b := make([]byte, 3+r.intn(uint64(maxLen-3)))
	for i := range b {
		if r.intn(13) == 0 {
			b[i] = space
		} else {
			b[i] = 'a' + byte(r.intn(26))
		}
	}
	return strings.Trim(string(b), " ")
}

func buildPool(r *rng) *stringPool {
	p := &stringPool{letters: randomLetters(r, poolSpan+poolTail)}
	text := make([]byte, poolSpan+poolTail)
	for i := range text {
		if r.intn(13) == 0 {
			text[i] = ' '
		} else {
			text[i] = 'a' + byte(r.intn(26))
		}
	}
	p.text = string(text)
	for _, f := range firstNames {
		for _, l := range lastNames {
			p.names = append(p.names, f+" "+l)
		}
	}
	p.emails = make([]string, poolEmails)
	for i := range p.emails {
		p.emails[i] = randomWord(r, 7, ' ') + "@" + randomWord(r, 5, ' ') + ".com"
	}
	p.cards = make([]string, poolCards)
	for i := range p.cards {
		var sb strings.Builder
		for j := range 4 {
			if j > 0 {
				sb.WriteByte(' ')
			}
			fmt.Fprintf(&sb, "%04d", r.intn(10000))
		}
		p.cards[i] = sb.String()
	}
	baseURL := func() string {
		return "https://www.nexmark.com/" + randomWord(r, 5, '_') + "/" + randomWord(r, 5, '_') + "/" +
			randomWord(r, 5, '_') + "/item.htm?query=1"
	}
	p.hotURLs = make([]string, len(hotChannels))
	for i := range p.hotURLs {
		p.hotURLs[i] = baseURL()
	}
	p.channels = make([]string, numChannels)
	p.urls = make([]string, numChannels)
	for i := range p.channels {
		p.channels[i] = "channel-" + strconv.Itoa(i)
		u := baseURL()
		if r.intn(10) > 0 {
			rev := int32(bits.Reverse32(uint32(i)))
			u += "&channel_id=" + strconv.FormatInt(abs64(int64(rev)), 10)
		}
		p.urls[i] = u
	}
	return p
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
