package runtime

import (
	"context"
	"sync/atomic"

	"github.com/strom-dev/strom/internal/keygroup"
	"github.com/strom-dev/strom/internal/network"
)

// PartitionKind is how an edge spreads records over the consumer's subtasks.
type PartitionKind uint8

const (
	// Forward sends subtask i's records to subtask i (equal parallelism).
	Forward PartitionKind = iota
	// Rebalance sends records round-robin to every consumer subtask.
	Rebalance
	// Hash sends each record to the subtask owning its key's key group.
	Hash
	// Broadcast sends every record to every consumer subtask.
	Broadcast
)

func (k PartitionKind) String() string {
	switch k {
	case Forward:
		return "FORWARD"
	case Rebalance:
		return "REBALANCE"
	case Hash:
		return "HASH"
	case Broadcast:
		return "BROADCAST"
	}
	return "UNKNOWN"
}

// KeyGroupOf returns the key group of a record; the hash partitioner and the
// keyed operators use the same function so they agree on ownership.
type KeyGroupOf[T any] func(v T) int

// Flusher is an output that buffers and must be flushed before the task
// blocks, so that records never wait in a half-full batch, nor watermarks
// pending, while the task idles.
type Flusher interface {
	Flush()
	// EndOfPartition flushes and tells every consumer that nothing follows.
	EndOfPartition()
	// EndOfPartitionStopped is EndOfPartition for a task stopped by
	// stop-with-savepoint savepointID without draining: consumers end
	// without end-of-input processing too (see Task, stop-with-savepoint).
	EndOfPartitionStopped(savepointID int64)
	// EmitBarrier sends checkpoint barrier id on every channel, after
	// everything emitted before it; it never waits for a credit (see
	// Writer.sendEvent). Part of every task output, so no output can drop a
	// barrier and leave its consumers aligning forever.
	EmitBarrier(id int64, opts network.BarrierOptions)
	// EmitCancelBarrier tells every consumer that checkpoint id is aborted.
	EmitCancelBarrier(id int64)
}

// Writer is the Output at the end of a chain: it partitions records onto the
// channels of one outgoing edge, in batches.
//
// Watermarks are coalesced: EmitWatermark only records the watermark as
// pending on every channel. The next record appended to a channel's batch
// takes the latest pending watermark in front of it (a network.Mark), and a
// batch sent while one is pending carries it after its records
// (network.Batch). So each channel's consumer sees records and watermarks in
// exactly the order they were emitted, watermarks with no record between
// them collapse into the latest, and a watermark per record costs no buffer
// of its own. The delay of a watermark on a channel that gets no records is
// bounded: a channel whose watermark has been pending since before the
// previous full batch of any channel gets it at the next one (flushStale),
// and after BatchSize × channels watermarks without a full batch every
// channel does; Flush (the task is about to block), MarkIdle and
// EndOfPartition send them too, before the event.
type Writer[T any] struct {
	ctx      context.Context
	channels []*network.Channel[T]
	cur      []*network.Batch[T]
	kind     PartitionKind
	kgOf     KeyGroupOf[T]
	maxPar   int
	rr       int
	lastWM   int64
	idle     bool
	// wmSeq counts the watermarks emitted; sentSeq[i] is wmSeq when channel
	// i last sent one, so channel i has a pending watermark (lastWM) while
	// sentSeq[i] != wmSeq. flushedSeq is wmSeq when pending watermarks last
	// went out on every channel: while it equals wmSeq nothing is pending.
	wmSeq   uint64
	sentSeq []uint64
	// fullSeq is wmSeq when a channel last sent a full batch (flushStale).
	fullSeq    uint64
	flushedSeq uint64
	maxPending uint64
	// Blocked counts backpressure waits: how often the task found the
	// writer unavailable (Available) or the writer, overdraft spent, had to
	// wait for a free buffer in the middle of a batch.
	Blocked atomic.Int64
}

