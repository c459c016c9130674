package strom

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"sort"
	"strconv"
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

// FileSplit is one file of a file source; Offset is the byte offset of the
// next line to read.
type FileSplit struct {
	Path   string
	Offset int64
}

func (s *FileSplit) SplitID() string { return s.Path }

type fileSource struct{ path string }

func (s fileSource) Bounded() bool { return true }

func (s fileSource) Splits(int) ([]Split, error) {
	st, err := os.Stat(s.path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []Split{&FileSplit{Path: s.path}}, nil
	}
	entries, err := os.ReadDir(s.path)
	if err != nil {
		return nil, err
	}
	var out []Split
	for _, e := range entries {
		if e.IsDir() || e.Name()[0] == '.' || e.Name()[0] == '_' {
			continue // hidden and in-progress files, as Flink's file source
		}
		out = append(out, &FileSplit{Path: filepath.Join(s.path, e.Name())})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SplitID() < out[j].SplitID() })
	return out, nil
}

func (s fileSource) NewReader(_ SourceContext, splits []Split) (SourceReader[string], error) {
	r := &fileReader{}
	for _, sp := range splits {
		c := *sp.(*FileSplit)
		r.splits = append(r.splits, &c)
	}
	return r, nil
}

type fileReader struct {
	splits []*FileSplit
	// outs[i] is the output of splits[i]: every split of the reader is
	// registered at the first Read, so with a watermark strategy a file not
	// read yet holds back the watermark and none of its records is late
	// because another file was further ahead in event time.
	outs []SourceOutput[string]
	f    *os.File
	br   *bufio.Reader
	line int64
}

func (r *fileReader) Read(out SourceOutput[string]) (ReadStatus, error) {
	if r.outs == nil {
		r.outs = make([]SourceOutput[string], len(r.splits))
		for i, sp := range r.splits {
			r.outs[i] = out.ForSplit(sp.SplitID())
		}
	}
	for {
		if len(r.splits) == 0 {
			return ReadStatus{Done: true}, nil
		}
		sp, sout := r.splits[0], r.outs[0]
		if r.f == nil {
			f, err := os.Open(sp.Path)
			if err != nil {
				return ReadStatus{}, fmt.Errorf("reading %s: %w", sp.Path, err)
			}
			if _, err := f.Seek(sp.Offset, io.SeekStart); err != nil {
				f.Close()
				return ReadStatus{}, fmt.Errorf("reading %s: %w", sp.Path, err)
			}
			r.f, r.br = f, bufio.NewReaderSize(f, 64<<10)
		}
		for range readBatch {
			line, err := r.br.ReadString('\n')
			if len(line) > 0 {
				sp.Offset += int64(len(line))
				r.line++
				n := len(line)
				if line[n-1] == '\n' {
					n--
					if n > 0 && line[n-1] == '\r' {
						n--
					}
				}
				sout.Collect(line[:n])
			}
			if err == io.EOF {
				r.f.Close()
				r.f, r.br = nil, nil
				r.splits, r.outs = r.splits[1:], r.outs[1:]
				out.ReleaseSplit(sp.SplitID())
				return ReadStatus{}, nil
			}
			if err != nil {
				return ReadStatus{}, fmt.Errorf("reading %s at byte %d: %w", sp.Path, sp.Offset, err)
			}
		}
		return ReadStatus{}, nil
	}
}

func (r *fileReader) Snapshot() ([]Split, error) {
	out := make([]Split, 0, len(r.splits))
	for _, s := range r.splits {
		c := *s
		out = append(out, &c)
	}
	return out, nil
}

func (r *fileReader) Close() error {
	if r.f != nil {
		err := r.f.Close()
		r.f = nil
		return err
	}
	return nil
}

// FromFile creates a bounded stream of the lines of a file (without line
// terminators), or of every file in a directory (files starting with '.' or
// '_' are skipped). Files are split over the source's subtasks. A missing
// path fails the job with a clear error. For event time per file, use
// FromSourceWithWatermarks with FileSource.
func FromFile(env *Environment, path string) Stream[string] {
	return FromSource(env, FileSource(path), "File Source: "+path)
}

