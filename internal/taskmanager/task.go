package taskmanager

import (
	"context"
	"fmt"
	"slices"

	"github.com/strom-dev/strom/internal/jobcode"
	"github.com/strom-dev/strom/internal/jobgraph"
	"github.com/strom-dev/strom/internal/keygroup"
	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/network/tcp"
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
//
// With a data plane (dp not nil), a channel whose other end runs in
// another TaskManager (by the deploy's placement) crosses it instead.
func buildTask(ctx context.Context, job *jobcode.Job, v *jobgraph.JobVertex, subtask, attempt int, reg *network.Registry, dp *dataPlane, restore runtime.JobRestore) (*runtime.Task, []operatorCounters, error) {
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

	// channel returns the channel of edge e from producer to consumer;
	// this task is the producer when out is set, else the consumer.
	channel := func(e *streamgraph.Edge, producer, consumer int, out bool) (any, error) {
		to := vertexOf[e.To]
		key := network.ChannelKey{Job: job.ID, Attempt: attempt, Edge: e.ID, Producer: producer, Consumer: consumer}
		n := reg.Notifier(network.TaskKey{Job: job.ID, Attempt: attempt, Vertex: to.ID, Subtask: consumer})
		peer := dp.peer(vertexOf[e.From].ID, producer)
		if out {
			peer = dp.peer(to.ID, consumer)
		}
		if peer == "" {
			return reg.Channel(key, func() any {
				return e.Type.NewChannel(cfg.BuffersPerChannel, cfg.BatchSize, n)
			}), nil
		}
		opts := tcp.ChannelOptions{Buffers: cfg.BuffersPerChannel, BatchSize: cfg.BatchSize, OnError: func(err error) {
			// A broken channel fails the task, as a failed read or write
			// would; the restart strategy takes over.
			_ = task.Mail(ctx, func() { runtime.Fail(v.Name, fmt.Errorf("data plane, channel %v: %w", key, err)) })
		}}
		dp.opened(key, out)
		if out {
			return e.Type.Remote().Output(dp.ep, key, opts)
		}
		return e.Type.Remote().Input(ctx, dp.ep, key, peer, n, opts)
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
				for j := range consumers {
					if part == runtime.Forward && j != subtask {
						continue
					}
					c, err := channel(e, subtask, j, true)
					if err != nil {
						return nil, nil, fmt.Errorf("output channel to %s (%d): %w", vertexOf[e.To].Name, j, err)
					}
					chans = append(chans, c)
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
			Ctx:                    ctx,
			Task:                   info2(infoTask(task), n),
			OperatorName:           n.Name,
			OperatorUID:            n.UID,
			KeyGroups:              keygroup.RangeFor(v.MaxParallelism, v.Parallelism, subtask),
			Logger:                 logger.With("operator", n.Name),
			Time:                   task.Time,
			Checkpointing:          job.Config.Checkpoint != nil,
			IncrementalCheckpoints: job.Config.Checkpoint != nil && job.Config.Checkpoint.Incremental,
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
			for k := range producers {
				if part == runtime.Forward && k != subtask {
					continue
				}
				c, err := channel(e, k, subtask, false)
				if err != nil {
					return nil, nil, fmt.Errorf("input channel from %s (%d): %w", vertexOf[e.From].Name, k, err)
				}
				chans[e.InputIndex] = append(chans[e.InputIndex], c)
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
	// Built tail first; reported head first, as the chain runs (REST
	// reads a vertex's records in and watermark off its head, its
	// records out off its tail).
	slices.Reverse(metrics)
	return task, metrics, nil
}

// dataPlane is how a TaskManager with a data plane of its own reaches
// subtasks in other TaskManagers: its endpoint, its own address, and where
// each subtask of the job runs (the deploy's placement).
type dataPlane struct {
	ep    *tcp.Endpoint
	self  string
	where map[[2]int]string // (vertex, subtask) → data address
	// ins and outs are the remote channels the task opened.
	ins, outs []network.ChannelKey
}

func (dp *dataPlane) opened(key network.ChannelKey, out bool) {
	if out {
		dp.outs = append(dp.outs, key)
	} else {
		dp.ins = append(dp.ins, key)
	}
}

// release closes the task's remote channels once it ended: its inputs
// always (closing them tells the producers' side), its outputs only if it
// did not finish — a finished producer's consumer is still to read what it
// sent, and closes the channel when it is done.
func (dp *dataPlane) release(finished bool) {
	if dp == nil {
		return
	}
	keys := dp.ins
	if !finished {
		keys = append(keys, dp.outs...)
	}
	if len(keys) > 0 {
		dp.ep.Release(func(k network.ChannelKey) bool { return slices.Contains(keys, k) })
	}
}

func newDataPlane(ep *tcp.Endpoint, placement []rpc.TaskPlacement) *dataPlane {
	if ep == nil || len(placement) == 0 {
		return nil
	}
	dp := &dataPlane{ep: ep, self: ep.Addr(), where: map[[2]int]string{}}
	for _, p := range placement {
		dp.where[[2]int{p.Vertex, p.Subtask}] = p.DataAddress
	}
	return dp
}

// peer is the data address of the TaskManager running subtask of vertex
// when that is another one, "" when it is this one (or unknown: the
// in-process channels).
func (dp *dataPlane) peer(vertex, subtask int) string {
	if dp == nil {
		return ""
	}
	if a := dp.where[[2]int{vertex, subtask}]; a != dp.self {
		return a
	}
	return ""
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
