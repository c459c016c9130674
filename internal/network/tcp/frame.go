package tcp

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/strom-dev/strom/codec"
	"github.com/strom-dev/strom/internal/network"
)

// hello starts each direction of a connection: the magic and, in its last
// byte, the protocol version. A peer speaking another version is refused
// at once instead of misreading frames.
const hello = "STRMTCP\x01"

// headerLen is the frame header: a big-endian uint32 length of what
// follows it (the type byte and the payload).
const headerLen = 4

// maxFrame bounds a frame's length, so a corrupt header cannot make the
// reader allocate without limit. A batch frame is at most a batch of
// records; 256 MiB is far above any sane batch.
const maxFrame = 1 << 28

type frameType byte

const (
	// frameOpen (consumer → producer): uvarint id, the channel key, uvarint
	// buffers. The consumer requests the channel under an id of its
	// choosing, unique on the connection, and announces its credits.
	frameOpen frameType = 1
	// frameCredit (consumer → producer): pairs of uvarint id, uvarint n:
	// the consumer recycled n more batches of channel id.
	frameCredit frameType = 2
	// frameClose (either way): uvarint id, uvarint length + reason. The
	// sender released the channel (empty reason) or failed it.
	frameClose frameType = 3
	// frameBatch (producer → consumer): uvarint id, then one batch (see
	// appendBatch).
	frameBatch frameType = 4
)

// Batch frame flags.
const (
	// flagPriority: the batch came from the producer channel's priority
	// lane (an unaligned barrier) and overtakes what the consumer has
	// queued.
	flagPriority = 1 << 0
	// flagNoTimestamps: every record is network.NoTimestamp, so no
	// timestamps are written (10 bytes each otherwise).
	flagNoTimestamps = 1 << 1
)

// beginFrame appends a frame header with a placeholder length, and the
// type; endFrame fills in the length once the payload is appended.
func beginFrame(dst []byte, t frameType) []byte { return append(dst, 0, 0, 0, 0, byte(t)) }

func endFrame(dst []byte, start int) []byte {
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-headerLen))
	return dst
}

// appendBatch appends the batch frame of b on channel id:
//
//	byte    flags (flagPriority, flagNoTimestamps)
//	byte    kind (network.EventKind)
//	varint  value
//	        if kind is Barrier: byte mode, byte snapshot kind,
//	        varint timestamp, varint aligned timeout
//	uvarint marks, each: uvarint pos, varint watermark
//	uvarint records, each: [varint timestamp] value in the edge's codec
//
// A record's timestamp is written as the difference from the previous
// record's (the first's from 0), wrapping: event times in a batch are
// close, so a millisecond timestamp takes a byte or two instead of six.
//
// It reuses dst's capacity and allocates nothing per record (unless the
// codec does). Append may panic with the codec's *codec.EncodeError.
func appendBatch[T any](dst []byte, id uint64, b *network.Batch[T], prio bool, c codec.Codec[T]) []byte {
	start := len(dst)
	dst = beginFrame(dst, frameBatch)
	dst = binary.AppendUvarint(dst, id)
	var flags byte
	if prio {
		flags |= flagPriority
	}
	noTs := true
	for i := range b.Recs {
		if b.Recs[i].Ts != network.NoTimestamp {
			noTs = false
			break
		}
	}
	if noTs {
		flags |= flagNoTimestamps
	}
	dst = append(dst, flags, byte(b.Kind))
	dst = binary.AppendVarint(dst, b.Value)
	if b.Kind == network.Barrier {
		dst = append(dst, byte(b.Barrier.Mode), byte(b.Barrier.Kind))
		dst = binary.AppendVarint(dst, b.Barrier.Timestamp)
		dst = binary.AppendVarint(dst, b.Barrier.AlignedTimeout)
	}
	dst = binary.AppendUvarint(dst, uint64(len(b.Marks)))
	for _, m := range b.Marks {
		dst = binary.AppendUvarint(dst, uint64(m.Pos))
		dst = binary.AppendVarint(dst, m.WM)
	}
	dst = binary.AppendUvarint(dst, uint64(len(b.Recs)))
	var prev int64
	for i := range b.Recs {
		r := &b.Recs[i]
		if !noTs {
			dst = binary.AppendVarint(dst, r.Ts-prev)
			prev = r.Ts
		}
		dst = c.Append(dst, r.V)
	}
	return endFrame(dst, start)
}

// batchHeader is a batch frame up to its marks.
type batchHeader struct {
	flags byte
	kind  network.EventKind
	value int64
	opts  network.BarrierOptions
}

