package nexmark

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// The JSON-lines input format: one object per line,
//
//	{"event_type":0,"person":{"id":..,"name":..,"emailAddress":..,"creditCard":..,"city":..,"state":..,"dateTime":..,"extra":..}}
//	{"event_type":1,"auction":{"id":..,"itemName":..,"description":..,"initialBid":..,"reserve":..,"dateTime":..,"expires":..,"seller":..,"category":..,"extra":..}}
//	{"event_type":2,"bid":{"auction":..,"bidder":..,"price":..,"channel":..,"url":..,"dateTime":..,"extra":..}}
//
// with times in epoch milliseconds. The encoder and decoder are hand-written because
// encoding/json's reflection costs several microseconds per event, more than every
// query except the joins; the decoder slices all unescaped strings of a line out of one
// string copy of it, so a line costs two allocations.

// AppendEventJSON appends e as one JSON object in the input format (no newline), members
// in the order listed above. A nil member is written as null.
func AppendEventJSON(dst []byte, e Event) []byte {
	dst = append(dst, `{"event_type":`...)
	dst = strconv.AppendInt(dst, int64(e.Type), 10)
	switch e.Type {
	case PersonEvent:
		dst = append(dst, `,"person":`...)
		if e.Person == nil {
			return append(dst, "null}"...)
		}
		dst = appendPerson(dst, e.Person)
	case AuctionEvent:
		dst = append(dst, `,"auction":`...)
		if e.Auction == nil {
			return append(dst, "null}"...)
		}
		dst = appendAuction(dst, e.Auction)
	case BidEvent:
		dst = append(dst, `,"bid":`...)
		if e.Bid == nil {
			return append(dst, "null}"...)
		}
		dst = appendBid(dst, e.Bid)
	}
	return append(dst, '}')
}

func appendPerson(dst []byte, p *Person) []byte {
	dst = appendIntField(dst, `{"id":`, p.ID)
	dst = appendStringField(dst, `,"name":`, p.Name)
	dst = appendStringField(dst, `,"emailAddress":`, p.EmailAddress)
	dst = appendStringField(dst, `,"creditCard":`, p.CreditCard)
	dst = appendStringField(dst, `,"city":`, p.City)
	dst = appendStringField(dst, `,"state":`, p.State)
	dst = appendIntField(dst, `,"dateTime":`, p.DateTime)
	dst = appendStringField(dst, `,"extra":`, p.Extra)
	return append(dst, '}')
}

// appendAuctionFields appends the members of a without braces; q9's row reuses it.
func appendAuctionFields(dst []byte, a *Auction) []byte {
	dst = appendIntField(dst, `"id":`, a.ID)
	dst = appendStringField(dst, `,"itemName":`, a.ItemName)
	dst = appendStringField(dst, `,"description":`, a.Description)
	dst = appendIntField(dst, `,"initialBid":`, a.InitialBid)
	dst = appendIntField(dst, `,"reserve":`, a.Reserve)
	dst = appendIntField(dst, `,"dateTime":`, a.DateTime)
	dst = appendIntField(dst, `,"expires":`, a.Expires)
	dst = appendIntField(dst, `,"seller":`, a.Seller)
	dst = appendIntField(dst, `,"category":`, a.Category)
	return appendStringField(dst, `,"extra":`, a.Extra)
}

func appendAuction(dst []byte, a *Auction) []byte {
	dst = append(dst, '{')
	return append(appendAuctionFields(dst, a), '}')
}

func appendBid(dst []byte, b *Bid) []byte {
	dst = appendIntField(dst, `{"auction":`, b.Auction)
	dst = appendIntField(dst, `,"bidder":`, b.Bidder)
	dst = appendIntField(dst, `,"price":`, b.Price)
	dst = appendStringField(dst, `,"channel":`, b.Channel)
	dst = appendStringField(dst, `,"url":`, b.URL)
	dst = appendIntField(dst, `,"dateTime":`, b.DateTime)
	dst = appendStringField(dst, `,"extra":`, b.Extra)
	return append(dst, '}')
}

func appendIntField(dst []byte, key string, v int64) []byte {
	return strconv.AppendInt(append(dst, key...), v, 10)
}

func appendStringField(dst []byte, key, v string) []byte {
	return appendJSONString(append(dst, key...), v)
}

