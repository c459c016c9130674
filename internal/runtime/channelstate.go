package runtime

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sync/atomic"

	"github.com/strom-dev/strom/codec"
	"github.com/strom-dev/strom/internal/network"
)

// Channel state: the in-flight records of an unaligned checkpoint (FLIP-76).
//
// A task's channel state has two parts. Output: the records of the batches
// queued in its output channels that its barrier overtook (it sent the
// barrier in the priority lane, see Writer.EmitBarrier), per writer and
// channel. Input: per input channel, the records the task took after its
// snapshot and before that channel's barrier. Together they are every
// record a producer emitted before its snapshot that its consumer had not
// processed before its own, each exactly once: a batch is either still
// queued when the producer's barrier goes out (output state) or was taken
// by the consumer before it saw that barrier (input state, if after the
// consumer's snapshot; operator state, if before).
//
// On restore (same parallelism: the channels are the same), a task first
// feeds its input state into its head operator, channel by channel, then
// writes its output state into the channels it came from, and only then
// reads new input. Per channel that is the original order: the consumer's
// input records came before the producer's overtaken ones, which come
// before anything the producer emits after its restore. In-flight
// watermarks are not stored: each operator restores its own watermark.

// ChannelRecords are the encoded records of one channel.
type ChannelRecords struct {
	// Writer is the index in Task.Writers (output state); unused for
	// input state.
	Writer int
	// Channel is the input gate's channel index (input), or the writer's
	// channel, i.e. the consumer subtask (output).
	Channel int
	// Count is the number of records in Data.
	Count int
	// Data is Count records, each its timestamp (varint) then its value in
	// the channel type's default codec (codec.For).
	Data []byte
}

// ChannelState is one task's in-flight data of one unaligned checkpoint.
type ChannelState struct {
	Input  []ChannelRecords
	Output []ChannelRecords
}

// Empty reports whether there is no record in s.
func (s *ChannelState) Empty() bool { return s == nil || len(s.Input)+len(s.Output) == 0 }

// channelStateMagic starts a channel-state file; its last byte is the
// format version.
const channelStateMagic = "STRMCS\x00\x01"

// ErrCorruptChannelState is wrapped by DecodeChannelState's errors.
var ErrCorruptChannelState = errors.New("corrupt channel state")

// EncodeChannelState serialises s as the channel-state file of a subtask:
//
//	magic "STRMCS\x00\x01"
//	uvarint entries, each:
//	  byte    0 input, 1 output
//	  uvarint writer, uvarint channel, uvarint count, uvarint len, data
//	uint32  CRC-32 (IEEE, big endian) of everything before it
func EncodeChannelState(s *ChannelState) []byte {
	out := []byte(channelStateMagic)
	out = binary.AppendUvarint(out, uint64(len(s.Input)+len(s.Output)))
	put := func(dir byte, rs []ChannelRecords) {
		for _, r := range rs {
			out = append(out, dir)
			out = binary.AppendUvarint(out, uint64(r.Writer))
			out = binary.AppendUvarint(out, uint64(r.Channel))
			out = binary.AppendUvarint(out, uint64(r.Count))
			out = binary.AppendUvarint(out, uint64(len(r.Data)))
			out = append(out, r.Data...)
		}
	}
	put(0, s.Input)
	put(1, s.Output)
	return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(out))
}

// DecodeChannelState parses a file written by EncodeChannelState.
func DecodeChannelState(b []byte) (*ChannelState, error) {
	if len(b) < len(channelStateMagic)+4 || string(b[:len(channelStateMagic)]) != channelStateMagic {
		return nil, fmt.Errorf("%w: not a channel-state file (bad magic or too short)", ErrCorruptChannelState)
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorruptChannelState)
	}
	p := body[len(channelStateMagic):]
	uv := func() (uint64, error) {
		v, n := binary.Uvarint(p)
		if n <= 0 {
			return 0, fmt.Errorf("%w: truncated", ErrCorruptChannelState)
		}
		p = p[n:]
		return v, nil
	}
	n, err := uv()
	if err != nil {
		return nil, err
	}
	s := &ChannelState{}
	for range n {
		if len(p) == 0 {
			return nil, fmt.Errorf("%w: truncated", ErrCorruptChannelState)
		}
		dir := p[0]
		p = p[1:]
		var f [4]uint64
		for k := range f {
			if f[k], err = uv(); err != nil {
				return nil, err
			}
		}
		if f[3] > uint64(len(p)) {
			return nil, fmt.Errorf("%w: truncated records", ErrCorruptChannelState)
		}
		r := ChannelRecords{Writer: int(f[0]), Channel: int(f[1]), Count: int(f[2]), Data: p[:f[3]:f[3]]}
		p = p[f[3]:]
		switch dir {
		case 0:
			s.Input = append(s.Input, r)
		case 1:
			s.Output = append(s.Output, r)
		default:
			return nil, fmt.Errorf("%w: entry kind %d", ErrCorruptChannelState, dir)
		}
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorruptChannelState, len(p))
	}
	return s, nil
}

