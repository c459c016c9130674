package strom_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/connector/file"
	"github.com/strom-dev/strom/window"
)

// swRec is a record of a split: its key and event time.
type swRec struct {
	Split string
	Key   int
	TS    int64
}

// interleavedSource has named splits with fixed records; one reader
// registers all of its splits at its first Read, reads them in turn, batch
// records of one split per Read (as a Kafka reader interleaves partitions),
// each through the split's own output, and releases a split once read.
type interleavedSource struct {
	names []string
	recs  map[string][]swRec
	batch int
}

func (s interleavedSource) Bounded() bool { return true }
func (s interleavedSource) Splits(int) ([]strom.Split, error) {
	out := make([]strom.Split, len(s.names))
	for i, n := range s.names {
		out[i] = split(n)
	}
	return out, nil
}
func (s interleavedSource) NewReader(_ strom.SourceContext, splits []strom.Split) (strom.SourceReader[swRec], error) {
	r := &interleavedReader{src: s}
	for _, sp := range splits {
		r.todo = append(r.todo, sp.SplitID())
	}
	r.pos = make([]int, len(r.todo))
	return r, nil
}

type interleavedReader struct {
	src     interleavedSource
	todo    []string
	pos     []int
	next    int
	started bool
}

func (r *interleavedReader) Read(out strom.SourceOutput[swRec]) (strom.ReadStatus, error) {
	if !r.started {
		// Every split the reader has holds back the watermark from the
		// start, before its first record.
		for _, id := range r.todo {
			out.ForSplit(id)
		}
		r.started = true
	}
	if len(r.todo) == 0 {
		return strom.ReadStatus{Done: true}, nil
	}
	r.next %= len(r.todo)
	id := r.todo[r.next]
	recs := r.src.recs[id]
	so := out.ForSplit(id)
	end := min(r.pos[r.next]+r.src.batch, len(recs))
	for _, v := range recs[r.pos[r.next]:end] {
		so.CollectAt(v, v.TS)
	}
	r.pos[r.next] = end
	if end == len(recs) {
		out.ReleaseSplit(id)
		r.todo = slices.Delete(r.todo, r.next, r.next+1)
		r.pos = slices.Delete(r.pos, r.next, r.next+1)
		return strom.ReadStatus{}, nil
	}
	r.next++
	return strom.ReadStatus{}, nil
}
func (r *interleavedReader) Snapshot() ([]strom.Split, error) { return nil, nil }
func (r *interleavedReader) Close() error                     { return nil }

// minus1 is a punctuated generator: watermark ts−1 at every record, so the
// watermark moves deterministically with the records.
type minus1 struct{}

func (minus1) OnEvent(ts int64, out strom.WatermarkOutput) { out.EmitWatermark(ts - 1) }
func (minus1) OnPeriodicEmit(strom.WatermarkOutput)        {}

func punctuatedMinus1[T any](ts func(T) int64) strom.WatermarkStrategy[T] {
	return strom.CustomWatermarks[T](func() strom.WatermarkGenerator { return minus1{} }).WithTimestamps(ts)
}

type winCount struct {
	Key int
	End int64 // the window's max timestamp
	N   int
}

// countPerSecond counts records per key in 1 s tumbling event-time windows;
// late records go to the returned side output.
func countPerSecond[T any](s strom.Stream[T], key func(T) int) (*strom.Collected[winCount], *strom.Collected[winCount]) {
	late := strom.NewOutputTag[winCount]("late")
	ones := strom.Map(s, func(v T) winCount { return winCount{Key: key(v), N: 1} })
	counts := strom.WindowReduce(
		strom.Window(strom.KeyBy(ones, func(c winCount) int { return c.Key }), window.Tumbling(time.Second)).SideOutputLateData(late),
		func(a, b winCount) winCount { return winCount{Key: a.Key, N: a.N + b.N} })
	return strom.Collect(counts), strom.Collect(strom.SideOutput(counts, late))
}

// results gives window counts their window (from the result timestamp),
// sorted.
func results(c *strom.Collected[winCount]) []winCount {
	vals, tss := c.Values(), c.Timestamps()
	for i := range vals {
		vals[i].End = tss[i]
	}
	slices.SortFunc(vals, cmpWinCount)
	return vals
}

func cmpWinCount(a, b winCount) int {
	if a.Key != b.Key {
		return a.Key - b.Key
	}
	return int(a.End - b.End)
}