// NewWriter returns a writer over channels (one per consumer subtask, or one
// for Forward). kgOf is required for Hash.
func NewWriter[T any](ctx context.Context, kind PartitionKind, channels []*network.Channel[T], kgOf KeyGroupOf[T], maxParallelism int) *Writer[T] {
	maxPending := uint64(1)
	if len(channels) > 0 {
		maxPending = uint64(max(channels[0].BatchSize, 1) * len(channels))
	}
	return &Writer[T]{
		ctx:        ctx,
		channels:   channels,
		cur:        make([]*network.Batch[T], len(channels)),
		kind:       kind,
		kgOf:       kgOf,
		maxPar:     maxParallelism,
		lastWM:     MinWatermark,
		sentSeq:    make([]uint64, len(channels)),
		maxPending: maxPending,
	}
}

func (w *Writer[T]) batch(i int) *network.Batch[T] {
	b := w.cur[i]
	if b != nil {
		return b
	}
	ch := w.channels[i]
	b, ok := ch.TryOverdraft()
	if !ok {
		// Even the overdraft is spent (one input batch fanned out into
		// more than it holds): block as Flink does, cancellably.
		w.Blocked.Add(1)
		var err error
		if b, err = ch.Acquire(w.ctx); err != nil {
			Cancelled()
		}
	}
	w.cur[i] = b
	return b
}

// eventBatch returns the batch that carries an event on channel i: the one
// being filled, else an event-only batch, else a data buffer; it blocks only
// if none of them is free (see network.Channel.AcquireEvent).
func (w *Writer[T]) eventBatch(i int) *network.Batch[T] {
	if b := w.tryEventBatch(i); b != nil {
		return b
	}
	b, err := w.channels[i].AcquireEvent(w.ctx)
	if err != nil {
		Cancelled()
	}
	return b
}

// tryEventBatch is eventBatch without blocking: nil if nothing is free. It
// takes a data buffer only within the credits, never the overdraft.
func (w *Writer[T]) tryEventBatch(i int) *network.Batch[T] {
	if b := w.cur[i]; b != nil {
		return b
	}
	ch := w.channels[i]
	if b, ok := ch.TryEvent(); ok {
		return b
	}
	if ch.Available() {
		b, _ := ch.TryAcquire()
		return b
	}
	return nil
}

// Available reports whether every channel of the writer has a credit free,
// so the task can take a batch of input without blocking on this writer
// (overdraft aside). It counts a backpressure wait when not.
func (w *Writer[T]) Available() bool {
	for _, ch := range w.channels {
		if !ch.Available() {
			w.Blocked.Add(1)
			return false
		}
	}
	return true
}

// FlushStarving sends, without blocking, the partial batch and the pending
// watermark of every channel whose consumer has nothing queued. A task whose
// output is unavailable calls it before it waits: it keeps the partial
// batches of busy channels (their consumers have work and will hand back
// buffers; flushing would cut batches short exactly under load), but a
// consumer that is out of work gets what is waiting for it, and a channel
// whose only credit is the batch being filled is never stuck.
func (w *Writer[T]) FlushStarving() {
	for i, ch := range w.channels {
		if ch.Queued() > 0 {
			continue
		}
		if b := w.cur[i]; b != nil && len(b.Recs) > 0 {
			w.send(i, b)
		} else if w.sentSeq[i] != w.wmSeq {
			w.trySendWatermark(i)
		}
	}
}

// NotifyAvailable makes every channel wake n (the task's notifier) when the
// consumer hands a buffer back, so a task waiting for Available wakes.
func (w *Writer[T]) NotifyAvailable(n network.Notifier) {
	for _, ch := range w.channels {
		ch.SetProducerNotifier(n)
	}
}

// send sends channel i's current batch b, with the pending watermark after
// its records.
func (w *Writer[T]) send(i int, b *network.Batch[T]) {
	w.cur[i] = nil
	if w.sentSeq[i] != w.wmSeq {
		w.sentSeq[i] = w.wmSeq
		b.Kind = network.Watermark
		b.Value = w.lastWM
	}
	w.channels[i].Send(b)
}

func (w *Writer[T]) appendTo(i int, v T, ts int64) {
	b := w.batch(i)
	if w.sentSeq[i] != w.wmSeq {
		// The channel has not had the latest watermark: it goes in the
		// batch right before this record, so a consumer sees records and
		// watermarks of a channel in exactly the order they were emitted
		// (timers and triggers fire between the same records), while
		// watermarks with no record between them on this channel
		// collapse into the latest.
		b.Marks = append(b.Marks, network.Mark{Pos: len(b.Recs), WM: w.lastWM})
		w.sentSeq[i] = w.wmSeq
	}
	b.Recs = append(b.Recs, network.Rec[T]{V: v, Ts: ts})
	if len(b.Recs) >= w.channels[i].BatchSize {
		w.send(i, b)
		if w.flushedSeq != w.wmSeq {
			w.flushStale()
		}
	}
}

