package tcp

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strom-dev/strom/codec"
	"github.com/strom-dev/strom/internal/network"
)

// Output opens the producer's end of channel key, whose consumer runs in
// another process: the returned channel is an ordinary network.Channel
// the producer task writes into (a Writer), with opts' credits and
// overdraft. A forwarder sends its batches to the consumer once the
// consumer's endpoint has requested the channel (whichever comes first),
// and gives each buffer back to the producer only when the consumer has
// recycled it, so backpressure is exactly that of an in-process channel.
func Output[T any](e *Endpoint, key network.ChannelKey, c codec.Codec[T], opts ChannelOptions) (*network.Channel[T], error) {
	opts = opts.withDefaults()
	o := &output[T]{
		ep: e, k: key, codec: c, opts: opts,
		wake: network.NewNotifier(),
		done: make(chan struct{}),
	}
	o.ch = network.NewChannelOverdraft[T](opts.Buffers, opts.Overdraft, opts.BatchSize, o.wake)
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, ErrClosed
	}
	if _, dup := e.outputs[key]; dup {
		e.mu.Unlock()
		return nil, fmt.Errorf("data plane: output channel %v is open already", key)
	}
	e.outputs[key] = o
	e.wg.Add(1)
	go o.run()
	var after func()
	if p, ok := e.pending[key]; ok {
		delete(e.pending, key)
		after = e.bindLocked(o, p.c, p.id, p.buffers)
	}
	e.mu.Unlock()
	if after != nil {
		after()
	}
	return o.ch, nil
}

// Input opens the consumer's end of channel key, whose producer runs in
// the process whose endpoint listens on producer: it dials that endpoint
// (or shares the connection to it), requests the channel and returns the
// channel the consumer task reads (Poll, Recycle, priority events and
// Overtake as in process), waking notify when batches arrive.
func Input[T any](ctx context.Context, e *Endpoint, key network.ChannelKey, producer string, c codec.Codec[T], notify network.Notifier, opts ChannelOptions) (*network.Channel[T], error) {
	opts = opts.withDefaults()
	in := &input[T]{
		k: key, codec: c, opts: opts,
		free: make(chan *network.Batch[T], opts.Buffers+opts.Overdraft+8),
	}
	// The channel's own pools stay unused (the hook owns recycled
	// batches); one-record buffers keep them small while Buffers still
	// says the channel's credits.
	in.ch = network.NewChannelOverdraft[T](opts.Buffers, 0, 1, notify)
	in.ch.SetRecycleHook(in.recycled)
	var err error
	e.mu.Lock()
	switch {
	case e.closed:
		err = ErrClosed
	case e.inputs[key] != nil:
		err = fmt.Errorf("input channel %v is open already", key)
	default:
		e.inputs[key] = in
	}
	e.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("data plane: %w", err)
	}
	// A connection that fails between the lookup and the request is
	// forgotten at once: the second try dials a new one.
	for try := 0; ; try++ {
		var cn *conn
		if cn, err = e.conn(ctx, producer); err == nil {
			var id uint64
			if id, err = cn.register(in); err == nil {
				in.id.Store(id)
				in.conn.Store(cn)
				if in.stopped.Load() {
					// Released while it was being requested.
					cn.closeChannel(id, "")
				}
				return in.ch, nil
			}
		}
		if try == 1 || !errors.Is(err, ErrConnectionLost) {
			e.dropInput(in)
			return nil, fmt.Errorf("data plane: input channel %v: %w", key, err)
		}
	}
}

// binding is an output's place on a connection.
type binding struct {
	c  *conn
	id uint64
}

// output is the producer's end of a channel: a local channel and the
// goroutine that forwards its batches (run).
type output[T any] struct {
	ep    *Endpoint
	k     network.ChannelKey
	codec codec.Codec[T]
	opts  ChannelOptions
	ch    *network.Channel[T]
	wake  network.Notifier // the local channel's consumer notifier; credits and bind wake it too

	bound   atomic.Pointer[binding]
	credits atomic.Int64
	eop     atomic.Bool // an end of partition went out

	mu      sync.Mutex
	stopped bool
	done    chan struct{}
}

