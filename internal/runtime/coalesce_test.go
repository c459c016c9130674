package runtime_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/runtime"
)

// checkStream checks one channel's batches as a consumer sees them —
// records with the watermarks among them (Marks), then the batch's event —:
// every record's timestamp is after the last watermark before it (in these
// tests each record comes before its own watermark), watermarks only
// increase, and it returns the records and the last watermark.
func checkStream(t *testing.T, bs []network.Batch[int]) (vals []int, lastWM int64) {
	t.Helper()
	lastWM = runtime.MinWatermark
	wm := func(v int64) {
		require.Greater(t, v, lastWM, "watermarks only increase")
		lastWM = v
	}
	for _, b := range bs {
		m := 0
		for k, r := range b.Recs {
			for ; m < len(b.Marks) && b.Marks[m].Pos <= k; m++ {
				wm(b.Marks[m].WM)
			}
			require.Greater(t, r.Ts, lastWM, "record %d arrives after watermark %d", r.V, lastWM)
			vals = append(vals, r.V)
		}
		for ; m < len(b.Marks); m++ {
			wm(b.Marks[m].WM)
		}
		if b.Kind == network.Watermark {
			wm(b.Value)
		}
	}
	return vals, lastWM
}

// A watermark after every record costs no buffer of its own: it rides on
// the next batch of records, so the number of batches per channel is about
// records / batch size, not one per watermark.
func TestWriterCoalescesWatermarks(t *testing.T) {
	const batch, n, maxPar = 64, 64 * 40, 8
	for _, tc := range []struct {
		name  string
		kind  runtime.PartitionKind
		chans int
	}{
		{"forward", runtime.Forward, 1},
		{"hash", runtime.Hash, 2},
		{"hash-4", runtime.Hash, 4},
		{"rebalance", runtime.Rebalance, 3},
		{"broadcast", runtime.Broadcast, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chs, _ := newChannels(tc.chans, 2*n+8, batch) // credits for every batch: never blocks
			kgOf := runtime.KeyGroupOf[int](func(v int) int { return v % maxPar })
			w := runtime.NewWriter(context.Background(), tc.kind, chs, kgOf, maxPar)
			for i := range n {
				w.Collect(i, int64(i))
				w.EmitWatermark(int64(i))
			}
			w.Flush()
			var all []int
			for c, ch := range chs {
				bs := drain(ch)
				vals, last := checkStream(t, bs)
				recs := len(vals)
				// Full batches, plus batches cut short when another channel's
				// batch filled (which flushes watermarks everywhere): at most
				// one per full batch of any channel.
				limit := 2*(n/batch) + 2
				if tc.kind == runtime.Forward || tc.kind == runtime.Broadcast {
					limit = n/batch + 2
				}
				require.LessOrEqual(t, len(bs), limit, "channel %d: %d records in %d batches", c, recs, len(bs))
				require.Equal(t, int64(n-1), last, "channel %d ends at the last watermark", c)
				all = append(all, vals...)
			}
			if tc.kind == runtime.Broadcast {
				require.Len(t, all, n*tc.chans)
			} else {
				require.ElementsMatch(t, seq(n), all)
			}
		})
	}
}

// A channel that gets no records still sees the watermark advance while
// the producer keeps sending records elsewhere (and never flushes): a full
// batch on any channel takes pending watermarks to every channel.
func TestWriterWatermarkReachesChannelWithoutRecords(t *testing.T) {
	const batch, n = 16, 16 * 50
	chs, _ := newChannels(2, 2*n+8, batch)
	kgOf := runtime.KeyGroupOf[int](func(int) int { return 0 }) // all on channel 0
	w := runtime.NewWriter(context.Background(), runtime.Hash, chs, kgOf, 8)
	for i := range n {
		w.Collect(i, int64(i))
		w.EmitWatermark(int64(i))
	}
	vals, _ := checkStream(t, drain(chs[0]))
	require.Len(t, vals, n)
	bs := drain(chs[1])
	vals, last := checkStream(t, bs)
	require.Empty(t, vals)
	require.GreaterOrEqual(t, last, int64(n-batch), "the idle channel's watermark lags by at most a batch")
	require.LessOrEqual(t, len(bs), n/batch+1, "and it costs a buffer per full batch elsewhere, not one per watermark")
}

// Watermarks with no records at all (a filter that drops everything) are
// still bounded: after batch size × channels watermarks they are flushed.
func TestWriterWatermarksWithoutRecordsAreBounded(t *testing.T) {
	const batch, n = 16, 16 * 20
	chs, _ := newChannels(2, 2*n+8, batch)
	w := runtime.NewWriter(context.Background(), runtime.Rebalance, chs, nil, 8)
	for i := range n {
		w.EmitWatermark(int64(i))
	}
	for _, ch := range chs {
		bs := drain(ch)
		_, last := checkStream(t, bs)
		require.GreaterOrEqual(t, last, int64(n-2*batch))
		require.LessOrEqual(t, len(bs), n/(2*batch)+1)
	}
}

// Events that change a channel's status first send the pending watermark,
// so the consumer sees everything in order.
func TestWriterSendsPendingWatermarkBeforeEvents(t *testing.T) {
	chs, _ := newChannels(1, 8, 100)
	w := runtime.NewWriter(context.Background(), runtime.Forward, chs, nil, 128)
	w.Collect(1, 1)
	w.EmitWatermark(1)
	w.Collect(2, 2)
	w.MarkIdle()
	w.EmitWatermark(2) // re-activates the channel
	w.Collect(3, 3)
	w.EndOfPartition()
	bs := drain(chs[0])
	require.Equal(t, []network.Batch[int]{
		{Kind: network.Idle, Recs: []network.Rec[int]{{V: 1, Ts: 1}, {V: 2, Ts: 2}}, Marks: []network.Mark{{Pos: 1, WM: 1}}},
		{Kind: network.EndOfPartition, Recs: []network.Rec[int]{{V: 3, Ts: 3}}, Marks: []network.Mark{{Pos: 0, WM: 2}}},
	}, bs)
}

