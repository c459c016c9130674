package strom

import (
	"context"
	"fmt"
	"iter"
	"time"

	"github.com/strom-dev/strom/internal/runtime"
	"github.com/strom-dev/strom/internal/streamgraph"
	"github.com/strom-dev/strom/state"
)

// Split is a piece of a source's input that one reader reads: a file, a
// range of a slice, a partition of a topic. A split carries its reader's
// position, so the splits a reader returns from Snapshot are where it would
// resume after a failure (checkpoints store them).
type Split interface {
	SplitID() string
}

// SourceContext is what a reader knows of its subtask.
type SourceContext struct {
	// Context is the subtask's context: it is cancelled when the job is
	// cancelled or fails, so a reader blocked on I/O can give up at once.
	Context     context.Context
	Subtask     int
	Parallelism int
	// Now is processing time, for rate limits (replaceable in tests).
	Now func() time.Time
	// opState is the reader's operator state (operator_state.go).
	opState *state.OperatorStore
}

// ReadStatus is what a reader's Read reports.
type ReadStatus struct {
	// Done: the reader has no more input, ever.
	Done bool
	// WakeAt, when Done is false and nothing was emitted, says when to call
	// Read again (a rate limit, a poll interval). Zero means at once.
	WakeAt time.Time
}

// SourceOutput receives a reader's records.
//
// A reader that reads several splits (partitions, files) should register
// every split it is given with ForSplit before it collects any record (at
// its first Read), collect each split's records through that split's
// output, and release a split once it has read all of it (ReleaseSplit).
// With a
// watermark strategy (FromSourceWithWatermarks) every split then has its own
// watermark generator and the subtask's watermark is the minimum over its
// splits, so a split far ahead in event time does not make another split's
// records late (Flink's per-split watermarks). Without a strategy ForSplit
// returns the reader's output and ReleaseSplit does nothing, at no cost.
type SourceOutput[T any] interface {
	// Collect emits a record without an event timestamp (with a strategy,
	// its timestamp assigner gives it one).
	Collect(v T)
	// CollectAt emits a record with an event timestamp (epoch ms); a
	// strategy's timestamp assigner, if it has one, replaces it.
	CollectAt(v T, ts int64)
	// ForSplit returns the output for the records of one split, creating it
	// on the first call for that split ID. From then until ReleaseSplit the
	// split holds back the subtask's watermark (at first to no watermark at
	// all), unless its generator marks it idle or it stays without records
	// for the strategy's idle timeout. A split registered only when its
	// first record is collected cannot hold back what other splits have
	// already advanced: register all of them first. Records collected
	// directly on the reader's output use one reader-level generator, which
	// holds back the watermark once it has seen a record.
	ForSplit(splitID string) SourceOutput[T]
	// ReleaseSplit says the split is finished: it no longer holds back the
	// watermark. Its output must not be used afterwards (that fails the
	// job); ForSplit with the same ID starts a new generator.
	ReleaseSplit(splitID string)
}

// Source is a connector that produces records: it divides its input into
// splits, and each parallel subtask's reader reads the splits assigned to it
// (split i goes to subtask i mod parallelism). Splits is called once per
// subtask and must be deterministic.
type Source[T any] interface {
	Splits(parallelism int) ([]Split, error)
	NewReader(ctx SourceContext, splits []Split) (SourceReader[T], error)
	// Bounded reports whether the input ends.
	Bounded() bool
}

// SourceReader reads splits. All methods are called on the task goroutine.
type SourceReader[T any] interface {
	// Read emits up to about one batch of records.
	Read(out SourceOutput[T]) (ReadStatus, error)
	// Snapshot returns the reader's unfinished splits with their current
	// positions.
	Snapshot() ([]Split, error)
	Close() error
}

// readBatch is how many records a built-in reader emits per Read, so the
// task loop can look at its mailbox and timers between batches.
const readBatch = 512

type sourceOp[T any] struct {
	src    Source[T]
	name   string
	reader SourceReader[T]
	out    runtime.Output[T]
	emit   SourceOutput[T]
	ctx    *runtime.Context
	ended  bool
	// strategy, when not nil, makes the source assign timestamps and
	// generate watermarks per split (FromSourceWithWatermarks).
	strategy *WatermarkStrategy[T]
	interval int64 // AutoWatermarkInterval, ms
	wms      *sourceWatermarks[T]
}

