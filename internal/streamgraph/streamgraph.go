// Package streamgraph holds the StreamGraph the API builds (one node per
// operator, with the closures that create its operator and input processor
// and the TypeOps of its records) and BuildJobGraph, which derives the
// JobGraph (internal/jobgraph, plain data) from it by resolving parallelism,
// deriving UIDs and chaining operators joined by forward edges of equal
// parallelism into one vertex (one task per subtask). A StreamGraph never
// leaves its process: every process that runs a job's code rebuilds it by
// running the job binary, which constructs it deterministically (DESIGN.md).
package streamgraph

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/strom-dev/strom/internal/jobgraph"
	"github.com/strom-dev/strom/internal/runtime"
)

// NodeID identifies a StreamGraph node; assigned in construction order. It
// is the JobGraph's node ID: a vertex names the nodes it holds by it.
type NodeID = jobgraph.NodeID

// BuildFunc creates a node's operator for one subtask. out is the node's
// main Output[OUT] (erased); ctx carries the side outputs and task info.
type BuildFunc func(ctx *runtime.Context, out any) (runtime.Operator, error)

// InputFunc creates the input processor of a task whose head is this node:
// channels[i] are the channels (erased *network.Channel[T_i]) of input i.
type InputFunc func(channels [][]any, head runtime.Operator, name string) (runtime.InputProcessor, *runtime.Counter)

// Node is one operator of the StreamGraph.
type Node struct {
	ID               NodeID
	Kind             string // "source", "map", "window", "sink", ...
	Name             string
	UID              string
	Parallelism      int // 0 = the environment's default
	MaxParallelism   int // 0 = the environment's
	SlotSharingGroup string
	// Inputs are the edges into the node, in order.
	Inputs []*Edge
	// NumInputs is 0 for sources, 1 or 2.
	NumInputs int
	// DisableChaining keeps the node at the head of its own task.
	DisableChaining bool
	// InheritParallelism: without a parallelism of its own, the operator
	// takes its input's (AssignTimestamps, which belongs in its source's
	// task, as Flink's assignTimestampsAndWatermarks).
	InheritParallelism bool
	// NonParallel, when set, says why the operator can only run as one
	// subtask (a source that cannot be split, a non-keyed window); any
	// other parallelism is an error.
	NonParallel string
	// SideOutputTypes are the side outputs the operator itself declares
	// (tag → TypeOps of its records), such as a window's late-data output,
	// so that reading one with a tag of another type fails the build.
	SideOutputTypes map[string]runtime.TypeOps

	// Out is the TypeOps of the node's main output type.
	Out runtime.TypeOps
	// Build creates the operator.
	Build BuildFunc
	// Input creates the input processor when the node heads a task.
	Input InputFunc
}

// Edge connects two nodes.
type Edge struct {
	ID         int
	From, To   NodeID
	Partition  runtime.PartitionKind
	InputIndex int    // which input of To (0 or 1)
	SideTag    string // non-empty: the edge carries From's side output
	// Type is the TypeOps of the records on the edge.
	Type runtime.TypeOps
	// KeyGroupOf is a runtime.KeyGroupOf[T] (erased) for Hash edges.
	KeyGroupOf any
	// KeyGroupFactory builds KeyGroupOf for a given maxParallelism.
	KeyGroupFactory func(maxParallelism int) any
}

// StreamGraph is what the API built.
type StreamGraph struct {
	Nodes []*Node
	Edges []*Edge
}

// AddNode appends n and assigns its ID.
func (g *StreamGraph) AddNode(n *Node) *Node {
	n.ID = NodeID(len(g.Nodes))
	g.Nodes = append(g.Nodes, n)
	return n
}

// Connect adds an edge into to.
func (g *StreamGraph) Connect(e *Edge) {
	e.ID = len(g.Edges)
	g.Edges = append(g.Edges, e)
	to := g.Nodes[e.To]
	to.Inputs = append(to.Inputs, e)
}

// Node returns the node with id.
func (g *StreamGraph) Node(id NodeID) *Node { return g.Nodes[id] }

// Outputs returns the edges leaving id, in edge order.
func (g *StreamGraph) Outputs(id NodeID) []*Edge {
	var out []*Edge
	for _, e := range g.Edges {
		if e.From == id {
			out = append(out, e)
		}
	}
	return out
}

