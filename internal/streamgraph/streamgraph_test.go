package streamgraph_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/jobgraph"
	"github.com/strom-dev/strom/internal/runtime"
	"github.com/strom-dev/strom/internal/streamgraph"
)

// builder makes small StreamGraphs of int streams.
type builder struct{ g *streamgraph.StreamGraph }

func newBuilder() *builder { return &builder{g: &streamgraph.StreamGraph{}} }

func (b *builder) source(name string, par int) *streamgraph.Node {
	return b.g.AddNode(&streamgraph.Node{Kind: "source", Name: name, Parallelism: par, Out: runtime.Ops[int]{}})
}

func (b *builder) op(name string, par int, part runtime.PartitionKind, from ...*streamgraph.Node) *streamgraph.Node {
	n := b.g.AddNode(&streamgraph.Node{Kind: "map", Name: name, Parallelism: par, NumInputs: 1, Out: runtime.Ops[int]{}})
	for _, f := range from {
		b.connect(f, n, part)
	}
	return n
}

func (b *builder) connect(from, to *streamgraph.Node, part runtime.PartitionKind) *streamgraph.Edge {
	e := &streamgraph.Edge{From: from.ID, To: to.ID, Partition: part, Type: runtime.Ops[int]{}}
	if part == runtime.Hash {
		e.KeyGroupFactory = func(maxPar int) any {
			return runtime.KeyGroupOf[int](func(v int) int { return v % maxPar })
		}
	}
	b.g.Connect(e)
	return e
}

func (b *builder) build(t *testing.T, o streamgraph.Options) *jobgraph.JobGraph {
	t.Helper()
	if o.JobName == "" {
		o.JobName = "job"
	}
	if o.DefaultParallelism == 0 {
		o.DefaultParallelism = 1
	}
	if o.MaxParallelism == 0 {
		o.MaxParallelism = 128
	}
	jg, err := streamgraph.BuildJobGraph(b.g, o)
	require.NoError(t, err)
	return jg
}

// chains returns each vertex's operator names.
func chains(jg *jobgraph.JobGraph) [][]string {
	var out [][]string
	for _, v := range jg.Vertices {
		var names []string
		for _, op := range v.Operators {
			names = append(names, op.Name)
		}
		out = append(out, names)
	}
	return out
}

func TestForwardEqualParallelismChains(t *testing.T) {
	b := newBuilder()
	src := b.source("src", 2)
	m := b.op("map", 2, runtime.Forward, src)
	b.op("sink", 2, runtime.Forward, m)
	jg := b.build(t, streamgraph.Options{})
	require.Equal(t, [][]string{{"src", "map", "sink"}}, chains(jg))
	require.Equal(t, "src -> map -> sink", jg.Vertices[0].Name)
	require.True(t, jg.Vertices[0].IsSource)
	require.Equal(t, 2, jg.Vertices[0].Parallelism)
	require.Empty(t, jg.Edges)
}

func TestChainBreakers(t *testing.T) {
	for _, tc := range []struct {
		name      string
		configure func(b *builder) // builds src(2) → X → map
		partition jobgraph.Partition
	}{
		{name: "keyBy", configure: func(b *builder) {
			b.op("map", 2, runtime.Hash, b.g.Nodes[0])
		}, partition: "HASH"},
		{name: "rebalance", configure: func(b *builder) {
			b.op("map", 2, runtime.Rebalance, b.g.Nodes[0])
		}, partition: "REBALANCE"},
		{name: "broadcast", configure: func(b *builder) {
			b.op("map", 2, runtime.Broadcast, b.g.Nodes[0])
		}, partition: "BROADCAST"},
		{name: "different parallelism", configure: func(b *builder) {
			b.op("map", 3, runtime.Forward, b.g.Nodes[0])
		}, partition: "REBALANCE"},
		{name: "different slot sharing group", configure: func(b *builder) {
			b.op("map", 2, runtime.Forward, b.g.Nodes[0]).SlotSharingGroup = "other"
		}, partition: "FORWARD"},
		{name: "DisableChaining on the consumer", configure: func(b *builder) {
			b.op("map", 2, runtime.Forward, b.g.Nodes[0]).DisableChaining = true
		}, partition: "FORWARD"},
		{name: "DisableChaining on the producer", configure: func(b *builder) {
			b.g.Nodes[0].DisableChaining = true
			b.op("map", 2, runtime.Forward, b.g.Nodes[0])
		}, partition: "FORWARD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBuilder()
			b.source("src", 2)
			tc.configure(b)
			jg := b.build(t, streamgraph.Options{})
			require.Equal(t, [][]string{{"src"}, {"map"}}, chains(jg))
			require.Len(t, jg.Edges, 1)
			require.Equal(t, &jobgraph.JobEdge{StreamEdge: 0, From: 0, To: 1, Partition: tc.partition}, jg.Edges[0])
			require.Equal(t, []*jobgraph.JobEdge{jg.Edges[0]}, jg.InputsOf(1))
			require.Empty(t, jg.InputsOf(0))
		})
	}
}

