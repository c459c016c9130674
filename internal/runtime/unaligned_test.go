package runtime_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/runtime"
)

var unaligned = network.BarrierOptions{Mode: network.Unaligned}

// hold runs a mail on task that keeps the task goroutine busy until the
// returned func is called: what the test sends meanwhile is all queued when
// the task looks at its input again.
func hold(t *testing.T, task *runtime.Task) (release func()) {
	t.Helper()
	started, done := make(chan struct{}), make(chan struct{})
	require.NoError(t, task.Mail(context.Background(), func() { close(started); <-done }))
	<-started
	return func() { close(done) }
}

func decodeInts(t *testing.T, r runtime.ChannelRecords) []int {
	t.Helper()
	recs, err := runtime.DecodeChannelRecords[int](r)
	require.NoError(t, err)
	var vs []int
	for _, r := range recs {
		vs = append(vs, r.V)
	}
	return vs
}

// An unaligned barrier is taken at once, ahead of the records queued before
// it on its channel (they are its producer's output state, not the
// consumer's), holds no channel back, and the records another channel
// delivers before its own barrier are the consumer's input channel state;
// the snapshot is reported once that barrier is in, and the barrier went
// downstream unaligned. Records after a channel's barrier are not recorded.
func TestUnalignedBarrierOvertakesAndRecordsInputChannelState(t *testing.T) {
	a := newAlignTask(t, 2)
	release := hold(t, a.task)
	send(a.in[0], 1, 2)
	send(a.in[1], 10)
	a.in[0].EmitBarrier(5, unaligned)
	send(a.in[0], 3)
	send(a.in[1], 11)
	release()

	// Everything is processed: nothing is held back while channel 1's
	// barrier is missing.
	require.Eventually(t, func() bool { _, v := a.blocked(t); return len(v) == 5 }, 30*time.Second, time.Millisecond)
	require.Empty(t, a.cps.all(), "reported before channel 1 delivered the barrier")
	blocked, _ := a.blocked(t)
	require.Equal(t, []bool{false, false}, blocked)

	a.in[1].EmitBarrier(5, unaligned)
	send(a.in[1], 12)
	got := a.cps.wait(t, 1)
	require.NoError(t, got[0].err)
	require.Equal(t, int64(5), got[0].id)
	require.Equal(t, network.Unaligned, got[0].snap.Options.Mode)
	// The barrier was first in line: the operator had taken nothing.
	require.Equal(t, "[]", stateOf(t, got[0].snap, "Rec"))
	ch := got[0].snap.Channel
	require.NotNil(t, ch)
	require.Len(t, ch.Input, 1)
	require.Equal(t, 1, ch.Input[0].Channel)
	require.Equal(t, []int{10, 11}, decodeInts(t, ch.Input[0]))
	require.Empty(t, ch.Output, "the task's output was empty at the snapshot")

	// Downstream, the barrier came before every record.
	d := a.out.stream()
	require.NotEmpty(t, d)
	require.Equal(t, "barrier 5 unaligned checkpoint 0", d[0])
	require.Eventually(t, func() bool { _, v := a.blocked(t); return len(v) == 6 }, 30*time.Second, time.Millisecond)
}

// A source under backpressure takes an unaligned checkpoint: the barrier
// goes ahead of the batches stuck in its output channel, and those batches'
// records are its output channel state: exactly the records it emitted
// that its consumer has not taken.
func TestUnalignedSourceStoresOvertakenOutput(t *testing.T) {
	bp := newBackpressured(t)
	cps := &checkpoints{}
	bp.src.OnCheckpoint = cps.hook("Src")
	bp.start(t)
	require.NoError(t, bp.src.TriggerCheckpoint(bp.ctx, runtime.CheckpointOptions{ID: 1, Mode: network.Unaligned}))
	got := cps.wait(t, 1)
	require.NoError(t, got[0].err)
	emitted := countOf(t, got[0].snap, "Src")
	require.NotNil(t, got[0].snap.Channel)
	require.Len(t, got[0].snap.Channel.Output, 1)
	out := got[0].snap.Channel.Output[0]
	require.Equal(t, 0, out.Writer)
	require.Equal(t, 0, out.Channel)
	vs := decodeInts(t, out)
	require.NotEmpty(t, vs)
	// The sink holds the first batch; the rest, up to the last record
	// emitted, is overtaken, in order.
	require.Positive(t, vs[0])
	for k, v := range vs {
		require.Equal(t, vs[0]+k, v)
	}
	require.Equal(t, emitted-1, vs[len(vs)-1])
	require.True(t, bp.ch.HasPriority(), "the barrier waits in the priority lane for the stalled sink")
	for _, err := range bp.stop() {
		require.ErrorIs(t, err, runtime.ErrTaskCanceled)
	}
}

