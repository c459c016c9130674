package codec

import (
	"bytes"
	"encoding/binary"
	"math"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

func bitsEq64(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }
func bitsEq32(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) }

func TestBuiltins(t *testing.T) {
	t.Run("bool", func(t *testing.T) { checkCodec(t, Bool(), rapid.Bool(), nil) })
	t.Run("int", func(t *testing.T) { checkCodec(t, Int(), rapid.Int(), nil) })
	t.Run("int8", func(t *testing.T) { checkCodec(t, Int8(), rapid.Int8(), nil) })
	t.Run("int16", func(t *testing.T) { checkCodec(t, Int16(), rapid.Int16(), nil) })
	t.Run("int32", func(t *testing.T) { checkCodec(t, Int32(), rapid.Int32(), nil) })
	t.Run("int64", func(t *testing.T) { checkCodec(t, Int64(), rapid.Int64(), nil) })
	t.Run("uint", func(t *testing.T) { checkCodec(t, Uint(), rapid.Uint(), nil) })
	t.Run("uint8", func(t *testing.T) { checkCodec(t, Uint8(), rapid.Uint8(), nil) })
	t.Run("uint16", func(t *testing.T) { checkCodec(t, Uint16(), rapid.Uint16(), nil) })
	t.Run("uint32", func(t *testing.T) { checkCodec(t, Uint32(), rapid.Uint32(), nil) })
	t.Run("uint64", func(t *testing.T) { checkCodec(t, Uint64(), rapid.Uint64(), nil) })
	t.Run("uintptr", func(t *testing.T) { checkCodec(t, Uintptr(), rapid.Uintptr(), nil) })
	t.Run("fixedint64", func(t *testing.T) { checkCodec(t, FixedInt64(), rapid.Int64(), nil) })
	t.Run("fixeduint64", func(t *testing.T) { checkCodec(t, FixedUint64(), rapid.Uint64(), nil) })
	anyF64 := rapid.Map(rapid.Uint64(), math.Float64frombits) // every bit pattern, NaNs included
	anyF32 := rapid.Map(rapid.Uint32(), math.Float32frombits)
	t.Run("float64", func(t *testing.T) { checkCodec(t, Float64(), anyF64, bitsEq64) })
	t.Run("float32", func(t *testing.T) { checkCodec(t, Float32(), anyF32, bitsEq32) })
	t.Run("complex64", func(t *testing.T) {
		gen := rapid.Custom(func(t *rapid.T) complex64 { return complex(anyF32.Draw(t, "r"), anyF32.Draw(t, "i")) })
		checkCodec(t, Complex64(), gen, func(a, b complex64) bool {
			return bitsEq32(real(a), real(b)) && bitsEq32(imag(a), imag(b))
		})
	})
	t.Run("complex128", func(t *testing.T) {
		gen := rapid.Custom(func(t *rapid.T) complex128 { return complex(anyF64.Draw(t, "r"), anyF64.Draw(t, "i")) })
		checkCodec(t, Complex128(), gen, func(a, b complex128) bool {
			return bitsEq64(real(a), real(b)) && bitsEq64(imag(a), imag(b))
		})
	})
	t.Run("string", func(t *testing.T) { checkCodec(t, String(), rapid.String(), nil) })
	t.Run("bytes", func(t *testing.T) {
		gen := rapid.OneOf(rapid.Just([]byte(nil)), rapid.SliceOf(rapid.Byte()))
		checkCodec(t, Bytes(), gen, func(a, b []byte) bool { return bytes.Equal(a, b) && (a == nil) == (b == nil) })
	})
	t.Run("time", func(t *testing.T) { checkCodec(t, Time(), genTime(), nil) })
	t.Run("duration", func(t *testing.T) {
		checkCodec(t, Duration(), rapid.Map(rapid.Int64(), func(i int64) time.Duration { return time.Duration(i) }), nil)
	})
}

