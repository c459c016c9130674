package rest

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/jobgraph"
)

func TestVertexIDRoundTrip(t *testing.T) {
	for _, v := range []int{0, 1, 15, 16, 255, 1 << 20, 1<<31 - 1} {
		id := VertexID(v)
		require.Len(t, id, 32)
		require.True(t, hex32(id), id)
		got, ok := ParseVertexID(id)
		require.True(t, ok, id)
		require.Equal(t, v, got)
	}
	for _, bad := range []string{"", "1", "0000000000000000000000000000000g", "0000000000000000000000000000000A",
		"000000000000000000000000000000001", "ffffffffffffffffffffffffffffffff", "-0000000000000000000000000000001"} {
		_, ok := ParseVertexID(bad)
		require.False(t, ok, bad)
	}
}

func TestPlanFromJobGraph(t *testing.T) {
	jg := &jobgraph.JobGraph{JobName: "wordcount", MaxParallelism: 128,
		Vertices: []*jobgraph.JobVertex{
			{ID: 0, Name: "Source: lines", Parallelism: 1, Operators: []jobgraph.OperatorInfo{{Name: "Source: lines"}, {Name: "FlatMap"}}},
			{ID: 3, Name: "Window", Parallelism: 4, Operators: []jobgraph.OperatorInfo{{Name: "Window(count)"}, {Name: "Sink: print"}}},
			{ID: 5, Name: "Side", Parallelism: 2},
		},
		Edges: []*jobgraph.JobEdge{
			{StreamEdge: 2, From: 0, To: 3, Partition: jobgraph.Hash},
			{StreamEdge: 4, From: 0, To: 5, Partition: jobgraph.Rebalance, SideTag: "late"},
		},
	}
	p := PlanFromJobGraph(jobA, jg)
	data, err := json.Marshal(planInfo{Plan: p})
	require.NoError(t, err)
	require.JSONEq(t, `{"plan": {"jid": "`+jobA+`", "name": "wordcount", "type": "STREAMING", "nodes": [
		{"id": "00000000000000000000000000000000", "parallelism": 1, "operator": "", "operator_strategy": "",
		 "description": "Source: lines -> FlatMap", "optimizer_properties": {}},
		{"id": "00000000000000000000000000000003", "parallelism": 4, "operator": "", "operator_strategy": "",
		 "description": "Window(count) -> Sink: print", "optimizer_properties": {},
		 "inputs": [{"num": 0, "id": "00000000000000000000000000000000", "ship_strategy": "HASH", "exchange": "pipelined_bounded"}]},
		{"id": "00000000000000000000000000000005", "parallelism": 2, "operator": "", "operator_strategy": "",
		 "description": "Side", "optimizer_properties": {},
		 "inputs": [{"num": 0, "id": "00000000000000000000000000000000", "ship_strategy": "REBALANCE", "exchange": "pipelined_bounded"}]}
	]}}`, string(data))
}
