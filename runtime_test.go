package strom_test

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/connector/datagen"
	"github.com/strom-dev/strom/internal/stromtest"
	"github.com/strom-dev/strom/state"
)

// The helpers every test here uses (shared with the connectors' tests).
var (
	newEnv     = stromtest.NewEnv
	run        = stromtest.Run
	mustRun    = stromtest.MustRun
	rangeSlice = stromtest.Ints
)

// subtaskRecord is a record with the sink subtask that received it.
type subtaskRecord[T any] struct {
	Subtask int
	V       T
}

// collectBySubtask is a sink that records which subtask got each record.
func collectBySubtask[T any](s strom.Stream[T]) (strom.Sink, func() []subtaskRecord[T]) {
	var mu sync.Mutex
	var out []subtaskRecord[T]
	sink := strom.SinkTo(s, "BySubtask", func(c strom.SinkContext) (strom.SinkWriter[T], error) {
		return &funcSink[T]{write: func(v T) error {
			mu.Lock()
			out = append(out, subtaskRecord[T]{c.Subtask, v})
			mu.Unlock()
			return nil
		}}, nil
	})
	return sink, func() []subtaskRecord[T] {
		mu.Lock()
		defer mu.Unlock()
		return append([]subtaskRecord[T](nil), out...)
	}
}

type funcSink[T any] struct {
	write func(T) error
	flush func() error
	close func() error
}

func (f *funcSink[T]) Write(v T, _ int64) error { return f.write(v) }
func (f *funcSink[T]) Flush() error {
	if f.flush != nil {
		return f.flush()
	}
	return nil
}
func (f *funcSink[T]) Close() error {
	if f.close != nil {
		return f.close()
	}
	return nil
}

func TestMapFilterFlatMap(t *testing.T) {
	input := rangeSlice(1000)
	var want []int
	for _, v := range input {
		v *= 2
		if v%3 != 0 {
			continue
		}
		want = append(want, v)
		if v%4 == 0 {
			want = append(want, -v)
		}
	}
	for _, p := range []int{1, 3} {
		env := newEnv(p)
		doubled := strom.Map(strom.FromSlice(env, input), func(v int) int { return v * 2 })
		kept := strom.Filter(doubled, func(v int) bool { return v%3 == 0 })
		flat := strom.FlatMap(kept, func(v int, out strom.Collector[int]) {
			out.Collect(v)
			if v%4 == 0 {
				out.Collect(-v)
			}
		})
		got := strom.Collect(flat)
		res := mustRun(t, env, "map-filter-flatmap")
		if p == 1 {
			require.Equal(t, want, got.Values(), "one subtask keeps the order")
		} else {
			require.ElementsMatch(t, want, got.Values())
		}
		m, ok := res.Operator("Map")
		require.True(t, ok)
		require.Equal(t, int64(1000), m.RecordsIn)
		f, _ := res.Operator("Filter")
		require.Equal(t, int64(1000), f.RecordsIn)
		require.Equal(t, int64(334), f.RecordsOut)
		fm, _ := res.Operator("FlatMap")
		require.Equal(t, int64(len(want)), fm.RecordsOut)
		require.Equal(t, p, fm.Parallelism)
	}
}

func TestMethodFilterAndNames(t *testing.T) {
	env := newEnv(2)
	s := strom.FromSlice(env, rangeSlice(100)).Filter(func(v int) bool { return v < 10 }).Name("small").UID("small-uid")
	got := strom.Collect(s)
	res := mustRun(t, env, "names")
	require.ElementsMatch(t, rangeSlice(10), got.Values())
	op, ok := res.Operator("small")
	require.True(t, ok)
	require.Equal(t, "small-uid", op.UID)
	require.Equal(t, int64(10), op.RecordsOut)
	_, ok = res.Operator("Filter")
	require.False(t, ok)
}

func TestTimestampsFlowThroughOperators(t *testing.T) {
	env := newEnv(1)
	src := strom.AssignTimestamps(strom.FromSlice(env, rangeSlice(50)),
		strom.Monotonous[int]().WithTimestamps(func(v int) int64 { return int64(v) * 10 }))
	flat := strom.FlatMap(strom.Map(src, func(v int) int { return v + 1 }), func(v int, out strom.Collector[int]) {
		out.Collect(v)
		out.Collect(v)
	})
	got := strom.Collect(flat)
	mustRun(t, env, "timestamps")
	for i, ts := range got.Timestamps() {
		require.Equal(t, int64(i/2)*10, ts, "Map and FlatMap keep the input's timestamp")
	}
	// Without timestamps, records carry NoTimestamp.
	env = newEnv(1)
	plain := strom.Collect(strom.FromElements(env, 1, 2))
	mustRun(t, env, "no timestamps")
	require.Equal(t, []int64{strom.NoTimestamp, strom.NoTimestamp}, plain.Timestamps())
}