// FileSource is the source FromFile reads: the lines of a file, or of every
// file in a directory, one split per file. A subtask reads its files one
// after another. Given to FromSourceWithWatermarks, each file is a split
// with its own watermark generator, and every file of a subtask holds back
// the subtask's watermark until it is read to its end: a directory of files
// with different time ranges yields no late record, whatever the order the
// files are read in (the watermark advances once a subtask reads its last
// file, so windows downstream hold everything until then). An idle timeout
// would let files not opened yet stop holding the watermark back: leave it
// out for files.
func FileSource(path string) Source[string] { return fileSource{path: path} }

// GeneratorOption configures FromGenerator: Count, RatePerSecond.
type GeneratorOption struct{ apply func(*generatorSource) }

// Count bounds a generator to indices [0, n).
func Count(n int64) GeneratorOption {
	return GeneratorOption{func(g *generatorSource) { g.count = n }}
}

// RatePerSecond limits a generator to r records per second over all its
// subtasks.
func RatePerSecond(r float64) GeneratorOption {
	return GeneratorOption{func(g *generatorSource) { g.rate = r }}
}

type generatorSource struct {
	count int64 // < 0: unbounded
	rate  float64
}

// GeneratorSplit is one subtask's share of a generator: indices Next,
// Next+Stride, ... (below the count).
type GeneratorSplit struct {
	Next, Stride int64
}

func (s *GeneratorSplit) SplitID() string {
	return "gen-" + strconv.FormatInt(s.Next%max(s.Stride, 1), 10)
}

type genSource[T any] struct {
	generatorSource
	fn func(i int64) T
}

func (s genSource[T]) Bounded() bool { return s.count >= 0 }

func (s genSource[T]) Splits(p int) ([]Split, error) {
	out := make([]Split, p)
	for i := range p {
		out[i] = &GeneratorSplit{Next: int64(i), Stride: int64(p)}
	}
	return out, nil
}

func (s genSource[T]) NewReader(ctx SourceContext, splits []Split) (SourceReader[T], error) {
	r := &genReader[T]{src: s, now: ctx.Now}
	if len(splits) > 1 {
		return nil, errors.New("generator reader given more than one split")
	}
	if len(splits) == 1 {
		c := *splits[0].(*GeneratorSplit)
		r.split = &c
	}
	if s.rate > 0 {
		r.rate = s.rate / float64(ctx.Parallelism)
		r.start = r.now()
	}
	return r, nil
}

type genReader[T any] struct {
	src     genSource[T]
	split   *GeneratorSplit
	rate    float64
	start   time.Time
	emitted int64
	now     func() time.Time
}

func (r *genReader[T]) Read(out SourceOutput[T]) (ReadStatus, error) {
	if r.split == nil {
		return ReadStatus{Done: true}, nil
	}
	n := int64(readBatch)
	if r.rate > 0 {
		// A token bucket without the bucket: records allowed so far is
		// elapsed time × rate, so a reader that fell behind catches up.
		allowed := int64(r.now().Sub(r.start).Seconds()*r.rate) - r.emitted
		if allowed <= 0 {
			wait := time.Duration(float64(time.Second) / r.rate)
			return ReadStatus{WakeAt: r.now().Add(max(wait, time.Millisecond))}, nil
		}
		n = min(n, allowed)
	}
	sp := r.split
	for range n {
		if r.src.count >= 0 && sp.Next >= r.src.count {
			r.split = nil
			return ReadStatus{Done: true}, nil
		}
		out.Collect(r.src.fn(sp.Next))
		sp.Next += sp.Stride
		r.emitted++
	}
	return ReadStatus{}, nil
}

func (r *genReader[T]) Snapshot() ([]Split, error) {
	if r.split == nil {
		return nil, nil
	}
	c := *r.split
	return []Split{&c}, nil
}

func (r *genReader[T]) Close() error { return nil }

// FromGenerator creates a stream of fn(0), fn(1), ...: unbounded unless
// Count is given, optionally rate-limited. Index i is generated by subtask
// i mod parallelism, so fn must be a pure function of i for the output to be
// the same at every parallelism (and for replay after failures).
func FromGenerator[T any](env *Environment, fn func(i int64) T, opts ...GeneratorOption) Stream[T] {
	g := generatorSource{count: -1}
	for _, o := range opts {
		if o.apply != nil {
			o.apply(&g)
		}
	}
	return FromSource[T](env, genSource[T]{generatorSource: g, fn: fn}, "Generator Source")
}