// flushStale sends the pending watermark of channels that have been waiting
// for it since before the previous full batch (of any channel): channels
// that receive few records get their watermarks within two batches' worth
// of records, while those that get records all the time take theirs in
// front of their next record, without cutting a batch short. It runs in
// the middle of a batch, so it may wait for a buffer (see eventBatch): the
// bound must hold while the task keeps emitting to other channels.
func (w *Writer[T]) flushStale() {
	for i := range w.channels {
		if w.sentSeq[i] != w.wmSeq && w.sentSeq[i] < w.fullSeq {
			w.send(i, w.eventBatch(i))
		}
	}
	w.fullSeq = w.wmSeq
}

// trySendWatermark sends channel i's pending watermark, after the records
// waiting there, unless no buffer is free.
func (w *Writer[T]) trySendWatermark(i int) bool {
	b := w.tryEventBatch(i)
	if b == nil {
		return false
	}
	w.send(i, b)
	return true
}

// flushWatermarks sends the pending watermark on every channel that has
// one, after the records waiting there. In the middle of a batch (wait) it
// may wait for a buffer, like flushStale. Before the task sleeps it does
// not: a watermark that finds no buffer stays pending, and the buffer's
// return wakes the task (Channel.Available armed it), which flushes again.
func (w *Writer[T]) flushWatermarks(wait bool) {
	all := true
	for i := range w.channels {
		if w.sentSeq[i] == w.wmSeq {
			continue
		}
		if wait {
			w.send(i, w.eventBatch(i))
		} else if !w.trySendWatermark(i) {
			all = false
		}
	}
	if all {
		w.flushedSeq = w.wmSeq
	}
	w.fullSeq = w.wmSeq
}

// Collect partitions one record.
func (w *Writer[T]) Collect(v T, ts int64) {
	w.idle = false
	switch w.kind {
	case Forward:
		w.appendTo(0, v, ts)
	case Rebalance:
		w.rr++
		if w.rr >= len(w.channels) {
			w.rr = 0
		}
		w.appendTo(w.rr, v, ts)
	case Hash:
		kg := w.kgOf(v)
		w.appendTo(keygroup.OperatorIndex(w.maxPar, len(w.channels), kg), v, ts)
	case Broadcast:
		for i := range w.channels {
			w.appendTo(i, v, ts)
		}
	}
}

// sendEvent sends an event (idle, end-of-partition, barriers) on every
// channel after the records and the pending watermark before it. Events do
// not wait for a credit: they take event-only batches (eventBatch).
func (w *Writer[T]) sendEvent(kind network.EventKind, value int64, opts network.BarrierOptions) {
	for i, ch := range w.channels {
		if w.sentSeq[i] != w.wmSeq {
			w.send(i, w.eventBatch(i))
		}
		// The event rides on the records waiting, if any.
		b := w.eventBatch(i)
		w.cur[i] = nil
		b.Kind = kind
		b.Value = value
		b.Barrier = opts
		ch.Send(b)
	}
	w.flushedSeq = w.wmSeq
}

// EmitWatermark makes a watermark pending on every consumer, after the
// records before it. A watermark that does not advance is dropped, unless
// the stream is idle: then it makes the stream active again.
func (w *Writer[T]) EmitWatermark(wm int64) {
	if wm <= w.lastWM {
		if !w.idle {
			return
		}
		wm = w.lastWM
	}
	w.idle = false
	w.lastWM = wm
	w.wmSeq++
	if w.wmSeq-w.fullSeq >= w.maxPending {
		// Watermarks without full batches (a filter drops every record):
		// bounded too.
		w.flushWatermarks(true)
	}
}

// MarkIdle tells every consumer not to wait for this producer's watermark.
func (w *Writer[T]) MarkIdle() {
	if w.idle {
		return
	}
	w.idle = true
	w.sendEvent(network.Idle, 0, network.BarrierOptions{})
}