// appendFloatField writes v in plain decimal notation (no exponent), the shortest that
// round-trips, so that rows compare byte for byte across implementations that compute
// the same float64.
func appendFloatField(dst []byte, key string, v float64) []byte {
	dst = append(dst, key...)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(dst, "null"...) // not representable in JSON
	}
	return strconv.AppendFloat(dst, v, 'f', -1, 64)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string: '"', '\\' and control characters are
// escaped, invalid UTF-8 bytes become U+FFFD and U+2028/U+2029 are escaped for
// JavaScript consumers, as encoding/json does.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// ErrJSON is wrapped by every syntax or schema error of ParseEventJSON.
var ErrJSON = errors.New("invalid event JSON")

// ParseEventJSON decodes one line of the input format. Member order is free, unknown
// members are ignored, the members not named by event_type may be absent or null, and
// every field of the named member must be present. Errors wrap ErrJSON and name the
// problem and its column.
func ParseEventJSON(line []byte) (Event, error) {
	p := jsonParser{s: string(line)}
	ev, err := p.event()
	if err != nil {
		return Event{}, fmt.Errorf("%w: %w", ErrJSON, err)
	}
	return ev, nil
}

type jsonParser struct {
	s string
	i int
}

func (p *jsonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("column %d: %s", p.i+1, fmt.Sprintf(format, args...))
}

// found describes the next input character for error messages.
func (p *jsonParser) found() string {
	if p.i >= len(p.s) {
		return "end of line"
	}
	return strconv.QuoteRune(rune(p.s[p.i]))
}

func (p *jsonParser) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) expect(c byte) error {
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return nil
	}
	return p.errorf("expected %q, found %s", c, p.found())
}

// object parses {"key": value, ...}, calling member with the parser positioned at each
// value.
func (p *jsonParser) object(member func(key string) error) error {
	if err := p.expect('{'); err != nil {
		return err
	}
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return nil
	}
	for {
		p.ws()
		key, err := p.str()
		if err != nil {
			return err
		}
		if err := p.expect(':'); err != nil {
			return err
		}
		p.ws()
		if err := member(key); err != nil {
			return err
		}
		p.ws()
		if p.i < len(p.s) {
			switch p.s[p.i] {
			case ',':
				p.i++
				continue
			case '}':
				p.i++
				return nil
			}
		}
		return p.errorf("expected ',' or '}' after member %q, found %s", key, p.found())
	}
}

// null consumes a null literal if one is next.
func (p *jsonParser) null() bool {
	if strings.HasPrefix(p.s[p.i:], "null") {
		p.i += 4
		return true
	}
	return false
}

func (p *jsonParser) event() (Event, error) {
	var (
		typ      int64
		haveType bool
		ev       Event
	)
	err := p.object(func(key string) error {
		var err error
		switch key {
		case "event_type":
			typ, err = p.int()
			haveType = err == nil
		case "person":
			if !p.null() {
				ev.Person = new(Person)
				err = p.person(ev.Person)
			}
		case "auction":
			if !p.null() {
				ev.Auction = new(Auction)
				err = p.auction(ev.Auction)
			}
		case "bid":
			if !p.null() {
				ev.Bid = new(Bid)
				err = p.bid(ev.Bid)
			}
		default:
			err = p.skip(0)
		}
		if err != nil {
			return fmt.Errorf("member %q: %w", key, err)
		}
		return nil
	})
	if err != nil {
		return Event{}, err
	}
	if p.ws(); p.i != len(p.s) {
		return Event{}, p.errorf("unexpected %s after the event object", p.found())
	}
	if !haveType {
		return Event{}, errors.New(`missing member "event_type"`)
	}
	if typ < int64(PersonEvent) || typ > int64(BidEvent) {
		return Event{}, fmt.Errorf("unknown event_type %d (want 0 person, 1 auction or 2 bid)", typ)
	}
	ev.Type = EventType(typ)
	set := [3]bool{ev.Person != nil, ev.Auction != nil, ev.Bid != nil}
	if !set[typ] {
		return Event{}, fmt.Errorf("event_type %d but member %q is missing or null", typ, ev.Type.String())
	}
	for t, ok := range set {
		if ok && int64(t) != typ {
			return Event{}, fmt.Errorf("event_type %d (%s) but member %q is also set", typ, ev.Type, EventType(t).String())
		}
	}
	return ev, nil
}

var (
	personFields  = []string{"id", "name", "emailAddress", "creditCard", "city", "state", "dateTime", "extra"}
	auctionFields = []string{"id", "itemName", "description", "initialBid", "reserve", "dateTime", "expires", "seller", "category", "extra"}
	bidFields     = []string{"auction", "bidder", "price", "channel", "url", "dateTime", "extra"}
)