// TestOfBuiltins checks rule 1 of Of: the exact basic types get the hand-written codecs.
func TestOfBuiltins(t *testing.T) {
	require.Equal(t, Int64(), Of[int64]())
	require.Equal(t, String(), Of[string]())
	require.Equal(t, Bytes(), Of[[]byte]())
	require.Equal(t, Time(), Of[time.Time](), "time.Time must not use its own AppendBinary")
	require.Equal(t, Duration(), Of[time.Duration]())
	require.Equal(t, Bool(), Of[bool]())
	require.Equal(t, Float64(), Of[float64]())

	// A named basic type uses the compiled codec but the same bytes as the basic type.
	rapid.Check(t, func(rt *rapid.T) {
		v := rapid.Int64().Draw(rt, "v")
		require.Equal(rt, Int64().Append(nil, v), Of[UserID]().Append(nil, UserID(v)))
		roundTrip(rt, Of[UserID](), UserID(v), nil)
	})
}

// TestUvarintMatchesStdlib: the unrolled decoder agrees with encoding/binary on arbitrary
// input (value, length, and rejection of truncated/overlong input).
func TestUvarintMatchesStdlib(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		in := rapid.SliceOfN(rapid.SampledFrom([]byte{0, 1, 2, 0x7f, 0x80, 0x81, 0xfe, 0xff}), 0, 14).Draw(rt, "in")
		want, wn := binary.Uvarint(in)
		got, n := uvarint(in)
		if wn <= 0 {
			require.Zero(rt, n)
			return
		}
		require.Equal(rt, wn, n)
		require.Equal(rt, want, got)
	})
}

func TestSmallIntsAreSmall(t *testing.T) {
	require.Len(t, Int64().Append(nil, 0), 1)
	require.Len(t, Int64().Append(nil, -64), 1)
	require.Len(t, Int64().Append(nil, 63), 1)
	require.Len(t, Int64().Append(nil, 1_700_000_000_000), 6) // ms timestamp
	require.Len(t, Int64().Append(nil, math.MinInt64), 10)
}

func TestIntRangeChecks(t *testing.T) {
	big := Int64().Append(nil, math.MaxInt32+1)
	_, _, err := Int32().Decode(big)
	require.ErrorIs(t, err, ErrCorrupt)
	_, _, err = Int16().Decode(Int64().Append(nil, math.MinInt16-1))
	require.ErrorIs(t, err, ErrCorrupt)
	_, _, err = Uint16().Decode(Uint64().Append(nil, math.MaxUint16+1))
	require.ErrorIs(t, err, ErrCorrupt)
	_, _, err = Bool().Decode([]byte{2})
	require.ErrorIs(t, err, ErrCorrupt)
	// Overlong varint (11 bytes) and a 10th byte > 1.
	_, _, err = Uint64().Decode(bytes.Repeat([]byte{0xff}, 11))
	require.ErrorIs(t, err, ErrCorrupt)
	_, _, err = Uint64().Decode(append(bytes.Repeat([]byte{0xff}, 9), 2))
	require.ErrorIs(t, err, ErrCorrupt)
	// In a struct the error names the field.
	type S struct{ A, B int32 }
	_, _, err = Of[S]().Decode(append([]byte{2}, big...))
	require.ErrorIs(t, err, ErrCorrupt)
	require.Contains(t, err.Error(), "field B (int32) of codec.S")
}

func TestTime(t *testing.T) {
	c := Time()
	now := time.Now() // has a monotonic reading and time.Local
	got, _, err := c.Decode(c.Append(nil, now))
	require.NoError(t, err)
	require.True(t, now.Equal(got))
	_, wantOff := now.Zone()
	_, gotOff := got.Zone()
	require.Equal(t, wantOff, gotOff)

	utc := now.UTC().Round(0)
	got, _, err = c.Decode(c.Append(nil, utc))
	require.NoError(t, err)
	require.Equal(t, utc, got, "UTC times round-trip exactly")
	require.Equal(t, time.UTC, got.Location())

	roundTrip(t, c, time.Time{}, nil)
	require.Len(t, c.Append(nil, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)), 6)

	_, _, err = c.Decode(append(appendVarint(nil, 0), appendUvarint(nil, 2e9)...)) // nanos >= 1e9
	require.ErrorIs(t, err, ErrCorrupt)
	_, _, err = c.Decode(append(append(appendVarint(nil, 0), 1), appendVarint(nil, 1e6)...)) // absurd offset
	require.ErrorIs(t, err, ErrCorrupt)
}

