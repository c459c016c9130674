// Package network moves records between tasks: typed batches through bounded
// logical channels, with in-band events (watermarks, idle markers, end of
// partition, checkpoint barriers and their cancel markers) travelling in the
// same channels as records, at the end of a batch.
//
// Each logical channel (one producer subtask → one consumer subtask) owns a
// fixed number of batch buffers. A producer must take a free buffer before it
// can fill one, and the consumer hands each buffer back once it has processed
// it: this is Flink's credit-based flow control in its in-process form. A slow
// consumer therefore stalls exactly its producers, and the memory in flight is
// bounded by channels × buffers × batch size.
//
// Inside a process a batch carries typed values, never serialised (a record
// must not be mutated after it is emitted). Between processes, package
// network/tcp frames the batches of the same channels with a codec.Codec.
package network

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
)

// EventKind says what a batch carries.
type EventKind uint8

const (
	// Records: a batch of records.
	Records EventKind = iota
	// Watermark: event time on this channel has reached Event.Value.
	Watermark
	// Idle: the channel's producer is idle and does not hold back the watermark
	// until it sends records or a watermark again.
	Idle
	// EndOfPartition: the producer has finished; nothing follows. Value 0:
	// its input ended (drained: end-of-input processing ran upstream);
	// Value > 0: it was stopped by the stop-with-savepoint Value without
	// draining (see EndStopped), and the consumer must not end its input
	// either.
	EndOfPartition
	// Barrier is a checkpoint barrier: Value is the checkpoint id and
	// Batch.Barrier its options. Everything before it on the channel belongs
	// to the checkpoint, everything after it does not.
	Barrier
	// CancelBarrier aborts the checkpoint Value (Flink's
	// CancelCheckpointMarker): a consumer aligning it stops waiting.
	CancelBarrier
)

// EndDrained is the Value of an EndOfPartition after the producer's input
// ended. Any other Value is the id of the stop-with-savepoint that stopped
// the producer (runtime: Task stop-with-savepoint).
const EndDrained int64 = 0

func (k EventKind) String() string {
	switch k {
	case Records:
		return "records"
	case Watermark:
		return "watermark"
	case Idle:
		return "idle"
	case EndOfPartition:
		return "end-of-partition"
	case Barrier:
		return "barrier"
	case CancelBarrier:
		return "cancel-barrier"
	}
	return "unknown"
}

// DefaultBatchSize and DefaultBuffersPerChannel are the defaults of a
// channel's batch size (records per buffer) and credits (buffers): the one
// place they are set, used by the API's Config and the cluster alike.
const (
	DefaultBatchSize         = 512
	DefaultBuffersPerChannel = 4
)

// DefaultOverdraftBuffers is how many buffers beyond its credits a channel
// lends a producer in the middle of a batch (Flink's overdraft buffers). A
// task takes input only while each of its channels has a credit free (see
// Channel.Available), but one input batch can produce more than one output
// batch (a flatMap, a window firing): the overdraft lets it finish instead of
// blocking half-way, where the task could run no mail. They are made on
// first use, so a channel that never needs them costs nothing.
const DefaultOverdraftBuffers = 2

// eventBuffers is how many event-only batches (an event with no records
// before it) a channel can have in flight. Events take these instead of a
// data buffer, so an idle marker, end of partition or a barrier never
// waits behind backpressure; they hold no records, so they cost no credit.
const eventBuffers = 4

// NoTimestamp marks a record that carries no event time.
const NoTimestamp = math.MinInt64

// MaxWatermark is the watermark that ends event time: every window fires.
const MaxWatermark = math.MaxInt64

// Rec is one record with its event timestamp.
type Rec[T any] struct {
	V  T
	Ts int64
}

// CheckpointMode is how a checkpoint treats the inputs of a task with
// several channels.
type CheckpointMode uint8