// Flush sends every non-empty batch and every pending watermark that a free
// buffer can carry. It never blocks.
func (w *Writer[T]) Flush() {
	pending := w.flushedSeq != w.wmSeq
	for i, b := range w.cur {
		if b != nil && len(b.Recs) > 0 {
			w.send(i, b)
		}
	}
	if pending {
		w.flushWatermarks(false)
	}
}

// EndOfPartition flushes and ends every channel.
func (w *Writer[T]) EndOfPartition() {
	w.sendEvent(network.EndOfPartition, 0, network.BarrierOptions{})
}

// EndOfPartitionStopped flushes and ends every channel as stopped by
// savepoint savepointID (> 0), not drained.
func (w *Writer[T]) EndOfPartitionStopped(savepointID int64) {
	w.sendEvent(network.EndOfPartition, savepointID, network.BarrierOptions{})
}

// restoreWatermark makes wm the watermark the writer has already emitted,
// so it never emits a lower one (a restored task's output does not
// regress; see Task.restoreWatermarks). Nothing is sent.
func (w *Writer[T]) restoreWatermark(wm int64) {
	if wm > w.lastWM {
		w.lastWM = wm
	}
}

// currentWatermark is the last watermark emitted.
func (w *Writer[T]) currentWatermark() int64 { return w.lastWM }

// EmitBarrier sends barrier id on every channel, riding on the records
// waiting there: a consumer handles them before the barrier.
func (w *Writer[T]) EmitBarrier(id int64, opts network.BarrierOptions) {
	w.sendEvent(network.Barrier, id, opts)
}

// EmitCancelBarrier sends a cancel marker for checkpoint id on every
// channel.
func (w *Writer[T]) EmitCancelBarrier(id int64) {
	w.sendEvent(network.CancelBarrier, id, network.BarrierOptions{})
}

// Fanout copies a stream to several outputs (an operator with several
// chained successors or outgoing edges).
type Fanout[T any] []Output[T]

func (f Fanout[T]) Collect(v T, ts int64) {
	for _, o := range f {
		o.Collect(v, ts)
	}
}

func (f Fanout[T]) EmitWatermark(wm int64) {
	for _, o := range f {
		o.EmitWatermark(wm)
	}
}

func (f Fanout[T]) MarkIdle() {
	for _, o := range f {
		o.MarkIdle()
	}
}

// Discard is an output that drops everything (an operator whose results no
// one consumes).
type Discard[T any] struct{}

func (Discard[T]) Collect(T, int64)    {}
func (Discard[T]) EmitWatermark(int64) {}
func (Discard[T]) MarkIdle()           {}

// Counter counts records on the task goroutine without atomic operations and
// publishes the count for readers on other goroutines once per batch. The
// input counter of a chained operator also keeps the newest watermark the
// chain delivered to it (its input watermark, which a checkpoint stores).
type Counter struct {
	n      int64
	shared atomic.Int64
	// wm is the newest watermark delivered, valid when hasWM.
	wm    int64
	hasWM bool
}

// watermark is the newest watermark noted, MinWatermark if none.
func (c *Counter) watermark() int64 {
	if c == nil || !c.hasWM {
		return MinWatermark
	}
	return c.wm
}

// noteWatermark notes a watermark delivered to the counted operator.
func (c *Counter) noteWatermark(wm int64) {
	if !c.hasWM || wm > c.wm {
		c.wm, c.hasWM = wm, true
	}
}

// Inc adds one.
func (c *Counter) Inc() { c.n++ }

// Add adds n.
func (c *Counter) Add(n int64) { c.n += n }

// Publish makes the count visible to Load.
func (c *Counter) Publish() { c.shared.Store(c.n) }

// Load reads the last published count (any goroutine).
func (c *Counter) Load() int64 { return c.shared.Load() }

// Counting counts the records passing to an output.
type Counting[T any] struct {
	Out Output[T]
	C   *Counter
}

func (c Counting[T]) Collect(v T, ts int64) {
	c.C.n++
	c.Out.Collect(v, ts)
}

func (c Counting[T]) EmitWatermark(wm int64) { c.Out.EmitWatermark(wm) }
func (c Counting[T]) MarkIdle()              { c.Out.MarkIdle() }

// BlockedCount is how often the writer had to wait for a free buffer.
func (w *Writer[T]) BlockedCount() int64 { return w.Blocked.Load() }