// DeriveUIDs gives every node without a UID one derived from its position in
// the graph: a hash of its kind, name, ordinal and its inputs' UIDs. The same
// program therefore yields the same UIDs in every process and run. Duplicate
// user UIDs are an error.
func (g *StreamGraph) DeriveUIDs() error {
	seen := map[string]NodeID{}
	for _, n := range g.Nodes {
		if n.UID == "" {
			h := sha256.New()
			fmt.Fprintf(h, "%s|%s|%d", n.Kind, n.Name, n.ID)
			for _, e := range n.Inputs {
				fmt.Fprintf(h, "|%s/%d/%s", g.Nodes[e.From].UID, e.InputIndex, e.SideTag)
			}
			n.UID = hex.EncodeToString(h.Sum(nil)[:16])
		}
		if prev, ok := seen[n.UID]; ok {
			return fmt.Errorf("operators %q and %q have the same UID %q", g.Nodes[prev].Name, n.Name, n.UID)
		}
		seen[n.UID] = n.ID
	}
	return nil
}

// Options are the environment defaults applied while building the JobGraph.
type Options struct {
	JobName            string
	DefaultParallelism int
	MaxParallelism     int
	DisableChaining    bool
}

// BuildJobGraph resolves parallelism, checks the graph and chains operators.
// It also fills each hash edge's KeyGroupOf for the job's maxParallelism.
func BuildJobGraph(g *StreamGraph, o Options) (*jobgraph.JobGraph, error) {
	if len(g.Nodes) == 0 {
		return nil, fmt.Errorf("job %q has no operators", o.JobName)
	}
	if err := g.DeriveUIDs(); err != nil {
		return nil, err
	}
	for _, n := range g.Nodes {
		if n.NonParallel != "" {
			if n.Parallelism > 1 {
				return nil, fmt.Errorf("operator %q runs as one subtask only (%s); parallelism %d is not possible", n.Name, n.NonParallel, n.Parallelism)
			}
			n.Parallelism = 1
		}
		if n.Parallelism <= 0 && n.InheritParallelism && len(n.Inputs) == 1 {
			// Nodes are numbered in construction order, so the input's
			// parallelism is already resolved.
			n.Parallelism = g.Nodes[n.Inputs[0].From].Parallelism
		}
		if n.Parallelism <= 0 {
			n.Parallelism = o.DefaultParallelism
		}
		if n.MaxParallelism <= 0 {
			n.MaxParallelism = o.MaxParallelism
		}
		if n.Parallelism > n.MaxParallelism {
			return nil, fmt.Errorf("operator %q: parallelism %d exceeds maxParallelism %d", n.Name, n.Parallelism, n.MaxParallelism)
		}
		if n.NumInputs > 0 && len(n.Inputs) == 0 {
			return nil, fmt.Errorf("operator %q has no input", n.Name)
		}
		if n.SlotSharingGroup == "" {
			n.SlotSharingGroup = "default"
		}
	}
	if err := checkSideOutputs(g); err != nil {
		return nil, err
	}
	for _, e := range g.Edges {
		from, to := g.Nodes[e.From], g.Nodes[e.To]
		if e.Partition == runtime.Forward && from.Parallelism != to.Parallelism {
			// Flink rejects this; we rebalance instead, which is what the user
			// means by a plain connection between different parallelisms.
			e.Partition = runtime.Rebalance
		}
		if e.Partition == runtime.Hash {
			if e.KeyGroupFactory == nil {
				return nil, fmt.Errorf("edge %q → %q: hash partitioning without a key", from.Name, to.Name)
			}
			if to.MaxParallelism != from.MaxParallelism && to.MaxParallelism != o.MaxParallelism {
				return nil, fmt.Errorf("operator %q: keyed input needs maxParallelism %d", to.Name, o.MaxParallelism)
			}
			e.KeyGroupOf = e.KeyGroupFactory(to.MaxParallelism)
		}
	}
	// Chain: a node joins its input's vertex when it has exactly one input
	// edge, that edge is forward and not a side output, parallelism and slot
	// sharing group match, and neither side disabled chaining.
	vertexOf := make([]int, len(g.Nodes))
	jg := &jobgraph.JobGraph{JobName: o.JobName, MaxParallelism: o.MaxParallelism}
	for _, n := range g.Nodes { // nodes are in topological order by construction
		chained := false
		if len(n.Inputs) == 1 && !o.DisableChaining && !n.DisableChaining {
			e := n.Inputs[0]
			from := g.Nodes[e.From]
			if e.Partition == runtime.Forward && e.SideTag == "" && from.Parallelism == n.Parallelism &&
				from.SlotSharingGroup == n.SlotSharingGroup && !from.DisableChaining {
				v := jg.Vertices[vertexOf[from.ID]]
				v.Operators = append(v.Operators, jobgraph.OperatorInfo{Node: n.ID, Name: n.Name, UID: n.UID, Kind: n.Kind})
				vertexOf[n.ID] = v.ID
				chained = true
			}
		}
		if !chained {
			v := &jobgraph.JobVertex{
				ID:               len(jg.Vertices),
				Operators:        []jobgraph.OperatorInfo{{Node: n.ID, Name: n.Name, UID: n.UID, Kind: n.Kind}},
				Parallelism:      n.Parallelism,
				MaxParallelism:   n.MaxParallelism,
				SlotSharingGroup: n.SlotSharingGroup,
				IsSource:         n.NumInputs == 0,
			}
			jg.Vertices = append(jg.Vertices, v)
			vertexOf[n.ID] = v.ID
		}
	}
	for _, v := range jg.Vertices {
		names := make([]string, len(v.Operators))
		for i, op := range v.Operators {
			names[i] = op.Name
		}
		v.Name = joinArrow(names)
	}
	for _, e := range g.Edges {
		fv, tv := vertexOf[e.From], vertexOf[e.To]
		if fv == tv {
			continue
		}
		jg.Edges = append(jg.Edges, &jobgraph.JobEdge{StreamEdge: e.ID, From: fv, To: tv, Partition: JobPartition(e.Partition), InputIndex: e.InputIndex, SideTag: e.SideTag})
	}
	sort.SliceStable(jg.Edges, func(i, j int) bool { return jg.Edges[i].StreamEdge < jg.Edges[j].StreamEdge })
	return jg, nil
}