func TestDisableChainingForTheJob(t *testing.T) {
	b := newBuilder()
	src := b.source("src", 1)
	m := b.op("map", 1, runtime.Forward, src)
	b.op("sink", 1, runtime.Forward, m)
	jg := b.build(t, streamgraph.Options{DisableChaining: true})
	require.Equal(t, [][]string{{"src"}, {"map"}, {"sink"}}, chains(jg))
	require.Len(t, jg.Edges, 2)
}

func TestUnionAndSideOutputsAreNotChained(t *testing.T) {
	b := newBuilder()
	s1 := b.source("s1", 1)
	s2 := b.source("s2", 1)
	u := b.op("union-map", 1, runtime.Forward, s1, s2)
	side := b.g.AddNode(&streamgraph.Node{Kind: "map", Name: "side", Parallelism: 1, NumInputs: 1, Out: runtime.Ops[int]{}})
	b.g.Connect(&streamgraph.Edge{From: u.ID, To: side.ID, Partition: runtime.Forward, SideTag: "late", Type: runtime.Ops[int]{}})
	b.op("main", 1, runtime.Forward, u)
	jg := b.build(t, streamgraph.Options{})
	require.Equal(t, [][]string{{"s1"}, {"s2"}, {"union-map", "main"}, {"side"}}, chains(jg))
	require.Len(t, jg.InputsOf(2), 2)
	in := jg.InputsOf(3)
	require.Len(t, in, 1)
	require.Equal(t, "late", in[0].SideTag)
}

func TestFanOutChainsEveryForwardSuccessor(t *testing.T) {
	b := newBuilder()
	src := b.source("src", 1)
	b.op("a", 1, runtime.Forward, src)
	b.op("b", 1, runtime.Forward, src)
	jg := b.build(t, streamgraph.Options{})
	require.Equal(t, [][]string{{"src", "a", "b"}}, chains(jg))
}

func TestDefaultsAndHashEdges(t *testing.T) {
	b := newBuilder()
	src := b.source("src", 0)
	k := b.op("keyed", 0, runtime.Hash, src)
	jg := b.build(t, streamgraph.Options{DefaultParallelism: 3, MaxParallelism: 16})
	require.Equal(t, 3, src.Parallelism)
	require.Equal(t, 16, k.MaxParallelism)
	require.Equal(t, "default", k.SlotSharingGroup)
	require.Equal(t, 16, jg.MaxParallelism)
	require.Equal(t, 16, jg.Vertices[1].MaxParallelism)
	kg, ok := b.g.Edges[0].KeyGroupOf.(runtime.KeyGroupOf[int])
	require.True(t, ok, "hash edges get their key-group function for the job's maxParallelism")
	require.Equal(t, 5, kg(21))
}

func TestBuildErrors(t *testing.T) {
	_, err := streamgraph.BuildJobGraph(&streamgraph.StreamGraph{}, streamgraph.Options{JobName: "empty", DefaultParallelism: 1, MaxParallelism: 128})
	require.ErrorContains(t, err, `job "empty" has no operators`)

	b := newBuilder()
	b.source("wide", 200)
	_, err = streamgraph.BuildJobGraph(b.g, streamgraph.Options{DefaultParallelism: 1, MaxParallelism: 128})
	require.ErrorContains(t, err, `operator "wide": parallelism 200 exceeds maxParallelism 128`)

	b = newBuilder()
	b.g.AddNode(&streamgraph.Node{Kind: "map", Name: "orphan", NumInputs: 1})
	_, err = streamgraph.BuildJobGraph(b.g, streamgraph.Options{DefaultParallelism: 1, MaxParallelism: 128})
	require.ErrorContains(t, err, `operator "orphan" has no input`)

	b = newBuilder()
	src := b.source("src", 1)
	n := b.op("keyed", 1, runtime.Forward, nil...)
	b.g.Connect(&streamgraph.Edge{From: src.ID, To: n.ID, Partition: runtime.Hash})
	_, err = streamgraph.BuildJobGraph(b.g, streamgraph.Options{DefaultParallelism: 1, MaxParallelism: 128})
	require.ErrorContains(t, err, "hash partitioning without a key")
}

func pipeline() *builder {
	b := newBuilder()
	src := b.source("src", 2)
	m := b.op("map", 2, runtime.Forward, src)
	k := b.op("count", 4, runtime.Hash, m)
	b.op("sink", 1, runtime.Forward, k)
	return b
}

