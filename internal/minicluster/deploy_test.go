package minicluster

import (
	"encoding/json"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/jobgraph"
	"github.com/strom-dev/strom/internal/scheduler"
)

// A task is wired from the JobGraph as submitted: the job runs from a
// JobGraph read back from its JSON form, and the partitioning of an edge
// between vertices is the JobGraph's, not the StreamGraph edge's.
func TestTasksAreWiredFromTheJobGraph(t *testing.T) {
	mc, err := Start(Config{TaskManagers: 1, SlotsPerManager: 3})
	require.NoError(t, err)
	defer mc.Close()

	run := func(edit func(jg *jobgraph.JobGraph)) int64 {
		t.Helper()
		var total atomic.Int64
		job := newJob(t, jobSpec{name: "sum", parallelism: 3, n: 100, panicAt: -1}, &total)
		data, err := json.Marshal(job.JobGraph)
		require.NoError(t, err)
		var jg jobgraph.JobGraph
		require.NoError(t, json.Unmarshal(data, &jg))
		edit(&jg)
		job.JobGraph = &jg
		h, err := mc.Submit(job)
		require.NoError(t, err)
		r := wait(t, h)
		require.Equal(t, scheduler.JobFinished, r.State)
		require.NoError(t, r.Err)
		return total.Load()
	}

	require.Equal(t, 3*gauss(100), run(func(jg *jobgraph.JobGraph) {
		require.Equal(t, jobgraph.Rebalance, jg.Edges[0].Partition)
	}))
	// Every record to every one of the 3 consumers.
	require.Equal(t, 3*3*gauss(100), run(func(jg *jobgraph.JobGraph) {
		jg.Edges[0].Partition = jobgraph.Broadcast
	}))
}