func joinArrow(names []string) string {
	s := ""
	for i, n := range names {
		if i > 0 {
			s += " -> "
		}
		s += n
	}
	return s
}

// checkSideOutputs rejects a side output read with tags of different types
// (same id), or with a type other than the one its operator declares: a tag
// is identified by its id within the operator that emits to it, and the
// records it carries have one type.
func checkSideOutputs(g *StreamGraph) error {
	type side struct {
		from NodeID
		tag  string
	}
	seen := map[side]runtime.TypeOps{}
	for _, e := range g.Edges {
		if e.SideTag == "" {
			continue
		}
		from := g.Nodes[e.From]
		k := side{e.From, e.SideTag}
		want, ok := seen[k]
		if !ok {
			want, ok = from.SideOutputTypes[e.SideTag]
		}
		if ok && want != e.Type {
			return fmt.Errorf("operator %q: side output %q is read with tags of different types: %s and %s (a tag id names one side output of an operator, of one type)",
				from.Name, e.SideTag, TypeName(want), TypeName(e.Type))
		}
		if !ok {
			seen[k] = e.Type
		}
	}
	return nil
}

// TypeName is the record type of ops, for messages: "main.Bid" for
// runtime.Ops[main.Bid].
func TypeName(ops runtime.TypeOps) string {
	s := fmt.Sprintf("%T", ops)
	if i := strings.Index(s, "["); i >= 0 && strings.HasSuffix(s, "]") {
		return s[i+1 : len(s)-1]
	}
	return s
}

// JobPartition is the JobGraph's name for the runtime's partitioning kind.
func JobPartition(k runtime.PartitionKind) jobgraph.Partition {
	switch k {
	case runtime.Forward:
		return jobgraph.Forward
	case runtime.Rebalance:
		return jobgraph.Rebalance
	case runtime.Hash:
		return jobgraph.Hash
	case runtime.Broadcast:
		return jobgraph.Broadcast
	}
	panic(fmt.Sprintf("streamgraph: unknown partitioning %v", k))
}

// RuntimePartition is the runtime's partitioning kind for a JobGraph edge's.
func RuntimePartition(p jobgraph.Partition) (runtime.PartitionKind, error) {
	switch p {
	case jobgraph.Forward:
		return runtime.Forward, nil
	case jobgraph.Rebalance:
		return runtime.Rebalance, nil
	case jobgraph.Hash:
		return runtime.Hash, nil
	case jobgraph.Broadcast:
		return runtime.Broadcast, nil
	}
	return 0, fmt.Errorf("unknown partitioning %q", p)
}