func TestStructRoundTrip(t *testing.T) {
	c := Of[Rec]()
	rapid.Check(t, func(rt *rapid.T) {
		v := genOf[Rec]().Draw(rt, "rec")
		v.Tagged = ""
		enc := roundTrip(rt, c, v, nil)
		prefixesFail(rt, c, enc)
		garbageDoesNotPanic(rt, c)
	})
}

func TestStructWithHooksRoundTrip(t *testing.T) {
	c := Of[RecWithAddr]()
	require.IsType(t, heapCodec[RecWithAddr]{}, c)
	require.IsType(t, stackCodec[Rec]{}, Of[Rec]())
	rapid.Check(t, func(rt *rapid.T) {
		v := genOf[RecWithAddr]().Draw(rt, "rec")
		v.Tagged = ""
		enc := roundTrip(rt, c, v, nil)
		prefixesFail(rt, c, enc)
		garbageDoesNotPanic(rt, c)
	})
}

func TestStructSkipsUnexportedAndTagged(t *testing.T) {
	var v Rec
	v.E1, v.hidden, v.L, v.skip, v.Tagged = 1, 2, "promoted", 3, "tagged"
	got, _, err := Of[Rec]().Decode(Of[Rec]().Append(nil, v))
	require.NoError(t, err)
	require.Equal(t, int64(1), got.E1)
	require.Equal(t, "promoted", got.L, "fields of an embedded unexported struct are encoded")
	require.Zero(t, got.hidden)
	require.Zero(t, got.skip)
	require.Empty(t, got.Tagged)
}

func TestFixedTag(t *testing.T) {
	type H struct {
		Hash uint64 `codec:"fixed"`
		ID   int64  `codec:"fixed"`
		N    int64
	}
	c := Of[H]()
	require.Len(t, c.Append(nil, H{Hash: 1, ID: -1, N: 1}), 17)
	checkCodec(t, c, genOf[H](), nil)

	type BadKind struct {
		A int32 `codec:"fixed"`
	}
	require.ErrorContains(t, forErr[BadKind](), "applies only to int64 and uint64")
	type Typo struct {
		A int64 `codec:"fixd"`
	}
	require.ErrorContains(t, forErr[Typo](), `unknown tag codec:"fixd"`)
}

func TestNilVersusEmpty(t *testing.T) {
	type S struct {
		Bs  []byte
		Is  []int
		M   map[string]int
		P   *int
		Ins []Inner
	}
	c := Of[S]()
	roundTrip(t, c, S{}, nil)
	zero := 0
	full := S{Bs: []byte{}, Is: []int{}, M: map[string]int{}, P: &zero, Ins: []Inner{}}
	got, _, err := c.Decode(c.Append(nil, full))
	require.NoError(t, err)
	require.NotNil(t, got.Bs)
	require.NotNil(t, got.Is)
	require.NotNil(t, got.M)
	require.NotNil(t, got.Ins)
	require.Equal(t, full, got)
}

func TestPointers(t *testing.T) {
	type S struct {
		P  *int64
		PS *Inner
		PP **string
	}
	c := Of[S]()
	roundTrip(t, c, S{}, nil)
	x, s := int64(-5), "s"
	ps := &s
	roundTrip(t, c, S{P: &x, PS: &Inner{X: 1, Y: "y"}, PP: &ps}, nil)
	var nilStr *string
	roundTrip(t, c, S{PP: &nilStr}, nil)

	pc := Of[*Inner]()
	roundTrip(t, pc, nil, nil)
	roundTrip(t, pc, &Inner{X: 3}, nil)
	_, _, err := pc.Decode([]byte{2})
	require.ErrorIs(t, err, ErrCorrupt)
}

func TestRecursiveType(t *testing.T) {
	c := Of[Node]()
	v := Node{Val: 1, Next: &Node{Val: 2, Next: &Node{Val: 3}}, Kids: []Node{{Val: 4, Kids: []Node{{Val: 5}}}}}
	enc := roundTrip(t, c, v, nil)
	prefixesFail(t, c, enc)
	rapid.Check(t, func(rt *rapid.T) { garbageDoesNotPanic(rt, c) })
}