func (o *output[T]) key() network.ChannelKey { return o.k }
func (o *output[T]) buffers() int            { return o.opts.Buffers }
func (o *output[T]) ended() bool             { return o.eop.Load() }

func (o *output[T]) isBound() bool { return o.bound.Load() != nil }

func (o *output[T]) bind(c *conn, id uint64) {
	o.bound.Store(&binding{c: c, id: id})
	o.wake.Notify()
}

func (o *output[T]) credit(n int64) {
	o.credits.Add(n)
	o.wake.Notify()
}

// stop ends the forwarder; with report, the owner hears of err. Unless
// the connection failed, the peer is told.
func (o *output[T]) stop(err error, report bool) {
	o.mu.Lock()
	if o.stopped {
		o.mu.Unlock()
		return
	}
	o.stopped = true
	close(o.done)
	o.mu.Unlock()
	if b := o.bound.Load(); b != nil {
		reason := ""
		if report && err != nil {
			reason = err.Error()
		}
		b.c.closeChannel(b.id, reason)
	}
	if report && o.opts.OnError != nil {
		o.opts.OnError(err)
	}
}

// run forwards the local channel's batches: priority events first, each
// encoded into one frame. A sent batch is held (not recycled) until the
// consumer returns its credit, so the producer has as many buffers in
// flight as in process, wherever they are: queued here, on the wire or
// queued at the consumer.
func (o *output[T]) run() {
	defer o.ep.wg.Done()
	var held []*network.Batch[T] // sent, oldest first, from head
	head := 0
	var buf []byte
	for {
		select {
		case <-o.done:
			return
		default:
		}
		b := o.bound.Load()
		if b == nil {
			select {
			case <-o.wake:
			case <-o.done:
				return
			}
			continue
		}
		if n := o.credits.Swap(0); n > 0 {
			if int(n) > len(held)-head {
				b.c.fail(b.c.lost(fmt.Errorf("%w: %d credits for channel %v, %d batches in flight", ErrProtocol, n, o.k, len(held)-head)))
				return
			}
			for range n {
				o.ch.Recycle(held[head])
				held[head] = nil
				head++
			}
			if head > len(held)/2 {
				// Keep the queue from creeping through its backing
				// array: it is never longer than the buffers.
				k := copy(held, held[head:])
				clear(held[k:])
				held, head = held[:k], 0
			}
		}
		batch, prio := o.ch.PollPriority()
		if !prio {
			var ok bool
			if batch, ok = o.ch.Poll(); !ok {
				select {
				case <-o.wake:
				case <-o.done:
					return
				case <-b.c.closed:
					return // the connection's failure stopped this channel
				}
				continue
			}
			// An unaligned barrier only ever goes in the priority lane;
			// one polled here slipped in between the two polls.
			prio = batch.Kind == network.Barrier && batch.Barrier.Mode == network.Unaligned && len(batch.Recs) == 0
		}
		var err error
		if buf, err = encode(buf[:0], b.id, batch, prio, o.codec); err != nil {
			o.ep.dropOutput(o)
			o.stop(fmt.Errorf("channel %v: %w", o.k, err), true)
			return
		}
		if len(buf)-headerLen > maxFrame {
			o.ep.dropOutput(o)
			o.stop(fmt.Errorf("channel %v: a batch of %d records encodes to %d bytes, beyond the frame limit of %d: use a smaller batch size", o.k, len(batch.Recs), len(buf), maxFrame), true)
			return
		}
		if batch.Kind == network.EndOfPartition {
			o.eop.Store(true)
		}
		held = append(held, batch)
		if err := b.c.writeFrame(buf); err != nil {
			b.c.fail(b.c.lost(err))
			return
		}
	}
}

// encode is appendBatch with the codec's panic (a value it cannot encode)
// as an error.
func encode[T any](dst []byte, id uint64, b *network.Batch[T], prio bool, c codec.Codec[T]) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			var ee *codec.EncodeError
			if e, ok := r.(error); ok && errors.As(e, &ee) {
				err = ee
				return
			}
			err = fmt.Errorf("encoding a batch: %v", r)
		}
	}()
	return appendBatch(dst, id, b, prio, c), nil
}

