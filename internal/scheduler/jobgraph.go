package scheduler

// The one import of the JobGraph: the scheduler reads only a job's vertices
// (id, parallelism, slot sharing group) and SlotsNeeded, never the
// operators' code, so it stays free of the runtime and the cluster.
import "github.com/strom-dev/strom/internal/jobgraph"

type (
	// JobGraph is the job the scheduler deploys.
	JobGraph = jobgraph.JobGraph
	// JobVertex is one vertex of it: Parallelism subtasks in a slot
	// sharing group.
	JobVertex = jobgraph.JobVertex
	// JobEdge connects two vertices; the scheduler reads only which, to
	// find the pipelined regions.
	JobEdge = jobgraph.JobEdge
)
