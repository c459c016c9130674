package strom_test

import (
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/state"
)

type reading struct {
	Sensor string
	Value  int
}

type sensorSummary struct {
	Sensor   string
	Count    int
	Values   []int
	Distinct map[int]int
	Max      int
	Mean     float64
}

type avgAcc struct{ Sum, N int }

var (
	countDesc = state.ValueDescriptor[int]{Name: "count"}
	valuesDes = state.ListDescriptor[int]{Name: "values"}
	distDesc  = state.MapDescriptor[int, int]{Name: "distinct"}
	maxDesc   = state.ReducingDescriptor[int]{Name: "max", Reduce: func(a, b int) int { return max(a, b) }}
	meanDesc  = state.AggregatingDescriptor[int, avgAcc, float64]{Name: "mean", Agg: state.Aggregator[int, avgAcc, float64]{
		Create: func() avgAcc { return avgAcc{} },
		Add:    func(a avgAcc, v int) avgAcc { return avgAcc{a.Sum + v, a.N + 1} },
		Result: func(a avgAcc) float64 { return float64(a.Sum) / float64(a.N) },
	}}
)

// summarize keeps every kind of keyed state per sensor and emits a summary
// per sensor at the end of input (an event-time timer that only the final
// watermark reaches). It gets its state on every call, as KeyedProcessFunc users
// do.
func summarize(ctx *strom.KeyedContext[string, sensorSummary], r reading) error {
	count, err := state.GetValue(ctx, countDesc)
	if err != nil {
		return err
	}
	values, err := state.GetList(ctx, valuesDes)
	if err != nil {
		return err
	}
	dist, err := state.GetMap(ctx, distDesc)
	if err != nil {
		return err
	}
	mx, err := state.GetReducing(ctx, maxDesc)
	if err != nil {
		return err
	}
	mean, err := state.GetAggregating(ctx, meanDesc)
	if err != nil {
		return err
	}
	n, _ := count.Value()
	count.Update(n + 1)
	values.Add(r.Value)
	d, _ := dist.Get(r.Value)
	dist.Put(r.Value, d+1)
	mx.Add(r.Value)
	mean.Add(r.Value)
	ctx.RegisterEventTimeTimer(1 << 40)
	return nil
}

type summarizer struct{}

func (summarizer) ProcessElement(ctx *strom.KeyedContext[string, sensorSummary], r reading) error {
	return summarize(ctx, r)
}

func (summarizer) OnTimer(ctx *strom.KeyedContext[string, sensorSummary], ts int64) error {
	count, _ := state.GetValue(ctx, countDesc)
	values, _ := state.GetList(ctx, valuesDes)
	dist, _ := state.GetMap(ctx, distDesc)
	mx, _ := state.GetReducing(ctx, maxDesc)
	mean, _ := state.GetAggregating(ctx, meanDesc)
	n, _ := count.Value()
	m, _ := mx.Get()
	avg, _ := mean.Get()
	distinct := map[int]int{}
	for k, v := range dist.Entries() {
		distinct[k] = v
	}
	ctx.Collect(sensorSummary{Sensor: ctx.Key(), Count: n, Values: append([]int(nil), values.Get()...), Distinct: distinct, Max: m, Mean: avg})
	return nil
}

func TestKeyedStateKinds(t *testing.T) {
	var input []reading
	want := map[string]*sensorSummary{}
	for i := range 3000 {
		r := reading{Sensor: fmt.Sprintf("s%d", i%7), Value: (i * 31) % 17}
		input = append(input, r)
		s := want[r.Sensor]
		if s == nil {
			s = &sensorSummary{Sensor: r.Sensor, Distinct: map[int]int{}}
			want[r.Sensor] = s
		}
		s.Count++
		s.Values = append(s.Values, r.Value)
		s.Distinct[r.Value]++
		s.Max = max(s.Max, r.Value)
	}
	for _, s := range want {
		sum := 0
		for _, v := range s.Values {
			sum += v
		}
		s.Mean = float64(sum) / float64(s.Count)
	}
	for _, p := range []int{1, 3} {
		env := newEnv(p)
		// One source subtask, so each sensor's records arrive in input order.
		src := strom.FromSlice(env, input).Parallelism(1)
		out := strom.Collect(strom.KeyedProcess(strom.KeyBy(src, func(r reading) string { return r.Sensor }),
			func() strom.KeyedProcessFunction[string, reading, sensorSummary] { return summarizer{} }))
		mustRun(t, env, "state kinds")
		got := out.Values()
		require.Len(t, got, 7, "parallelism %d", p)
		for _, s := range got {
			require.Equal(t, *want[s.Sensor], s, "parallelism %d", p)
		}
	}
}