const (
	// ExactlyOnce aligns barriers: a channel that delivered the barrier is
	// held back until every channel has delivered it.
	ExactlyOnce CheckpointMode = iota
	// AtLeastOnce only counts barriers: no channel is held back, so records
	// after the barrier of a fast channel may enter the snapshot's state and
	// be replayed after a restore.
	AtLeastOnce
	// Unaligned lets the barrier overtake in-flight data (Flink's unaligned
	// checkpoints, FLIP-76): a producer sends it in the channel's priority
	// lane, ahead of the batches queued there, and stores those batches as
	// its output channel state; a consumer snapshots at the first barrier
	// and stores, per input channel, the records it takes before that
	// channel's barrier as its input channel state. No channel is held
	// back, so backpressure does not delay the checkpoint.
	Unaligned
)

func (m CheckpointMode) String() string {
	switch m {
	case ExactlyOnce:
		return "exactly-once"
	case AtLeastOnce:
		return "at-least-once"
	case Unaligned:
		return "unaligned"
	}
	return "unknown"
}

// SnapshotKind says whether a barrier takes a checkpoint or a savepoint.
type SnapshotKind uint8

const (
	// Checkpoint is a checkpoint, owned and retired by the system.
	Checkpoint SnapshotKind = iota
	// Savepoint is a savepoint, owned by the user.
	Savepoint
)

func (k SnapshotKind) String() string {
	switch k {
	case Checkpoint:
		return "checkpoint"
	case Savepoint:
		return "savepoint"
	}
	return "unknown"
}

// BarrierOptions are what a barrier carries besides its checkpoint id.
type BarrierOptions struct {
	Mode CheckpointMode
	Kind SnapshotKind
	// Timestamp is when the coordinator triggered the checkpoint (Unix ms).
	Timestamp int64
	// AlignedTimeout, with Mode ExactlyOnce, is how long (ms) a task may
	// align the barrier before it switches this checkpoint to Unaligned
	// (Flink's execution.checkpointing.aligned-checkpoint-timeout); 0:
	// never.
	AlignedTimeout int64
}

// Batch is the unit that moves through a channel: records, watermarks
// between them (Marks), and at most one event after them. Kind is the event
// (Records: none); a consumer handles Recs with their Marks first, then the
// event. So a watermark (or end-of-partition, idle, a barrier) rides on the
// batch of records emitted with it instead of taking a buffer of its own.
type Batch[T any] struct {
	Kind  EventKind
	Value int64 // the watermark, or the checkpoint id of a barrier or cancel marker
	// Barrier holds a barrier's options (Kind == Barrier). It is apart from
	// Value so the record and watermark path carries no more than before.
	Barrier BarrierOptions
	Recs    []Rec[T]
	// Marks are watermarks in stream order with Recs: Mark{Pos, WM} comes
	// after the first Pos records. Positions do not decrease.
	Marks []Mark
	// event marks a batch from the channel's event-only buffers: Recycle
	// returns it there, not to the data buffers.
	event bool
	// unpooled marks a batch made for one event (SendPriority,
	// UnpooledEvent): it belongs to no pool, so Recycle drops it.
	unpooled bool
}

// Mark is a watermark inside a batch of records, after its first Pos
// records.
type Mark struct {
	Pos int
	WM  int64
}

// ErrCanceled is returned (or panicked with, inside a task) when a channel
// operation is abandoned because its context was cancelled.
var ErrCanceled = errors.New("canceled")

// Notifier wakes a consumer task when one of its channels has data. It is a
// channel of capacity one: many signals collapse into one wake-up.
type Notifier chan struct{}

// NewNotifier returns a notifier.
func NewNotifier() Notifier { return make(Notifier, 1) }

// Notify wakes the waiting consumer, if any, without blocking.
func (n Notifier) Notify() {
	select {
	case n <- struct{}{}:
	default:
	}
}

