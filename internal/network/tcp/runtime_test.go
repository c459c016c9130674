package tcp_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/keygroup"
	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/network/tcp"
	"github.com/strom-dev/strom/internal/runtime"
)

// recorder is a consumer operator that remembers what it took.
type recorder struct {
	mu   sync.Mutex
	vals []int
	wm   int64
}

func (r *recorder) Open(*runtime.Context) error { return nil }
func (r *recorder) Finish() error               { return nil }
func (r *recorder) Close() error                { return nil }
func (r *recorder) ProcessWatermark(wm int64) {
	r.mu.Lock()
	r.wm = wm
	r.mu.Unlock()
}

func (r *recorder) watermark() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.wm
}
func (r *recorder) ProcessIdle() {}
func (r *recorder) ProcessElement(v int, _ int64) {
	r.mu.Lock()
	r.vals = append(r.vals, v)
	r.mu.Unlock()
}

func (r *recorder) values() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.vals)
}

// SnapshotState stores what the operator took so far.
func (r *recorder) SnapshotState(int64) (runtime.OperatorSnapshot, error) {
	return runtime.OperatorSnapshot{UID: "Rec", Name: "Rec", Keyed: []byte(fmt.Sprint(r.values()))}, nil
}

type snapshot struct {
	id   int64
	snap runtime.TaskSnapshot
	err  error
}

// The unaligned checkpoint contract, end to end through a real task's
// input gate: records that crossed the wire before the producer's
// priority barrier are overtaken at the consumer and stored as its input
// channel state (the producer's Writer had nothing left to store as
// output state), records after the barrier are not, and the other
// channel's records before its barrier are input state too, as in
// process.
// remoteTask is a consumer task whose input channels come over the data
// plane from Writers in the "producer process" p.
type remoteTask struct {
	writers []*runtime.Writer[int]
	ins     []*network.Channel[int]
	task    *runtime.Task
	rec     *recorder
	snaps   chan snapshot
	errc    chan error
}

func newRemoteTask(t *testing.T, ctx context.Context, n int) *remoteTask {
	p, c := listen(t), listen(t)
	notify := network.NewNotifier()
	r := &remoteTask{rec: &recorder{}, snaps: make(chan snapshot, 4), errc: make(chan error, 1)}
	chans := make([]any, n)
	for i := range n {
		k := network.ChannelKey{Job: "j", Edge: 1, Producer: i, Consumer: 0}
		out, err := tcp.Output[int](p, k, intCodec, tcp.ChannelOptions{Buffers: 4, BatchSize: 8})
		require.NoError(t, err)
		r.writers = append(r.writers, runtime.NewWriter(ctx, runtime.Forward, []*network.Channel[int]{out}, nil, 128))
		in, err := tcp.Input[int](ctx, c, k, p.Addr(), intCodec, notify, tcp.ChannelOptions{Buffers: 4, BatchSize: 8})
		require.NoError(t, err)
		r.ins = append(r.ins, in)
		chans[i] = in
	}
	ti := runtime.TaskInfo{JobName: "j", JobID: "j", VertexName: "Rec", Parallelism: 1, MaxParallelism: 128}
	r.task = runtime.NewTask(ti, notify, nil, quiet)
	proc, cnt := runtime.Ops[int]{}.NewOneInputProcessor(chans, r.rec, "Rec")
	r.task.Input = proc
	r.task.Chain = []runtime.ChainedOperator{{Name: "Rec", Op: r.rec, In: cnt, Ctx: &runtime.Context{
		Ctx: ctx, Task: ti, OperatorName: "Rec", KeyGroups: keygroup.RangeFor(128, 1, 0), Logger: quiet, Time: r.task.Time,
	}}}
	r.task.OnCheckpoint = func(id int64, snap runtime.TaskSnapshot, err error) { r.snaps <- snapshot{id, snap, err} }
	go func() { r.errc <- r.task.Run(ctx) }()
	return r
}

func (r *remoteTask) snapshot(t *testing.T) snapshot {
	t.Helper()
	select {
	case got := <-r.snaps:
		return got
	case <-time.After(wait):
		t.Fatal("no checkpoint")
		return snapshot{}
	}
}

// emit emits vals (timestamp = value) on w and flushes them.
func emit(w *runtime.Writer[int], vals ...int) {
	for _, v := range vals {
		w.Collect(v, int64(v))
	}
	w.Flush()
}