// oracleCounts counts (key, 1 s window) directly.
func oracleCounts(keys []int, tss []int64) []winCount {
	m := map[[2]int64]int{}
	for i, k := range keys {
		end := tss[i] - tss[i]%1000 + 999
		m[[2]int64{int64(k), end}]++
	}
	out := make([]winCount, 0, len(m))
	for kw, n := range m {
		out = append(out, winCount{Key: int(kw[0]), End: kw[1], N: n})
	}
	slices.SortFunc(out, cmpWinCount)
	return out
}

// twoSpeedSource: splits named A… are far ahead in event time (from
// 1 000 000 ms) of those named B… (from 0); each has n records, 7 ms apart.
// Listed A0, A1, B0, B1, at parallelism 2 each reader has one A and one B
// split, and every reader reads an A batch first.
func twoSpeedSource(n int, names ...string) interleavedSource {
	src := interleavedSource{names: names, recs: map[string][]swRec{}, batch: 100}
	for si, name := range src.names {
		base := int64(0)
		if name[0] == 'A' {
			base = 1_000_000
		}
		for i := range n {
			src.recs[name] = append(src.recs[name], swRec{Split: name, Key: (i + si) % 3, TS: base + int64(si)*13 + int64(i)*7})
		}
	}
	return src
}

func (s interleavedSource) all() (keys []int, tss []int64) {
	for _, n := range s.names {
		for _, r := range s.recs[n] {
			keys = append(keys, r.Key)
			tss = append(tss, r.TS)
		}
	}
	return keys, tss
}

// With per-split watermarks no record of the slow splits is late, however
// the reader interleaves them with the fast ones: window counts equal the
// oracle's and the late side output is empty — for a punctuated and a
// periodic generator, at parallelism 1 and 2.
func TestPerSplitWatermarksKeepSlowSplitOnTime(t *testing.T) {
	src := twoSpeedSource(2000, "A0", "A1", "B0", "B1")
	keys, tss := src.all()
	want := oracleCounts(keys, tss)
	strategies := map[string]strom.WatermarkStrategy[swRec]{
		"punctuated": punctuatedMinus1(func(r swRec) int64 { return r.TS }),
		"periodic":   strom.BoundedOutOfOrderness[swRec](0).WithTimestamps(func(r swRec) int64 { return r.TS }),
	}
	for name, st := range strategies {
		for _, p := range []int{1, 2} {
			env := newEnv(p, func(c *strom.Config) { c.AutoWatermarkInterval = time.Millisecond })
			s := strom.FromSourceWithWatermarks(env, src, st, "Two-speed Source")
			counts, late := countPerSecond(s, func(r swRec) int { return r.Key })
			mustRun(t, env, "per-split "+name)
			if late.Len() > 0 {
				lt := late.Timestamps()
				t.Logf("late %d: first %v last %v", len(lt), lt[:5], lt[len(lt)-5:])
			}
			require.Zero(t, late.Len(), "%s p=%d: no record is late", name, p)
			require.Equal(t, want, results(counts), "%s p=%d", name, p)
		}
	}
}

// The same job with AssignTimestamps after the source (one generator per
// subtask) makes every record of the slow split late: the fast split's
// first batch has moved the watermark past all of them. So the test above
// is not vacuous. (One fast and one slow split, at parallelism 1: two fast
// splits interleaved would make some of each other's records late too, and
// at parallelism 2 the window's watermark is the minimum over two readers
// racing, so how many are late depends on timing.)
func TestAssignTimestampsAfterSourceMakesSlowSplitLate(t *testing.T) {
	src := twoSpeedSource(2000, "A0", "B0")
	env := newEnv(1)
	s := strom.AssignTimestamps(strom.FromSource(env, src, "Two-speed Source"),
		punctuatedMinus1(func(r swRec) int64 { return r.TS }))
	counts, late := countPerSecond(s, func(r swRec) int { return r.Key })
	mustRun(t, env, "assign after source")

	var fastKeys, slowKeys []int
	var fastTS []int64
	for _, n := range src.names {
		for _, r := range src.recs[n] {
			if n[0] == 'A' {
				fastKeys, fastTS = append(fastKeys, r.Key), append(fastTS, r.TS)
			} else {
				slowKeys = append(slowKeys, r.Key)
			}
		}
	}
	require.Equal(t, oracleCounts(fastKeys, fastTS), results(counts), "only the fast splits are counted")
	lateKeys := make([]int, 0, late.Len())
	for _, c := range late.Values() {
		lateKeys = append(lateKeys, c.Key)
	}
	slices.Sort(lateKeys)
	slices.Sort(slowKeys)
	require.Equal(t, slowKeys, lateKeys, "every record of the slow splits is late")
}

