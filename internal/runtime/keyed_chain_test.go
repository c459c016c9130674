package runtime

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/statebackend"
)

// modeOf is c's next mode, without its size hint.
func modeOf(c *keyedChain, entries int, counted bool) statebackend.SnapshotMode {
	m, _ := c.mode(entries, counted)
	return m
}

// The chain asks for a base first, after a failed link, once the deltas
// outgrow the base and after MaxChainDeltas deltas; a link's files are
// the base and the deltas since, and a failure before it fails it.
func TestKeyedChain(t *testing.T) {
	ctx := context.Background()
	c := &keyedChain{}
	require.Equal(t, statebackend.SnapshotBase, modeOf(c, 0, false), "no chain yet")

	base := c.add(false, 0, false)
	base.Finish(KeyedFile{Path: "b", Size: 100}, nil)
	require.Equal(t, statebackend.SnapshotDelta, modeOf(c, 0, false))
	d1 := c.add(true, 0, false)
	d2 := c.add(true, 0, false) // taken before d1 landed
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
	d3 := c.add(true, 0, false)
	d4 := c.add(true, 0, false)
	d3.Finish(KeyedFile{}, errors.New("disk full"))
	d4.Finish(KeyedFile{Path: "d4", Size: 1}, nil)
	_, err = d4.Files(ctx)
	require.ErrorIs(t, err, ErrChainBroken)
	require.ErrorContains(t, err, "disk full")
	require.Equal(t, statebackend.SnapshotBase, modeOf(c, 0, false))

	// Deltas larger than DeltaRatio bases call for a base.
	nb := c.add(false, 0, false)
	nb.Finish(KeyedFile{Path: "b2", Size: 10}, nil)
	for range DeltaRatio {
		c.add(true, 0, false).Finish(KeyedFile{Size: 10}, nil)
	}
	require.Equal(t, statebackend.SnapshotDelta, modeOf(c, 0, false), "deltas as large as DeltaRatio bases")
	c.add(true, 0, false).Finish(KeyedFile{Size: 1}, nil)
	require.Equal(t, statebackend.SnapshotBase, modeOf(c, 0, false), "deltas larger than DeltaRatio bases")

	// A long chain of tiny deltas ends too.
	c.add(false, 0, false).Finish(KeyedFile{Size: 1 << 20}, nil)
	for range MaxChainDeltas {
		require.Equal(t, statebackend.SnapshotDelta, modeOf(c, 0, false))
		c.add(true, 0, false).Finish(KeyedFile{Size: 1}, nil)
	}
	require.Equal(t, statebackend.SnapshotBase, modeOf(c, 0, false))

	// With entry counts, a chain whose deltas are new entries is kept
	// (they are live data), while one whose deltas supersede entries
	// ends once it carries more than DeltaRatio times the live state.
	c.add(false, 1000, true).Finish(KeyedFile{Size: 100}, nil)
	entries := 1000
	for i := range 10 {
		entries += 1000
		m, hint := c.mode(entries, true)
		require.Equal(t, statebackend.SnapshotDelta, m, "a growing state keeps its chain")
		if i > 0 {
			require.Equal(t, 100, hint, "a delta's buffer is sized as the last delta")
		} else {
			require.Zero(t, hint, "no delta of this chain yet")
		}
		c.add(true, entries, true).Finish(KeyedFile{Size: 100}, nil)
	}
	// The chain holds 1100 bytes for 11000 entries, about all live; now
	// the same entries change: 2 × 1100 more may come before a base.
	for range 22 {
		require.Equal(t, statebackend.SnapshotDelta, modeOf(c, entries, true))
		c.add(true, entries, true).Finish(KeyedFile{Size: 100}, nil)
	}
	c.add(true, entries, true).Finish(KeyedFile{Size: 1}, nil)
	m, hint := c.mode(entries, true)
	require.Equal(t, statebackend.SnapshotBase, m, "superseded data outweighs the state DeltaRatio times")
	require.Equal(t, 1100, hint, "a base's buffer is sized for the live state")
	// A state that shrank makes the chain's dead weight count sooner.
	c.add(false, 1000, true).Finish(KeyedFile{Size: 100}, nil)
	c.add(true, 1000, true).Finish(KeyedFile{Size: 10}, nil)
	require.Equal(t, statebackend.SnapshotBase, modeOf(c, 100, true), "the live state is a tenth of the base")

	// An abandoned snapshot finishes its links with an error.
	l := c.add(false, 0, false)
	snap := TaskSnapshot{Operators: []OperatorSnapshot{{KeyedLink: l}}}
	snap.AbandonLinks(errors.New("declined"))
	_, err = l.Files(ctx)
	require.ErrorContains(t, err, "declined")
	require.Equal(t, statebackend.SnapshotBase, modeOf(c, 0, false))
}