func TestSlicesArraysOfStructs(t *testing.T) {
	checkCodec(t, Of[[]Inner](), genOf[[]Inner](), nil)
	checkCodec(t, Of[[4]Inner](), genOf[[4]Inner](), nil)
	checkCodec(t, Of[[]*Inner](), genOf[[]*Inner](), nil)
	checkCodec(t, Of[[][]int64](), genOf[[][]int64](), nil)
	checkCodec(t, Of[[16]byte](), genOf[[16]byte](), nil)
	checkCodec(t, Of[[]Bid](), genOf[[]Bid](), nil)
}

func TestMaps(t *testing.T) {
	checkCodec(t, Of[map[string]int](), genOf[map[string]int](), nil)
	checkCodec(t, Of[map[int64][]Inner](), genOf[map[int64][]Inner](), nil)
	checkCodec(t, Of[map[Inner]bool](), genOf[map[Inner]bool](), nil)
	checkCodec(t, Of[map[[2]int8]*Inner](), genOf[map[[2]int8]*Inner](), nil)
}

// TestMapDeterminism: Go randomises map iteration, the encoding must not vary.
func TestMapDeterminism(t *testing.T) {
	c := Of[map[string]int]()
	rapid.Check(t, func(rt *rapid.T) {
		keys := rapid.SliceOfNDistinct(rapid.String(), 0, 50, rapid.ID[string]).Draw(rt, "keys")
		m1, m2 := map[string]int{}, map[string]int{}
		for i, k := range keys {
			m1[k] = i
		}
		for i := len(keys) - 1; i >= 0; i-- { // different insertion order
			m2[keys[i]] = i
		}
		want := c.Append(nil, m1)
		for range 5 {
			require.Equal(rt, want, c.Append(nil, m1))
		}
		require.Equal(rt, want, c.Append(nil, m2))
	})

	// Struct keys and several NaN keys (which Go keeps as distinct entries).
	fc := Of[map[float64]string]()
	m := map[float64]string{math.NaN(): "a", math.NaN(): "b", 1: "c", math.Inf(-1): "d"}
	want := fc.Append(nil, m)
	for range 20 {
		require.Equal(t, want, fc.Append(nil, m))
	}
	got, _, err := fc.Decode(want)
	require.NoError(t, err)
	require.Len(t, got, 4)
}

func TestOverrides(t *testing.T) {
	// Value receiver AppendBinary + pointer receiver UnmarshalBinary.
	c := Of[BinPoint]()
	require.Equal(t, []byte{3, 'P', 1, 2}, c.Append(nil, BinPoint{1, 2}))
	enc := roundTrip(t, c, BinPoint{7, 9}, nil)
	prefixesFail(t, c, enc)
	_, _, err := c.Decode([]byte{3, 'X', 1, 2})
	require.ErrorIs(t, err, ErrCorrupt)
	require.Contains(t, err.Error(), "bad BinPoint")

	// Length prefix longer than one byte (payload moved after the fact).
	bc := Of[BigBlob]()
	for _, n := range []int{0, 127, 128, 300, 20000} {
		enc := roundTrip(t, bc, BigBlob{N: n}, nil)
		require.Equal(t, n+uvarintLen(uint64(n)), len(enc))
	}

	mc := Of[MsgPoint]()
	enc = roundTrip(t, mc, MsgPoint{X: -3, Name: "msgp"}, nil)
	prefixesFail(t, mc, enc)

	// Binary beats msgp.
	require.Equal(t, []byte{2, 'B', 5}, Of[Both]().Append(nil, Both{5}))

	// Inside structs, slices and pointers.
	wc := Of[WithHooks]()
	v := WithHooks{P: BinPoint{1, 2}, PP: &BinPoint{3, 4}, M: MsgPoint{5, "m"}, Ms: []MsgPoint{{6, "x"}}, Big: BigBlob{200}, N: 8}
	enc = roundTrip(t, wc, v, nil)
	prefixesFail(t, wc, enc)
	rapid.Check(t, func(rt *rapid.T) { garbageDoesNotPanic(rt, wc) })

	// Stdlib type with AppendBinary.
	ac := Of[netip.Addr]()
	roundTrip(t, ac, netip.MustParseAddr("2001:db8::1"), nil)
}