// sourceEmit is the output of a source without a watermark strategy:
// records go straight into the chain and splits are not told apart. It
// checks the task's cancellation flag per record, so a reader whose records
// are slow to make (or a slow operator behind it) stops within one record
// of a cancellation.
type sourceEmit[T any] struct {
	out    runtime.Output[T]
	cancel *runtime.CancelFlag
}

func (e *sourceEmit[T]) Collect(v T) {
	e.cancel.Check()
	e.out.Collect(v, runtime.NoTimestamp)
}

func (e *sourceEmit[T]) CollectAt(v T, ts int64) {
	e.cancel.Check()
	e.out.Collect(v, ts)
}

func (e *sourceEmit[T]) ForSplit(string) SourceOutput[T] { return e }
func (e *sourceEmit[T]) ReleaseSplit(string)             {}

func (o *sourceOp[T]) Open(ctx *runtime.Context) error {
	o.ctx = ctx
	p := ctx.Task.Parallelism
	mine, err := o.assignSplits(ctx)
	if err != nil {
		return err
	}
	r, err := o.src.NewReader(SourceContext{Context: ctx.Ctx, Subtask: ctx.Task.Subtask, Parallelism: p, Now: time.Now, opState: operatorStore(ctx)}, mine)
	if err != nil {
		return fmt.Errorf("source %q: creating reader: %w", o.name, err)
	}
	o.reader = r
	if o.strategy == nil {
		o.emit = &sourceEmit[T]{out: o.out, cancel: ctx.CancelFlag()}
		return nil
	}
	o.wms = newSourceWatermarks(o.name, o.out, *o.strategy, ctx.Time, ctx.CancelFlag())
	o.emit = o.wms.main
	ctx.Time.Register(ctx.Time.Now()+o.interval, o.periodic)
	return nil
}

// periodic runs the generators' periodic emit and idleness detection every
// AutoWatermarkInterval, on the task goroutine between two reads. A panic
// here is attributed to the source, the head of the task.
func (o *sourceOp[T]) periodic(now int64) {
	o.wms.periodic(now)
	o.ctx.Time.Register(now+o.interval, o.periodic)
}

func (o *sourceOp[T]) Step() runtime.SourceStep {
	st, err := o.reader.Read(o.emit)
	if err != nil {
		runtime.Fail(o.name, err)
	}
	if st.Done {
		return runtime.SourceStep{Status: runtime.EndOfInput}
	}
	if !st.WakeAt.IsZero() {
		return runtime.SourceStep{Status: runtime.NothingAvailable, WakeAt: st.WakeAt}
	}
	return runtime.SourceStep{Status: runtime.More}
}

func (o *sourceOp[T]) EndInput() {
	o.ended = true
	// The end of a bounded input ends event time: every window fires.
	o.out.EmitWatermark(runtime.MaxWatermark)
}

func (o *sourceOp[T]) Finish() error { return nil }

func (o *sourceOp[T]) Close() error {
	if o.reader == nil {
		return nil
	}
	return o.reader.Close()
}

// FromSource creates a stream read by src. The source gives records the
// timestamps its reader collects them with and emits no watermark but the
// final one; use FromSourceWithWatermarks (or AssignTimestamps after it) for
// event time.
func FromSource[T any](env *Environment, src Source[T], name string) Stream[T] {
	return addSource(env, src, name, nil)
}

func addSource[T any](env *Environment, src Source[T], name string, strategy *WatermarkStrategy[T]) Stream[T] {
	if name == "" {
		name = "Source"
	}
	interval := max(env.Config().AutoWatermarkInterval.Milliseconds(), 1)
	n := env.graph.AddNode(&streamgraph.Node{
		Kind: "source",
		Name: name,
		Out:  runtime.Ops[T]{},
		Build: func(ctx *runtime.Context, out any) (runtime.Operator, error) {
			return &sourceOp[T]{src: src, name: name, out: out.(runtime.Output[T]), strategy: strategy, interval: interval}, nil
		},
	})
	return Stream[T]{env: env, inputs: []streamInput{{node: n}}}
}

// sliceSplit is a range of a slice; Pos is the next index to read.
type sliceSplit struct {
	Start, End, Pos int
}

