package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/examples/internal/stdout"
)

// TestExampleRuns runs the example and checks its exact output against
// what each partition holds: 200 records (p+1)·1 … (p+1)·200, whose sum is
// (p+1)·200·201/2, read by subtask p mod 2.
func TestExampleRuns(t *testing.T) {
	var want strings.Builder
	for p := range 5 {
		fmt.Fprintf(&want, "partition %d: read by subtask %d, 200 records, sum %d\n", p, p%2, (p+1)*200*201/2)
	}
	require.Equal(t, want.String(), stdout.Capture(t, main))
}

// TestReaderSnapshot reads a few batches and checks that Snapshot reports
// the unfinished splits at their next offsets, in reading order.
func TestReaderSnapshot(t *testing.T) {
	src := logSource{Partitions: 3, PerPartition: 100}
	splits, err := src.Splits(2)
	require.NoError(t, err)
	// Subtask 0 of 2 gets splits 0 and 2.
	r, err := src.NewReader(strom.SourceContext{Context: context.Background(), Parallelism: 2}, []strom.Split{splits[0], splits[2]})
	require.NoError(t, err)

	var got collector
	positions := func() []partitionSplit {
		snap, err := r.Snapshot()
		require.NoError(t, err)
		var ps []partitionSplit
		for _, s := range snap {
			ps = append(ps, *s.(*partitionSplit))
		}
		return ps
	}
	require.Equal(t, []partitionSplit{{0, 0}, {2, 0}}, positions())
	read := func() strom.ReadStatus {
		st, err := r.Read(&got)
		require.NoError(t, err)
		return st
	}
	read()
	require.Equal(t, []partitionSplit{{2, 0}, {0, 64}}, positions())
	read()
	read()
	require.Equal(t, []partitionSplit{{2, 64}}, positions()) // partition 0 is done
	read()
	require.Empty(t, positions())
	require.True(t, read().Done)
	require.Len(t, got, 200)
	require.Equal(t, int64(0), splits[0].(*partitionSplit).Offset, "the reader must not move the splits it was given")
}

// TestReaderCancelled: a reader whose job was cancelled stops with the
// context's error instead of fetching.
func TestReaderCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r, err := logSource{Partitions: 1, PerPartition: 10}.NewReader(strom.SourceContext{Context: ctx, Parallelism: 1},
		[]strom.Split{&partitionSplit{Partition: 0}})
	require.NoError(t, err)
	_, err = r.Read(&collector{})
	require.ErrorIs(t, err, context.Canceled)
}

type collector []Record

func (c *collector) Collect(v Record)            { *c = append(*c, v) }
func (c *collector) CollectAt(v Record, _ int64) { *c = append(*c, v) }

// A test output without watermarks: every split writes to the same place.
func (c *collector) ForSplit(string) strom.SourceOutput[Record] { return c }
func (c *collector) ReleaseSplit(string)                        {}