func TestEncodeErrorPanics(t *testing.T) {
	defer func() {
		r := recover()
		var ee *EncodeError
		require.ErrorAs(t, r.(error), &ee)
		require.Equal(t, reflect.TypeFor[FailingBin](), ee.Type)
		require.Contains(t, ee.Error(), "nope")
	}()
	Of[FailingBin]().Append(nil, FailingBin{})
	t.Fatal("Append should have panicked")
}

func TestUnsupported(t *testing.T) {
	type WithChan struct {
		A int
		C chan int
	}
	type WithIface struct{ V any }
	type Deep struct{ In []map[string]WithIface }
	type WithMutex struct {
		Mu sync.Mutex
		A  int
	}
	type EmbedsMutex struct {
		sync.Mutex // embedded: contributes nothing, allowed
		A          int
	}
	cases := []struct {
		err  error
		want []string
	}{
		{forErr[WithChan](), []string{"chan int", "codec.WithChan.C"}},
		{forErr[WithIface](), []string{"interface {}", "codec.WithIface.V"}},
		{forErr[Deep](), []string{"interface {}", "codec.Deep.In[][value].V"}},
		{forErr[WithMutex](), []string{"sync.Mutex", "codec.WithMutex.Mu", "no exported fields"}},
		{forErr[func()](), []string{"func()"}},
		{forErr[any](), []string{"interface {}"}},
		{forErr[struct{ p bool }](), []string{"no exported fields"}},
	}
	for _, tc := range cases {
		require.Error(t, tc.err)
		var ue *UnsupportedTypeError
		require.ErrorAs(t, tc.err, &ue)
		for _, w := range tc.want {
			require.Contains(t, tc.err.Error(), w)
		}
	}
	require.NoError(t, forErr[EmbedsMutex]())
	// sync.Mutex is now cached (as an embedded field); on its own it is still rejected.
	require.ErrorContains(t, forErr[sync.Mutex](), "no exported fields")
	require.PanicsWithError(t, forErr[WithChan]().Error(), func() { Of[WithChan]() })
}

func forErr[T any]() error {
	_, err := For[T]()
	return err
}

func TestJSONAndCBOR(t *testing.T) {
	type Doc struct {
		Bid
		When  time.Time
		Tags  []string
		Attrs map[string]int
		Ptr   *Inner
	}
	gen := rapid.Custom(func(rt *rapid.T) Doc {
		d := genOf[Doc]().Draw(rt, "doc")
		// Both formats keep the instant, not the *Location, and RFC 3339 needs years 0–9999.
		d.When = time.Unix(rapid.Int64Range(-62_000_000_000, 253_000_000_000).Draw(rt, "sec"),
			rapid.Int64Range(0, 999_999_999).Draw(rt, "ns")).UTC()
		return d
	})
	timeEq := func(a, b Doc) bool {
		if !a.When.Equal(b.When) {
			return false
		}
		a.When, b.When = time.Time{}, time.Time{}
		return reflect.DeepEqual(normEmpty(a), normEmpty(b))
	}
	t.Run("json", func(t *testing.T) { checkCodec(t, JSON[Doc](), gen, timeEq) })
	t.Run("cbor", func(t *testing.T) { checkCodec(t, CBOR[Doc](), gen, timeEq) })

	// JSON values are newline-terminated, so concatenated numbers stay apart.
	jc := JSON[int]()
	b := jc.Append(jc.Append(nil, 12), 34)
	require.Equal(t, "12\n34\n", string(b))
	v, n, err := jc.Decode(b)
	require.NoError(t, err)
	require.Equal(t, 12, v)
	v, _, err = jc.Decode(b[n:])
	require.NoError(t, err)
	require.Equal(t, 34, v)
	require.Panics(t, func() { JSON[float64]().Append(nil, math.NaN()) })
}

