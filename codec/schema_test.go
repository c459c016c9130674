package codec

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// SchemaRec has every kind whose JSON encoding/json can write the same way
// DecodeDynamic's output is written: no complex numbers (JSON has none),
// no custom codecs (their dumps are the raw bytes), no exported skipped
// fields (JSON would write them).
type SchemaRec struct {
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
	MI     map[int32][]string
	MU     map[uint16]*Inner
	Named  UserID
	PP     **int64
	Nested [][]string
	Fix    int64  `codec:"fixed"`
	UFix   uint64 `codec:"fixed"`
	Empty  struct{}
	skip   int
}

// jsonTimes are times encoding/json can write (years 0–9999) with whole
// minute offsets, as RFC 3339 wants.
var schemaCfg = rapid.MakeConfig{
	Types: map[reflect.Type]*rapid.Generator[any]{
		reflect.TypeFor[time.Time](): rapid.Custom(func(t *rapid.T) time.Time {
			tm := time.Unix(rapid.Int64Range(-6e10, 2e11).Draw(t, "sec"), rapid.Int64Range(0, 999_999_999).Draw(t, "nsec")).UTC()
			if rapid.Bool().Draw(t, "zoned") {
				tm = tm.In(time.FixedZone("", rapid.IntRange(-14*60, 14*60).Draw(t, "min")*60))
			}
			return tm
		}).AsAny(),
	},
	Kinds: makeCfg.Kinds,
}

// checkDynamic: decoding v's default encoding with only its schema (sent
// through JSON, as a snapshot stores it) gives the JSON of v itself, and
// consumes exactly the encoding.
func checkDynamic[T any](t *rapid.T, v T) {
	s, err := SchemaOf(reflect.TypeFor[T]())
	require.NoError(t, err)
	sj, err := json.Marshal(s)
	require.NoError(t, err)
	var s2 Schema
	require.NoError(t, json.Unmarshal(sj, &s2))

	enc := Of[T]().Append(nil, v)
	got, n, err := DecodeDynamic(&s2, append(enc, 0xEE)) // a trailing byte is not read
	require.NoError(t, err)
	require.Equal(t, len(enc), n)
	require.Equal(t, normJSON(t, v), normJSON(t, got), "schema %s", sj)

	// Strict prefixes fail, with ErrCorrupt: all of short encodings, 64
	// spread over long ones (checking all made the test take 20 s under
	// -race), and always the longest.
	step := max(1, len(enc)/64)
	for i := 0; i < len(enc); i += step {
		checkPrefix(t, &s2, enc, i)
	}
	if len(enc) > 0 {
		checkPrefix(t, &s2, enc, len(enc)-1)
	}
}

func checkPrefix(t *rapid.T, s *Schema, enc []byte, n int) {
	if _, _, err := DecodeDynamic(s, enc[:n]); err == nil || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("prefix of %d/%d bytes: err %v", n, len(enc), err)
	}
}

// normJSON marshals v and reads it back with exact numbers, so maps are
// compared regardless of key order and integers digit for digit.
func normJSON(t require.TestingT, v any) any {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var out any
	require.NoError(t, d.Decode(&out))
	return out
}

// genNode draws trees of Nodes up to depth deep (rapid.Make recurses
// forever on a recursive type).
func genNode(depth int) *rapid.Generator[Node] {
	return rapid.Custom(func(t *rapid.T) Node {
		n := Node{Val: rapid.Int().Draw(t, "val")}
		if depth > 0 {
			if rapid.Bool().Draw(t, "next") {
				next := genNode(depth-1).Draw(t, "nextNode")
				n.Next = &next
			}
			n.Kids = rapid.SliceOfN(genNode(depth-1), -1, 2).Draw(t, "kids")
		}
		return n
	})
}