func TestDerivedUIDsAreDeterministic(t *testing.T) {
	b1, b2 := pipeline(), pipeline()
	jg1 := b1.build(t, streamgraph.Options{})
	jg2 := b2.build(t, streamgraph.Options{})
	seen := map[string]bool{}
	for i, n := range b1.g.Nodes {
		require.Len(t, n.UID, 32)
		require.Equal(t, n.UID, b2.g.Nodes[i].UID, "the same program yields the same UIDs")
		require.False(t, seen[n.UID])
		seen[n.UID] = true
	}
	require.Equal(t, jg1, jg2)

	// Renaming an operator changes its UID and those of everything after it
	// (derived UIDs hash the inputs' UIDs), but not those before it.
	b3 := pipeline()
	b3.g.Nodes[1].Name = "renamed"
	b3.build(t, streamgraph.Options{})
	require.Equal(t, b1.g.Nodes[0].UID, b3.g.Nodes[0].UID)
	for i := 1; i < 4; i++ {
		require.NotEqual(t, b1.g.Nodes[i].UID, b3.g.Nodes[i].UID, "node %d", i)
	}

	// A user UID pins the operator's identity; derivation is idempotent.
	b4 := pipeline()
	b4.g.Nodes[2].UID = "my-counter"
	b4.build(t, streamgraph.Options{})
	require.Equal(t, "my-counter", b4.g.Nodes[2].UID)
	require.NotEqual(t, b1.g.Nodes[3].UID, b4.g.Nodes[3].UID)
	before := b4.g.Nodes[3].UID
	require.NoError(t, b4.g.DeriveUIDs())
	require.Equal(t, before, b4.g.Nodes[3].UID)
}

func TestDuplicateUIDsRejected(t *testing.T) {
	b := pipeline()
	b.g.Nodes[1].UID = "same"
	b.g.Nodes[3].UID = "same"
	_, err := streamgraph.BuildJobGraph(b.g, streamgraph.Options{DefaultParallelism: 1, MaxParallelism: 128})
	require.ErrorContains(t, err, `operators "map" and "sink" have the same UID "same"`)
}

func TestJobGraphJSONRoundTrip(t *testing.T) {
	b := pipeline()
	b.g.Nodes[3].SlotSharingGroup = "sinks"
	side := b.g.AddNode(&streamgraph.Node{Kind: "map", Name: "late", NumInputs: 1, Out: runtime.Ops[int]{}})
	b.g.Connect(&streamgraph.Edge{From: 2, To: side.ID, Partition: runtime.Forward, SideTag: "late-tag", Type: runtime.Ops[int]{}})
	jg := b.build(t, streamgraph.Options{JobName: "round trip", DefaultParallelism: 4})
	data, err := json.Marshal(jg)
	require.NoError(t, err)
	var back jobgraph.JobGraph
	require.NoError(t, json.Unmarshal(data, &back))
	require.Equal(t, jg, &back)
	// The field names are part of the submission format.
	var raw map[string]any
	require.NoError(t, json.Unmarshal(data, &raw))
	require.Equal(t, "round trip", raw["jobName"])
	v0 := raw["vertices"].([]any)[0].(map[string]any)
	for _, f := range []string{"id", "name", "operators", "parallelism", "maxParallelism", "slotSharingGroup", "isSource"} {
		require.Contains(t, v0, f)
	}
	require.Equal(t, "late-tag", raw["edges"].([]any)[2].(map[string]any)["sideTag"])
}

func TestSlotsNeeded(t *testing.T) {
	// One group: the highest parallelism.
	jg := pipeline().build(t, streamgraph.Options{})
	require.Equal(t, 4, jg.SlotsNeeded())

	// Groups never share slots: sum of each group's highest parallelism.
	b := pipeline()
	b.g.Nodes[3].SlotSharingGroup = "sinks"
	b.g.Nodes[3].Parallelism = 3
	jg = b.build(t, streamgraph.Options{})
	require.Equal(t, 4+3, jg.SlotsNeeded())

	b = newBuilder()
	b.source("a", 1).SlotSharingGroup = "x"
	b.source("b", 2).SlotSharingGroup = "y"
	b.source("c", 5).SlotSharingGroup = "y"
	require.Equal(t, 1+5, b.build(t, streamgraph.Options{}).SlotsNeeded())
}

func TestPartitionMapping(t *testing.T) {
	for _, k := range []runtime.PartitionKind{runtime.Forward, runtime.Rebalance, runtime.Hash, runtime.Broadcast} {
		p := streamgraph.JobPartition(k)
		require.Equal(t, k.String(), string(p), "the JobGraph names partitioning as the runtime prints it")
		back, err := streamgraph.RuntimePartition(p)
		require.NoError(t, err)
		require.Equal(t, k, back)
	}
	_, err := streamgraph.RuntimePartition("SHUFFLE")
	require.ErrorContains(t, err, `unknown partitioning "SHUFFLE"`)
}
