package strom

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"

	"github.com/strom-dev/strom/internal/runtime"
	"github.com/strom-dev/strom/internal/streamgraph"
	"github.com/strom-dev/strom/state"
)

// SinkWriter writes one sink subtask's records (Flink's SinkWriter).
type SinkWriter[T any] interface {
	Write(v T, ts int64) error
	// Flush is called at the end of input, before Close.
	Flush() error
	Close() error
}

// SinkContext is what a sink writer knows of its subtask.
type SinkContext struct {
	Subtask     int
	Parallelism int
	// Attempt is the subtask's execution attempt (0 first, one more per
	// restart), so a writer can name what it writes apart from what an
	// earlier attempt left.
	Attempt int
	JobName string
	// JobID is the job's id (32 hex digits), different for every run
	// of the job, a run resumed from a savepoint included.
	JobID string
	// Restored says the sink's state was restored (from a checkpoint
	// after a failure, or from a savepoint): output of an earlier run
	// may be in the sink's destination.
	Restored bool
	// Context is the subtask's context: it is cancelled when the job is
	// cancelled or fails, so a writer blocked on I/O can give up at once.
	Context context.Context
	// opState is the writer's operator state (operator_state.go).
	opState *state.OperatorStore
}

// Sink is the end of a stream; it configures the sink operator.
type Sink struct {
	env  *Environment
	node *streamgraph.Node
}

// Name names the sink operator.
func (s Sink) Name(name string) Sink {
	if s.node != nil {
		s.node.Name = name
	}
	return s
}

// UID sets the sink operator's stable id.
func (s Sink) UID(uid string) Sink {
	if s.node != nil {
		s.node.UID = uid
	}
	return s
}

// Parallelism sets the number of sink subtasks.
func (s Sink) Parallelism(p int) Sink {
	if s.node != nil {
		if p < 1 {
			s.env.fail(errorf("sink %q: parallelism %d must be at least 1", s.node.Name, p))
			return s
		}
		s.node.Parallelism = p
	}
	return s
}

// SlotSharingGroup puts the sink in a slot sharing group.
func (s Sink) SlotSharingGroup(g string) Sink {
	if s.node != nil {
		s.node.SlotSharingGroup = g
	}
	return s
}

type sinkOp[T any] struct {
	newWriter func(SinkContext) (SinkWriter[T], error)
	w         SinkWriter[T]
	name      string
}

func (o *sinkOp[T]) Open(ctx *runtime.Context) error {
	o.name = ctx.OperatorName
	w, err := o.newWriter(sinkContext(ctx))
	if err != nil {
		return err
	}
	o.w = w
	return nil
}

func (o *sinkOp[T]) ProcessElement(v T, ts int64) {
	if err := o.w.Write(v, ts); err != nil {
		runtime.Fail(o.name, err)
	}
}

func (o *sinkOp[T]) ProcessWatermark(int64) {}
func (o *sinkOp[T]) ProcessIdle()           {}
func (o *sinkOp[T]) Finish() error          { return o.w.Flush() }

func (o *sinkOp[T]) Close() error {
	if o.w == nil {
		return nil
	}
	return o.w.Close()
}

// SinkTo writes the stream with a writer per subtask.
func SinkTo[T any](s Stream[T], name string, newWriter func(SinkContext) (SinkWriter[T], error)) Sink {
	out := addOperator(s, "sink", name, runtime.Forward, nil, func(_ *runtime.Context, _ runtime.Output[struct{}]) (runtime.OneInput[T], error) {
		return &sinkOp[T]{newWriter: newWriter}, nil
	})
	return Sink{env: s.env, node: out.node()}
}

type funcWriter[T any] struct{ fn func(T) error }

func (w funcWriter[T]) Write(v T, _ int64) error { return w.fn(v) }
func (w funcWriter[T]) Flush() error             { return nil }
func (w funcWriter[T]) Close() error             { return nil }

// SinkFunc calls fn for every record, on the sink subtasks' goroutines
// (concurrently when the sink's parallelism is above 1). An error fails the
// job.
func SinkFunc[T any](s Stream[T], fn func(v T) error) Sink {
	return SinkTo(s, "Sink", func(SinkContext) (SinkWriter[T], error) { return funcWriter[T]{fn}, nil })
}

// Discard consumes the stream and drops every record (a blackhole sink).
func Discard[T any](s Stream[T]) Sink {
	return SinkFunc(s, func(T) error { return nil }).Name("Discard")
}

var stdoutMu sync.Mutex

type printWriter[T any] struct {
	w      io.Writer
	mu     *sync.Mutex
	prefix string
	buf    []byte
}

func (p *printWriter[T]) Write(v T, _ int64) error {
	p.buf = append(p.buf[:0], p.prefix...)
	p.buf = fmt.Appendln(p.buf, v)
	p.mu.Lock()
	defer p.mu.Unlock()
	_, err := p.w.Write(p.buf)
	return err
}

func (p *printWriter[T]) Flush() error { return nil }
func (p *printWriter[T]) Close() error { return nil }

// Print writes every record to standard output, one per line, prefixed
// with the subtask number ("2> ") when the sink runs in parallel, as Flink
// does.
func Print[T any](s Stream[T]) Sink { return PrintTo(s, os.Stdout) }

// PrintTo is Print to w.
func PrintTo[T any](s Stream[T], w io.Writer) Sink {
	mu := &stdoutMu
	if w != os.Stdout {
		mu = &sync.Mutex{}
	}
	return SinkTo(s, "Print", func(c SinkContext) (SinkWriter[T], error) {
		prefix := ""
		if c.Parallelism > 1 {
			prefix = fmt.Sprintf("%d> ", c.Subtask+1)
		}
		return &printWriter[T]{w: w, mu: mu, prefix: prefix}, nil
	})
}

