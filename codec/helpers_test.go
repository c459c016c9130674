package codec

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tinylib/msgp/msgp"
	"go.uber.org/goleak"
	"pgregory.net/rapid"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// ---- test types ----

type UserID int64

type Inner struct {
	X int32
	Y string
}

type Embedded struct {
	E1     int64
	hidden int // unexported: skipped
}

type embeddedLower struct {
	L string // promoted through an unexported embedded type: encoded
}

// Rec exercises every kind the compiled codec supports.
type Rec struct {
	Embedded
	embeddedLower
	A      bool
	B      int
	C      int8
	D      int16
	E      int32
	F      int64
	G      uint
	H      uint8
	I      uint16
	J      uint32
	K      uint64
	Uptr   uintptr
	F32    float32
	F64    float64
	C64    complex64
	C128   complex128
	S      string
	Bs     []byte
	T      time.Time
	Dur    time.Duration
	In     Inner
	InP    *Inner
	Ins    []Inner
	Arr    [3]int16
	BArr   [4]byte
	M      map[string]int64
	MS     map[Inner][]string
	Named  UserID
	PP     **int64
	Nested [][]string
	skip   int
	Tagged string `codec:"-"`
}

// RecWithAddr adds a stdlib encoding.BinaryAppender (netip.Addr), which moves the whole
// type onto the heapCodec path.
type RecWithAddr struct {
	Rec
	Addr netip.Addr
}

// Bid is the Nexmark bid record used by the benchmarks and allocation tests.
type Bid struct {
	Auction  int64
	Bidder   int64
	Price    int64
	Channel  string
	URL      string
	DateTime int64
	Extra    string
}

// Node is recursive.
type Node struct {
	Val  int
	Next *Node
	Kids []Node
}

// BinPoint overrides with AppendBinary/UnmarshalBinary (value receiver for Append).
type BinPoint struct{ X, Y int32 }

func (p BinPoint) AppendBinary(b []byte) ([]byte, error) {
	return append(b, 'P', byte(p.X), byte(p.Y)), nil
}

func (p *BinPoint) UnmarshalBinary(b []byte) error {
	if len(b) != 3 || b[0] != 'P' {
		return errors.New("bad BinPoint")
	}
	p.X, p.Y = int32(b[1]), int32(b[2])
	return nil
}

// BigBlob's AppendBinary output is large, to exercise the length fix-up.
type BigBlob struct{ N int }

func (b *BigBlob) AppendBinary(dst []byte) ([]byte, error) {
	for i := range b.N {
		dst = append(dst, byte(i))
	}
	return dst, nil
}

func (b *BigBlob) UnmarshalBinary(src []byte) error {
	for i, c := range src {
		if c != byte(i) {
			return errors.New("bad BigBlob")
		}
	}
	b.N = len(src)
	return nil
}

// FailingBin returns an error from AppendBinary.
type FailingBin struct{ V int }

func (FailingBin) AppendBinary(b []byte) ([]byte, error) { return b, errors.New("nope") }
func (*FailingBin) UnmarshalBinary([]byte) error         { return nil }

// MsgPoint is a hand-written msgp.Marshaler/Unmarshaler (what `msgp` would generate,
// in array form).
type MsgPoint struct {
	X    int64
	Name string
}

func (p *MsgPoint) MarshalMsg(b []byte) ([]byte, error) {
	b = msgp.AppendArrayHeader(b, 2)
	b = msgp.AppendInt64(b, p.X)
	return msgp.AppendString(b, p.Name), nil
}

func (p *MsgPoint) UnmarshalMsg(b []byte) ([]byte, error) {
	n, b, err := msgp.ReadArrayHeaderBytes(b)
	if err != nil {
		return nil, err
	}
	if n != 2 {
		return nil, fmt.Errorf("MsgPoint: %d fields", n)
	}
	if p.X, b, err = msgp.ReadInt64Bytes(b); err != nil {
		return nil, err
	}
	if p.Name, b, err = msgp.ReadStringBytes(b); err != nil {
		return nil, err
	}
	return b, nil
}

// Both implements both hooks; the binary one must win.
type Both struct{ V byte }

func (b Both) AppendBinary(d []byte) ([]byte, error) { return append(d, 'B', b.V), nil }
func (b *Both) UnmarshalBinary(s []byte) error       { b.V = s[1]; return nil }
func (b Both) MarshalMsg(d []byte) ([]byte, error)   { return msgp.AppendByte(d, b.V), nil }
func (b *Both) UnmarshalMsg(s []byte) ([]byte, error) {
	var err error
	b.V, s, err = msgp.ReadByteBytes(s)
	return s, err
}

type WithHooks struct {
	P   BinPoint
	PP  *BinPoint
	M   MsgPoint
	Ms  []MsgPoint
	Big BigBlob
	N   int
}

// ---- generators ----

