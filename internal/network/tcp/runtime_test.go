package tcp_test

import (
	"context"
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
}

func (r *recorder) Open(*runtime.Context) error { return nil }
func (r *recorder) Finish() error               { return nil }
func (r *recorder) Close() error                { return nil }
func (r *recorder) ProcessWatermark(int64)      {}
func (r *recorder) ProcessIdle()                {}
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

func (r *recorder) SnapshotState(int64) (runtime.OperatorSnapshot, error) {
	return runtime.OperatorSnapshot{UID: "Rec", Name: "Rec"}, nil
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
func TestUnalignedCheckpointAcrossProcesses(t *testing.T) {
	p, c := listen(t), listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	notify := network.NewNotifier()
	var writers []*runtime.Writer[int]
	var ins []*network.Channel[int]
	chans := make([]any, 2)
	for i := range 2 {
		k := network.ChannelKey{Job: "j", Edge: 1, Producer: i, Consumer: 0}
		out, err := tcp.Output[int](p, k, intCodec, tcp.ChannelOptions{Buffers: 4, BatchSize: 8})
		require.NoError(t, err)
		writers = append(writers, runtime.NewWriter(ctx, runtime.Forward, []*network.Channel[int]{out}, nil, 128))
		in, err := tcp.Input[int](ctx, c, k, p.Addr(), intCodec, notify, tcp.ChannelOptions{Buffers: 4, BatchSize: 8})
		require.NoError(t, err)
		ins = append(ins, in)
		chans[i] = in
	}
	send := func(w *runtime.Writer[int], vals ...int) {
		for _, v := range vals {
			w.Collect(v, 0)
		}
		w.Flush()
	}

	ti := runtime.TaskInfo{JobName: "j", JobID: "j", VertexName: "Rec", Parallelism: 1, MaxParallelism: 128}
	task := runtime.NewTask(ti, notify, nil, quiet)
	rec := &recorder{}
	proc, cnt := runtime.Ops[int]{}.NewOneInputProcessor(chans, rec, "Rec")
	task.Input = proc
	task.Chain = []runtime.ChainedOperator{{Name: "Rec", Op: rec, In: cnt, Ctx: &runtime.Context{
		Ctx: ctx, Task: ti, OperatorName: "Rec", KeyGroups: keygroup.RangeFor(128, 1, 0), Logger: quiet, Time: task.Time,
	}}}
	snaps := make(chan snapshot, 4)
	task.OnCheckpoint = func(id int64, snap runtime.TaskSnapshot, err error) { snaps <- snapshot{id, snap, err} }
	errc := make(chan error, 1)
	go func() { errc <- task.Run(ctx) }()
	defer func() { cancel(); <-errc }()

	// Keep the task busy while everything arrives, so it finds the
	// barrier queued behind records at the consumer.
	started, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	defer free() // before the task is cancelled and waited for
	require.NoError(t, task.Mail(ctx, func() { close(started); <-release }))
	<-started
	send(writers[0], 1, 2)
	send(writers[1], 10)
	eventually(t, func() bool { return ins[0].Queued() == 1 }, "records 1, 2 crossed")
	unaligned := network.BarrierOptions{Mode: network.Unaligned, Timestamp: time.Now().UnixMilli()}
	writers[0].EmitBarrier(5, unaligned)
	send(writers[0], 3)
	send(writers[1], 11)
	eventually(t, func() bool {
		return ins[0].Queued()+boolInt(ins[0].HasPriority()) == 3 && ins[1].Queued() == 2
	}, "everything crossed")
	free()

	eventually(t, func() bool { return len(rec.values()) == 5 }, "every record taken, no channel held back")
	writers[1].EmitBarrier(5, unaligned)
	var got snapshot
	select {
	case got = <-snaps:
	case <-time.After(wait):
		t.Fatal("no checkpoint")
	}
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