// Collected holds the records of a Collect sink once the job has run.
type Collected[T any] struct {
	mu   sync.Mutex
	vals []T
	ts   []int64
	// staged holds, with checkpointing, what sink subtasks wrote between
	// two checkpoints, by batch id, until a checkpoint that covers the
	// batch completes (see collectCommitter).
	staged map[int64]*collectBatch[T]
	nextID int64
}

// Values returns the collected records (in arrival order per subtask;
// subtasks interleave).
func (c *Collected[T]) Values() []T {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]T(nil), c.vals...)
}

// Timestamps returns the collected records' timestamps, parallel to Values.
func (c *Collected[T]) Timestamps() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int64(nil), c.ts...)
}

// Len is the number of collected records.
func (c *Collected[T]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.vals)
}

type collectWriter[T any] struct {
	c    *Collected[T]
	vals []T
	ts   []int64
}

func (w *collectWriter[T]) Write(v T, ts int64) error {
	w.vals = append(w.vals, v)
	w.ts = append(w.ts, ts)
	if len(w.vals) >= 1024 {
		w.publish()
	}
	return nil
}

func (w *collectWriter[T]) publish() {
	w.c.mu.Lock()
	w.c.vals = append(w.c.vals, w.vals...)
	w.c.ts = append(w.c.ts, w.ts...)
	w.c.mu.Unlock()
	w.vals, w.ts = w.vals[:0], w.ts[:0]
}

func (w *collectWriter[T]) Flush() error { w.publish(); return nil }
func (w *collectWriter[T]) Close() error { w.publish(); return nil }

// Collect gathers the stream's records in memory, for tests and small jobs.
// Read them after Execute returns.
//
// With checkpointing, Collect is exactly once across restarts: a record
// becomes visible when a checkpoint taken after it completes (for a bounded
// job, the final checkpoint at the end of input), so what a failed attempt
// wrote after its last completed checkpoint — which the restarted job
// writes again — is never collected. A job that fails for good or is
// cancelled then leaves out what no checkpoint covered. Without
// checkpointing records are collected as they come, also those of a job
// that fails.
func Collect[T any](s Stream[T]) *Collected[T] {
	c := &Collected[T]{}
	addOperator(s, "sink", "Collect", runtime.Forward, nil, func(ctx *runtime.Context, _ runtime.Output[struct{}]) (runtime.OneInput[T], error) {
		if !ctx.Checkpointing {
			return &sinkOp[T]{newWriter: func(SinkContext) (SinkWriter[T], error) { return &collectWriter[T]{c: c}, nil }}, nil
		}
		// The two-phase-commit sink stores the ids of staged batches in
		// its state and commits them on the checkpoint's notification, or
		// on a restore from it (the notification may have been lost).
		return &committingSinkOp[T, int64]{
			newWriter: func(sc SinkContext) (CommittingSinkWriter[T, int64], error) {
				return &collectStager[T]{c: c, subtask: sc.Subtask, attempt: sc.Attempt}, nil
			},
			newCommitter: func(SinkContext) (Committer[int64], error) { return collectCommitter[T]{c}, nil },
		}, nil
	})
	return c
}

// collectBatch is what one sink subtask attempt wrote between two
// pre-commits.
type collectBatch[T any] struct {
	vals             []T
	ts               []int64
	subtask, attempt int
}

// collectStager is a Collect sink's writer with checkpointing: it buffers
// records and, at each pre-commit, stages them in the Collected under a new
// id, the committable.
type collectStager[T any] struct {
	c                *Collected[T]
	subtask, attempt int
	vals             []T
	ts               []int64
}

func (w *collectStager[T]) Write(v T, ts int64) error {
	w.vals = append(w.vals, v)
	w.ts = append(w.ts, ts)
	return nil
}

func (w *collectStager[T]) Flush() error { return nil }
func (w *collectStager[T]) Close() error { return nil }

func (w *collectStager[T]) PrepareCommit(int64) ([]int64, error) {
	if len(w.vals) == 0 {
		return nil, nil
	}
	b := &collectBatch[T]{vals: w.vals, ts: w.ts, subtask: w.subtask, attempt: w.attempt}
	w.vals, w.ts = nil, nil
	c := w.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.staged == nil {
		c.staged = map[int64]*collectBatch[T]{}
	}
	c.nextID++
	c.staged[c.nextID] = b
	return []int64{c.nextID}, nil
}

// collectCommitter publishes staged batches. A batch is removed from the
// stage when published, so committing its id again is a no-op.
type collectCommitter[T any] struct{ c *Collected[T] }

func (cc collectCommitter[T]) Commit(_ context.Context, ids []int64) error {
	c := cc.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		if b, ok := c.staged[id]; ok {
			c.vals = append(c.vals, b.vals...)
			c.ts = append(c.ts, b.ts...)
			delete(c.staged, id)
		}
	}
	return nil
}

// Recover drops what this subtask's failed attempts staged after their
// last completed checkpoint: no restored checkpoint references it, and the
// restarted job writes those records again.
func (cc collectCommitter[T]) Recover(sc SinkContext, restored []int64) error {
	c := cc.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, b := range c.staged {
		if b.subtask == sc.Subtask && b.attempt < sc.Attempt && !slices.Contains(restored, id) {
			delete(c.staged, id)
		}
	}
	return nil
}