func genTime() *rapid.Generator[time.Time] {
	return rapid.Custom(func(t *rapid.T) time.Time {
		sec := rapid.Int64Range(-1e11, 1e11).Draw(t, "sec")
		nsec := rapid.Int64Range(0, 999_999_999).Draw(t, "nsec")
		tm := time.Unix(sec, nsec)
		switch rapid.IntRange(0, 2).Draw(t, "zone") {
		case 0:
			return tm.UTC()
		case 1:
			return tm.In(time.FixedZone("", rapid.IntRange(-56, 56).Draw(t, "q")*900))
		default:
			return tm.In(time.FixedZone("", rapid.IntRange(-50000, 50000).Draw(t, "off")))
		}
	})
}

func genAddr() *rapid.Generator[netip.Addr] {
	return rapid.Custom(func(t *rapid.T) netip.Addr {
		switch rapid.IntRange(0, 2).Draw(t, "kind") {
		case 0:
			return netip.Addr{}
		case 1:
			return netip.AddrFrom4([4]byte(rapid.SliceOfN(rapid.Byte(), 4, 4).Draw(t, "v4")))
		default:
			return netip.AddrFrom16([16]byte(rapid.SliceOfN(rapid.Byte(), 16, 16).Draw(t, "v6")))
		}
	})
}

// finiteFloat64 avoids NaN so that require.Equal (reflect.DeepEqual) can compare values;
// NaN and signed zeros are covered by bit-exact tests.
var makeCfg = rapid.MakeConfig{
	Types: map[reflect.Type]*rapid.Generator[any]{
		reflect.TypeFor[time.Time]():  genTime().AsAny(),
		reflect.TypeFor[netip.Addr](): genAddr().AsAny(),
	},
	Kinds: map[reflect.Kind]*rapid.Generator[any]{
		reflect.Float64:    rapid.Float64Range(-math.MaxFloat64, math.MaxFloat64).AsAny(),
		reflect.Float32:    rapid.Float32Range(-math.MaxFloat32, math.MaxFloat32).AsAny(),
		reflect.Complex64:  rapid.Custom(func(t *rapid.T) any { return complex(rapid.Float32().Draw(t, "r"), rapid.Float32().Draw(t, "i")) }).Filter(func(v any) bool { c := v.(complex64); return c == c }),
		reflect.Complex128: rapid.Custom(func(t *rapid.T) any { return complex(rapid.Float64().Draw(t, "r"), rapid.Float64().Draw(t, "i")) }).Filter(func(v any) bool { c := v.(complex128); return c == c }),
	},
}

func genOf[T any]() *rapid.Generator[T] { return rapid.MakeCustom[T](makeCfg) }

// ---- generic checks ----

// roundTrip checks that v survives Append/Decode, that Append preserves dst, that Decode
// reports exactly the encoding's length even with trailing bytes, and that re-encoding
// the decoded value gives identical bytes. eq may be nil to use require.Equal.
func roundTrip[T any](t require.TestingT, c Codec[T], v T, eq func(a, b T) bool) []byte {
	enc := c.Append(nil, v)
	prefixed := c.Append([]byte("prefix"), v)
	require.Equal(t, "prefix", string(prefixed[:6]), "Append must preserve dst")
	require.Equal(t, enc, prefixed[6:], "Append output must not depend on dst")

	got, n, err := c.Decode(append(append([]byte{}, enc...), "trailing"...))
	require.NoError(t, err)
	require.Equal(t, len(enc), n, "Decode must consume exactly the encoding")
	if eq != nil {
		require.True(t, eq(v, got), "round trip: want %v, got %v", v, got)
	} else {
		require.Equal(t, v, got)
	}
	require.Equal(t, enc, c.Append(nil, got), "re-encoding the decoded value must be identical")
	return enc
}

// prefixesFail checks that every strict prefix of enc is rejected with ErrCorrupt.
func prefixesFail[T any](t require.TestingT, c Codec[T], enc []byte) {
	for k := range len(enc) {
		// Copy so that a decoder reading past the prefix would trip the race detector /
		// bounds checks rather than silently see the rest of enc.
		p := append([]byte(nil), enc[:k]...)
		_, n, err := c.Decode(p)
		require.ErrorIs(t, err, ErrCorrupt, "prefix of length %d/%d must be rejected", k, len(enc))
		require.Zero(t, n)
	}
}

// garbageDoesNotPanic decodes arbitrary bytes; any outcome but a panic is fine, and on
// success n must be within the input.
func garbageDoesNotPanic[T any](t *rapid.T, c Codec[T]) {
	b := rapid.SliceOfN(rapid.Byte(), 0, 64).Draw(t, "garbage")
	_, n, err := c.Decode(b)
	if err != nil {
		require.ErrorIs(t, err, ErrCorrupt)
		require.Zero(t, n)
		return
	}
	require.LessOrEqual(t, n, len(b))
}

// checkCodec runs round trip, prefix and garbage checks with values from gen.
func checkCodec[T any](t *testing.T, c Codec[T], gen *rapid.Generator[T], eq func(a, b T) bool) {
	t.Helper()
	rapid.Check(t, func(rt *rapid.T) {
		v := gen.Draw(rt, "v")
		enc := roundTrip(rt, c, v, eq)
		prefixesFail(rt, c, enc)
		garbageDoesNotPanic(rt, c)
	})
}
