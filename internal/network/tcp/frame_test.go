package tcp

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/codec"
	"github.com/strom-dev/strom/internal/network"
)

type item struct {
	ID   int64
	Name string
}

func fullBatch[T any](n int, v func(i int) T) *network.Batch[T] {
	b := &network.Batch[T]{Kind: network.Watermark, Value: 99}
	for i := range n {
		b.Recs = append(b.Recs, network.Rec[T]{V: v(i), Ts: 1_700_000_000_000 + int64(i)})
	}
	b.Marks = []network.Mark{{Pos: 3, WM: 5}}
	return b
}

// decodeFrame decodes a frame appendBatch wrote (header, type, id) into b.
func decodeFrame[T any](t testing.TB, frame []byte, b *network.Batch[T], c codec.Codec[T]) batchHeader {
	r := &reader{p: frame[headerLen+1:]}
	if id := r.uvarint(); id != 7 {
		t.Fatalf("channel id %d", id)
	}
	h, err := decodeBatch(r, b, c)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Encoding a batch into a reused buffer and decoding it into a reused
// batch allocate nothing per record; only decoded strings do.
func TestFrameAllocs(t *testing.T) {
	c := codec.Of[int64]()
	src := fullBatch(1024, func(i int) int64 { return int64(i) * 1000 })
	buf := appendBatch(nil, 7, src, false, c)
	dst := &network.Batch[int64]{Recs: make([]network.Rec[int64], 0, 1024), Marks: make([]network.Mark, 0, 4)}
	allocs := testing.AllocsPerRun(20, func() {
		buf = appendBatch(buf[:0], 7, src, false, c)
		dst.Recs, dst.Marks = dst.Recs[:0], dst.Marks[:0]
		decodeFrame(t, buf, dst, c)
	})
	require.Zero(t, allocs)
	require.Equal(t, src.Recs, dst.Recs)
	require.Equal(t, src.Marks, dst.Marks)

	ci := codec.Of[item]()
	srcI := fullBatch(1024, func(i int) item { return item{int64(i), "bidder-0123456789"} })
	bufI := appendBatch(nil, 7, srcI, false, ci)
	dstI := &network.Batch[item]{Recs: make([]network.Rec[item], 0, 1024), Marks: make([]network.Mark, 0, 4)}
	allocs = testing.AllocsPerRun(20, func() {
		bufI = appendBatch(bufI[:0], 7, srcI, false, ci)
		dstI.Recs, dstI.Marks = dstI.Recs[:0], dstI.Marks[:0]
		decodeFrame(t, bufI, dstI, ci)
	})
	require.LessOrEqual(t, allocs, float64(1024), "one allocation per decoded string, nothing else")
	require.Equal(t, srcI.Recs, dstI.Recs)
}

// Every strict prefix of a batch (a truncated frame) and trailing bytes
// are refused with an error, never a panic or a short batch.
func TestFrameTruncatedRefused(t *testing.T) {
	c := codec.Of[item]()
	for _, src := range []*network.Batch[item]{
		fullBatch(5, func(i int) item { return item{int64(i), fmt.Sprint("n", i)} }),
		{Kind: network.Barrier, Value: 4, Barrier: network.BarrierOptions{Mode: network.Unaligned, Kind: network.Savepoint, Timestamp: 77, AlignedTimeout: 9}},
	} {
		frame := appendBatch(nil, 7, src, false, c)
		body := frame[headerLen+1:]
		for n := range len(body) {
			r := &reader{p: body[:n]}
			r.uvarint()
			if r.err != nil {
				continue
			}
			_, err := decodeBatch(r, &network.Batch[item]{}, c)
			require.Error(t, err, "prefix of %d bytes", n)
		}
		r := &reader{p: append(append([]byte(nil), body...), 0)}
		r.uvarint()
		_, err := decodeBatch(r, &network.Batch[item]{}, c)
		require.ErrorIs(t, err, ErrProtocol)
		dst := &network.Batch[item]{}
		h := decodeFrame(t, frame, dst, c)
		require.Equal(t, src.Kind, h.kind)
		require.Equal(t, src.Value, h.value)
		require.Equal(t, src.Barrier, h.opts)
	}
	// A watermark beyond the records is refused.
	b := &network.Batch[int64]{Recs: []network.Rec[int64]{{V: 1}}, Marks: []network.Mark{{Pos: 2, WM: 1}}}
	frame := appendBatch(nil, 7, b, false, codec.Of[int64]())
	r := &reader{p: frame[headerLen+1:]}
	r.uvarint()
	_, err := decodeBatch(r, &network.Batch[int64]{}, codec.Of[int64]())
	require.True(t, errors.Is(err, ErrProtocol), "%v", err)
}

func TestDueDeadline(t *testing.T) {
	for _, c := range []struct{ ts, now, wantTs, wantTimeout int64 }{
		{ts: 100, now: 150, wantTs: 100, wantTimeout: 50},
		{ts: 150, now: 150, wantTs: 149, wantTimeout: 1}, // same millisecond
		{ts: 900, now: 150, wantTs: 149, wantTimeout: 1}, // a clock ahead of ours
		{ts: 0, now: 150, wantTs: 0, wantTimeout: 150},   // no trigger time
	} {
		ts, timeout := due(c.ts, c.now)
		require.Equal(t, c.wantTs, ts)
		require.Equal(t, c.wantTimeout, timeout)
		require.Equal(t, c.now, ts+timeout, "due now")
	}
}