// input is the consumer's end of a channel: the local channel the reader
// fills with decoded batches of its own (free), and the credit returned
// when the consumer recycles one.
type input[T any] struct {
	k     network.ChannelKey
	codec codec.Codec[T]
	opts  ChannelOptions
	conn  atomic.Pointer[conn] // set once requested
	id    atomic.Uint64
	ch    *network.Channel[T]
	free  chan *network.Batch[T]

	pending atomic.Int64 // recycled, not yet reported
	queued  atomic.Bool  // queued for the connection's credit frame
	eop     atomic.Bool
	stopped atomic.Bool
	once    sync.Once
}

func (in *input[T]) key() network.ChannelKey { return in.k }
func (in *input[T]) buffers() int            { return in.opts.Buffers }
func (in *input[T]) ended() bool             { return in.eop.Load() }

func (in *input[T]) stop(err error, report bool) {
	first := false
	in.once.Do(func() { first = true })
	if !first {
		return
	}
	in.stopped.Store(true)
	if !report {
		if c := in.conn.Load(); c != nil {
			c.closeChannel(in.id.Load(), "")
		}
		return
	}
	if in.opts.OnError != nil {
		in.opts.OnError(err)
	}
}

func (in *input[T]) takeCredit() (uint64, int64) {
	in.queued.Store(false)
	return in.id.Load(), in.pending.Swap(0)
}

// recycled is the local channel's recycle hook (the consumer's
// goroutine): the batch is reused for the next frame and one credit goes
// back to the producer.
func (in *input[T]) recycled(b *network.Batch[T]) {
	clear(b.Recs)
	b.Recs = b.Recs[:0]
	b.Marks = b.Marks[:0]
	b.Kind, b.Value, b.Barrier = network.Records, 0, network.BarrierOptions{}
	select {
	case in.free <- b:
	default:
	}
	if in.stopped.Load() {
		return
	}
	in.pending.Add(1)
	if in.queued.CompareAndSwap(false, true) {
		in.conn.Load().queueCredit(in)
	}
}

// deliver decodes a batch frame into the local channel (the reader's
// goroutine). It never blocks: the producer holds a buffer for each batch
// here until it is recycled, so what arrives is bounded by its credits.
func (in *input[T]) deliver(r *reader) error {
	var b *network.Batch[T]
	select {
	case b = <-in.free:
	default:
		b = &network.Batch[T]{Recs: make([]network.Rec[T], 0, in.opts.BatchSize)}
	}
	h, err := decodeBatch(r, b, in.codec)
	if err != nil {
		clear(b.Recs)
		b.Recs, b.Marks = b.Recs[:0], b.Marks[:0]
		select {
		case in.free <- b:
		default:
		}
		return err
	}
	b.Kind, b.Value, b.Barrier = h.kind, h.value, h.opts
	if h.kind == network.EndOfPartition {
		in.eop.Store(true)
	}
	if h.flags&flagPriority != 0 && h.kind == network.Barrier {
		// An unaligned barrier. The batches that crossed the wire
		// before it are queued here; unlike the producer's overtaken
		// batches, which its Writer keeps as output channel state,
		// these belong to the consumer's input channel state, which the
		// input gate records only for records it takes before the
		// channel's barrier, or that a timed-out aligned barrier
		// overtakes (Channel.Overtake). So the barrier is queued with an
		// alignment deadline already past: the gate overtakes it at its
		// next poll and records the records it jumped as input channel
		// state, and a consumer without checkpointing gets it in order.
		// Not the priority lane, even with nothing queued: the gate
		// looks for due barriers before the lane, so a later barrier
		// queued so would overtake an earlier one waiting in the lane.
		b.Barrier.Timestamp, b.Barrier.AlignedTimeout = due(b.Barrier.Timestamp, time.Now().UnixMilli())
	}
	in.ch.Send(b)
	return nil
}

// due returns a barrier's trigger time and an alignment timeout whose
// deadline (their sum) is now (Unix ms), so it has passed. A trigger time
// not before now (the same millisecond, or a clock ahead of ours) becomes
// now-1: the timeout must be positive to count.
func due(ts, now int64) (int64, int64) {
	ts = min(ts, now-1)
	return ts, now - ts
}
