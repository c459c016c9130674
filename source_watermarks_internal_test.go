package strom

// White-box tests of per-split watermarks in sources: the source operator is
// driven directly (Open, Step, periodic at chosen processing times) into an
// output that records every record, watermark and idle mark in order, so
// the expected sequences are exact and no timing is involved.

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom/internal/network"
	"github.com/strom-dev/strom/internal/runtime"
)

// recOut records what a source emits: "r<v>@<ts>", "wm<wm>", "idle".
type recOut struct{ events []string }

func (r *recOut) Collect(v int, ts int64) { r.events = append(r.events, fmt.Sprintf("r%d@%d", v, ts)) }
func (r *recOut) EmitWatermark(wm int64) {
	if wm == runtime.MaxWatermark {
		r.events = append(r.events, "wmMax")
		return
	}
	r.events = append(r.events, fmt.Sprintf("wm%d", wm))
}
func (r *recOut) MarkIdle() { r.events = append(r.events, "idle") }

func (r *recOut) take() []string {
	e := r.events
	r.events = nil
	return e
}

type manualClock struct{ ms atomic.Int64 }

func (c *manualClock) Now() time.Time { return time.UnixMilli(c.ms.Load()) }

// scriptSource gives its one reader a step function: each Read runs the
// next step.
type scriptSource struct {
	steps []func(out SourceOutput[int])
}

func (s scriptSource) Bounded() bool               { return true }
func (s scriptSource) Splits(int) ([]Split, error) { return []Split{&iterSplit{}}, nil }
func (s scriptSource) NewReader(_ SourceContext, _ []Split) (SourceReader[int], error) {
	return &scriptReader{steps: s.steps}, nil
}

type scriptReader struct {
	steps []func(out SourceOutput[int])
}

func (r *scriptReader) Read(out SourceOutput[int]) (ReadStatus, error) {
	if len(r.steps) == 0 {
		return ReadStatus{Done: true}, nil
	}
	r.steps[0](out)
	r.steps = r.steps[1:]
	return ReadStatus{}, nil
}
func (r *scriptReader) Snapshot() ([]Split, error) { return nil, nil }
func (r *scriptReader) Close() error               { return nil }

// punctuatedMinus1 emits ts−1 at every record: no later record of its split
// may be at or before it.
type punctuatedMinus1 struct{}

func (punctuatedMinus1) OnEvent(ts int64, out WatermarkOutput) { out.EmitWatermark(ts - 1) }
func (punctuatedMinus1) OnPeriodicEmit(WatermarkOutput)        {}

type swHarness struct {
	op    *sourceOp[int]
	out   *recOut
	clock *manualClock
}

func newSWHarness(t *testing.T, st *WatermarkStrategy[int], steps ...func(out SourceOutput[int])) *swHarness {
	t.Helper()
	h := &swHarness{out: &recOut{}, clock: &manualClock{}}
	h.clock.ms.Store(1000)
	info := runtime.TaskInfo{JobName: "t", VertexName: "S", Subtask: 0, Parallelism: 1}
	task := runtime.NewTask(info, network.NewNotifier(), h.clock, slog.New(slog.DiscardHandler))
	h.op = &sourceOp[int]{src: scriptSource{steps: steps}, name: "S", out: h.out, strategy: st, interval: 10}
	require.NoError(t, h.op.Open(&runtime.Context{Task: info, OperatorName: "S", Time: task.Time}))
	return h
}

// steps runs n reader steps.
func (h *swHarness) steps(n int) {
	for range n {
		h.op.Step()
	}
}

// tick runs the periodic emit at processing time ms.
func (h *swHarness) tick(ms int64) {
	h.clock.ms.Store(ms)
	h.op.wms.periodic(ms)
}

func punctuated() *WatermarkStrategy[int] {
	st := CustomWatermarks[int](func() WatermarkGenerator { return punctuatedMinus1{} })
	return &st
}