// encodeRecords encodes recs in the ChannelRecords.Data format.
func encodeRecords[T any](recs []network.Rec[T]) ([]byte, error) {
	c, err := codec.For[T]()
	if err != nil {
		return nil, fmt.Errorf("channel state needs a codec for the records in flight: %w", err)
	}
	var out []byte
	for _, r := range recs {
		out = binary.AppendVarint(out, r.Ts)
		out = c.Append(out, r.V)
	}
	return out, nil
}

// DecodeChannelRecords decodes the records of r (channel type T): for
// tests and inspection.
func DecodeChannelRecords[T any](r ChannelRecords) ([]network.Rec[T], error) {
	var out []network.Rec[T]
	err := decodeRecords(r.Data, r.Count, func(v T, ts int64) { out = append(out, network.Rec[T]{V: v, Ts: ts}) })
	return out, err
}

// EncodeChannelRecords encodes recs as channel gate or writer channel ch's
// records: for tests.
func EncodeChannelRecords[T any](writer, ch int, recs []network.Rec[T]) (ChannelRecords, error) {
	data, err := encodeRecords(recs)
	return ChannelRecords{Writer: writer, Channel: ch, Count: len(recs), Data: data}, err
}

// decodeRecords calls f with each of the n records of data, in order.
func decodeRecords[T any](data []byte, n int, f func(v T, ts int64)) error {
	c, err := codec.For[T]()
	if err != nil {
		return fmt.Errorf("channel state needs a codec for the records in flight: %w", err)
	}
	for k := range n {
		ts, m := binary.Varint(data)
		if m <= 0 {
			return fmt.Errorf("%w: record %d of %d truncated", ErrCorruptChannelState, k, n)
		}
		v, m2, err := c.Decode(data[m:])
		if err != nil {
			return fmt.Errorf("%w: record %d of %d: %w", ErrCorruptChannelState, k, n, err)
		}
		data = data[m+m2:]
		f(v, ts)
	}
	if len(data) != 0 {
		return fmt.Errorf("%w: %d bytes after %d records", ErrCorruptChannelState, len(data), n)
	}
	return nil
}

// recorder keeps the records of one input channel taken while an
// unaligned checkpoint records it.
type recorder interface {
	encode() ([]byte, int, error)
}

type recordsOf[T any] struct{ recs []network.Rec[T] }

func (r *recordsOf[T]) encode() ([]byte, int, error) {
	b, err := encodeRecords(r.recs)
	return b, len(r.recs), err
}

// record appends the records of channel i's batch to its channel state
// (the caller checked g.align.recording[i]). Records are immutable once
// emitted, so keeping the values is enough; the batch's slice is not kept.
func record[T any](g *Gate, i int, recs []network.Rec[T]) {
	if len(recs) == 0 {
		return
	}
	a := &g.align
	r, _ := a.recorded[i].(*recordsOf[T])
	if r == nil {
		r = &recordsOf[T]{}
		a.recorded[i] = r
	}
	r.recs = append(r.recs, recs...)
}

// replayInto feeds the records of data to op, with the gate's cancel check
// and records-in count.
func replayInto[T any](g *Gate, data []byte, n int, op elements[T]) error {
	g.In.n += int64(n)
	return decodeRecords(data, n, func(v T, ts int64) {
		g.cancel.Check()
		op.ProcessElement(v, ts)
	})
}

// replayed counts the records replayed from channel state in this process.
var replayed atomic.Int64

// ChannelStateReplayed is how many records restores have replayed from
// channel state in this process: tests check with it that a restore of an
// unaligned checkpoint had records in flight to replay.
func ChannelStateReplayed() int64 { return replayed.Load() }

// priorityPoller is an input processor that handles priority events
// without taking data (OneInputProcessor.PollPriority).
type priorityPoller interface{ PollPriority() bool }

// replayChannelState replays ChannelRestore: the output channel state into
// the channels it was taken from, then the input channel state into the
// head operator. Output first: those records were emitted before the
// snapshot, whatever the input state produces comes after it.
func (t *Task) replayChannelState() error {
	s := t.ChannelRestore
	t.ChannelRestore = nil
	if s.Empty() {
		return nil
	}
	for _, out := range s.Output {
		if out.Writer < 0 || out.Writer >= len(t.Writers) {
			return fmt.Errorf("restoring output channel state: writer %d, the task has %d", out.Writer, len(t.Writers))
		}
		w, ok := t.Writers[out.Writer].(interface {
			replayOutput(ch int, data []byte, n int) error
		})
		if !ok {
			return fmt.Errorf("restoring output channel state: writer %d cannot replay it", out.Writer)
		}
		if err := w.replayOutput(out.Channel, out.Data, out.Count); err != nil {
			return fmt.Errorf("restoring output channel state of writer %d: %w", out.Writer, err)
		}
		replayed.Add(int64(out.Count))
	}
	if len(s.Input) == 0 {
		return nil
	}
	r, ok := t.Input.(interface {
		replayInput(i int, data []byte, n int) error
	})
	if !ok {
		return fmt.Errorf("restoring channel state: task %s/%d has input channel state but no input gate", t.Info.VertexName, t.Info.Subtask)
	}
	t.current = 0
	for _, in := range s.Input {
		if err := r.replayInput(in.Channel, in.Data, in.Count); err != nil {
			return fmt.Errorf("restoring input channel state of channel %d: %w", in.Channel, err)
		}
		replayed.Add(int64(in.Count))
	}
	t.current = -1
	return nil
}
