package strom

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/jobgraph"
	"github.com/strom-dev/strom/internal/streamgraph"
	"github.com/strom-dev/strom/window"
)

type jgBid struct {
	Auction int
	Price   int
	TS      int64
}

// The JobGraph of a real pipeline, built through the public API, survives a
// JSON round trip unchanged: it is the data a job submits, and another
// process must read back exactly what was built (vertices, chaining, edges
// with every kind of partitioning, UIDs, slot sharing groups, parallelism).
func TestJobGraphOfAPipelineRoundTripsThroughJSON(t *testing.T) {
	env := NewEnvironment(Config{Parallelism: 2, MaxParallelism: 64})
	bids := AssignTimestamps(FromSlice(env, []jgBid{{1, 10, 1}, {2, 20, 2}}),
		BoundedOutOfOrderness[jgBid](time.Second).WithTimestamps(func(b jgBid) int64 { return b.TS }))
	more := Map(FromElements(env, jgBid{3, 30, 3}), func(b jgBid) jgBid { return b }).Name("Copy").UID("copy")
	all := Union(bids, Rebalance(more))
	late := NewOutputTag[jgBid]("late")
	maxPrice := WindowReduce(Window(KeyBy(all, func(b jgBid) int { return b.Auction }), window.Tumbling(time.Second)).
		SideOutputLateData(late).Name("MaxPrice"), func(a, b jgBid) jgBid {
		if b.Price > a.Price {
			return b
		}
		return a
	}).Parallelism(4)
	prices := Map(maxPrice, func(b jgBid) int { return b.Price }).SlotSharingGroup("out")
	Discard(Broadcast(prices))
	Discard(Map(SideOutput(maxPrice, late), func(b jgBid) int { return b.Auction }).Name("LateAuctions").Parallelism(4))
	require.NoError(t, env.err)

	jg, err := streamgraph.BuildJobGraph(env.graph, streamgraph.Options{JobName: "bids", DefaultParallelism: 2, MaxParallelism: 64})
	require.NoError(t, err)
	parts := map[jobgraph.Partition]bool{}
	for _, e := range jg.Edges {
		parts[e.Partition] = true
	}
	require.Equal(t, map[jobgraph.Partition]bool{jobgraph.Forward: true, jobgraph.Rebalance: true, jobgraph.Hash: true, jobgraph.Broadcast: true}, parts,
		"the pipeline exercises every partitioning")
	var sides []jobgraph.Partition
	for _, e := range jg.Edges {
		if e.SideTag == "late" {
			sides = append(sides, e.Partition)
		}
	}
	require.Equal(t, []jobgraph.Partition{jobgraph.Forward}, sides, "a side output is never chained")

	data, err := json.Marshal(jg)
	require.NoError(t, err)
	var back jobgraph.JobGraph
	require.NoError(t, json.Unmarshal(data, &back))
	require.Equal(t, jg, &back)
	// Partitioning travels by name, as it always has.
	var raw struct{ Edges []map[string]any }
	require.NoError(t, json.Unmarshal(data, &raw))
	for _, e := range raw.Edges {
		require.Contains(t, []any{"FORWARD", "REBALANCE", "HASH", "BROADCAST"}, e["partition"])
	}

	// What came back names the pipeline's nodes: every operator once, by
	// its StreamGraph node ID, with the UID the StreamGraph has.
	seen := map[jobgraph.NodeID]bool{}
	for _, v := range back.Vertices {
		for _, op := range v.Operators {
			require.False(t, seen[op.Node])
			seen[op.Node] = true
			require.Equal(t, env.graph.Node(op.Node).UID, op.UID)
			require.Equal(t, env.graph.Node(op.Node).Name, op.Name)
		}
	}
	require.Len(t, seen, len(env.graph.Nodes))
	require.Equal(t, jg.SlotsNeeded(), back.SlotsNeeded())
}