// A punctuated generator per split: each record goes out before the
// watermark it causes; the subtask's watermark is the minimum over the
// splits; a split holds it back from registration on (before its first
// record) and stops holding it when released.
func TestSplitWatermarksPunctuatedAndRelease(t *testing.T) {
	var a, b SourceOutput[int]
	h := newSWHarness(t, punctuated(),
		func(out SourceOutput[int]) {
			a, b = out.ForSplit("a"), out.ForSplit("b")
			require.Same(t, a, out.ForSplit("a"), "the same split's output until released")
			a.CollectAt(1, 100) // a: 99; b has none yet
			a.CollectAt(2, 110) // a: 109
		},
		func(SourceOutput[int]) {
			b.CollectAt(3, 10) // b: 9 → min 9
			b.CollectAt(4, 20) // b: 19
			a.CollectAt(5, 120)
		},
		func(out SourceOutput[int]) {
			out.ReleaseSplit("b") // min is a's 119
			a.CollectAt(6, 130)
			out.ReleaseSplit("unknown") // nothing
		},
	)
	h.steps(1)
	require.Equal(t, []string{"r1@100", "r2@110"}, h.out.take(), "split b, registered without records, holds the watermark back")
	h.steps(1)
	require.Equal(t, []string{"r3@10", "wm9", "r4@20", "wm19", "r5@120"}, h.out.take())
	h.steps(1)
	require.Equal(t, []string{"wm119", "r6@130", "wm129"}, h.out.take())
	h.tick(2000) // punctuated: periodic emits nothing new
	require.Empty(t, h.out.take())
	h.op.EndInput()
	require.Equal(t, []string{"wmMax"}, h.out.take())
}

// Periodic generators (bounded out-of-orderness) per split with an idle
// timeout: a split without records for the timeout stops holding the
// watermark back, is active again with its next record, and when every
// split is idle the subtask is marked idle.
func TestSplitWatermarksIdleness(t *testing.T) {
	st := BoundedOutOfOrderness[int](0).WithIdleness(100 * time.Millisecond)
	var a, b SourceOutput[int]
	h := newSWHarness(t, &st,
		func(out SourceOutput[int]) {
			a, b = out.ForSplit("a"), out.ForSplit("b") // at t=1000
			a.CollectAt(1, 100)
		},
		func(SourceOutput[int]) { a.CollectAt(2, 200) },
		func(SourceOutput[int]) { b.CollectAt(3, 50) },
		func(SourceOutput[int]) { a.CollectAt(4, 300); b.CollectAt(5, 250) },
		func(SourceOutput[int]) { a.CollectAt(6, 400) },
	)
	h.steps(1)
	h.tick(1010) // a: 99, b: none yet → nothing
	require.Equal(t, []string{"r1@100"}, h.out.take())
	h.tick(1099) // b quiet for 99 ms: still active
	require.Empty(t, h.out.take())
	h.tick(1100) // b quiet for 100 ms: idle; a was active at 1010
	require.Equal(t, []string{"wm99"}, h.out.take())
	h.steps(1)
	h.tick(1110)
	require.Equal(t, []string{"r2@200", "wm199"}, h.out.take())
	h.steps(1) // a record makes b active again, at no watermark: nothing advances
	h.tick(1120)
	require.Equal(t, []string{"r3@50"}, h.out.take())
	h.steps(1)
	h.tick(1130) // a: 299, b: 249
	require.Equal(t, []string{"r4@300", "r5@250", "wm249"}, h.out.take())
	h.tick(1229) // both quiet for 99 ms
	require.Empty(t, h.out.take())
	h.tick(1230) // both idle: the subtask is idle
	require.Equal(t, []string{"idle"}, h.out.take())
	h.tick(1400) // idle is marked once
	require.Empty(t, h.out.take())
	h.steps(1) // a's record reactivates it, after the record: its known 299
	require.Equal(t, []string{"r6@400", "wm299"}, h.out.take())
	h.tick(1410)
	require.Equal(t, []string{"wm399"}, h.out.take())
}