// idleSplitSource: split "busy" gets 10 records per Read (key i mod 2, at
// i·10 ms), split "silent" none. The reader polls every 2 ms until a window
// result has been seen or the deadline passes, then ends, and records
// whether a window fired while it was still reading.
type idleSplitSource struct {
	fired    *atomic.Bool // set by the window's sink
	firedIn  *atomic.Bool // set by the reader
	emitted  *atomic.Int64
	deadline time.Duration
}

func (s idleSplitSource) Bounded() bool { return true }
func (s idleSplitSource) Splits(int) ([]strom.Split, error) {
	return []strom.Split{split("busy"), split("silent")}, nil
}
func (s idleSplitSource) NewReader(ctx strom.SourceContext, _ []strom.Split) (strom.SourceReader[swRec], error) {
	return &idleSplitReader{src: s, now: ctx.Now, until: ctx.Now().Add(s.deadline)}, nil
}

type idleSplitReader struct {
	src   idleSplitSource
	now   func() time.Time
	until time.Time
	n     int64
}

func (r *idleSplitReader) Read(out strom.SourceOutput[swRec]) (strom.ReadStatus, error) {
	if r.src.fired.Load() {
		r.src.firedIn.Store(true)
		return strom.ReadStatus{Done: true}, nil
	}
	if r.now().After(r.until) {
		return strom.ReadStatus{Done: true}, nil
	}
	busy := out.ForSplit("busy")
	out.ForSplit("silent") // assigned, but it never has a record
	for range 10 {
		busy.CollectAt(swRec{Split: "busy", Key: int(r.n % 2), TS: r.n * 10}, r.n*10)
		r.n++
	}
	r.src.emitted.Store(r.n)
	return strom.ReadStatus{WakeAt: r.now().Add(2 * time.Millisecond)}, nil
}
func (r *idleSplitReader) Snapshot() ([]strom.Split, error) { return nil, nil }
func (r *idleSplitReader) Close() error                     { return nil }

// An idle split does not hold the watermark back: with an idle timeout the
// windows of the busy split fire while the source still runs; without one
// the silent split holds every window until the end of input.
func TestIdleSplitDoesNotHoldWatermark(t *testing.T) {
	for _, tc := range []struct {
		idle     time.Duration
		deadline time.Duration
		fires    bool
	}{
		{50 * time.Millisecond, 60 * time.Second, true},
		{0, 300 * time.Millisecond, false},
	} {
		for _, p := range []int{1, 2} {
			env := newEnv(p, func(c *strom.Config) { c.AutoWatermarkInterval = 5 * time.Millisecond })
			src := idleSplitSource{fired: new(atomic.Bool), firedIn: new(atomic.Bool), emitted: new(atomic.Int64), deadline: tc.deadline}
			st := strom.BoundedOutOfOrderness[swRec](0).WithIdleness(tc.idle)
			s := strom.FromSourceWithWatermarks(env, src, st, "Idle-split Source").Parallelism(1)
			keyed := strom.KeyBy(strom.Map(s, func(r swRec) winCount { return winCount{Key: r.Key, N: 1} }), func(c winCount) int { return c.Key })
			counts := strom.WindowReduce(strom.Window(keyed, window.Tumbling(time.Second)),
				func(a, b winCount) winCount { return winCount{Key: a.Key, N: a.N + b.N} })
			got := strom.Collect(counts)
			strom.SinkFunc(counts, func(winCount) error { src.fired.Store(true); return nil })
			mustRun(t, env, "idle split")
			require.Equal(t, tc.fires, src.firedIn.Load(), "idle=%v p=%d: a window fired before the end of input", tc.idle, p)
			var keys []int
			var tss []int64
			for i := range src.emitted.Load() {
				keys, tss = append(keys, int(i%2)), append(tss, i*10)
			}
			require.Equal(t, oracleCounts(keys, tss), results(got))
		}
	}
}

