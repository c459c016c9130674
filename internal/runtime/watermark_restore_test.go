package runtime_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/runtime"
)

// wmHead records watermarks and forwards them (and records) to out.
type wmHead struct {
	collector
	out runtime.Output[int]
}

func (h *wmHead) ProcessElement(v int, ts int64) {
	h.collector.ProcessElement(v, ts)
	h.out.Collect(v, ts)
}
func (h *wmHead) ProcessWatermark(wm int64) {
	h.collector.ProcessWatermark(wm)
	h.out.EmitWatermark(wm)
}

func startWMTask(t *testing.T, restore runtime.TaskRestore) (*runtime.Task, *wmHead, *collector, *runtime.Writer[int], chan error) {
	ctx, cancel := context.WithCancel(context.Background())
	notify := network.NewNotifier()
	ch := network.NewChannel[int](4, 8, notify)
	in := runtime.NewWriter(ctx, runtime.Forward, []*network.Channel[int]{ch}, nil, 128)
	ti := info(0, 1)
	task := runtime.NewTask(ti, notify, nil, quiet)
	tail := &collector{hooks: hooks{name: "Tail"}}
	tailIn := new(runtime.Counter)
	head := &wmHead{collector: collector{hooks: hooks{name: "Head"}}}
	head.out = runtime.Ops[int]{}.Chain(tail, tailIn, "Tail", task.CurrentOperator(), 1, task.CancelFlag()).(runtime.Output[int])
	proc, cnt := runtime.Ops[int]{}.NewOneInputProcessor([]any{ch}, head, "Head")
	task.Input = proc
	task.Chain = []runtime.ChainedOperator{
		{Name: "Head", UID: "Head", Op: head, Ctx: uidCtx(ti, "Head", task), In: cnt},
		{Name: "Tail", UID: "Tail", Op: tail, Ctx: uidCtx(ti, "Tail", task), In: tailIn},
	}
	task.Restore = restore
	errc := make(chan error, 1)
	go func() { errc <- task.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-errc
	})
	return task, head, tail, in, errc
}

// uidCtx is opCtx with the operator's UID, under which snapshots name it.
func uidCtx(ti runtime.TaskInfo, name string, task *runtime.Task) *runtime.Context {
	c := opCtx(ti, name, task)
	c.OperatorUID = name
	return c
}

func watermarks(t *testing.T, snap runtime.TaskSnapshot) map[string]int64 {
	t.Helper()
	m := map[string]int64{}
	for _, os := range snap.Operators {
		m[os.UID] = os.Watermark
	}
	return m
}

// A snapshot holds each operator's input watermark: the head's combined one
// from the gate, the chained tail's from the chain.
func TestSnapshotHoldsOperatorWatermarks(t *testing.T) {
	ctx := context.Background()
	task, head, _, in, _ := startWMTask(t, nil)
	snap, err := task.TriggerSnapshot(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"Head": runtime.MinWatermark, "Tail": runtime.MinWatermark}, watermarks(t, snap))

	send(in, 1)
	in.EmitWatermark(42)
	in.Flush()
	require.Eventually(t, func() bool { head.mu.Lock(); defer head.mu.Unlock(); return len(head.wms) == 1 }, 30*time.Second, time.Millisecond)
	snap, err = task.TriggerSnapshot(ctx, 2)
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"Head": 42, "Tail": 42}, watermarks(t, snap))
}

// A restored task starts each operator at its restored watermark before
// any input: the head gets it first and no lower watermark after it, and a
// chained operator whose restored watermark is ahead gets its own.
func TestRestoreStartsOperatorsAtTheirWatermarks(t *testing.T) {
	ctx := context.Background()
	restore := runtime.TaskRestore{
		"Head": {Watermark: 50},
		"Tail": {Watermark: 70},
	}
	task, head, tail, in, _ := startWMTask(t, restore)
	in.EmitWatermark(30) // behind the restored watermark: not passed on
	in.Flush()
	send(in, 1)
	onTask(t, task, func() {})
	in.EmitWatermark(60)
	in.Flush()
	send(in, 2)
	require.Eventually(t, func() bool { return len(tail.values()) == 2 }, 30*time.Second, time.Millisecond)
	head.mu.Lock()
	require.Equal(t, []int64{50, 60}, head.wms)
	head.mu.Unlock()
	tail.mu.Lock()
	require.Equal(t, []int64{50, 70}, tail.wms, "the chain delivers the head's, then the tail's own restored one, and nothing behind it")
	tail.mu.Unlock()
	snap, err := task.TriggerSnapshot(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"Head": 60, "Tail": 70}, watermarks(t, snap), "no regress")
}

// Rescaling restores the minimum of the old subtasks' watermarks in every
// new subtask: none of them may make late a record one old subtask took.
func TestRedistributeTakesTheMinimumWatermark(t *testing.T) {
	var snaps []runtime.TaskSnapshot
	for i, wm := range []int64{30, 10, 20} {
		snaps = append(snaps, runtime.TaskSnapshot{
			Task:      runtime.TaskInfo{Subtask: i, Parallelism: 3, MaxParallelism: 12},
			Operators: []runtime.OperatorSnapshot{{UID: "op", Watermark: wm}, {UID: "fresh", Watermark: runtime.MinWatermark}},
		})
	}
	for _, p := range []int{1, 2, 3, 5} {
		jr, err := runtime.Redistribute(snaps, func(string) int { return p })
		require.NoError(t, err)
		require.Len(t, jr["op"], p)
		for _, r := range jr["op"] {
			require.Equal(t, int64(10), r.Watermark)
		}
		for _, r := range jr["fresh"] {
			require.Equal(t, int64(runtime.MinWatermark), r.Watermark)
		}
	}
}