// Channel is one logical channel from one producer subtask to one consumer
// subtask. The producer and the consumer are single goroutines.
//
// The batches sent and not yet polled are an inspectable queue with a
// priority lane: SendPriority puts an event ahead of every queued batch
// and, atomically with that, lets the producer see the batches it
// overtook (their records are its output channel state in an unaligned
// checkpoint). Poll takes the priority lane first.
type Channel[T any] struct {
	mu sync.Mutex
	// queue holds the sent batches from head on; prio the priority events.
	queue []*Batch[T]
	head  int
	prio  []*Batch[T]
	// queued mirrors len(queue)-head and prioN len(prio), for readers
	// that must not take the lock (Queued, HasPriority).
	queued atomic.Int32
	prioN  atomic.Int32
	// deadline is when the oldest queued aligned barrier with an
	// alignment timeout may overtake the batches before it (Unix ms; 0:
	// none queued); see Overtake.
	deadline atomic.Int64
	free     chan *Batch[T]
	events   chan *Batch[T] // free event-only batches
	notify   Notifier
	// producer is the producer task's notifier, woken when a buffer comes
	// back while wantFree is set (see Available), so a task waiting for
	// output availability wakes, and one that is not is left alone.
	producer atomic.Pointer[Notifier]
	wantFree atomic.Bool
	// overdraft is how many buffers beyond the credits the producer may
	// make; made is how many it has made (producer goroutine only).
	overdraft, made int
	// onRecycle, when set, takes every batch Recycle is given instead of
	// the channel's pools (SetRecycleHook).
	onRecycle func(*Batch[T])
	// BatchSize is the number of records a producer puts in a batch before it
	// sends it.
	BatchSize int
}

// NewChannel returns a channel with the given number of buffers (credits) of
// batchSize records each, and DefaultOverdraftBuffers of overdraft. notify
// is the consumer's notifier.
func NewChannel[T any](buffers, batchSize int, notify Notifier) *Channel[T] {
	return NewChannelOverdraft[T](buffers, DefaultOverdraftBuffers, batchSize, notify)
}

// NewChannelOverdraft is NewChannel with overdraft buffers beyond the
// credits (see DefaultOverdraftBuffers).
func NewChannelOverdraft[T any](buffers, overdraft, batchSize int, notify Notifier) *Channel[T] {
	if buffers < 1 {
		buffers = 1
	}
	if batchSize < 1 {
		batchSize = 1
	}
	overdraft = max(overdraft, 0)
	c := &Channel[T]{
		queue:     make([]*Batch[T], 0, buffers+overdraft+eventBuffers),
		free:      make(chan *Batch[T], buffers+overdraft),
		events:    make(chan *Batch[T], eventBuffers),
		notify:    notify,
		overdraft: overdraft,
		BatchSize: batchSize,
	}
	for range buffers {
		c.free <- &Batch[T]{Recs: make([]Rec[T], 0, batchSize)}
	}
	for range eventBuffers {
		c.events <- &Batch[T]{event: true}
	}
	return c
}

// SetProducerNotifier makes the channel wake n whenever a buffer comes back
// from the consumer: n is the producer task's notifier, which it sleeps on
// while it waits for output availability.
func (c *Channel[T]) SetProducerNotifier(n Notifier) { c.producer.Store(&n) }

// Available reports whether the producer can take a buffer within its
// credits, not counting overdraft: a task takes input only while this holds
// for every channel it writes, so it rarely blocks in the middle of a batch
// and can run mail while it waits (Flink's output availability). Producer
// goroutine only.
//
// When it reports false, the next buffer that comes back wakes the producer
// notifier (SetProducerNotifier), once.
func (c *Channel[T]) Available() bool {
	// The producer has made c.made overdraft buffers; while at least that
	// many are free too, one of the credits is.
	if len(c.free) > c.made {
		return true
	}
	c.wantFree.Store(true)
	// A buffer recycled before the flag was set did not wake anyone: look
	// again. (Both sides store, then load: with sequentially consistent
	// atomics one of them sees the other.)
	return len(c.free) > c.made
}

// TryOverdraft takes a free buffer, or makes an overdraft buffer if the
// channel has not made all of them yet: for a producer in the middle of a
// batch whose credits are spent.
func (c *Channel[T]) TryOverdraft() (*Batch[T], bool) {
	if b, ok := c.TryAcquire(); ok {
		return b, true
	}
	if c.made < c.overdraft {
		c.made++
		return &Batch[T]{Recs: make([]Rec[T], 0, c.BatchSize)}, true
	}
	return nil, false
}

// TryEvent takes a free event-only batch: one that carries an event (and
// watermarks), no records, and costs no credit.
func (c *Channel[T]) TryEvent() (*Batch[T], bool) {
	return tryTake(c.events)
}