// A channel's consumer sees its records and watermarks in exactly the
// order they were emitted: a watermark goes in front of the next record on
// the channel, and watermarks with no record between them collapse into
// the latest.
func TestWriterKeepsWatermarksInOrderWithRecords(t *testing.T) {
	chs, _ := newChannels(1, 8, 100)
	w := runtime.NewWriter(context.Background(), runtime.Forward, chs, nil, 128)
	w.Collect(5, 5)
	w.EmitWatermark(10)
	w.Collect(11, 11) // after watermark 10
	w.EmitWatermark(11)
	w.Collect(11, 11) // at the watermark: late, as it would be unbatched
	w.Collect(3, 3)   // late
	w.Collect(runtime.NoTimestamp, runtime.NoTimestamp)
	w.EmitWatermark(12)
	w.EmitWatermark(13) // 12 and 13 have no record between them: only 13 goes
	w.Collect(runtime.NoTimestamp, runtime.NoTimestamp)
	w.EmitWatermark(14)
	w.Flush()
	require.Equal(t, []network.Batch[int]{{
		Kind: network.Watermark, Value: 14,
		Recs: []network.Rec[int]{{V: 5, Ts: 5}, {V: 11, Ts: 11}, {V: 11, Ts: 11}, {V: 3, Ts: 3},
			{V: runtime.NoTimestamp, Ts: runtime.NoTimestamp}, {V: runtime.NoTimestamp, Ts: runtime.NoTimestamp}},
		Marks: []network.Mark{{Pos: 1, WM: 10}, {Pos: 2, WM: 11}, {Pos: 5, WM: 13}},
	}}, drain(chs[0]))
}

// The input processors apply a batch's watermarks between its records, as
// the marks say.
func TestInputAppliesMarksBetweenRecords(t *testing.T) {
	notify := network.NewNotifier()
	ch := network.NewChannel[int](4, 8, notify)
	op := &orderLog{}
	p := runtime.NewOneInputProcessor([]*network.Channel[int]{ch}, runtime.OneInput[int](op))
	b, ok := ch.TryAcquire()
	require.True(t, ok)
	b.Recs = append(b.Recs, network.Rec[int]{V: 1, Ts: 1}, network.Rec[int]{V: 2, Ts: 2}, network.Rec[int]{V: 3, Ts: 3})
	b.Marks = append(b.Marks, network.Mark{Pos: 0, WM: 0}, network.Mark{Pos: 2, WM: 2}, network.Mark{Pos: 3, WM: 3})
	b.Kind, b.Value = network.Watermark, 4
	ch.Send(b)
	progress, _ := p.Poll()
	require.True(t, progress)
	require.Equal(t, []any{int64(0), 1, 2, int64(2), 3, int64(3), int64(4)}, op.log)
}

// orderLog is an operator that logs records and watermarks in the order it
// sees them.
type orderLog struct {
	hooks
	log []any
}

func (o *orderLog) ProcessElement(v int, _ int64) { o.log = append(o.log, v) }
func (o *orderLog) ProcessWatermark(wm int64)     { o.log = append(o.log, wm) }
func (o *orderLog) ProcessIdle()                  { o.log = append(o.log, "idle") }

func (o *orderLog) ProcessElement1(v int, _ int64) { o.log = append(o.log, v) }
func (o *orderLog) ProcessElement2(v string, _ int64) {
	o.log = append(o.log, v)
}

// A batch's trailing watermark applies after its records, in one- and
// two-input tasks.
func TestInputAppliesTrailingWatermarkAfterRecords(t *testing.T) {
	notify := network.NewNotifier()
	ch := network.NewChannel[int](4, 8, notify)
	op := &orderLog{}
	p := runtime.NewOneInputProcessor([]*network.Channel[int]{ch}, op)
	send := func(kind network.EventKind, value int64, vals ...int) {
		b, ok := ch.TryAcquire()
		require.True(t, ok)
		for _, v := range vals {
			b.Recs = append(b.Recs, network.Rec[int]{V: v, Ts: int64(v)})
		}
		b.Kind, b.Value = kind, value
		ch.Send(b)
		progress, _ := p.Poll()
		require.True(t, progress)
	}
	send(network.Watermark, int64(5), 1, 2)
	send(network.Idle, 0, 7)
	send(network.EndOfPartition, 0, 8)
	require.Equal(t, []any{1, 2, int64(5), 7, "idle", 8}, op.log)

	ci := network.NewChannel[int](4, 8, notify)
	cs := network.NewChannel[string](4, 8, notify)
	op2 := &orderLog{}
	p2 := runtime.NewTwoInputProcessor([]*network.Channel[int]{ci}, []*network.Channel[string]{cs}, op2)
	bi, _ := ci.TryAcquire()
	bi.Recs = append(bi.Recs, network.Rec[int]{V: 1, Ts: 1})
	bi.Kind, bi.Value = network.Watermark, 10
	ci.Send(bi)
	bs, _ := cs.TryAcquire()
	bs.Recs = append(bs.Recs, network.Rec[string]{V: "a", Ts: 1})
	bs.Kind, bs.Value = network.Watermark, 20
	cs.Send(bs)
	for {
		if progress, _ := p2.Poll(); !progress {
			break
		}
	}
	require.Equal(t, []any{1, "a", int64(10)}, op2.log)
}
