package nexmark_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/strom-dev/strom/nexmark"
)

func TestJSONRoundTrip(t *testing.T) {
	g := nexmark.NewGenerator(nexmark.GeneratorConfig{Seed: 11, EventsPerSecond: 1000, OutOfOrderness: time.Second})
	var buf []byte
	for n := int64(0); n < 20_000; n++ {
		e := g.Event(n)
		buf = nexmark.AppendEventJSON(buf[:0], e)
		got, err := nexmark.ParseEventJSON(buf)
		if err != nil {
			t.Fatalf("event %d: %v\n%s", n, err, buf)
		}
		check(t, reflect.DeepEqual(e, got), "event %d: round trip differs\n%s", n, buf)
	}
}

// TestJSONFormat pins the exact wire format of each event type.
func TestJSONFormat(t *testing.T) {
	p := nexmark.Event{Type: nexmark.PersonEvent, Person: &nexmark.Person{ID: 1000, Name: "Peter Shultz", EmailAddress: "a@b.com",
		CreditCard: "1234 5678 9012 3456", City: "Boise", State: "ID", DateTime: 1700000000000, Extra: "x"}}
	a := nexmark.Event{Type: nexmark.AuctionEvent, Auction: &nexmark.Auction{ID: 1001, ItemName: "item", Description: "desc",
		InitialBid: 100, Reserve: 200, DateTime: 1700000000001, Expires: 1700000001000, Seller: 1000, Category: 10, Extra: ""}}
	b := nexmark.Event{Type: nexmark.BidEvent, Bid: &nexmark.Bid{Auction: 1001, Bidder: 1002, Price: 150, Channel: "Google",
		URL: "https://www.nexmark.com/a/b/c/item.htm?query=1", DateTime: 1700000000002, Extra: "e"}}
	require.Equal(t, `{"event_type":0,"person":{"id":1000,"name":"Peter Shultz","emailAddress":"a@b.com","creditCard":"1234 5678 9012 3456","city":"Boise","state":"ID","dateTime":1700000000000,"extra":"x"}}`,
		string(nexmark.AppendEventJSON(nil, p)))
	require.Equal(t, `{"event_type":1,"auction":{"id":1001,"itemName":"item","description":"desc","initialBid":100,"reserve":200,"dateTime":1700000000001,"expires":1700000001000,"seller":1000,"category":10,"extra":""}}`,
		string(nexmark.AppendEventJSON(nil, a)))
	require.Equal(t, `{"event_type":2,"bid":{"auction":1001,"bidder":1002,"price":150,"channel":"Google","url":"https://www.nexmark.com/a/b/c/item.htm?query=1","dateTime":1700000000002,"extra":"e"}}`,
		string(nexmark.AppendEventJSON(nil, b)))
	// encoding/json reads the same values, so the format is plain JSON with the model's
	// field names.
	for _, e := range []nexmark.Event{p, a, b} {
		var wire struct {
			EventType int8             `json:"event_type"`
			Person    *nexmark.Person  `json:"person"`
			Auction   *nexmark.Auction `json:"auction"`
			Bid       *nexmark.Bid     `json:"bid"`
		}
		require.NoError(t, json.Unmarshal(nexmark.AppendEventJSON(nil, e), &wire))
		require.Equal(t, e, nexmark.Event{Type: nexmark.EventType(wire.EventType), Person: wire.Person, Auction: wire.Auction, Bid: wire.Bid})
	}
}

// TestJSONStrings: arbitrary strings are escaped into valid JSON that encoding/json and
// ParseEventJSON both decode back to the original.
func TestJSONStrings(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := rapid.OneOf(rapid.String(), rapid.StringOf(rapid.RuneFrom([]rune{'"', '\\', '/', '\n', '\r', '\t', 0, 0x1f, 0x7f, 'é', '\u2028', '\u2029', '😀', 'a'}))).Draw(t, "s")
		e := nexmark.Event{Type: nexmark.BidEvent, Bid: &nexmark.Bid{Auction: -5, Bidder: 1, Price: 2, Channel: s, URL: s, DateTime: 3, Extra: s}}
		line := nexmark.AppendEventJSON(nil, e)
		if !json.Valid(line) {
			t.Fatalf("invalid JSON: %q", line)
		}
		var wire struct{ Bid nexmark.Bid }
		if err := json.Unmarshal(line, &wire); err != nil || wire.Bid != *e.Bid {
			t.Fatalf("encoding/json reads %+v, %v from %q", wire.Bid, err, line)
		}
		got, err := nexmark.ParseEventJSON(line)
		if err != nil || *got.Bid != *e.Bid {
			t.Fatalf("ParseEventJSON reads %+v, %v from %q", got.Bid, err, line)
		}
	})
}

func TestJSONInvalidUTF8(t *testing.T) {
	e := nexmark.Event{Type: nexmark.BidEvent, Bid: &nexmark.Bid{Extra: "a\xffb"}}
	line := nexmark.AppendEventJSON(nil, e)
	require.True(t, json.Valid(line))
	got, err := nexmark.ParseEventJSON(line)
	require.NoError(t, err)
	require.Equal(t, "a\uFFFDb", got.Bid.Extra)
}

