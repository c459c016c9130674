package keygroup_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/keygroup"
)

func TestRangeForCoversAllKeyGroupsDisjointly(t *testing.T) {
	for _, maxP := range []int{1, 2, 3, 7, 10, 128, 129, 1000, 4096, keygroup.UpperBoundMaxParallelism} {
		for _, p := range []int{1, 2, 3, 4, 5, 7, 8, 13, 64, 127, 128, 1000} {
			if p > maxP {
				continue
			}
			owner := make([]int, maxP)
			for i := range owner {
				owner[i] = -1
			}
			next := 0
			for i := range p {
				r := keygroup.RangeFor(maxP, p, i)
				// Contiguous, ordered, non-empty (p ≤ maxP) ranges.
				require.Equal(t, next, r.Start, "maxP=%d p=%d subtask %d", maxP, p, i)
				require.GreaterOrEqual(t, r.Len(), 1, "maxP=%d p=%d subtask %d: %v", maxP, p, i, r)
				// Balanced: sizes differ by at most one.
				require.LessOrEqual(t, r.Len(), maxP/p+1)
				require.GreaterOrEqual(t, r.Len(), maxP/p)
				for kg := r.Start; kg <= r.End; kg++ {
					if owner[kg] != -1 || !r.Contains(kg) {
						t.Fatalf("maxP=%d p=%d: key group %d owned by %d and %d", maxP, p, kg, owner[kg], i)
					}
					owner[kg] = i
				}
				require.False(t, r.Contains(r.Start-1))
				require.False(t, r.Contains(r.End+1))
				next = r.End + 1
			}
			require.Equal(t, maxP, next, "maxP=%d p=%d: ranges must end at maxP-1", maxP, p)
			// OperatorIndex agrees with RangeFor for every key group.
			for kg, o := range owner {
				if got := keygroup.OperatorIndex(maxP, p, kg); got != o {
					t.Fatalf("maxP=%d p=%d: OperatorIndex(kg %d) = %d, RangeFor gives it to %d", maxP, p, kg, got, o)
				}
			}
		}
	}
}

func TestRangeString(t *testing.T) {
	require.Equal(t, "[0..63]", keygroup.RangeFor(128, 2, 0).String())
	require.Equal(t, "[64..127]", keygroup.RangeFor(128, 2, 1).String())
}

// The key groups of these keys are part of the savepoint format: state is
// stored per key group, so a change of hash function would silently move
// keys away from their state. Update these values only together with a
// savepoint migration.
func TestHashStabilityGolden(t *testing.T) {
	hi, err := keygroup.HasherFor[int64](nil)
	require.NoError(t, err)
	for k, want := range map[int64]struct {
		hash uint64
		kg   int
	}{
		0:       {0x0, 0},
		1:       {0xb456bcfc34c2cb2c, 44},
		2:       {0x3abf2a20650683e7, 103},
		42:      {0x810879608e4259cc, 76},
		-1:      {0x64b5720b4b825f21, 33},
		1 << 40: {0xe80f632ed2f232f6, 118},
	} {
		require.Equal(t, want.hash, hi(k), "hash of int64 %d", k)
		require.Equal(t, want.kg, keygroup.Of(hi(k), 128), "key group of int64 %d", k)
	}
	hs, err := keygroup.HasherFor[string](nil)
	require.NoError(t, err)
	for k, want := range map[string]struct {
		hash uint64
		kg   int
	}{
		"":      {0xef46db3751d8e999, 25},
		"a":     {0xd24ec4f1a98c6e5b, 91},
		"b":     {0x78452aa11af39f9b, 27},
		"hello": {0x26c7827d889f6da3, 35},
		"strom": {0xc2f00580b27be3dc, 92},
	} {
		require.Equal(t, want.hash, hs(k), "hash of string %q", k)
		require.Equal(t, want.kg, keygroup.Of(hs(k), 128), "key group of string %q", k)
	}
}

func TestHasherKinds(t *testing.T) {
	// int and int64 of the same value hash alike (both are 8 bytes).
	hInt, err := keygroup.HasherFor[int](nil)
	require.NoError(t, err)
	hI64, _ := keygroup.HasherFor[int64](nil)
	require.Equal(t, hI64(12345), hInt(12345))

	// Named types hash as their underlying kind.
	type userID int64
	hU, err := keygroup.HasherFor[userID](nil)
	require.NoError(t, err)
	require.Equal(t, hI64(7), hU(7))

	// +0 and -0 are equal float keys, so they must share a key group.
	hF, err := keygroup.HasherFor[float64](nil)
	require.NoError(t, err)
	require.Equal(t, hF(0), hF(math.Copysign(0, -1)))
	hF32, err := keygroup.HasherFor[float32](nil)
	require.NoError(t, err)
	require.Equal(t, hF32(0), hF32(float32(math.Copysign(0, -1))))

	for _, h := range []func() error{
		func() error { _, err := keygroup.HasherFor[int32](nil); return err },
		func() error { _, err := keygroup.HasherFor[uint16](nil); return err },
		func() error { _, err := keygroup.HasherFor[int8](nil); return err },
		func() error { _, err := keygroup.HasherFor[bool](nil); return err },
	} {
		require.NoError(t, h())
	}

	// Struct keys need an encoder; with one, equal keys hash alike.
	type pair struct {
		A string
		B int
	}
	_, err = keygroup.HasherFor[pair](nil)
	require.ErrorContains(t, err, "no stable hash")
	hp, err := keygroup.HasherFor[pair](func(b []byte, p pair) []byte { return append(append(b, p.A...), byte(p.B)) })
	require.NoError(t, err)
	require.Equal(t, hp(pair{"x", 1}), hp(pair{"x", 1}))
	require.NotEqual(t, hp(pair{"x", 1}), hp(pair{"x", 2}))
}

func TestOfInRange(t *testing.T) {
	h, _ := keygroup.HasherFor[int64](nil)
	counts := make([]int, 128)
	for k := range int64(128 * 100) {
		kg := keygroup.Of(h(k), 128)
		require.GreaterOrEqual(t, kg, 0)
		require.Less(t, kg, 128)
		counts[kg]++
	}
	// Sequential ids spread over every key group (fmix64 mixes well).
	for kg, c := range counts {
		require.Greater(t, c, 30, "key group %d got %d of 12800 sequential keys", kg, c)
	}
}

func TestValidate(t *testing.T) {
	require.NoError(t, keygroup.Validate(1, 1))
	require.NoError(t, keygroup.Validate(4, 128))
	require.NoError(t, keygroup.Validate(128, 128))
	require.NoError(t, keygroup.Validate(1, keygroup.UpperBoundMaxParallelism))

	require.ErrorContains(t, keygroup.Validate(0, 128), "parallelism 0 must be at least 1")
	require.ErrorContains(t, keygroup.Validate(-3, 128), "parallelism -3 must be at least 1")
	require.ErrorContains(t, keygroup.Validate(129, 128), "parallelism 129 exceeds maxParallelism 128")
	require.ErrorContains(t, keygroup.Validate(1, 0), "maxParallelism 0 out of range")
	require.ErrorContains(t, keygroup.Validate(1, keygroup.UpperBoundMaxParallelism+1), "out of range")
}