func (s *sliceSplit) SplitID() string { return fmt.Sprintf("slice[%d:%d]", s.Start, s.End) }

type sliceSource[T any] struct{ data []T }

func (s sliceSource[T]) Bounded() bool { return true }

func (s sliceSource[T]) Splits(p int) ([]Split, error) {
	out := make([]Split, 0, p)
	for i := range p {
		start, end := len(s.data)*i/p, len(s.data)*(i+1)/p
		out = append(out, &sliceSplit{Start: start, End: end, Pos: start})
	}
	return out, nil
}

func (s sliceSource[T]) NewReader(_ SourceContext, splits []Split) (SourceReader[T], error) {
	r := &sliceReader[T]{data: s.data}
	for _, sp := range splits {
		c := *sp.(*sliceSplit)
		r.splits = append(r.splits, &c)
	}
	return r, nil
}

type sliceReader[T any] struct {
	data   []T
	splits []*sliceSplit
}

func (r *sliceReader[T]) Read(out SourceOutput[T]) (ReadStatus, error) {
	for len(r.splits) > 0 && r.splits[0].Pos >= r.splits[0].End {
		r.splits = r.splits[1:]
	}
	if len(r.splits) == 0 {
		return ReadStatus{Done: true}, nil
	}
	sp := r.splits[0]
	end := min(sp.Pos+readBatch, sp.End)
	for _, v := range r.data[sp.Pos:end] {
		out.Collect(v)
	}
	sp.Pos = end
	return ReadStatus{}, nil
}

func (r *sliceReader[T]) Snapshot() ([]Split, error) {
	out := make([]Split, 0, len(r.splits))
	for _, s := range r.splits {
		c := *s
		out = append(out, &c)
	}
	return out, nil
}

func (r *sliceReader[T]) Close() error { return nil }

// FromSlice creates a bounded stream of the slice's elements, split into
// contiguous ranges over the source's subtasks. The slice must not be
// modified while the job runs.
func FromSlice[T any](env *Environment, data []T) Stream[T] {
	return FromSource[T](env, sliceSource[T]{data: data}, "Slice Source")
}

// FromElements creates a bounded stream of the given values.
func FromElements[T any](env *Environment, values ...T) Stream[T] {
	return FromSlice(env, values)
}

// iterSplit is the single split of an iterator; Pos counts records read.
type iterSplit struct{ Pos int64 }

func (s *iterSplit) SplitID() string { return "iterator" }

type iterSource[T any] struct{ seq iter.Seq[T] }

func (s iterSource[T]) Bounded() bool { return true }

func (s iterSource[T]) Splits(int) ([]Split, error) { return []Split{&iterSplit{}}, nil }

func (s iterSource[T]) NewReader(_ SourceContext, splits []Split) (SourceReader[T], error) {
	r := &iterReader[T]{}
	if len(splits) > 0 {
		r.split = splits[0].(*iterSplit)
		r.next, r.stop = iter.Pull(s.seq)
	}
	return r, nil
}

type iterReader[T any] struct {
	split *iterSplit
	next  func() (T, bool)
	stop  func()
}

func (r *iterReader[T]) Read(out SourceOutput[T]) (ReadStatus, error) {
	if r.next == nil {
		return ReadStatus{Done: true}, nil
	}
	for range readBatch {
		v, ok := r.next()
		if !ok {
			r.stop()
			r.next = nil
			return ReadStatus{Done: true}, nil
		}
		r.split.Pos++
		out.Collect(v)
	}
	return ReadStatus{}, nil
}

func (r *iterReader[T]) Snapshot() ([]Split, error) {
	if r.split == nil || r.next == nil {
		return nil, nil
	}
	c := *r.split
	return []Split{&c}, nil
}

func (r *iterReader[T]) Close() error {
	if r.stop != nil {
		r.stop()
		r.next = nil
	}
	return nil
}

// FromIterator creates a bounded stream from an iterator. An iterator cannot
// be split, so the source runs as one subtask: setting another parallelism
// on it is an error (Rebalance after it to spread the records).
func FromIterator[T any](env *Environment, seq iter.Seq[T]) Stream[T] {
	s := FromSource[T](env, iterSource[T]{seq: seq}, "Iterator Source")
	s.node().NonParallel = "an iterator cannot be split"
	return s
}
