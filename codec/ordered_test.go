package codec

import (
	"bytes"
	"cmp"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

func sign(c int) int { return cmp.Compare(c, 0) }

// orderPreserved checks bytes.Compare(enc(a), enc(b)) == compare(a, b) for random pairs,
// including pairs that share prefixes (the interesting case for strings).
func orderPreserved[T any](t *testing.T, c Codec[T], gen *rapid.Generator[T], compare func(a, b T) int) {
	t.Helper()
	rapid.Check(t, func(rt *rapid.T) {
		a, b := gen.Draw(rt, "a"), gen.Draw(rt, "b")
		ea, eb := c.Append(nil, a), c.Append(nil, b)
		require.Equal(rt, sign(compare(a, b)), bytes.Compare(ea, eb), "a=%v b=%v", a, b)
	})
}

func TestOrderedRoundTrip(t *testing.T) {
	checkCodec(t, OrderedInt64(), rapid.Int64(), nil)
	checkCodec(t, OrderedUint64(), rapid.Uint64(), nil)
	checkCodec(t, OrderedFloat64(), rapid.Map(rapid.Uint64(), math.Float64frombits), bitsEq64)
	strs := rapid.OneOf(rapid.String(), rapid.StringOf(rapid.RuneFrom([]rune{0, 1, 0xff, 'a'})))
	checkCodec(t, OrderedString(), strs, nil)
	checkCodec(t, OrderedBytes(), rapid.SliceOf(rapid.SampledFrom([]byte{0, 1, 2, 0xfe, 0xff})), nil)
}

func TestOrderedPreservesOrder(t *testing.T) {
	orderPreserved(t, OrderedInt64(), rapid.Int64(), cmp.Compare[int64])
	orderPreserved(t, OrderedUint64(), rapid.Uint64(), cmp.Compare[uint64])
	// Bytes with a tiny alphabet including 0x00, 0x01 and 0xFF (the escape bytes), so that
	// shared prefixes, embedded zeros and prefix relationships are common.
	small := rapid.SliceOfN(rapid.SampledFrom([]byte{0, 1, 2, 0xff}), 0, 6)
	orderPreserved(t, OrderedBytes(), small, bytes.Compare)
	orderPreserved(t, OrderedString(), rapid.Map(small, func(b []byte) string { return string(b) }), cmp.Compare[string])
	orderPreserved(t, OrderedString(), rapid.String(), cmp.Compare[string])

	finite := rapid.Float64().Filter(func(f float64) bool { return !math.IsNaN(f) && f != 0 })
	orderPreserved(t, OrderedFloat64(), finite, cmp.Compare[float64])
	c := OrderedFloat64()
	seq := []float64{math.Inf(-1), -math.MaxFloat64, -1, -math.SmallestNonzeroFloat64, math.Copysign(0, -1), 0,
		math.SmallestNonzeroFloat64, 1, math.MaxFloat64, math.Inf(1), math.NaN()}
	for i := 1; i < len(seq); i++ {
		require.Equal(t, -1, bytes.Compare(c.Append(nil, seq[i-1]), c.Append(nil, seq[i])), "%v < %v", seq[i-1], seq[i])
	}
}

// TestOrderedComposite: concatenated encodings sort like tuples, which is what an LSM
// state key (key group, user key, namespace, timestamp…) relies on.
func TestOrderedComposite(t *testing.T) {
	type key struct {
		s string
		n int64
		b []byte
	}
	small := rapid.SliceOfN(rapid.SampledFrom([]byte{0, 1, 0xff, 'a'}), 0, 4)
	gen := rapid.Custom(func(t *rapid.T) key {
		return key{string(small.Draw(t, "s")), rapid.Int64Range(-3, 3).Draw(t, "n"), small.Draw(t, "b")}
	})
	enc := func(k key) []byte {
		b := OrderedString().Append(nil, k.s)
		b = OrderedInt64().Append(b, k.n)
		return OrderedBytes().Append(b, k.b)
	}
	rapid.Check(t, func(rt *rapid.T) {
		a, b := gen.Draw(rt, "a"), gen.Draw(rt, "b")
		want := cmp.Or(cmp.Compare(a.s, b.s), cmp.Compare(a.n, b.n), bytes.Compare(a.b, b.b))
		require.Equal(rt, sign(want), bytes.Compare(enc(a), enc(b)))

		// And the composite decodes field by field.
		e := enc(a)
		s, n1, err := OrderedString().Decode(e)
		require.NoError(rt, err)
		n, n2, err := OrderedInt64().Decode(e[n1:])
		require.NoError(rt, err)
		bs, n3, err := OrderedBytes().Decode(e[n1+n2:])
		require.NoError(rt, err)
		require.Equal(rt, a, key{s, n, bs})
		require.Equal(rt, len(e), n1+n2+n3)
	})
}

func TestOrderedStringCorrupt(t *testing.T) {
	for _, in := range [][]byte{{}, {'a'}, {'a', 0}, {'a', 0, 2}, {0, 0xff}, {0, 0xff, 0}} {
		_, _, err := OrderedString().Decode(in)
		require.ErrorIs(t, err, ErrCorrupt, "%q", in)
	}
	s, n, err := OrderedString().Decode([]byte{'a', 0, 0xff, 'b', 0, 1, 'z'})
	require.NoError(t, err)
	require.Equal(t, "a\x00b", s)
	require.Equal(t, 6, n)
}