// fields parses an object whose known members are names, calling set with each known
// member's index, and fails on the first member of names that is absent.
func (p *jsonParser) fields(names []string, set func(i int) error) error {
	var seen uint32
	err := p.object(func(key string) error {
		for i, n := range names {
			if n == key {
				seen |= 1 << i
				if err := set(i); err != nil {
					return fmt.Errorf("member %q: %w", key, err)
				}
				return nil
			}
		}
		return p.skip(0)
	})
	if err != nil {
		return err
	}
	for i, n := range names {
		if seen&(1<<i) == 0 {
			return fmt.Errorf("missing member %q", n)
		}
	}
	return nil
}

func (p *jsonParser) person(v *Person) (err error) {
	return p.fields(personFields, func(i int) error {
		switch i {
		case 0:
			v.ID, err = p.int()
		case 1:
			v.Name, err = p.str()
		case 2:
			v.EmailAddress, err = p.str()
		case 3:
			v.CreditCard, err = p.str()
		case 4:
			v.City, err = p.str()
		case 5:
			v.State, err = p.str()
		case 6:
			v.DateTime, err = p.int()
		case 7:
			v.Extra, err = p.str()
		}
		return err
	})
}

func (p *jsonParser) auction(v *Auction) (err error) {
	return p.fields(auctionFields, func(i int) error {
		switch i {
		case 0:
			v.ID, err = p.int()
		case 1:
			v.ItemName, err = p.str()
		case 2:
			v.Description, err = p.str()
		case 3:
			v.InitialBid, err = p.int()
		case 4:
			v.Reserve, err = p.int()
		case 5:
			v.DateTime, err = p.int()
		case 6:
			v.Expires, err = p.int()
		case 7:
			v.Seller, err = p.int()
		case 8:
			v.Category, err = p.int()
		case 9:
			v.Extra, err = p.str()
		}
		return err
	})
}

func (p *jsonParser) bid(v *Bid) (err error) {
	return p.fields(bidFields, func(i int) error {
		switch i {
		case 0:
			v.Auction, err = p.int()
		case 1:
			v.Bidder, err = p.int()
		case 2:
			v.Price, err = p.int()
		case 3:
			v.Channel, err = p.str()
		case 4:
			v.URL, err = p.str()
		case 5:
			v.DateTime, err = p.int()
		case 6:
			v.Extra, err = p.str()
		}
		return err
	})
}

// int parses a JSON number that must be an integer in int64 range.
func (p *jsonParser) int() (int64, error) {
	start := p.i
	if p.i < len(p.s) && p.s[p.i] == '-' {
		p.i++
	}
	digits := p.i
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
	}
	if p.i == digits {
		p.i = start
		return 0, p.errorf("expected an integer, found %s", p.found())
	}
	if p.i < len(p.s) && (p.s[p.i] == '.' || p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		p.i = start
		return 0, p.errorf("expected an integer, found a fractional or exponent number")
	}
	if p.s[digits] == '0' && p.i-digits > 1 {
		p.i = start
		return 0, p.errorf("invalid number: leading zero")
	}
	v, err := strconv.ParseInt(p.s[start:p.i], 10, 64)
	if err != nil {
		num := p.s[start:p.i]
		p.i = start
		return 0, p.errorf("integer %s out of range", num)
	}
	return v, nil
}

// str parses a JSON string. Without escapes the result is a substring of the line.
func (p *jsonParser) str() (string, error) {
	if p.i >= len(p.s) || p.s[p.i] != '"' {
		return "", p.errorf("expected a string, found %s", p.found())
	}
	p.i++
	start := p.i
	for p.i < len(p.s) {
		switch c := p.s[p.i]; {
		case c == '"':
			v := p.s[start:p.i]
			p.i++
			return v, nil
		case c == '\\':
			return p.escapedStr(start)
		case c < 0x20:
			return "", p.errorf("control character %#x in string", c)
		}
		p.i++
	}
	return "", p.errorf("unterminated string")
}

