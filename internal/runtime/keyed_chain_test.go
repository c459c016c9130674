package runtime

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/statebackend"
)

// The chain asks for a base first, after a failed link, once the deltas
// outgrow the base and after MaxChainDeltas deltas; a link's files are
// the base and the deltas since, and a failure before it fails it.
func TestKeyedChain(t *testing.T) {
	ctx := context.Background()
	c := &keyedChain{}
	require.Equal(t, statebackend.SnapshotBase, c.mode(), "no chain yet")

	base := c.add(false)
	base.Finish(KeyedFile{Path: "b", Size: 100}, nil)
	require.Equal(t, statebackend.SnapshotDelta, c.mode())
	d1 := c.add(true)
	d2 := c.add(true) // taken before d1 landed
	d2.Finish(KeyedFile{Path: "d2", Size: 10}, nil)
	d1.Finish(KeyedFile{Path: "d1", Size: 10}, nil)
	files, err := d2.Files(ctx)
	require.NoError(t, err)
	require.Equal(t, []KeyedFile{{"b", 100}, {"d1", 10}, {"d2", 10}}, files)
	d1.Finish(KeyedFile{}, errors.New("a second Finish is ignored"))
	files, err = d1.Files(ctx)
	require.NoError(t, err)
	require.Equal(t, []KeyedFile{{"b", 100}, {"d1", 10}}, files)

	// A failed link breaks the chain: the links after it fail, and the
	// next snapshot is a base.
	d3 := c.add(true)
	d4 := c.add(true)
	d3.Finish(KeyedFile{}, errors.New("disk full"))
	d4.Finish(KeyedFile{Path: "d4", Size: 1}, nil)
	_, err = d4.Files(ctx)
	require.ErrorIs(t, err, ErrChainBroken)
	require.ErrorContains(t, err, "disk full")
	require.Equal(t, statebackend.SnapshotBase, c.mode())

	// Deltas larger than DeltaRatio bases call for a base.
	nb := c.add(false)
	nb.Finish(KeyedFile{Path: "b2", Size: 10}, nil)
	for range DeltaRatio {
		c.add(true).Finish(KeyedFile{Size: 10}, nil)
	}
	require.Equal(t, statebackend.SnapshotDelta, c.mode(), "deltas as large as DeltaRatio bases")
	c.add(true).Finish(KeyedFile{Size: 1}, nil)
	require.Equal(t, statebackend.SnapshotBase, c.mode(), "deltas larger than DeltaRatio bases")

	// A long chain of tiny deltas ends too.
	c.add(false).Finish(KeyedFile{Size: 1 << 20}, nil)
	for range MaxChainDeltas {
		require.Equal(t, statebackend.SnapshotDelta, c.mode())
		c.add(true).Finish(KeyedFile{Size: 1}, nil)
	}
	require.Equal(t, statebackend.SnapshotBase, c.mode())

	// An abandoned snapshot finishes its links with an error.
	l := c.add(false)
	snap := TaskSnapshot{Operators: []OperatorSnapshot{{KeyedLink: l}}}
	snap.AbandonLinks(errors.New("declined"))
	_, err = l.Files(ctx)
	require.ErrorContains(t, err, "declined")
	require.Equal(t, statebackend.SnapshotBase, c.mode())
}