// KeyedProcessFunc with state got on each call behaves like KeyedProcess.
func TestProcessFuncCountsPerKey(t *testing.T) {
	env := newEnv(2)
	keyed := strom.KeyBy(strom.FromSlice(env, rangeSlice(1000)), func(v int) int { return v % 10 })
	out := strom.Collect(strom.KeyedProcessFunc(keyed, func(ctx *strom.KeyedContext[int, [2]int], v int) error {
		c, err := state.GetValue(ctx, state.ValueDescriptor[int]{Name: "c"})
		if err != nil {
			return err
		}
		n, _ := c.Value()
		c.Update(n + 1)
		ctx.Collect([2]int{ctx.Key(), n + 1})
		return nil
	}))
	mustRun(t, env, "count per key")
	final := map[int]int{}
	for _, kv := range out.Values() {
		final[kv[0]] = max(final[kv[0]], kv[1])
	}
	require.Len(t, final, 10)
	for k, n := range final {
		require.Equal(t, 100, n, "key %d", k)
	}
}

// expiring writes TTL'd state on a key's first record and reads it back on
// the key's second record, 20ms later: every kind of state has expired,
// while state without TTL and state read with a long TTL remain.
type expiring struct{}

type ttlReport struct {
	Key                                 int
	ValueOK, ListOK, MapOK, ReduceOK    bool
	AggOK, PlainOK, LongOK, ReadRefresh bool
}

var (
	ttl1ms    = state.TTL{TTL: time.Millisecond}
	ttlValue  = state.ValueDescriptor[int]{Name: "v", TTL: ttl1ms}
	ttlList   = state.ListDescriptor[int]{Name: "l", TTL: ttl1ms}
	ttlMap    = state.MapDescriptor[int, int]{Name: "m", TTL: ttl1ms}
	ttlReduce = state.ReducingDescriptor[int]{Name: "r", TTL: ttl1ms, Reduce: func(a, b int) int { return a + b }}
	ttlAgg    = state.AggregatingDescriptor[int, int, int]{Name: "a", TTL: ttl1ms, Agg: state.Aggregator[int, int, int]{
		Create: func() int { return 0 }, Add: func(a, v int) int { return a + v }, Result: func(a int) int { return a }}}
	plainDesc = state.ValueDescriptor[int]{Name: "plain"}
	longDesc  = state.ValueDescriptor[int]{Name: "long", TTL: state.TTL{TTL: time.Hour}}
)

func (expiring) ProcessElement(ctx *strom.KeyedContext[int, ttlReport], v int) error {
	val, err1 := state.GetValue(ctx, ttlValue)
	lst, err2 := state.GetList(ctx, ttlList)
	mp, err3 := state.GetMap(ctx, ttlMap)
	red, err4 := state.GetReducing(ctx, ttlReduce)
	agg, err5 := state.GetAggregating(ctx, ttlAgg)
	plain, err6 := state.GetValue(ctx, plainDesc)
	long, err7 := state.GetValue(ctx, longDesc)
	if err := errors.Join(err1, err2, err3, err4, err5, err6, err7); err != nil {
		return err
	}
	if _, seen := plain.Value(); !seen {
		val.Update(v)
		lst.Add(v)
		mp.Put(v, v)
		red.Add(v)
		agg.Add(v)
		plain.Update(v)
		long.Update(v)
		return nil
	}
	time.Sleep(20 * time.Millisecond) // 20 × the TTL
	r := ttlReport{Key: ctx.Key()}
	_, r.ValueOK = val.Value()
	r.ListOK = lst.Get() != nil
	r.MapOK = !mp.IsEmpty()
	_, r.ReduceOK = red.Get()
	_, r.AggOK = agg.Get()
	_, r.PlainOK = plain.Value()
	_, r.LongOK = long.Value()
	ctx.Collect(r)
	return nil
}

func TestStateTTLExpires(t *testing.T) {
	env := newEnv(2)
	// Keys 0..3, each twice: first write, then read.
	src := strom.FromSlice(env, []int{0, 1, 2, 3, 0, 1, 2, 3}).Parallelism(1)
	out := strom.Collect(strom.KeyedProcess(strom.KeyBy(src, func(v int) int { return v }),
		func() strom.KeyedProcessFunction[int, int, ttlReport] { return expiring{} }))
	mustRun(t, env, "ttl")
	got := out.Values()
	sort.Slice(got, func(i, j int) bool { return got[i].Key < got[j].Key })
	require.Len(t, got, 4)
	for _, r := range got {
		require.Equal(t, ttlReport{Key: r.Key, PlainOK: true, LongOK: true}, r, "only state without a short TTL survives")
	}
}