// A reader that collects for a split after releasing it fails the job,
// naming the source and the split.
type releaseThenUse struct{}

func (releaseThenUse) Bounded() bool                     { return true }
func (releaseThenUse) Splits(int) ([]strom.Split, error) { return []strom.Split{split("a")}, nil }
func (releaseThenUse) Snapshot() ([]strom.Split, error)  { return nil, nil }
func (releaseThenUse) Close() error                      { return nil }
func (r releaseThenUse) NewReader(strom.SourceContext, []strom.Split) (strom.SourceReader[int], error) {
	return r, nil
}
func (releaseThenUse) Read(out strom.SourceOutput[int]) (strom.ReadStatus, error) {
	a := out.ForSplit("a")
	a.CollectAt(1, 1)
	out.ReleaseSplit("a")
	a.CollectAt(2, 2)
	return strom.ReadStatus{Done: true}, nil
}

func TestSplitOutputUsedAfterReleaseFails(t *testing.T) {
	env := newEnv(1)
	strom.Discard(strom.FromSourceWithWatermarks[int](env, releaseThenUse{}, strom.Monotonous[int](), "Careless"))
	_, err := run(t, env, "use after release")
	requireTaskFailure(t, err, "use after release", "Careless")
	require.ErrorContains(t, err, `source "Careless": record collected for split "a" after ReleaseSplit`)

	env = newEnv(1)
	strom.Discard(strom.FromSourceWithWatermarks(env, releaseThenUse{}, strom.Monotonous[int]().WithIdleness(-time.Second), "Careless"))
	_, err = run(t, env, "negative idleness")
	require.ErrorContains(t, err, "idle timeout -1s must not be negative")
}

// A directory of files with different time ranges, read with per-split
// watermarks: files are read one after another, later files earlier in
// event time, and no line is late; with AssignTimestamps after the source
// every line of a file read after a later one is.
func TestFileSourcePerSplitWatermarks(t *testing.T) {
	dir := t.TempDir()
	// Read in name order: part-0 (from 300 s), part-1 (200 s), part-2 (0 s),
	// part-3 (100 s); at parallelism 2 subtask 0 reads 0 then 2, subtask 1
	// reads 1 then 3.
	bases := []int64{300_000, 200_000, 0, 100_000}
	var keys []int
	var tss []int64
	for f, base := range bases {
		var b strings.Builder
		for i := range 1500 {
			k, ts := (i*7+f)%4, base+int64(i)*9
			keys, tss = append(keys, k), append(tss, ts)
			fmt.Fprintf(&b, "%d,%d\n", k, ts)
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("part-%d", f)), []byte(b.String()), 0o644))
	}
	want := oracleCounts(keys, tss)
	parse := func(line string) (int, int64) {
		k, ts, _ := strings.Cut(line, ",")
		kn, err := strconv.Atoi(k)
		require.NoError(t, err)
		tn, err := strconv.ParseInt(ts, 10, 64)
		require.NoError(t, err)
		return kn, tn
	}
	tsOf := func(line string) int64 { _, ts := parse(line); return ts }
	keyOf := func(line string) int { k, _ := parse(line); return k }

	for name, st := range map[string]strom.WatermarkStrategy[string]{
		"periodic":   strom.BoundedOutOfOrderness[string](0).WithTimestamps(tsOf),
		"punctuated": punctuatedMinus1(tsOf),
	} {
		for _, p := range []int{1, 2} {
			env := newEnv(p, func(c *strom.Config) { c.AutoWatermarkInterval = time.Millisecond })
			lines := strom.FromSourceWithWatermarks(env, file.FileSource(dir), st, "Files")
			counts, late := countPerSecond(lines, keyOf)
			mustRun(t, env, "file per split")
			require.Zero(t, late.Len(), "%s p=%d", name, p)
			require.Equal(t, want, results(counts), "%s p=%d", name, p)
		}
	}

	env := newEnv(1)
	lines := strom.AssignTimestamps(file.FromFile(env, dir), punctuatedMinus1(tsOf))
	counts, late := countPerSecond(lines, keyOf)
	mustRun(t, env, "file assign after source")
	require.Equal(t, oracleCounts(keys[:1500], tss[:1500]), results(counts), "only the first file is on time")
	require.Equal(t, 4500, late.Len(), "the three files read after it are late")
}
