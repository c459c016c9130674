package window

import (
	"fmt"
	"math"
	"time"
)

// NoTimestamp is the timestamp of a record without one (math.MinInt64, the
// same value as strom.NoTimestamp): records of processing-time windows
// may have none.
const NoTimestamp = math.MinInt64

// Evictor removes elements from a window before and after the window
// function runs (Flink's Evictor). A windowed stream with an evictor keeps
// every element of a window (no incremental pre-aggregation, even for
// WindowReduce and WindowAggregate): when the window fires, EvictBefore
// sees all of them, the window function gets what remains, and EvictAfter
// sees that again; what an evictor removes is gone for later firings of the
// window too.
//
// Evictors run on the operator's task goroutine with the window's key
// current. One evictor value serves every key and window of all subtasks:
// it must not keep per-window data in fields. An evictor may also have a
// Validate() error method, which the window operator calls when the job is
// built.
type Evictor interface {
	// EvictBefore is called before the window function with the window's
	// elements in arrival order.
	EvictBefore(elems Elements, w TimeWindow, ctx EvictorContext)
	// EvictAfter is called after the window function with the elements
	// that EvictBefore left.
	EvictAfter(elems Elements, w TimeWindow, ctx EvictorContext)
}

// EvictorContext is what an evictor may ask the window operator.
type EvictorContext interface {
	// CurrentWatermark is the operator's event time.
	CurrentWatermark() int64
	// CurrentProcessingTime is the wall clock in epoch ms.
	CurrentProcessingTime() int64
}

// Elements are a window's elements, in arrival order, with their
// timestamps. An evictor marks elements with Evict; they are removed when
// the evictor returns, so indexes stay stable during the call. Evictors
// that look at the records themselves use Values.
type Elements interface {
	// Len is the number of elements, evicted ones included.
	Len() int
	// Timestamp is element i's event time, NoTimestamp if it has none.
	Timestamp(i int) int64
	// Evict marks element i for removal.
	Evict(i int)
	// Evicted reports whether element i is marked for removal.
	Evicted(i int) bool
}

// Values is implemented by the Elements of a window of records of type T:
// typed access for evictors that look at the records (DeltaEvictor).
type Values[T any] interface {
	Elements
	// Value is element i.
	Value(i int) T
}

// CountEviction keeps at most a number of elements in a window: the
// latest arrivals (Flink's CountEvictor). Make it with CountEvictor.
type CountEviction struct {
	n     int
	after bool
}

// CountEvictor keeps the last n elements of a window (in arrival order)
// and evicts the others before the window function runs.
func CountEvictor(n int) CountEviction { return CountEviction{n: n} }

// After evicts after the window function instead: the function sees every
// element, later firings only the last n.
func (e CountEviction) After() CountEviction {
	e.after = true
	return e
}

// Validate reports a negative count.
func (e CountEviction) Validate() error {
	if e.n < 0 {
		return fmt.Errorf("window: CountEvictor needs a count of at least 0, got %d", e.n)
	}
	return nil
}

// EvictBefore implements Evictor.
func (e CountEviction) EvictBefore(elems Elements, _ TimeWindow, _ EvictorContext) {
	if !e.after {
		e.evict(elems)
	}
}

// EvictAfter implements Evictor.
func (e CountEviction) EvictAfter(elems Elements, _ TimeWindow, _ EvictorContext) {
	if e.after {
		e.evict(elems)
	}
}

func (e CountEviction) evict(elems Elements) {
	for i := range elems.Len() - e.n {
		elems.Evict(i)
	}
}

func (e CountEviction) String() string {
	return fmt.Sprintf("CountEvictor(%d, after=%t)", e.n, e.after)
}

// TimeEviction keeps the elements of a window that are at most a duration
// older than its newest element (Flink's TimeEvictor). Make it with
// TimeEvictor.
type TimeEviction struct {
	keep  int64
	after bool
	bad   error
}