func TestUnalignedCheckpointAcrossProcesses(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := newRemoteTask(t, ctx, 2)
	defer func() { cancel(); <-r.errc }()
	writers, ins, task, rec := r.writers, r.ins, r.task, r.rec

	// Keep the task busy while everything arrives, so it finds the
	// barrier queued behind records at the consumer.
	started, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	defer free() // before the task is cancelled and waited for
	require.NoError(t, task.Mail(ctx, func() { close(started); <-release }))
	<-started
	emit(writers[0], 1, 2)
	emit(writers[1], 10)
	eventually(t, func() bool { return ins[0].Queued() == 1 }, "records 1, 2 crossed")
	unaligned := network.BarrierOptions{Mode: network.Unaligned, Timestamp: time.Now().UnixMilli()}
	writers[0].EmitBarrier(5, unaligned)
	emit(writers[0], 3)
	emit(writers[1], 11)
	eventually(t, func() bool {
		return ins[0].Queued()+boolInt(ins[0].HasPriority()) == 3 && ins[1].Queued() == 2
	}, "everything crossed")
	free()

	eventually(t, func() bool { return len(rec.values()) == 5 }, "every record taken, no channel held back")
	writers[1].EmitBarrier(5, unaligned)
	got := r.snapshot(t)
	require.NoError(t, got.err)
	require.Equal(t, int64(5), got.id)
	require.Equal(t, network.Unaligned, got.snap.Options.Mode)
	require.NotNil(t, got.snap.Channel)
	input := map[int][]int{}
	for _, r := range got.snap.Channel.Input {
		recs, err := runtime.DecodeChannelRecords[int](r)
		require.NoError(t, err)
		for _, x := range recs {
			input[r.Channel] = append(input[r.Channel], x.V)
		}
	}
	require.Equal(t, map[int][]int{0: {1, 2}, 1: {10, 11}}, input,
		"records in flight before each channel's barrier are input channel state; 3 came after the barrier")
	require.Empty(t, got.snap.Channel.Output)
	// The overtaken records were still processed once, after the
	// snapshot, and 3 with them.
	require.ElementsMatch(t, []int{1, 2, 3, 10, 11}, rec.values())
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// An aligned checkpoint, watermarks and the end of input through a real
// task: the channel that delivered its barrier is held back until the
// other's barrier comes, the snapshot holds exactly the records before
// the barriers and no channel state, the watermark is the minimum over
// the channels, and the task finishes when both producers end.
func TestAlignedCheckpointAndEndAcrossProcesses(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := newRemoteTask(t, ctx, 2)
	defer func() { cancel(); <-r.errc }()
	aligned := network.BarrierOptions{Mode: network.ExactlyOnce, Timestamp: time.Now().UnixMilli()}
	emit(r.writers[0], 1, 2)
	r.writers[0].EmitWatermark(2)
	r.writers[0].EmitBarrier(7, aligned)
	emit(r.writers[0], 3) // after the barrier: held back until channel 1's comes
	emit(r.writers[1], 10)
	r.writers[1].EmitWatermark(10)
	eventually(t, func() bool { return len(r.rec.values()) == 3 }, "records before the barriers taken")
	time.Sleep(20 * time.Millisecond)
	require.ElementsMatch(t, []int{1, 2, 10}, r.rec.values(), "3 is held back by the alignment")
	r.writers[1].EmitBarrier(7, aligned)
	got := r.snapshot(t)
	require.NoError(t, got.err)
	require.Equal(t, int64(7), got.id)
	require.Equal(t, network.ExactlyOnce, got.snap.Options.Mode)
	require.True(t, got.snap.Channel.Empty())
	require.Len(t, got.snap.Operators, 1)
	state := string(got.snap.Operators[0].Keyed)
	require.True(t, state == "[1 2 10]" || state == "[10 1 2]", "state %s", state)
	eventually(t, func() bool { return len(r.rec.values()) == 4 }, "3 after the checkpoint")
	require.Equal(t, int64(2), r.rec.watermark(), "the minimum of the channels' watermarks")

	r.writers[0].EndOfPartition()
	r.writers[1].EndOfPartition()
	select {
	case err := <-r.errc:
		require.NoError(t, err, "the task finishes when its inputs end")
		r.errc <- nil // for the deferred wait
	case <-time.After(wait):
		t.Fatal("the task did not finish")
	}
}