// An aligned checkpoint whose alignment takes longer than its timeout
// switches to unaligned: the blocked channel goes on, the barrier goes
// downstream unaligned, and the records the slow channel delivers before
// its barrier become input channel state.
func TestAlignedTimeoutSwitchesToUnaligned(t *testing.T) {
	a := newAlignTask(t, 2)
	send(a.in[1], 10)
	require.Eventually(t, func() bool { _, v := a.blocked(t); return len(v) == 1 }, 30*time.Second, time.Millisecond)
	a.in[0].EmitBarrier(1, network.BarrierOptions{AlignedTimeout: 30})
	send(a.in[0], 3, 4)
	// Only the switch unblocks channel 0: nothing else arrives.
	require.Eventually(t, func() bool { _, v := a.blocked(t); return len(v) == 3 }, 30*time.Second, time.Millisecond)
	require.Contains(t, a.out.stream(), "barrier 1 unaligned checkpoint 0")
	require.Empty(t, a.cps.all())

	send(a.in[1], 11)
	a.in[1].EmitBarrier(1, network.BarrierOptions{AlignedTimeout: 30})
	got := a.cps.wait(t, 1)
	require.NoError(t, got[0].err)
	require.Equal(t, network.Unaligned, got[0].snap.Options.Mode)
	require.Equal(t, "[10]", stateOf(t, got[0].snap, "Rec"))
	require.Len(t, got[0].snap.Channel.Input, 1)
	require.Equal(t, []int{11}, decodeInts(t, got[0].snap.Channel.Input[0]))
}

// Without a timeout an aligned checkpoint stays aligned however long it
// takes (the control for the test above).
func TestAlignedWithoutTimeoutStaysBlocked(t *testing.T) {
	a := newAlignTask(t, 2)
	a.barrierBlocks(t, 1, 3, 4)
	time.Sleep(60 * time.Millisecond)
	b, v := a.blocked(t)
	require.Equal(t, []bool{true, false}, b)
	require.Empty(t, v)
}

// A newer barrier aborts an unaligned checkpoint still recording: it is
// reported aborted, and the newer one starts afresh.
func TestUnalignedSupersededWhileRecording(t *testing.T) {
	a := newAlignTask(t, 2)
	a.in[0].EmitBarrier(1, unaligned)
	send(a.in[1], 7)
	require.Eventually(t, func() bool { _, v := a.blocked(t); return len(v) == 1 }, 30*time.Second, time.Millisecond)
	a.in[0].EmitBarrier(2, unaligned)
	a.in[1].EmitBarrier(2, unaligned)
	got := a.cps.wait(t, 2)
	require.ErrorIs(t, got[0].err, runtime.ErrCheckpointAborted)
	require.Equal(t, int64(1), got[0].id)
	require.NoError(t, got[1].err)
	require.Equal(t, int64(2), got[1].id)
	require.Equal(t, "[7]", stateOf(t, got[1].snap, "Rec"))
	// Nothing was in flight into the task; the 7 it passed on waits in
	// its output (no one reads it), overtaken by barrier 2.
	require.Empty(t, got[1].snap.Channel.Input)
	require.Len(t, got[1].snap.Channel.Output, 1)
	require.Equal(t, []int{7}, decodeInts(t, got[1].snap.Channel.Output[0]))
}