// TimeEvictor evicts, before the window function runs, the elements whose
// timestamp is keep or more older than the window's newest timestamp: of
// the elements with timestamps ts, it keeps those with
// ts > max(ts) − keep. Elements without timestamps (processing-time
// windows of records without event time) are kept: it evicts nothing when
// the first element has no timestamp, as in Flink.
func TimeEvictor(keep time.Duration) TimeEviction {
	var e TimeEviction
	e.keep = wholeMillis("TimeEvictor duration", keep, &e.bad)
	return e
}

// After evicts after the window function instead.
func (e TimeEviction) After() TimeEviction {
	e.after = true
	return e
}

// Validate reports a duration below 1 ms.
func (e TimeEviction) Validate() error {
	if e.bad != nil {
		return e.bad
	}
	if e.keep < 1 {
		return fmt.Errorf("window: TimeEvictor needs a duration of at least 1ms, got %dms", e.keep)
	}
	return nil
}

// EvictBefore implements Evictor.
func (e TimeEviction) EvictBefore(elems Elements, _ TimeWindow, _ EvictorContext) {
	if !e.after {
		e.evict(elems)
	}
}

// EvictAfter implements Evictor.
func (e TimeEviction) EvictAfter(elems Elements, _ TimeWindow, _ EvictorContext) {
	if e.after {
		e.evict(elems)
	}
}

func (e TimeEviction) evict(elems Elements) {
	n := elems.Len()
	if n == 0 || elems.Timestamp(0) == NoTimestamp {
		return
	}
	newest := int64(math.MinInt64)
	for i := range n {
		newest = max(newest, elems.Timestamp(i))
	}
	cutoff := newest - e.keep
	for i := range n {
		if ts := elems.Timestamp(i); ts != NoTimestamp && ts <= cutoff {
			elems.Evict(i)
		}
	}
}

func (e TimeEviction) String() string {
	return fmt.Sprintf("TimeEvictor(%d, after=%t)", e.keep, e.after)
}

// DeltaEviction evicts the elements of a window that differ too much from
// its last element (Flink's DeltaEvictor). Make it with DeltaEvictor.
type DeltaEviction[T any] struct {
	threshold float64
	delta     func(a, b T) float64
	after     bool
}

// DeltaEvictor evicts, before the window function runs, every element e
// with delta(e, last) >= threshold, where last is the window's last
// element in arrival order. It works on windows of records of type T only;
// on others it fails the job.
func DeltaEvictor[T any](threshold float64, delta func(a, b T) float64) DeltaEviction[T] {
	return DeltaEviction[T]{threshold: threshold, delta: delta}
}

// After evicts after the window function instead.
func (e DeltaEviction[T]) After() DeltaEviction[T] {
	e.after = true
	return e
}

// Validate reports a missing delta function.
func (e DeltaEviction[T]) Validate() error {
	if e.delta == nil {
		return fmt.Errorf("window: DeltaEvictor needs a delta function")
	}
	return nil
}

// EvictBefore implements Evictor.
func (e DeltaEviction[T]) EvictBefore(elems Elements, _ TimeWindow, _ EvictorContext) {
	if !e.after {
		e.evict(elems)
	}
}

// EvictAfter implements Evictor.
func (e DeltaEviction[T]) EvictAfter(elems Elements, _ TimeWindow, _ EvictorContext) {
	if e.after {
		e.evict(elems)
	}
}

func (e DeltaEviction[T]) evict(elems Elements) {
	vs, ok := elems.(Values[T])
	if !ok {
		var zero T
		panic(fmt.Errorf("window: DeltaEvictor of %T records used on a window of other records (%T)", zero, elems))
	}
	n := vs.Len()
	if n == 0 {
		return
	}
	last := vs.Value(n - 1)
	for i := range n {
		if e.delta(vs.Value(i), last) >= e.threshold {
			vs.Evict(i)
		}
	}
}

func (e DeltaEviction[T]) String() string {
	return fmt.Sprintf("DeltaEvictor(%v, after=%t)", e.threshold, e.after)
}
