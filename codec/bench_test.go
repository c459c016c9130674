package codec

import (
	"bytes"
	"encoding/gob"
	"errors"
	"strings"
	"testing"

	"github.com/tinylib/msgp/msgp"
)

// Every benchmark op is one encode plus one decode of a single value, into a reused
// buffer, as an operator would do per record. "wire-B" is the encoded size.
//
//	go test ./codec -run xxx -bench . -benchmem -count 3

func benchCodec[T any](b *testing.B, c Codec[T], v T) {
	b.Helper()
	buf := c.Append(nil, v)
	b.ReportAllocs()
	for b.Loop() {
		buf = c.Append(buf[:0], v)
		_, _, err := c.Decode(buf)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(buf)), "wire-B") // after the loop: b.Loop resets metrics
}

// gobCodec is encoding/gob used the way a per-value codec must use it: a new
// Encoder/Decoder per message, so every message carries gob's type description.
type gobCodec[T any] struct{}

func (gobCodec[T]) Append(dst []byte, v T) []byte {
	buf := bytes.NewBuffer(dst)
	if err := gob.NewEncoder(buf).Encode(v); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

func (gobCodec[T]) Decode(src []byte) (T, int, error) {
	var v T
	r := bytes.NewReader(src)
	err := gob.NewDecoder(r).Decode(&v)
	return v, len(src) - r.Len(), err
}

// bidHand is the hand-written codec an engineer would write for Bid with this package's
// primitives (same wire format as Of[Bid]).
type bidHand struct{}

func (bidHand) Append(dst []byte, v Bid) []byte {
	dst = appendVarint(dst, v.Auction)
	dst = appendVarint(dst, v.Bidder)
	dst = appendVarint(dst, v.Price)
	dst = appendString(dst, v.Channel)
	dst = appendString(dst, v.URL)
	dst = appendVarint(dst, v.DateTime)
	return appendString(dst, v.Extra)
}

var errBid = errors.New("bad bid")

func (bidHand) Decode(src []byte) (Bid, int, error) {
	var v Bid
	var n, pos int
	if v.Auction, n = varint(src); n == 0 {
		return Bid{}, 0, errBid
	}
	pos += n
	if v.Bidder, n = varint(src[pos:]); n == 0 {
		return Bid{}, 0, errBid
	}
	pos += n
	if v.Price, n = varint(src[pos:]); n == 0 {
		return Bid{}, 0, errBid
	}
	pos += n
	if v.Channel, n = decodeString(src[pos:]); n == 0 {
		return Bid{}, 0, errBid
	}
	pos += n
	if v.URL, n = decodeString(src[pos:]); n == 0 {
		return Bid{}, 0, errBid
	}
	pos += n
	if v.DateTime, n = varint(src[pos:]); n == 0 {
		return Bid{}, 0, errBid
	}
	pos += n
	if v.Extra, n = decodeString(src[pos:]); n == 0 {
		return Bid{}, 0, errBid
	}
	return v, pos + n, nil
}

// BidMsgp is Bid with MarshalMsg/UnmarshalMsg as the msgp code generator would emit them
// (array/tuple form), reached through Of's user-hook path.
type BidMsgp Bid

func (v *BidMsgp) MarshalMsg(b []byte) ([]byte, error) {
	b = msgp.AppendArrayHeader(b, 7)
	b = msgp.AppendInt64(b, v.Auction)
	b = msgp.AppendInt64(b, v.Bidder)
	b = msgp.AppendInt64(b, v.Price)
	b = msgp.AppendString(b, v.Channel)
	b = msgp.AppendString(b, v.URL)
	b = msgp.AppendInt64(b, v.DateTime)
	return msgp.AppendString(b, v.Extra), nil
}

func (v *BidMsgp) UnmarshalMsg(b []byte) ([]byte, error) {
	n, b, err := msgp.ReadArrayHeaderBytes(b)
	if err != nil {
		return nil, err
	}
	if n != 7 {
		return nil, errBid
	}
	for _, f := range []*int64{&v.Auction, &v.Bidder, &v.Price} {
		if *f, b, err = msgp.ReadInt64Bytes(b); err != nil {
			return nil, err
		}
	}
	for _, f := range []*string{&v.Channel, &v.URL} {
		if *f, b, err = msgp.ReadStringBytes(b); err != nil {
			return nil, err
		}
	}
	if v.DateTime, b, err = msgp.ReadInt64Bytes(b); err != nil {
		return nil, err
	}
	v.Extra, b, err = msgp.ReadStringBytes(b)
	return b, err
}

// msgpDirect calls the generated methods without going through Of, to show what the
// hook path costs.
type msgpDirect struct{}

func (msgpDirect) Append(dst []byte, v BidMsgp) []byte {
	out, _ := v.MarshalMsg(dst)
	return out
}

func (msgpDirect) Decode(src []byte) (BidMsgp, int, error) {
	var v BidMsgp
	rest, err := v.UnmarshalMsg(src)
	return v, len(src) - len(rest), err
}

func BenchmarkInt64(b *testing.B) {
	const v = int64(1_700_000_123_456) // a millisecond timestamp: 6-byte varint
	b.Run("codec=varint", func(b *testing.B) { benchCodec(b, Of[int64](), v) })
	b.Run("codec=fixed", func(b *testing.B) { benchCodec(b, FixedInt64(), v) })
	b.Run("codec=ordered", func(b *testing.B) { benchCodec(b, OrderedInt64(), v) })
	b.Run("codec=cbor", func(b *testing.B) { benchCodec(b, CBOR[int64](), v) })
	b.Run("codec=gob", func(b *testing.B) { benchCodec(b, gobCodec[int64]{}, v) })
	b.Run("codec=json", func(b *testing.B) { benchCodec(b, JSON[int64](), v) })
}

func BenchmarkInt64Small(b *testing.B) {
	const v = int64(42) // ids, counts: 1-byte varint
	b.Run("codec=varint", func(b *testing.B) { benchCodec(b, Of[int64](), v) })
	b.Run("codec=fixed", func(b *testing.B) { benchCodec(b, FixedInt64(), v) })
}

// IntRec / IntRecFixed: the same four int64s (ids, a price, a ms timestamp) as varints
// and as fixed 8-byte fields, to decide the default integer encoding on a record.
type IntRec struct{ Auction, Bidder, Price, DateTime int64 }

type IntRecFixed struct {
	Auction  int64 `codec:"fixed"`
	Bidder   int64 `codec:"fixed"`
	Price    int64 `codec:"fixed"`
	DateTime int64 `codec:"fixed"`
}

func BenchmarkIntRecord(b *testing.B) {
	v := IntRec{Auction: 1012, Bidder: 1789, Price: 62_345, DateTime: 1_700_000_123_456}
	b.Run("ints=varint", func(b *testing.B) { benchCodec(b, Of[IntRec](), v) })
	b.Run("ints=fixed", func(b *testing.B) { benchCodec(b, Of[IntRecFixed](), IntRecFixed(v)) })
}

func BenchmarkString32(b *testing.B) {
	v := strings.Repeat("abcdefgh", 4)
	b.Run("codec=ours", func(b *testing.B) { benchCodec(b, Of[string](), v) })
	b.Run("codec=ordered", func(b *testing.B) { benchCodec(b, OrderedString(), v) })
	b.Run("codec=cbor", func(b *testing.B) { benchCodec(b, CBOR[string](), v) })
	b.Run("codec=gob", func(b *testing.B) { benchCodec(b, gobCodec[string]{}, v) })
	b.Run("codec=json", func(b *testing.B) { benchCodec(b, JSON[string](), v) })
}

func BenchmarkBid(b *testing.B) {
	v := sampleBid()
	b.Run("codec=reflect", func(b *testing.B) { benchCodec(b, Of[Bid](), v) })
	b.Run("codec=hand", func(b *testing.B) { benchCodec(b, Codec[Bid](bidHand{}), v) })
	b.Run("codec=msgp-hook", func(b *testing.B) { benchCodec(b, Of[BidMsgp](), BidMsgp(v)) })
	b.Run("codec=msgp-direct", func(b *testing.B) { benchCodec(b, Codec[BidMsgp](msgpDirect{}), BidMsgp(v)) })
	b.Run("codec=cbor", func(b *testing.B) { benchCodec(b, CBOR[Bid](), v) })
	b.Run("codec=gob", func(b *testing.B) { benchCodec(b, gobCodec[Bid]{}, v) })
	b.Run("codec=json", func(b *testing.B) { benchCodec(b, JSON[Bid](), v) })
}

// BenchmarkBidSplit separates encode and decode for the compiled and hand-written codecs.
func BenchmarkBidSplit(b *testing.B) {
	v := sampleBid()
	for _, c := range []struct {
		name string
		c    Codec[Bid]
	}{{"reflect", Of[Bid]()}, {"hand", bidHand{}}} {
		enc := c.c.Append(nil, v)
		b.Run("codec="+c.name+"/op=encode", func(b *testing.B) {
			buf := make([]byte, 0, 256)
			b.ReportAllocs()
			for b.Loop() {
				buf = c.c.Append(buf[:0], v)
			}
		})
		b.Run("codec="+c.name+"/op=decode", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := c.c.Decode(enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSliceAndMap covers the container paths (not per-record hot paths, but state
// values such as buffered window contents look like this).
func BenchmarkSliceAndMap(b *testing.B) {
	bids := make([]Bid, 16)
	for i := range bids {
		bids[i] = sampleBid()
		bids[i].Auction += int64(i)
	}
	b.Run("type=[]Bid(16)", func(b *testing.B) { benchCodec(b, Of[[]Bid](), bids) })
	m := map[string]int64{}
	for i := range 16 {
		m[strings.Repeat("k", i+1)] = int64(i)
	}
	b.Run("type=map[string]int64(16)", func(b *testing.B) { benchCodec(b, Of[map[string]int64](), m) })
}