// UnpooledEvent returns a new event-only batch outside the channel's
// pools, for a barrier that must not wait for a free one (Writer): one
// per checkpoint and channel at most, so the memory stays bounded.
func (c *Channel[T]) UnpooledEvent() *Batch[T] { return &Batch[T]{unpooled: true} }

// AcquireEvent takes an event-only batch or, failing that, a data buffer,
// blocking until one of them is free: only when eventBuffers events are in
// flight with every credit spent. It returns ErrCanceled if ctx ends first.
func (c *Channel[T]) AcquireEvent(ctx context.Context) (*Batch[T], error) {
	select {
	case b := <-c.events:
		return b, nil
	case b := <-c.free:
		return b, nil
	case <-ctx.Done():
		return nil, ErrCanceled
	}
}

// Acquire takes a free buffer, blocking while the consumer holds them all
// (backpressure). It returns ErrCanceled if ctx ends first.
func (c *Channel[T]) Acquire(ctx context.Context) (*Batch[T], error) {
	select {
	case b := <-c.free:
		return b, nil
	default:
	}
	select {
	case b := <-c.free:
		return b, nil
	case <-ctx.Done():
		return nil, ErrCanceled
	}
}

// TryAcquire takes a free buffer if one is available.
func (c *Channel[T]) TryAcquire() (*Batch[T], bool) {
	return tryTake(c.free)
}

// Send hands a filled buffer to the consumer. It never blocks.
func (c *Channel[T]) Send(b *Batch[T]) {
	c.mu.Lock()
	if c.head > 0 && (c.head == len(c.queue) || len(c.queue) == cap(c.queue)) {
		// Move what is queued to the front instead of growing: the
		// queue never holds more than the channel's buffers.
		n := copy(c.queue, c.queue[c.head:])
		clear(c.queue[n:])
		c.queue, c.head = c.queue[:n], 0
	}
	c.queue = append(c.queue, b)
	c.queued.Store(int32(len(c.queue) - c.head))
	if b.Kind == Barrier && b.Barrier.AlignedTimeout > 0 && c.deadline.Load() == 0 {
		c.deadline.Store(b.Barrier.Timestamp + b.Barrier.AlignedTimeout)
	}
	c.mu.Unlock()
	c.notify.Notify()
}

// SendPriority sends an event (kind, value, opts) in the priority lane,
// ahead of every batch queued: the consumer's next Poll returns it. Before
// it is visible, overtaken is called with each queued batch, oldest first,
// under the channel's lock: exactly the batches the event overtakes, none
// of which the consumer has taken (overtaken must copy what it keeps; the
// batches stay queued and are delivered as usual). It never blocks and
// takes no credit.
func (c *Channel[T]) SendPriority(kind EventKind, value int64, opts BarrierOptions, overtaken func(*Batch[T])) {
	b := &Batch[T]{Kind: kind, Value: value, Barrier: opts, unpooled: true}
	c.mu.Lock()
	if overtaken != nil {
		for _, q := range c.queue[c.head:] {
			overtaken(q)
		}
	}
	c.prio = append(c.prio, b)
	c.prioN.Store(int32(len(c.prio)))
	c.mu.Unlock()
	c.notify.Notify()
}