func TestUnion(t *testing.T) {
	for _, p := range []int{1, 2} {
		env := newEnv(p)
		a := strom.FromSlice(env, []int{1, 2, 3})
		b := strom.Map(strom.FromSlice(env, []int{10, 20}), func(v int) int { return v })
		c := strom.FromElements(env, 100)
		u := strom.Map(strom.Union(a, b, c), func(v int) int { return v + 1 })
		got := strom.Collect(u)
		self := strom.Collect(strom.Union(c, c))
		mustRun(t, env, "union")
		require.ElementsMatch(t, []int{2, 3, 4, 11, 21, 101}, got.Values())
		require.Equal(t, []int{100, 100}, self.Values(), "a stream unioned with itself is read twice")
	}
}

func TestRebalanceSpreadsEvenly(t *testing.T) {
	env := newEnv(4)
	src := strom.FromSlice(env, rangeSlice(400)).Parallelism(1)
	_, got := collectBySubtask(strom.Rebalance(src))
	mustRun(t, env, "rebalance")
	perSubtask := map[int][]int{}
	for _, r := range got() {
		perSubtask[r.Subtask] = append(perSubtask[r.Subtask], r.V)
	}
	require.Len(t, perSubtask, 4)
	var all []int
	for sub, vs := range perSubtask {
		require.Len(t, vs, 100, "subtask %d", sub)
		all = append(all, vs...)
	}
	require.ElementsMatch(t, rangeSlice(400), all)
}

func TestBroadcastReachesEverySubtask(t *testing.T) {
	env := newEnv(3)
	src := strom.FromSlice(env, rangeSlice(50)).Parallelism(1)
	_, got := collectBySubtask(strom.Broadcast(src))
	mustRun(t, env, "broadcast")
	perSubtask := map[int][]int{}
	for _, r := range got() {
		perSubtask[r.Subtask] = append(perSubtask[r.Subtask], r.V)
	}
	require.Len(t, perSubtask, 3)
	for sub, vs := range perSubtask {
		require.Equal(t, rangeSlice(50), vs, "subtask %d gets every record, in order", sub)
	}
}

func TestKeyByRoutesEachKeyToOneSubtask(t *testing.T) {
	env := newEnv(4)
	keyed := strom.KeyBy(strom.FromSlice(env, rangeSlice(2000)), func(v int) int { return v % 37 })
	_, got := collectBySubtask(strom.Reduce(keyed, func(a, b int) int { return b }))
	mustRun(t, env, "keyby")
	owner := map[int]int{}
	for _, r := range got() {
		k := r.V % 37
		if o, ok := owner[k]; ok {
			require.Equal(t, o, r.Subtask, "key %d reached two subtasks", k)
		}
		owner[k] = r.Subtask
	}
	require.Len(t, owner, 37)
}

// event is the record of the parallelism-equivalence pipeline.
type event struct {
	User  int64
	Ts    int64
	Value int64
}

type userTotal struct {
	User, WindowEnd, Sum, Count, Max int64
}

type windowAgg struct{ Sum, Count, Max int64 }

// sessionize aggregates, per user and second of event time, the sum, count
// and max of the values in map state, and emits them when the watermark
// passes the second's end. Every field of the output depends only on the
// records of that user and second, so it is the same at any parallelism.
type sessionize struct {
	windows state.MapState[int64, windowAgg]
}

func (f *sessionize) Open(ctx *strom.KeyedContext[int64, userTotal]) error {
	var err error
	f.windows, err = state.GetMap(ctx, state.MapDescriptor[int64, windowAgg]{Name: "windows"})
	return err
}

func (f *sessionize) ProcessElement(ctx *strom.KeyedContext[int64, userTotal], e event) error {
	end := (e.Ts/1000+1)*1000 - 1
	if end <= ctx.CurrentWatermark() {
		return fmt.Errorf("late record %+v at watermark %d", e, ctx.CurrentWatermark())
	}
	a, _ := f.windows.Get(end)
	f.windows.Put(end, windowAgg{Sum: a.Sum + e.Value, Count: a.Count + 1, Max: max(a.Max, e.Value)})
	ctx.RegisterEventTimeTimer(end)
	return nil
}

func (f *sessionize) OnTimer(ctx *strom.KeyedContext[int64, userTotal], ts int64) error {
	a, ok := f.windows.Get(ts)
	if !ok {
		return fmt.Errorf("timer %d without a window", ts)
	}
	f.windows.Remove(ts)
	ctx.Collect(userTotal{User: ctx.Key(), WindowEnd: ts, Sum: a.Sum, Count: a.Count, Max: a.Max})
	return nil
}