// A restored task replays its channel state before any new input: its
// output state first (emitted before the snapshot), then its input state
// through the operator, then what arrives.
func TestChannelStateReplayedBeforeNewInput(t *testing.T) {
	in, err := runtime.EncodeChannelRecords(0, 1, []network.Rec[int]{{V: 7, Ts: 7}, {V: 8, Ts: 8}})
	require.NoError(t, err)
	out, err := runtime.EncodeChannelRecords(0, 0, []network.Rec[int]{{V: 100, Ts: 1}})
	require.NoError(t, err)
	// Through the file format, as a restore reads it.
	s, err := runtime.DecodeChannelState(runtime.EncodeChannelState(&runtime.ChannelState{Input: []runtime.ChannelRecords{in}, Output: []runtime.ChannelRecords{out}}))
	require.NoError(t, err)
	a := newAlignTaskWith(t, 2, func(task *runtime.Task) { task.ChannelRestore = s })
	send(a.in[0], 9)
	a.out.waitStream(t, "r100", "r7", "r8", "r9")
	_, v := a.blocked(t)
	require.Equal(t, []int{7, 8, 9}, v)
}

// The channel-state file detects corruption and truncation.
func TestChannelStateFileChecksum(t *testing.T) {
	r, err := runtime.EncodeChannelRecords(2, 3, []network.Rec[string]{{V: "a", Ts: 1}, {V: "bc", Ts: -5}})
	require.NoError(t, err)
	b := runtime.EncodeChannelState(&runtime.ChannelState{Output: []runtime.ChannelRecords{r}})
	s, err := runtime.DecodeChannelState(b)
	require.NoError(t, err)
	require.Len(t, s.Output, 1)
	recs, err := runtime.DecodeChannelRecords[string](s.Output[0])
	require.NoError(t, err)
	require.Equal(t, []network.Rec[string]{{V: "a", Ts: 1}, {V: "bc", Ts: -5}}, recs)
	require.Equal(t, 2, s.Output[0].Writer)
	require.Equal(t, 3, s.Output[0].Channel)
	for k := range b {
		bad := append([]byte(nil), b...)
		bad[k] ^= 0x40
		_, err := runtime.DecodeChannelState(bad)
		require.ErrorIs(t, err, runtime.ErrCorruptChannelState, "flipped byte "+strconv.Itoa(k))
	}
	_, err = runtime.DecodeChannelState(b[:len(b)-1])
	require.ErrorIs(t, err, runtime.ErrCorruptChannelState)
}

// An aligned barrier still queued behind records when its alignment
// timeout (from the trigger) has passed is taken out of the stream: the
// checkpoint is taken unaligned at once, and the records ahead of the
// barrier, processed after the snapshot, are input channel state, as are
// the other channel's records before its barrier.
func TestTimedOutQueuedBarrierIsOvertaken(t *testing.T) {
	a := newAlignTask(t, 2)
	release := hold(t, a.task)
	opts := network.BarrierOptions{Timestamp: time.Now().UnixMilli(), AlignedTimeout: 1}
	send(a.in[0], 1, 2)
	a.in[0].EmitBarrier(4, opts)
	send(a.in[0], 3)
	send(a.in[1], 10)
	time.Sleep(5 * time.Millisecond)
	release()
	require.Eventually(t, func() bool { _, v := a.blocked(t); return len(v) == 4 }, 30*time.Second, time.Millisecond)
	a.in[1].EmitBarrier(4, opts)
	got := a.cps.wait(t, 1)
	require.NoError(t, got[0].err)
	require.Equal(t, network.Unaligned, got[0].snap.Options.Mode)
	require.Equal(t, "[]", stateOf(t, got[0].snap, "Rec"))
	in := got[0].snap.Channel.Input
	require.Len(t, in, 2)
	require.Equal(t, 0, in[0].Channel)
	require.Equal(t, []int{1, 2}, decodeInts(t, in[0]))
	require.Equal(t, 1, in[1].Channel)
	require.Equal(t, []int{10}, decodeInts(t, in[1]))
	require.Equal(t, "barrier 4 unaligned checkpoint "+strconv.FormatInt(opts.Timestamp, 10), a.out.stream()[0])
}
