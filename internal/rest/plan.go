package rest

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/strom-dev/strom/internal/jobgraph"
)

// Plan is a job's dataflow plan in Flink's JSON form (the "plan" of
// /jobs/:jobid, /jobs/:jobid/plan and /jars/:jarid/plan). The field names
// are Flink's JsonPlanGenerator's.
type Plan struct {
	JobID string     `json:"jid"`
	Name  string     `json:"name"`
	Type  string     `json:"type"` // STREAMING
	Nodes []PlanNode `json:"nodes"`
}

// PlanNode is one job vertex in a plan.
type PlanNode struct {
	ID                  string         `json:"id"`
	Parallelism         int            `json:"parallelism"`
	Operator            string         `json:"operator"`
	OperatorStrategy    string         `json:"operator_strategy"`
	Description         string         `json:"description"`
	Inputs              []PlanInput    `json:"inputs,omitempty"`
	OptimizerProperties map[string]any `json:"optimizer_properties"`
}

// PlanInput is an edge into a plan node.
type PlanInput struct {
	Num          int    `json:"num"`
	ID           string `json:"id"`
	ShipStrategy string `json:"ship_strategy"`
	Exchange     string `json:"exchange"`
}

// VertexID is the Flink-shaped (32 hex digits) id of JobGraph vertex v, as
// the REST paths name it. It is the vertex number in hex, zero-padded, so
// that an adapter can map it back with ParseVertexID.
func VertexID(v int) string { return fmt.Sprintf("%032x", v) }

// ParseVertexID is the inverse of VertexID.
func ParseVertexID(id string) (int, bool) {
	v, err := strconv.ParseUint(id, 16, 31)
	if err != nil || VertexID(int(v)) != id {
		return 0, false
	}
	return int(v), true
}

// PlanFromJobGraph is the plan of a JobGraph in Flink's form: one node per
// vertex, described by its chained operators ("Source: a -> Map -> ..."),
// one input per job edge with its partitioning as ship strategy.
func PlanFromJobGraph(jobID string, jg *jobgraph.JobGraph) Plan {
	p := Plan{JobID: jobID, Name: jg.JobName, Type: "STREAMING", Nodes: []PlanNode{}}
	for _, v := range jg.Vertices {
		names := make([]string, 0, len(v.Operators))
		for _, op := range v.Operators {
			names = append(names, op.Name)
		}
		n := PlanNode{ID: VertexID(v.ID), Parallelism: v.Parallelism, Operator: "", OperatorStrategy: "",
			Description: strings.Join(names, " -> "), OptimizerProperties: map[string]any{}}
		if n.Description == "" {
			n.Description = v.Name
		}
		for i, e := range jg.InputsOf(v.ID) {
			n.Inputs = append(n.Inputs, PlanInput{Num: i, ID: VertexID(e.From), ShipStrategy: string(e.Partition), Exchange: "pipelined_bounded"})
		}
		p.Nodes = append(p.Nodes, n)
	}
	return p
}