// Records collected on the reader's own output use a reader-level
// generator, which holds the watermark back only once it has seen a record;
// the timestamp assigner replaces the collected timestamp.
func TestSplitWatermarksReaderLevelOutput(t *testing.T) {
	st := CustomWatermarks[int](func() WatermarkGenerator { return punctuatedMinus1{} }).
		WithTimestamps(func(v int) int64 { return int64(v) * 10 })
	var a SourceOutput[int]
	h := newSWHarness(t, &st,
		func(out SourceOutput[int]) {
			a = out.ForSplit("a")
			a.CollectAt(5, 999) // ts 50 by the assigner
		},
		func(out SourceOutput[int]) {
			out.Collect(2) // reader-level: ts 20, now holds it back
			a.Collect(8)
		},
		func(out SourceOutput[int]) {
			out.Collect(9)
			out.ReleaseSplit("a") // the reader-level output cannot be released
		},
	)
	h.steps(1)
	require.Equal(t, []string{"r5@50", "wm49"}, h.out.take())
	h.steps(1)
	require.Equal(t, []string{"r2@20", "r8@80"}, h.out.take())
	h.steps(1)
	require.Equal(t, []string{"r9@90", "wm79", "wm89"}, h.out.take())
}

// A reader without splits is idle after the idle timeout (only with one).
func TestSplitWatermarksNoSplitsIdle(t *testing.T) {
	st := BoundedOutOfOrderness[int](0).WithIdleness(50 * time.Millisecond)
	h := newSWHarness(t, &st)
	h.tick(1049)
	require.Empty(t, h.out.take())
	h.tick(1050)
	require.Equal(t, []string{"idle"}, h.out.take())

	st = BoundedOutOfOrderness[int](0)
	h = newSWHarness(t, &st)
	h.tick(100000)
	require.Empty(t, h.out.take())
}

// A generator's MarkIdle makes its split idle at once; a watermark advance
// makes it active again.
type markIdleGen struct{ max int64 }

func (g *markIdleGen) OnEvent(ts int64, out WatermarkOutput) {
	if ts < 0 {
		out.MarkIdle()
		return
	}
	g.max = ts
	out.EmitWatermark(ts)
}
func (g *markIdleGen) OnPeriodicEmit(WatermarkOutput) {}

func TestSplitWatermarksGeneratorMarkIdle(t *testing.T) {
	st := CustomWatermarks[int](func() WatermarkGenerator { return &markIdleGen{} })
	var a, b SourceOutput[int]
	h := newSWHarness(t, &st,
		func(out SourceOutput[int]) {
			a, b = out.ForSplit("a"), out.ForSplit("b")
			a.CollectAt(1, 100)
			b.CollectAt(2, 10)
			b.CollectAt(3, -1) // b says it is idle: a's 100
			a.CollectAt(4, -1) // a too: the subtask is idle
			a.CollectAt(5, 200)
		},
	)
	h.steps(1)
	require.Equal(t, []string{"r1@100", "r2@10", "wm10", "r3@-1", "wm100", "r4@-1", "idle", "r5@200", "wm200"}, h.out.take())
}

// Without a strategy, ForSplit is the reader's output itself and records
// keep the timestamps they are collected with.
func TestSourceWithoutStrategyIgnoresSplits(t *testing.T) {
	h := newSWHarness(t, nil, func(out SourceOutput[int]) {
		require.Same(t, out, out.ForSplit("a"))
		out.ForSplit("a").CollectAt(1, 5)
		out.ReleaseSplit("a")
		out.Collect(2)
	})
	h.steps(1)
	require.Nil(t, h.op.wms)
	require.Equal(t, []string{"r1@5", fmt.Sprintf("r2@%d", runtime.NoTimestamp)}, h.out.take())
}