// escapedStr finishes a string that contains escapes, the first at p.i.
func (p *jsonParser) escapedStr(start int) (string, error) {
	b := make([]byte, 0, p.i-start+16)
	b = append(b, p.s[start:p.i]...)
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return string(b), nil
		case c < 0x20:
			return "", p.errorf("control character %#x in string", c)
		case c != '\\':
			b = append(b, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.s) {
			break
		}
		e := p.s[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, err := p.hex4()
			if err != nil {
				return "", err
			}
			if utf16.IsSurrogate(r) {
				r2 := utf8.RuneError
				if strings.HasPrefix(p.s[p.i:], `\u`) {
					save := p.i
					p.i += 2
					lo, err := p.hex4()
					if err != nil {
						return "", err
					}
					if r2 = utf16.DecodeRune(r, lo); r2 == utf8.RuneError {
						p.i = save // not a pair: the second escape stands alone
					}
				}
				r = r2
			}
			b = utf8.AppendRune(b, r)
		default:
			p.i -= 2
			return "", p.errorf("invalid escape \\%c in string", e)
		}
	}
	return "", p.errorf("unterminated string")
}

func (p *jsonParser) hex4() (rune, error) {
	if p.i+4 > len(p.s) {
		return 0, p.errorf(`truncated \u escape`)
	}
	v, err := strconv.ParseUint(p.s[p.i:p.i+4], 16, 32)
	if err != nil {
		return 0, p.errorf(`invalid \u escape %q`, p.s[p.i:p.i+4])
	}
	p.i += 4
	return rune(v), nil
}

// skip consumes any JSON value (of unknown members).
func (p *jsonParser) skip(depth int) error {
	if depth > 64 {
		return p.errorf("nesting too deep")
	}
	p.ws()
	if p.i >= len(p.s) {
		return p.errorf("expected a value, found end of line")
	}
	switch c := p.s[p.i]; {
	case c == '"':
		_, err := p.str()
		return err
	case c == '{':
		return p.object(func(string) error { return p.skip(depth + 1) })
	case c == '[':
		p.i++
		p.ws()
		if p.i < len(p.s) && p.s[p.i] == ']' {
			p.i++
			return nil
		}
		for {
			if err := p.skip(depth + 1); err != nil {
				return err
			}
			p.ws()
			if p.i < len(p.s) && p.s[p.i] == ',' {
				p.i++
				continue
			}
			return p.expect(']')
		}
	case c == '-' || (c >= '0' && c <= '9'):
		start := p.i
		for p.i < len(p.s) && strings.IndexByte("+-.eE0123456789", p.s[p.i]) >= 0 {
			p.i++
		}
		if _, err := strconv.ParseFloat(p.s[start:p.i], 64); err != nil {
			p.i = start
			return p.errorf("invalid number")
		}
		return nil
	default:
		for _, lit := range []string{"true", "false", "null"} {
			if strings.HasPrefix(p.s[p.i:], lit) {
				p.i += len(lit)
				return nil
			}
		}
		return p.errorf("expected a value, found %s", p.found())
	}
}

// maxLineBytes bounds one input line; generated lines are under 1 KiB.
const maxLineBytes = 64 << 20

// ReadEvents calls fn for each event of the JSON-lines stream r, in order. Blank lines
// are skipped and a trailing "\r" is ignored. Parse errors and fn's errors are returned
// prefixed with the 1-based line number ("line 17: ..."), fn's errors still matching
// errors.Is. Each event owns its memory: fn may retain it.
func ReadEvents(r io.Reader, fn func(Event) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLineBytes)
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(strings.TrimSpace(string(b))) == 0 { // no allocation: the conversion does not escape
			continue
		}
		ev, err := ParseEventJSON(b)
		if err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		if err := fn(ev); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("line %d: read events: %w", line+1, err)
	}
	return nil
}

// WriteEvents writes events 0..count-1 of g to w as JSON lines, in event-number order:
// that is dateTime order when g's OutOfOrderness is 0, and otherwise out of order by at
// most OutOfOrderness.
func WriteEvents(w io.Writer, g *Generator, count int64) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	var (
		p   Person
		a   Auction
		b   Bid
		buf []byte
	)
	for n := int64(0); n < count; n++ {
		ev := Event{Type: g.fill(n, &p, &a, &b)}
		switch ev.Type {
		case PersonEvent:
			ev.Person = &p
		case AuctionEvent:
			ev.Auction = &a
		default:
			ev.Bid = &b
		}
		buf = append(AppendEventJSON(buf[:0], ev), '\n')
		if _, err := bw.Write(buf); err != nil {
			return fmt.Errorf("write events: event %d: %w", n, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write events: %w", err)
	}
	return nil
}