// TestParseLenient: member order, whitespace, escapes, null and unknown members.
func TestParseLenient(t *testing.T) {
	line := ` { "bid" : { "extra":"\u00e9\ud83d\ude00\/\"" , "dateTime":5,"url":"u","channel":"c","price":-3,"bidder":2,"auction":1,"more":[1,{"x":null},true,-1.5e3]},
		"person":null, "auction": null, "event_type" : 2, "source": "x" } `
	e, err := nexmark.ParseEventJSON([]byte(line))
	require.NoError(t, err)
	require.Equal(t, nexmark.Event{Type: nexmark.BidEvent, Bid: &nexmark.Bid{Auction: 1, Bidder: 2, Price: -3, Channel: "c", URL: "u", DateTime: 5, Extra: "é😀/\""}}, e)
	require.Equal(t, int64(5), e.Timestamp())
}

func TestParseErrors(t *testing.T) {
	bid := `"bid":{"auction":1,"bidder":2,"price":3,"channel":"c","url":"u","dateTime":4,"extra":"e"}`
	for _, c := range []struct{ line, want string }{
		{``, `expected '{', found end of line`},
		{`[]`, `expected '{', found '['`},
		{`{"event_type":2,` + bid, `expected ',' or '}' after member "bid", found end of line`},
		{`{"event_type":2,` + bid + `} x`, `unexpected 'x' after the event object`},
		{`{` + bid + `}`, `missing member "event_type"`},
		{`{"event_type":7,` + bid + `}`, `unknown event_type 7`},
		{`{"event_type":"2",` + bid + `}`, `member "event_type": column 15: expected an integer, found '"'`},
		{`{"event_type":2.0,` + bid + `}`, `expected an integer, found a fractional or exponent number`},
		{`{"event_type":0,` + bid + `}`, `event_type 0 but member "person" is missing or null`},
		{`{"event_type":2,"bid":null}`, `event_type 2 but member "bid" is missing or null`},
		{`{"event_type":2,"auction":{"id":1,"itemName":"","description":"","initialBid":1,"reserve":1,"dateTime":1,"expires":1,"seller":1,"category":1,"extra":""},` + bid + `}`,
			`event_type 2 (bid) but member "auction" is also set`},
		{`{"event_type":2,"bid":{"auction":1,"bidder":2,"price":3,"channel":"c","dateTime":4,"extra":"e"}}`, `member "bid": missing member "url"`},
		{`{"event_type":2,"bid":{"auction":"1"}}`, `member "bid": member "auction": column 34: expected an integer, found '"'`},
		{`{"event_type":2,"bid":{"auction":99999999999999999999}}`, `integer 99999999999999999999 out of range`},
		{`{"event_type":2,"bid":{"channel":"a` + "\t" + `b"}}`, `control character 0x9 in string`},
		{`{"event_type":2,"bid":{"channel":"a\qb"}}`, `invalid escape \q in string`},
		{`{"event_type":2,"bid":{"channel":"a\u12"}}`, `invalid \u escape`},
		{`{"event_type":2,"bid":{"channel":"abc`, `unterminated string`},
		{`{"event_type":2,"bid":{"x":tru}}`, `expected a value, found 't'`},
		{`{"event_type":01}`, `leading zero`},
	} {
		_, err := nexmark.ParseEventJSON([]byte(c.line))
		require.Error(t, err, c.line)
		require.ErrorIs(t, err, nexmark.ErrJSON)
		require.Contains(t, err.Error(), c.want, c.line)
	}
}

func TestReadEvents(t *testing.T) {
	g := nexmark.NewGenerator(nexmark.GeneratorConfig{Seed: 2, EventsPerSecond: 1000})
	var file bytes.Buffer
	require.NoError(t, nexmark.WriteEvents(&file, g, 5000))
	require.Equal(t, 5000, bytes.Count(file.Bytes(), []byte("\n")))
	n := int64(0)
	require.NoError(t, nexmark.ReadEvents(&file, func(e nexmark.Event) error {
		check(t, reflect.DeepEqual(g.Event(n), e), "event %d differs", n)
		n++
		return nil
	}))
	require.Equal(t, int64(5000), n)

	// Blank lines and CRLF are accepted and still counted for line numbers.
	var lines []string
	for n := range int64(3) {
		lines = append(lines, string(nexmark.AppendEventJSON(nil, g.Event(n))))
	}
	input := lines[0] + "\r\n\n  \n" + lines[1] + "\r\n" + `{"event_type":2,"bid":{}}` + "\n" + lines[2] + "\n"
	var seen int
	err := nexmark.ReadEvents(strings.NewReader(input), func(nexmark.Event) error { seen++; return nil })
	require.ErrorIs(t, err, nexmark.ErrJSON)
	require.Contains(t, err.Error(), `line 5: `)
	require.Contains(t, err.Error(), `missing member "auction"`)
	require.Equal(t, 2, seen)

	// The callback's error stops reading and keeps its identity.
	stop := errors.New("stop")
	err = nexmark.ReadEvents(strings.NewReader(input), func(nexmark.Event) error { return stop })
	require.ErrorIs(t, err, stop)
	require.EqualError(t, err, "line 1: stop")
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, fmt.Errorf("disk full") }

func TestWriteEventsError(t *testing.T) {
	err := nexmark.WriteEvents(failingWriter{}, nexmark.NewGenerator(nexmark.GeneratorConfig{}), 10_000)
	require.ErrorContains(t, err, "write events")
	require.ErrorContains(t, err, "disk full")
}