func equivalencePipeline(p int) ([]userTotal, []int64) {
	env := newEnv(p, func(c *strom.Config) { c.AutoWatermarkInterval = time.Millisecond })
	gen := datagen.FromGenerator(env, func(i int64) event {
		return event{User: (i * 7919) % 53, Ts: i * 3, Value: i % 101}
	}, datagen.Count(20000))
	withTs := strom.AssignTimestamps(gen, strom.Monotonous[event]().WithTimestamps(func(e event) int64 { return e.Ts }))
	odd := strom.Filter(strom.Rebalance(withTs), func(e event) bool { return e.Value%5 != 0 })
	totals := strom.KeyedProcess(strom.KeyBy(odd, func(e event) int64 { return e.User }),
		func() strom.KeyedProcessFunction[int64, event, userTotal] { return &sessionize{} })
	perWindow := strom.Reduce(strom.KeyBy(strom.Map(totals, func(u userTotal) [2]int64 { return [2]int64{u.WindowEnd, u.Sum} }),
		func(x [2]int64) int64 { return x[0] }), func(a, b [2]int64) [2]int64 { return [2]int64{a[0], a[1] + b[1]} })
	out := strom.Collect(totals)
	windows := strom.Collect(perWindow)
	if _, err := env.Execute(context.Background(), fmt.Sprintf("equivalence p=%d", p)); err != nil {
		panic(err)
	}
	got := out.Values()
	slices.SortFunc(got, func(a, b userTotal) int {
		return cmp.Or(cmp.Compare(a.User, b.User), cmp.Compare(a.WindowEnd, b.WindowEnd))
	})
	final := map[int64]int64{}
	for _, w := range windows.Values() {
		final[w[0]] = max(final[w[0]], w[1])
	}
	var sums []int64
	for _, end := range slices.Sorted(mapsKeys(final)) {
		sums = append(sums, end, final[end])
	}
	return got, sums
}

func mapsKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// The same keyed pipeline gives the same results at parallelism 1, 2 and 4.
func TestSameResultsAtParallelism124(t *testing.T) {
	base, baseWindows := equivalencePipeline(1)
	require.NotEmpty(t, base)
	var total int64
	for _, u := range base {
		total += u.Sum
	}
	var want int64
	for i := range int64(20000) {
		if i%101%5 != 0 {
			want += i % 101
		}
	}
	require.Equal(t, want, total, "every record is counted once")
	for _, p := range []int{2, 4} {
		got, windows := equivalencePipeline(p)
		require.Equal(t, base, got, "parallelism %d", p)
		require.Equal(t, baseWindows, windows, "parallelism %d", p)
	}
}

func TestJobClientStatesAndMetrics(t *testing.T) {
	env := newEnv(2)
	gen := datagen.FromGenerator(env, func(i int64) int64 { return i }, datagen.RatePerSecond(2000))
	strom.Discard(strom.Map(strom.Rebalance(gen), func(v int64) int64 { return v }))
	jc, err := env.ExecuteAsync(context.Background(), "client")
	require.NoError(t, err)
	defer jc.Close()
	require.Len(t, jc.JobID(), 32)
	require.Eventually(t, func() bool { return jc.Status() == "RUNNING" && jc.TaskStates()["RUNNING"] == 4 }, 10*time.Second, time.Millisecond,
		"two vertices (source, and rebalance→map→discard) × 2 subtasks run")
	require.Eventually(t, func() bool {
		for _, m := range jc.Metrics() {
			if m.Name == "Discard" && m.RecordsIn > 0 {
				return true
			}
		}
		return false
	}, 10*time.Second, time.Millisecond, "metrics are visible while the job runs")
	jc.Cancel()
	<-jc.Done()
	res, err := jc.Wait(context.Background())
	require.ErrorIs(t, err, strom.ErrJobCanceled)
	require.Equal(t, "CANCELED", jc.Status())
	require.Equal(t, map[string]int{"CANCELED": 4}, jc.TaskStates())
	src, ok := res.Operator("Generator Source")
	require.True(t, ok)
	require.Positive(t, src.RecordsOut)
	jc.Close()
	jc.Close() // idempotent
}

func TestFinishedJobTaskStates(t *testing.T) {
	env := newEnv(2)
	strom.Discard(strom.FromSlice(env, rangeSlice(10)))
	jc, err := env.ExecuteAsync(context.Background(), "states")
	require.NoError(t, err)
	defer jc.Close()
	res, err := jc.Wait(context.Background())
	require.NoError(t, err)
	require.Equal(t, "FINISHED", jc.Status())
	require.Equal(t, map[string]int{"FINISHED": 2}, jc.TaskStates())
	require.Equal(t, "states", res.JobName)
	require.Equal(t, jc.JobID(), res.JobID)
	require.Positive(t, res.Duration)
}

func TestEnvironmentReuse(t *testing.T) {
	env := newEnv(1)
	a := strom.Collect(strom.FromElements(env, 1, 2, 3))
	mustRun(t, env, "first")
	b := strom.Collect(strom.FromElements(env, 4))
	mustRun(t, env, "second")
	require.Equal(t, []int{1, 2, 3}, a.Values())
	require.Equal(t, []int{4}, b.Values(), "Execute consumes the graph: the second job runs only the new pipeline")
	require.Equal(t, 1, env.Parallelism())
	env.SetParallelism(3).SetMaxParallelism(64)
	require.Equal(t, 3, env.Config().Parallelism)
	require.Equal(t, 64, env.Config().MaxParallelism)
}
