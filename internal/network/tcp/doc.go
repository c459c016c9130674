// Package tcp is the data plane between processes: logical channels
// (network.Channel) whose producer and consumer run in different
// TaskManagers, multiplexed over one TCP connection per direction
// between two processes, with the semantics of an in-process channel: the same
// credits and overdraft (backpressure), in-band events in order, and
// priority events (unaligned barriers) that overtake data.
//
// # API
//
// Each process runs one Endpoint (Listen; loopback and a free port unless
// Config.Addr says otherwise). A task whose peer runs elsewhere gets an
// ordinary *network.Channel[T] from it instead of from network.Registry:
//
//   - Output[T](ep, key, codec, opts) on the producer's process: the
//     channel its Writer writes into.
//   - Input[T](ctx, ep, key, producerAddr, codec, notifier, opts) on the
//     consumer's process: the channel its input gate reads.
//
// A non-generic caller (the task builder, through runtime.TypeOps) uses
// OpsFor[T](codec), whose methods return the channels as any.
//
// Both ends use the same key (network.ChannelKey, whose attempt fences
// channels of different attempts apart) and the same opts.Buffers. Either
// may be opened first. A channel fails (connection lost, closed by the
// other end before it ended, a value its codec refused, endpoint closed)
// by calling opts.OnError once; the owner fails its task. Release (and
// ReleaseAttempt, ReleaseEdges, ReleaseJob) closes channels on this side
// and tells the other, whose frames in flight are dropped. Close stops
// everything and waits for the goroutines.
//
// # Connections
//
// The consumer's endpoint dials the producer's: a channel starts with the
// consumer's request (as Flink's partition request), which must come
// before any data, so the connection is where the request goes. Each
// direction of data between two processes therefore has its own
// connection, shared by all channels in that direction; no dial race
// needs a tie-break. A connection carries data one way and control
// frames (open, credit, close) the other.
//
// # Wire protocol
//
// Each side first writes the 8-byte hello "STRMTCP" + version (1) and
// checks the peer's. Then frames: a big-endian uint32 length of what
// follows, a type byte and the payload (varints as encoding/binary):
//
//	open   (1, consumer → producer) uvarint id, key (uvarint len + job,
//	       varint attempt, edge, producer, consumer), uvarint buffers
//	credit (2, consumer → producer) pairs of uvarint id, uvarint n
//	close  (3, either way)          uvarint id, uvarint len + reason
//	batch  (4, producer → consumer) uvarint id, then:
//	       byte flags (1: priority, 2: no timestamps), byte kind,
//	       varint value, [barrier: byte mode, byte snapshot kind,
//	       varint timestamp, varint aligned timeout],
//	       uvarint marks × (uvarint pos, varint watermark),
//	       uvarint records × ([varint timestamp delta], codec bytes)
//
// A record's timestamp is the difference from the previous record's,
// wrapping, since event times in a batch are close.
//
// The consumer picks the channel ids, unique per connection and never
// reused, so a frame of a released channel can never reach a newer one.
//
// # Credits
//
// The producer's channel is an ordinary channel with its credits and
// overdraft. A forwarder goroutine per channel polls it (priority lane
// first), encodes each batch into a frame and writes it, but keeps the
// batch instead of recycling it; each credit frame from the consumer
// recycles that many kept batches. The consumer's endpoint decodes each
// frame into a batch of its own (reused, never blocking the connection)
// and queues it on the consumer's channel; when the consumer task
// recycles it (network.Channel.SetRecycleHook), one credit goes back. So
// a producer has exactly as many buffers in flight as in process,
// wherever they are (queued locally, on the wire, queued remotely), and
// a consumer that stops recycling stops its producer after credits +
// overdraft, the same as in process. The consumer announces its credits
// in the open frame; a producer configured otherwise refuses the channel.
//
// # Unaligned barriers
//
// The producer's Writer sends an unaligned barrier in its channel's
// priority lane, as in process: it overtakes the batches still queued
// there, which the Writer keeps as output channel state. The forwarder
// sends it ahead of those, flagged priority. Batches already sent are
// queued at the consumer; the barrier must overtake them too, and they
// must become the consumer's input channel state. The input gate records
// input channel state for the records it takes before a channel's
// barrier and for those an aligned barrier overtakes when its alignment
// timeout expires (network.Channel.Overtake). So the consumer's end
// queues a priority barrier behind what arrived before it, with an
// alignment deadline already past (its trigger time moved back to a
// millisecond before now if it is not earlier, so the timeout is
// positive): the gate overtakes it at its next poll, before any data,
// and records the batches it jumped. Every record is then in exactly one
// of output state, input state or operator state, as in process. It does
// not use the consumer's priority lane even with nothing queued: the gate
// looks for due barriers before the lane, so a later barrier queued
// behind data would overtake an earlier one waiting in the lane (the
// randomized test found that).
//
// Frames for one channel keep their order (one forwarder writes them).
// Encoding reuses one buffer per channel and decoding reuses the
// consumer's batches, so neither allocates per record beyond what the
// codec does (strings).
package tcp
