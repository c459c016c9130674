// Package jobgraph is the JobGraph as plain data: vertices of chained
// operators (the StreamGraph nodes each holds, by node ID), the edges between
// them with their partitioning, UIDs, slot sharing groups, parallelism and
// max parallelism. It serialises to JSON and is what a job submits; it
// imports nothing of the runtime. The operator code a vertex refers to is
// rebuilt in every process by the job binary, which constructs the same
// StreamGraph deterministically (internal/streamgraph, DESIGN.md).
package jobgraph

import (
	"encoding/json"
	"slices"
	"time"
)

// NodeID identifies a StreamGraph node; assigned in construction order.
type NodeID int

// Partition is how an edge spreads records over the consumer's subtasks.
// Its values are the names the JSON form carries.
type Partition string

const (
	// Forward sends subtask i's records to subtask i (equal parallelism).
	Forward Partition = "FORWARD"
	// Rebalance sends records round-robin to every consumer subtask.
	Rebalance Partition = "REBALANCE"
	// Hash sends each record to the subtask owning its key's key group.
	Hash Partition = "HASH"
	// Broadcast sends every record to every consumer subtask.
	Broadcast Partition = "BROADCAST"
)

// JobGraph is the serialisable form of a job: vertices of chained operators.
type JobGraph struct {
	JobName        string       `json:"jobName"`
	MaxParallelism int          `json:"maxParallelism"`
	Vertices       []*JobVertex `json:"vertices"`
	Edges          []*JobEdge   `json:"edges"`
	// Settings travel with a submitted job (nil in an embedded run).
	Settings *Settings `json:"settings,omitempty"`
}

// JobVertex is a chain of operators run as one task per subtask.
type JobVertex struct {
	ID               int            `json:"id"`
	Name             string         `json:"name"`
	Operators        []OperatorInfo `json:"operators"` // head first
	Parallelism      int            `json:"parallelism"`
	MaxParallelism   int            `json:"maxParallelism"`
	SlotSharingGroup string         `json:"slotSharingGroup"`
	IsSource         bool           `json:"isSource"`
}

// OperatorInfo names one operator of a vertex.
type OperatorInfo struct {
	Node NodeID `json:"node"`
	Name string `json:"name"`
	UID  string `json:"uid"`
	Kind string `json:"kind"`
}

// JobEdge is a StreamGraph edge between two vertices (a network exchange).
type JobEdge struct {
	StreamEdge int       `json:"streamEdge"`
	From       int       `json:"from"` // vertex
	To         int       `json:"to"`   // vertex
	Partition  Partition `json:"partition"`
	InputIndex int       `json:"inputIndex"`
	SideTag    string    `json:"sideTag,omitempty"`
}

// SlotsNeeded is the number of slots a job needs with slot sharing: per slot
// sharing group the highest vertex parallelism, summed over groups.
func (jg *JobGraph) SlotsNeeded() int {
	max := map[string]int{}
	for _, v := range jg.Vertices {
		if v.Parallelism > max[v.SlotSharingGroup] {
			max[v.SlotSharingGroup] = v.Parallelism
		}
	}
	n := 0
	for _, m := range max {
		n += m
	}
	return n
}

// InputsOf returns the job edges into vertex v.
func (jg *JobGraph) InputsOf(v int) []*JobEdge {
	var out []*JobEdge
	for _, e := range jg.Edges {
		if e.To == v {
			out = append(out, e)
		}
	}
	return out
}

// EdgeFor returns the job edge that carries StreamGraph edge streamEdge, or
// nil when that edge stays inside a vertex (chained).
func (jg *JobGraph) EdgeFor(streamEdge int) *JobEdge {
	for _, e := range jg.Edges {
		if e.StreamEdge == streamEdge {
			return e
		}
	}
	return nil
}

// Settings are the parts of a job's configuration that the JobManager
// needs and cannot get from the job's code, which it never runs: how to
// checkpoint and how to restart. The job binary writes them into the
// JobGraph it submits; the TaskManagers' job workers take the rest of
// the configuration from the program itself.
type Settings struct {
	Checkpoint *CheckpointSettings `json:"checkpoint,omitempty"`
	// Restart is the restart strategy in its JSON form (the scheduler's
	// RestartStrategy); absent: the default for the checkpoint settings.
	Restart json.RawMessage `json:"restart,omitempty"`
}

// CheckpointSettings are a job's checkpoint settings (durations in
// nanoseconds, as time.Duration).
type CheckpointSettings struct {
	Interval          time.Duration `json:"interval"`
	Timeout           time.Duration `json:"timeout,omitempty"`
	MinPause          time.Duration `json:"minPause,omitempty"`
	MaxConcurrent     int           `json:"maxConcurrent,omitempty"`
	TolerableFailures int           `json:"tolerableFailures,omitempty"`
	// Mode is EXACTLY_ONCE, AT_LEAST_ONCE or UNALIGNED.
	Mode           string        `json:"mode"`
	Storage        string        `json:"storage"`
	AlignedTimeout time.Duration `json:"alignedTimeout,omitempty"`
	Retained       int           `json:"retained,omitempty"`
	Incremental    bool          `json:"incremental,omitempty"`
}

// InputEdges are the stream edges into the given vertices: the channels a
// region's restart releases with it.
func (g *JobGraph) InputEdges(vertices []int) []int {
	var edges []int
	for _, e := range g.Edges {
		if slices.Contains(vertices, e.To) {
			edges = append(edges, e.StreamEdge)
		}
	}
	return edges
}