// decodeBatch reads the batch of a frame (after the channel id) into b,
// whose Recs and Marks are empty. Every error wraps ErrProtocol or the
// codec's codec.ErrCorrupt.
func decodeBatch[T any](r *reader, b *network.Batch[T], c codec.Codec[T]) (batchHeader, error) {
	var h batchHeader
	h.flags = r.byte()
	h.kind = network.EventKind(r.byte())
	h.value = r.varint()
	if h.kind == network.Barrier {
		h.opts.Mode = network.CheckpointMode(r.byte())
		h.opts.Kind = network.SnapshotKind(r.byte())
		h.opts.Timestamp = r.varint()
		h.opts.AlignedTimeout = r.varint()
	}
	if r.err != nil {
		return h, r.err
	}
	if h.kind > network.CancelBarrier {
		return h, fmt.Errorf("%w: unknown event kind %d", ErrProtocol, h.kind)
	}
	nm := r.uvarint()
	// A mark takes at least two bytes: a count beyond that is corrupt,
	// and checking it first keeps a bad count from looping for long.
	if r.err == nil && nm > uint64(len(r.p))/2 {
		return h, fmt.Errorf("%w: %d watermarks in a frame of %d bytes", ErrProtocol, nm, len(r.p))
	}
	for range nm {
		pos, wm := r.uvarint(), r.varint()
		if r.err != nil {
			return h, r.err
		}
		b.Marks = append(b.Marks, network.Mark{Pos: int(pos), WM: wm})
	}
	n := r.uvarint()
	if r.err != nil {
		return h, r.err
	}
	noTs := h.flags&flagNoTimestamps != 0
	if !noTs && n > uint64(len(r.p)) {
		return h, fmt.Errorf("%w: %d records in %d bytes", ErrProtocol, n, len(r.p))
	}
	// One growth for the batch, bounded so a corrupt count cannot
	// allocate much before the records run out.
	b.Recs = slices.Grow(b.Recs, int(min(n, 1<<16)))
	var prev int64
	for range n {
		var ts int64 = network.NoTimestamp
		if !noTs {
			ts = prev + r.varint()
			if r.err != nil {
				return h, r.err
			}
			prev = ts
		}
		v, k, err := c.Decode(r.p)
		if err != nil {
			return h, fmt.Errorf("decoding record %d of a batch: %w", len(b.Recs), err)
		}
		r.p = r.p[k:]
		b.Recs = append(b.Recs, network.Rec[T]{V: v, Ts: ts})
	}
	if len(r.p) != 0 {
		return h, fmt.Errorf("%w: %d bytes after a batch", ErrProtocol, len(r.p))
	}
	pos := 0
	for _, m := range b.Marks {
		if m.Pos < pos || m.Pos > len(b.Recs) {
			return h, fmt.Errorf("%w: watermark at position %d of a batch of %d records", ErrProtocol, m.Pos, len(b.Recs))
		}
		pos = m.Pos
	}
	return h, nil
}

// reader reads the fields of a frame's payload; the first error sticks
// and later reads return zero values.
type reader struct {
	p   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: truncated or bad %s", ErrProtocol, what)
	}
	r.p = nil
}

func (r *reader) byte() byte {
	if len(r.p) == 0 {
		r.fail("byte")
		return 0
	}
	v := r.p[0]
	r.p = r.p[1:]
	return v
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.p)
	return advance(r, v, n, "uvarint")
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.p)
	return advance(r, v, n, "varint")
}

// advance consumes the n bytes of v, or fails the reader if n says the
// varint was truncated or overflowed.
func advance[V uint64 | int64](r *reader, v V, n int, what string) V {
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.p = r.p[n:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.p)) {
		r.fail("length-prefixed bytes")
		return nil
	}
	v := r.p[:n]
	r.p = r.p[n:]
	return v
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// appendKey and readKey carry a channel key in an open frame.
func appendKey(dst []byte, k network.ChannelKey) []byte {
	dst = appendBytes(dst, []byte(k.Job))
	dst = binary.AppendVarint(dst, int64(k.Attempt))
	dst = binary.AppendVarint(dst, int64(k.Edge))
	dst = binary.AppendVarint(dst, int64(k.Producer))
	return binary.AppendVarint(dst, int64(k.Consumer))
}

func readKey(r *reader) network.ChannelKey {
	job := string(r.bytes())
	return network.ChannelKey{Job: job, Attempt: int(r.varint()), Edge: int(r.varint()), Producer: int(r.varint()), Consumer: int(r.varint())}
}