func TestDynamicDecodeMatchesJSON(t *testing.T) {
	t.Run("struct", func(t *testing.T) {
		rapid.Check(t, func(t *rapid.T) { checkDynamic(t, rapid.MakeCustom[SchemaRec](schemaCfg).Draw(t, "v")) })
	})
	t.Run("recursive", func(t *testing.T) {
		rapid.Check(t, func(t *rapid.T) { checkDynamic(t, genNode(3).Draw(t, "v")) })
	})
	t.Run("containers", func(t *testing.T) {
		rapid.Check(t, func(t *rapid.T) {
			checkDynamic(t, rapid.MakeCustom[[]map[string]*Bid](schemaCfg).Draw(t, "v"))
			checkDynamic(t, rapid.MakeCustom[map[int64][2][]byte](schemaCfg).Draw(t, "v"))
			checkDynamic(t, rapid.MakeCustom[[]*[]float32](schemaCfg).Draw(t, "v"))
		})
	})
	t.Run("basic", func(t *testing.T) {
		rapid.Check(t, func(t *rapid.T) {
			checkDynamic(t, rapid.String().Draw(t, "s"))
			checkDynamic(t, rapid.Int64().Draw(t, "i"))
			checkDynamic(t, rapid.Uint64().Draw(t, "u"))
			checkDynamic(t, rapid.Int8().Draw(t, "i8"))
			checkDynamic(t, rapid.Bool().Draw(t, "b"))
			checkDynamic(t, UserID(rapid.Int64().Draw(t, "id")))
			checkDynamic(t, time.Duration(rapid.Int64().Draw(t, "d")))
		})
	})
}

func TestSchemaDescribesStruct(t *testing.T) {
	s, err := SchemaOf(reflect.TypeFor[Rec]())
	require.NoError(t, err)
	require.Equal(t, KindStruct, s.Kind)
	var names, skipped []string
	for _, f := range s.Fields {
		if f.Skipped {
			skipped = append(skipped, f.Name)
			continue
		}
		names = append(names, f.Name)
	}
	// Embedded fields come first, in place; unexported, tagged and the
	// embedded struct's hidden field are listed as skipped.
	require.Equal(t, []string{"E1", "L", "A", "B"}, names[:4])
	require.Equal(t, []string{"hidden", "skip", "Tagged"}, skipped)

	var v Rec
	v.Tagged, v.S, v.E1 = "not encoded", "x", 7
	got, _, err := DecodeDynamic(s, Of[Rec]().Append(nil, v))
	require.NoError(t, err)
	m := got.(map[string]any)
	require.NotContains(t, m, "Tagged")
	require.Equal(t, "x", m["S"])
	require.Equal(t, int64(7), m["E1"])
	// A map with struct keys has no JSON object form: key/value pairs.
	require.Nil(t, m["MS"])
	v.MS = map[Inner][]string{{X: 1, Y: "a"}: {"b"}}
	got, _, err = DecodeDynamic(s, Of[Rec]().Append(nil, v))
	require.NoError(t, err)
	require.Equal(t, []any{map[string]any{"key": map[string]any{"X": int64(1), "Y": "a"}, "value": []any{"b"}}}, got.(map[string]any)["MS"])
}

func TestDynamicComplexAndSpecialFloats(t *testing.T) {
	s, err := SchemaOf(reflect.TypeFor[[]complex128]())
	require.NoError(t, err)
	got, _, err := DecodeDynamic(s, Of[[]complex128]().Append(nil, []complex128{complex(1, -2), complex(math.Inf(1), math.NaN())}))
	require.NoError(t, err)
	require.Equal(t, []any{[]any{1.0, -2.0}, []any{"+Inf", "NaN"}}, got)
	_, err = json.Marshal(got)
	require.NoError(t, err, "the output is valid JSON")
}

