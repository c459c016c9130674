package strom_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
)

// A slice split round-trips through the slice source's codec, and bytes that
// are cut short, run on, or name a split outside the slice are refused.
func TestSliceSplitCodec(t *testing.T) {
	src := strom.SliceSource([]int{1, 2, 3, 4, 5, 6, 7})
	c := src.(strom.SplitCodec)
	splits, err := src.Splits(2)
	require.NoError(t, err)
	for _, sp := range splits {
		b, err := c.EncodeSplit(sp)
		require.NoError(t, err)
		got, err := c.DecodeSplit(b)
		require.NoError(t, err)
		require.Equal(t, sp, got)
		_, err = c.DecodeSplit(b[:len(b)-1])
		require.Error(t, err, "truncated")
		_, err = c.DecodeSplit(append(b, 0))
		require.ErrorContains(t, err, "bytes after the split")
	}
	other := strom.SliceSource([]int{1})
	b, err := c.EncodeSplit(splits[1])
	require.NoError(t, err)
	_, err = other.(strom.SplitCodec).DecodeSplit(b)
	require.ErrorContains(t, err, "does not fit the slice of 1 elements")
	_, err = c.EncodeSplit(nil)
	require.ErrorContains(t, err, "want a slice split")
}