// Poll returns the next batch if one is waiting: a priority event first.
func (c *Channel[T]) Poll() (*Batch[T], bool) {
	if c.queued.Load() == 0 && c.prioN.Load() == 0 {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.popPriority(); ok {
		return b, true
	}
	if c.head == len(c.queue) {
		return nil, false
	}
	b := c.queue[c.head]
	c.queue[c.head] = nil
	c.head++
	c.queued.Store(int32(len(c.queue) - c.head))
	if b.Kind == Barrier && b.Barrier.AlignedTimeout > 0 {
		c.resetDeadline()
	}
	return b, true
}

// resetDeadline sets deadline from the next queued timeoutable barrier
// (under the lock).
func (c *Channel[T]) resetDeadline() {
	for _, q := range c.queue[c.head:] {
		if q.Kind == Barrier && q.Barrier.AlignedTimeout > 0 {
			c.deadline.Store(q.Barrier.Timestamp + q.Barrier.AlignedTimeout)
			return
		}
	}
	c.deadline.Store(0)
}

// OvertakeDeadline is when the oldest queued aligned barrier's alignment
// timeout expires (Unix ms), 0 if none is queued: the consumer calls
// Overtake once it has passed. Any goroutine.
func (c *Channel[T]) OvertakeDeadline() int64 { return c.deadline.Load() }

// Overtake takes the oldest queued aligned barrier with an alignment
// timeout out of the stream, as if it had come in the priority lane (an
// aligned checkpoint switched to unaligned while its barrier was still
// queued: Flink's timed-out aligned barrier). overtaken is called with the
// records before the barrier, oldest first: those of the queued batches
// ahead of it and of its own batch, which stay queued and are delivered as
// usual (the barrier's batch as plain records). Consumer goroutine only.
func (c *Channel[T]) Overtake(overtaken func([]Rec[T])) (id int64, opts BarrierOptions, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, q := range c.queue[c.head:] {
		if len(q.Recs) > 0 {
			overtaken(q.Recs)
		}
		if q.Kind == Barrier && q.Barrier.AlignedTimeout > 0 {
			id, opts = q.Value, q.Barrier
			q.Kind, q.Value, q.Barrier = Records, 0, BarrierOptions{}
			c.resetDeadline()
			return id, opts, true
		}
	}
	c.deadline.Store(0)
	return 0, BarrierOptions{}, false
}

// PollPriority returns the next priority event if one is waiting, leaving
// the queued batches alone: for a consumer that cannot take data now
// (backpressured, or holding the channel back) but must see an unaligned
// barrier at once.
func (c *Channel[T]) PollPriority() (*Batch[T], bool) {
	if c.prioN.Load() == 0 {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.popPriority()
}

// HasPriority reports whether a priority event is waiting (any goroutine).
func (c *Channel[T]) HasPriority() bool { return c.prioN.Load() > 0 }

func (c *Channel[T]) popPriority() (*Batch[T], bool) {
	if len(c.prio) == 0 {
		return nil, false
	}
	b := c.prio[0]
	c.prio[0] = nil
	c.prio = c.prio[1:]
	if len(c.prio) == 0 {
		c.prio = nil
	}
	c.prioN.Store(int32(len(c.prio)))
	return b, true
}

// SetRecycleHook makes Recycle hand every batch to f, which owns it from
// then on, instead of returning it to the channel's pools: for a channel
// whose batches are made elsewhere, such as the receiving end of a
// network/tcp channel, where a recycled batch is a credit to send back to
// the remote producer. The pools (and Available, Acquire...) are then
// unused. Set it before the channel is shared; f runs in the consumer's
// goroutine.
func (c *Channel[T]) SetRecycleHook(f func(*Batch[T])) { c.onRecycle = f }

// Recycle gives a processed buffer back to the producer.
func (c *Channel[T]) Recycle(b *Batch[T]) {
	if c.onRecycle != nil {
		c.onRecycle(b)
		return
	}
	if b.unpooled {
		return // made for one event, in no pool
	}
	clear(b.Recs) // drop references so the GC can free the records
	b.Recs = b.Recs[:0]
	b.Marks = b.Marks[:0]
	b.Kind = Records
	b.Value = 0
	b.Barrier = BarrierOptions{}
	if b.event {
		c.events <- b
	} else {
		c.free <- b
	}
	// Only a producer waiting for a buffer is woken: waking an idle one
	// per batch would cost a futile round of its loop each time.
	if c.wantFree.Load() && c.wantFree.CompareAndSwap(true, false) {
		if n := c.producer.Load(); n != nil {
			n.Notify()
		}
	}
}

// tryTake receives from q if a batch is there.
func tryTake[T any](q chan *Batch[T]) (*Batch[T], bool) {
	select {
	case b := <-q:
		return b, true
	default:
		return nil, false
	}
}

// Queued is the number of batches sent and not yet polled by the consumer
// (priority events aside).
func (c *Channel[T]) Queued() int { return int(c.queued.Load()) }

// Buffers is the number of buffers (credits) of the channel.
func (c *Channel[T]) Buffers() int { return cap(c.free) - c.overdraft }
