package taskmanager

import (
	"context"
	"fmt"

	"github.com/strom-dev/strom/internal/jobcode"
	"github.com/strom-dev/strom/internal/jobgraph"
	"github.com/strom-dev/strom/internal/keygroup"
	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/rpc"
	"github.com/strom-dev/strom/internal/runtime"
	"github.com/strom-dev/strom/internal/streamgraph"
)

// operatorCounters are the live counters of one operator subtask, read
// only to take snapshots (rpc.OperatorMetrics) for the JobMaster.
type operatorCounters struct {
	Vertex   int
	Subtask  int
	Node     streamgraph.NodeID
	Name     string
	UID      string
	In, Out  *runtime.Counter
	Blocked  func() int64
	IsSource bool
}

func (c operatorCounters) snapshot() rpc.OperatorMetrics {
	m := rpc.OperatorMetrics{Vertex: c.Vertex, Subtask: c.Subtask, Node: int(c.Node), Name: c.Name, UID: c.UID, IsSource: c.IsSource,
		RecordsIn: c.In.Load(), RecordsOut: c.Out.Load(), Watermark: runtime.MinWatermark}
	if c.Blocked != nil {
		m.BackpressureWaits = c.Blocked()
	}
	return m
}

// buildTask wires one subtask of vertex v: operators built tail first so
// each can be handed its successors, network writers for edges that leave
// the vertex, and an input processor over the channels of edges that enter
// it. Channels come from the registry, whichever side is deployed first.
func buildTask(ctx context.Context, job *jobcode.Job, v *jobgraph.JobVertex, subtask, attempt int, reg *network.Registry, restore runtime.JobRestore) (*runtime.Task, []operatorCounters, error) {
	cfg := job.Config.WithDefaults()
	g := job.Graph
	vertexOf := map[streamgraph.NodeID]*jobgraph.JobVertex{}
	for _, jv := range job.JobGraph.Vertices {
		for _, op := range jv.Operators {
			vertexOf[op.Node] = jv
		}
	}
	info := runtime.TaskInfo{
		JobName:        job.Name,
		JobID:          job.ID,
		VertexName:     v.Name,
		Subtask:        subtask,
		Parallelism:    v.Parallelism,
		MaxParallelism: v.MaxParallelism,
		Attempt:        attempt,
	}
	logger := cfg.Logger.With("job", job.Name, "task", v.Name, "subtask", subtask)
	notify := reg.Notifier(network.TaskKey{Job: job.ID, Attempt: attempt, Vertex: v.ID, Subtask: subtask})
	task := runtime.NewTask(info, notify, cfg.Clock, logger)

	channel := func(e *streamgraph.Edge, producer, consumer int) any {
		to := vertexOf[e.To]
		key := network.ChannelKey{Job: job.ID, Attempt: attempt, Edge: e.ID, Producer: producer, Consumer: consumer}
		n := reg.Notifier(network.TaskKey{Job: job.ID, Attempt: attempt, Vertex: to.ID, Subtask: consumer})
		return reg.Channel(key, func() any {
			return e.Type.NewChannel(cfg.BuffersPerChannel, cfg.BatchSize, n)
		})
	}

	// The partitioning of an edge between vertices is the JobGraph's: it is
	// what was submitted (BuildJobGraph may have turned a forward edge into a
	// rebalance), the StreamGraph only supplies the edge's types and key.
	jobEdges := map[int]*jobgraph.JobEdge{}
	for _, je := range job.JobGraph.Edges {
		jobEdges[je.StreamEdge] = je
	}
	partition := func(e *streamgraph.Edge) (runtime.PartitionKind, error) {
		je := jobEdges[e.ID]
		if je == nil {
			return 0, fmt.Errorf("internal error: stream edge %d between vertices is not in the JobGraph", e.ID)
		}
		return streamgraph.RuntimePartition(je.Partition)
	}

	chainIndex := map[streamgraph.NodeID]int{}
	for i, op := range v.Operators {
		chainIndex[op.Node] = i
	}
	inCounters := map[streamgraph.NodeID]*runtime.Counter{}
	built := map[streamgraph.NodeID]runtime.Operator{}
	chain := make([]runtime.ChainedOperator, len(v.Operators))
	var metrics []operatorCounters
	var writers []*writerInfo
	for i := len(v.Operators) - 1; i >= 0; i-- {
		info := v.Operators[i]
		n := g.Node(info.Node)
		inCounters[n.ID] = new(runtime.Counter)
		var mainOuts []any
		var mainChained []streamgraph.NodeID // chained target per main output, -1 for network
		sideOuts := map[string][]any{}
		sideType := map[string]runtime.TypeOps{}
		var nodeWriters []*writerInfo
		for _, e := range g.Outputs(n.ID) {
			var out any
			if vertexOf[e.To] == v {
				target := built[e.To]
				if target == nil {
					return nil, nil, fmt.Errorf("internal error: chained operator %d built out of order", e.To)
				}
				out = e.Type.Chain(target, inCounters[e.To], g.Node(e.To).Name, task.CurrentOperator(), chainIndex[e.To], task.CancelFlag())
			} else {
				consumers := vertexOf[e.To].Parallelism
				part, err := partition(e)
				if err != nil {
					return nil, nil, err
				}
				var chans []any
				if part == runtime.Forward {
					chans = []any{channel(e, subtask, subtask)}
				} else {
					for j := range consumers {
						chans = append(chans, channel(e, subtask, j))
					}
				}
				w, o := e.Type.NewWriter(ctx, part, chans, e.KeyGroupOf, vertexOf[e.To].MaxParallelism)
				task.Writers = append(task.Writers, w)
				wi := &writerInfo{w: w}
				nodeWriters = append(nodeWriters, wi)
				out = o
			}
			if e.SideTag == "" {
				mainOuts = append(mainOuts, out)
				if vertexOf[e.To] == v {
					mainChained = append(mainChained, e.To)
				} else {
					mainChained = append(mainChained, -1)
				}
			} else {
				sideOuts[e.SideTag] = append(sideOuts[e.SideTag], out)
				sideType[e.SideTag] = e.Type
			}
		}
		writers = append(writers, nodeWriters...)
		// Records out are counted where they enter the next operator when
		// the output is a single chained operator (its records-in counter is
		// the same number), saving one call per record and hop.
		var outCounter *runtime.Counter
		var main any
		if len(mainOuts) == 1 && mainChained[0] >= 0 {
			outCounter = inCounters[mainChained[0]]
			main = mainOuts[0]
		} else {
			outCounter = new(runtime.Counter)
			main = n.Out.Counting(n.Out.Fanout(mainOuts), outCounter)
		}
		opCtx := &runtime.Context{
			Ctx:           ctx,
			Task:          info2(infoTask(task), n),
			OperatorName:  n.Name,
			OperatorUID:   n.UID,
			KeyGroups:     keygroup.RangeFor(v.MaxParallelism, v.Parallelism, subtask),
			Logger:        logger.With("operator", n.Name),
			Time:          task.Time,
			Checkpointing: job.Config.Checkpoint != nil,
		}
		side := map[string]any{}
		for tag, outs := range sideOuts {
			side[tag] = sideType[tag].Fanout(outs)
		}
		opCtx.SetSideOutputs(side)
		op, err := n.Build(opCtx, main)
		if err != nil {
			return nil, nil, &runtime.TaskError{Job: job.Name, Operator: n.Name, Task: task.Info, Err: fmt.Errorf("build: %w", err)}
		}
		built[n.ID] = op
		chain[i] = runtime.ChainedOperator{Name: n.Name, UID: n.UID, Op: op, Ctx: opCtx, In: inCounters[n.ID], Out: outCounter}
		m := operatorCounters{Vertex: v.ID, Subtask: subtask, Node: n.ID, Name: n.Name, UID: n.UID, In: inCounters[n.ID], Out: outCounter, IsSource: n.NumInputs == 0}
		if len(nodeWriters) > 0 {
			ws := nodeWriters
			m.Blocked = func() int64 {
				var s int64
				for _, w := range ws {
					s += w.blocked()
				}
				return s
			}
		}
		metrics = append(metrics, m)
	}
	task.Chain = chain
	if err := restoreTask(job, v, subtask, task, restore); err != nil {
		return nil, nil, err
	}

	head := g.Node(v.Operators[0].Node)
	if head.NumInputs > 0 {
		chans := make([][]any, head.NumInputs)
		for _, e := range head.Inputs {
			producers := vertexOf[e.From].Parallelism
			part, err := partition(e)
			if err != nil {
				return nil, nil, err
			}
			if part == runtime.Forward {
				chans[e.InputIndex] = append(chans[e.InputIndex], channel(e, subtask, subtask))
			} else {
				for k := range producers {
					chans[e.InputIndex] = append(chans[e.InputIndex], channel(e, k, subtask))
				}
			}
		}
		input, in := head.Input(chans, chain[0].Op, head.Name)
		if tr, ok := input.(interface{ TrackCurrent(*int) }); ok {
			tr.TrackCurrent(task.CurrentOperator())
		}
		task.Input = input
		chain[0].In = in
		for i := range metrics {
			if metrics[i].Node == head.ID {
				metrics[i].In = in
			}
		}
	}
	if job.Config.OnTask != nil {
		job.Config.OnTask(task)
	}
	return task, metrics, nil
}

type writerInfo struct{ w runtime.Flusher }

func (wi *writerInfo) blocked() int64 {
	if b, ok := wi.w.(interface{ BlockedCount() int64 }); ok {
		return b.BlockedCount()
	}
	return 0
}

func infoTask(t *runtime.Task) runtime.TaskInfo { return t.Info }

func info2(t runtime.TaskInfo, _ *streamgraph.Node) runtime.TaskInfo { return t }
