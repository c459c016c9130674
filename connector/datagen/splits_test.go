package datagen_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/connector/datagen"
)

// collectOut is a SourceOutput that keeps what a reader emits.
type collectOut struct{ got []int64 }

func (o *collectOut) Collect(v int64)                           { o.got = append(o.got, v) }
func (o *collectOut) CollectAt(v int64, _ int64)                { o.got = append(o.got, v) }
func (o *collectOut) ForSplit(string) strom.SourceOutput[int64] { return o }
func (o *collectOut) ReleaseSplit(string)                       {}

func read(t *testing.T, r strom.SourceReader[int64], out *collectOut, batches int) bool {
	t.Helper()
	for range batches {
		st, err := r.Read(out)
		require.NoError(t, err)
		if st.Done {
			return true
		}
	}
	return false
}

// A generator's positions survive the split codec, and a reader restored at
// a lower parallelism reads every split dealt to it: each index once.
func TestGeneratorSplitsRestoreAtLowerParallelism(t *testing.T) {
	const n = 5000
	src := datagen.Source(func(i int64) int64 { return i }, datagen.Count(n))
	codec := src.(strom.SplitCodec)
	ctx := strom.SourceContext{Parallelism: 3, Now: time.Now}

	splits, err := src.Splits(3)
	require.NoError(t, err)
	seen := map[int64]int{}
	var stored [][]byte
	for _, sp := range splits {
		r, err := src.NewReader(ctx, []strom.Split{sp})
		require.NoError(t, err)
		out := &collectOut{}
		require.False(t, read(t, r, out, 1), "one batch does not finish a split")
		for _, v := range out.got {
			seen[v]++
		}
		snap, err := r.Snapshot()
		require.NoError(t, err)
		require.Len(t, snap, 1)
		b, err := codec.EncodeSplit(snap[0])
		require.NoError(t, err)
		stored = append(stored, b)
	}

	// Restore the three splits into two readers, as a rescale 3 → 2 deals them.
	ctx.Parallelism = 2
	for _, part := range [][][]byte{{stored[0], stored[2]}, {stored[1]}} {
		var restored []strom.Split
		for _, b := range part {
			sp, err := codec.DecodeSplit(b)
			require.NoError(t, err)
			restored = append(restored, sp)
		}
		r, err := src.NewReader(ctx, restored)
		require.NoError(t, err)
		out := &collectOut{}
		require.True(t, read(t, r, out, n), "the reader ends once every split has")
		for _, v := range out.got {
			seen[v]++
		}
		snap, err := r.Snapshot()
		require.NoError(t, err)
		require.Empty(t, snap)
	}
	require.Len(t, seen, n)
	for i := range int64(n) {
		require.Equal(t, 1, seen[i], "index %d", i)
	}
}

func TestGeneratorSplitCodecRefusesBadBytes(t *testing.T) {
	codec := datagen.Source(func(i int64) int64 { return i }).(strom.SplitCodec)
	b, err := codec.EncodeSplit(&datagen.GeneratorSplit{Next: 7, Stride: 3})
	require.NoError(t, err)
	sp, err := codec.DecodeSplit(b)
	require.NoError(t, err)
	require.Equal(t, &datagen.GeneratorSplit{Next: 7, Stride: 3}, sp)
	_, err = codec.DecodeSplit(b[:len(b)-1])
	require.Error(t, err)
	_, err = codec.DecodeSplit(append(b, 0))
	require.ErrorContains(t, err, "bytes after the split")
	bad, err := codec.EncodeSplit(&datagen.GeneratorSplit{Next: 1, Stride: 0})
	require.NoError(t, err)
	_, err = codec.DecodeSplit(bad)
	require.ErrorContains(t, err, "stride 0")
}