// normEmpty maps empty slices/maps to nil: JSON cannot tell them apart (null vs []).
func normEmpty[T any](v T) T {
	rv := reflect.ValueOf(&v).Elem()
	for i := range rv.NumField() {
		f := rv.Field(i)
		if (f.Kind() == reflect.Slice || f.Kind() == reflect.Map) && f.Len() == 0 && f.CanSet() {
			f.Set(reflect.Zero(f.Type()))
		}
	}
	return v
}

func TestErrorMessagesHaveContext(t *testing.T) {
	type Outer struct {
		ID    int64
		Items []Inner
	}
	c := Of[Outer]()
	enc := c.Append(nil, Outer{ID: 1, Items: []Inner{{1, "a"}, {2, "bb"}}})
	_, _, err := c.Decode(enc[:len(enc)-1])
	require.ErrorIs(t, err, ErrCorrupt)
	msg := err.Error()
	require.True(t, strings.Contains(msg, "field Items") && strings.Contains(msg, "element 1") &&
		strings.Contains(msg, "field Y (string) of codec.Inner"), msg)
}

// TestAllocs pins the allocation behaviour the package promises: encoding into a buffer
// with room never allocates, and decoding a flat struct allocates only its strings.
func TestAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	bid := sampleBid()
	c := Of[Bid]()
	buf := make([]byte, 0, 256)
	require.Zero(t, testing.AllocsPerRun(100, func() { buf = c.Append(buf[:0], bid) }))
	enc := c.Append(nil, bid)
	require.Equal(t, 3.0, testing.AllocsPerRun(100, func() { _, _, _ = c.Decode(enc) }), "one per non-empty string")

	type Flat struct {
		A int64
		B float64
		C bool
		D UserID
		E [4]byte
		F Inner
		T time.Time
	}
	fc := Of[Flat]()
	fenc := fc.Append(nil, Flat{A: 1, F: Inner{X: 1}, T: time.Unix(5, 0).UTC()})
	require.Zero(t, testing.AllocsPerRun(100, func() { buf = fc.Append(buf[:0], Flat{A: 1}) }))
	require.Zero(t, testing.AllocsPerRun(100, func() { _, _, _ = fc.Decode(fenc) }))

	ic := Of[[]int64]()
	ienc := ic.Append(nil, []int64{1, 2, 3})
	require.Equal(t, 1.0, testing.AllocsPerRun(100, func() { _, _, _ = ic.Decode(ienc) }), "only the backing array")
}

func TestConcurrentUse(t *testing.T) {
	type Fresh struct { // not used elsewhere, so the compile races for real
		A []Inner
		M map[string]*Node
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := Of[Fresh]()
			v := Fresh{A: []Inner{{int32(i), "x"}}, M: map[string]*Node{"k": {Val: i}}}
			for range 100 {
				got, _, err := c.Decode(c.Append(nil, v))
				if err != nil || !reflect.DeepEqual(v, got) {
					panic("concurrent round trip failed")
				}
			}
		}()
	}
	wg.Wait()
}

func TestZeroSizeElements(t *testing.T) {
	c := Of[[]struct{}]()
	roundTrip(t, c, make([]struct{}, 1000), nil)
	_, _, err := c.Decode(appendUvarint(nil, 1<<40))
	require.ErrorIs(t, err, ErrCorrupt)
	// A huge element count with too few bytes is rejected before allocating.
	_, _, err = Of[[]int64]().Decode(appendUvarint(nil, 1<<40))
	require.ErrorIs(t, err, ErrCorrupt)
	_, _, err = Of[map[int64]int64]().Decode(appendUvarint(nil, 1<<40))
	require.ErrorIs(t, err, ErrCorrupt)
}

func sampleBid() Bid {
	return Bid{
		Auction: 1012, Bidder: 1789, Price: 62_345,
		Channel: "channel-4711", URL: "https://www.nexmark.com/wxyz/item.htm?query=1&channel_id=1234",
		DateTime: 1_700_000_123_456,
		Extra:    strings.Repeat("x", 100),
	}
}