func TestSchemaCustomCodecs(t *testing.T) {
	// A type that encodes itself: its own bytes, as base64 in JSON.
	s, err := SchemaOf(reflect.TypeFor[WithHooks]())
	require.NoError(t, err)
	require.Equal(t, CodecBinary, s.Fields[0].Schema.Codec)
	require.Equal(t, KindPointer, s.Fields[1].Schema.Kind)
	require.Equal(t, CodecMsgpack, s.Fields[2].Schema.Codec)
	v := WithHooks{P: BinPoint{1, 2}, M: MsgPoint{X: 5, Name: "n"}, Ms: []MsgPoint{{X: 1}}, Big: BigBlob{N: 300}, N: -4}
	enc := Of[WithHooks]().Append(nil, v)
	got, n, err := DecodeDynamic(s, enc)
	require.NoError(t, err)
	require.Equal(t, len(enc), n)
	m := got.(map[string]any)
	require.Equal(t, []byte{'P', 1, 2}, m["P"])
	require.Nil(t, m["PP"])
	msg, _ := (&v.M).MarshalMsg(nil)
	require.Equal(t, msg, m["M"])
	require.Len(t, m["Big"], 300)
	require.Equal(t, int64(-4), m["N"])

	both, err := SchemaOf(reflect.TypeFor[Both]())
	require.NoError(t, err)
	require.Equal(t, CodecBinary, both.Codec, "the stdlib hook wins, as in Of")

	// Codecs chosen by hand.
	require.Equal(t, KindInt, CodecSchema(Of[int64]()).Kind)
	require.Equal(t, KindStruct, CodecSchema(Of[Bid]()).Kind)
	js := CodecSchema(JSON[Bid]())
	require.Equal(t, CodecJSON, js.Codec)
	bid := sampleBid()
	got, n, err = DecodeDynamic(js, JSON[Bid]().Append(nil, bid))
	require.NoError(t, err)
	require.Equal(t, normJSON(t, bid), normJSON(t, got))
	require.Positive(t, n)

	cb := CodecSchema(CBOR[Bid]())
	require.Equal(t, CodecCBOR, cb.Codec)
	enc = CBOR[Bid]().Append(nil, bid)
	got, n, err = DecodeDynamic(cb, append(enc, 1, 2))
	require.NoError(t, err)
	require.Equal(t, len(enc), n)
	require.Equal(t, enc, got)

	user := CodecSchema(OrderedInt64())
	require.Equal(t, CodecUser, user.Codec)
	_, _, err = DecodeDynamic(user, OrderedInt64().Append(nil, 3))
	require.ErrorIs(t, err, ErrNoSchema)
}

func TestSchemaOfUnsupported(t *testing.T) {
	_, err := SchemaOf(reflect.TypeFor[struct{ F func() }]())
	var ute *UnsupportedTypeError
	require.ErrorAs(t, err, &ute)
}

// FuzzDecodeDynamic: on any input, DecodeDynamic with FuzzStruct's schema
// agrees with the typed decoder — both fail, or both succeed consuming the
// same bytes — never panics, and its errors wrap ErrCorrupt.
//
//	go test ./codec -run XXX -fuzz FuzzDecodeDynamic -fuzztime 30s
func FuzzDecodeDynamic(f *testing.F) {
	c := Of[FuzzStruct]()
	s, err := SchemaOf(reflect.TypeFor[FuzzStruct]())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(c.Append(nil, FuzzStruct{
		Bid: sampleBid(), Tags: []string{"a"}, Attrs: map[string][]int32{"k": {1}},
		Next: &FuzzStruct{Blob: []byte{1}},
	}))
	f.Add(c.Append(nil, FuzzStruct{}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		_, n, err := c.Decode(in)
		_, dn, derr := DecodeDynamic(s, in)
		if derr != nil && !errors.Is(derr, ErrCorrupt) {
			t.Fatalf("error does not wrap ErrCorrupt: %v", derr)
		}
		if (err == nil) != (derr == nil) || n != dn {
			t.Fatalf("typed decode: %d bytes, %v; dynamic: %d bytes, %v", n, err, dn, derr)
		}
	})
}
