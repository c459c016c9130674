// Package window defines the windows of Strom's windowed operators: time
// windows, the assigners that put records into them (tumbling, sliding and
// session windows, on event time or processing time) and the triggers that
// decide when a window's contents are emitted.
//
// The semantics are Flink's: a window is the half-open interval
// [Start, End) of epoch milliseconds; tumbling and sliding windows are
// aligned to the epoch (timestamp 0) unless an offset is given; session
// windows start as [ts, ts+gap) per record and merge while they intersect.
// Windows are used through package strom:
//
//	counts := strom.WindowAggregate(
//		strom.Window(strom.KeyBy(bids, auctionOf), window.Sliding(10*time.Second, 2*time.Second)),
//		countAgg)
//
// An assigner says which windows a record belongs to; the assigner's default
// trigger (EventTimeTrigger for event-time assigners, ProcessingTimeTrigger
// for processing-time ones) fires a window once when time passes its end.
// Other triggers (CountTrigger, Purging, ContinuousEventTimeTrigger, or your
// own) fire earlier or more often.
package window

import (
	"fmt"
	"slices"
	"time"
)

// TimeWindow is the interval [Start, End) of epoch milliseconds.
type TimeWindow struct {
	Start, End int64
}

// MaxTimestamp is the last millisecond that belongs to the window
// (End − 1): the timestamp of the records a window emits, and the event
// time at which the default trigger fires it.
func (w TimeWindow) MaxTimestamp() int64 { return w.End - 1 }

// Contains reports whether ts lies in the window.
func (w TimeWindow) Contains(ts int64) bool { return ts >= w.Start && ts < w.End }

// Intersects reports whether the windows overlap or touch (as in Flink, so
// [0, 10) and [10, 20) intersect: session windows that meet merge).
func (w TimeWindow) Intersects(o TimeWindow) bool { return w.Start <= o.End && w.End >= o.Start }

// Cover is the smallest window containing both.
func (w TimeWindow) Cover(o TimeWindow) TimeWindow {
	return TimeWindow{Start: min(w.Start, o.Start), End: max(w.End, o.End)}
}

func (w TimeWindow) String() string { return fmt.Sprintf("[%d, %d)", w.Start, w.End) }

// StartWithOffset is the start of the window of the given size (and
// offset from the epoch) that contains ts, for windows aligned at
// offset + k·size (Flink's TimeWindow.getWindowStartWithOffset). It rounds
// towards negative infinity, so negative timestamps work too.
func StartWithOffset(ts, offset, size int64) int64 {
	rem := (ts - offset) % size
	if rem < 0 {
		rem += size
	}
	return ts - rem
}

// AssignerContext is what an assigner may ask the operator.
type AssignerContext interface {
	// CurrentProcessingTime is the wall clock in epoch ms.
	CurrentProcessingTime() int64
}

// Assigner assigns records to windows (Flink's WindowAssigner). An
// assigner may also have a Validate() error method; the window operator
// calls it when the job is built, so bad parameters fail Execute.
type Assigner interface {
	// AssignWindows appends the windows of a record with timestamp ts to dst
	// and returns it. The operator reuses dst between records, so assigning
	// allocates nothing once dst has grown. ts is the record's event time
	// (NoTimestamp, math.MinInt64, if it has none); processing-time assigners
	// ignore it and use ctx.CurrentProcessingTime.
	AssignWindows(ts int64, ctx AssignerContext, dst []TimeWindow) []TimeWindow
	// DefaultTrigger is the trigger used unless the job sets another.
	DefaultTrigger() Trigger
	// IsEventTime reports whether windows are based on event time: then
	// watermarks fire them, late records are detected and allowed lateness
	// applies.
	IsEventTime() bool
}

// MergingAssigner is an assigner whose windows merge (session windows):
// the operator keeps, per key, the set of current windows and merges a new
// record's window into it (Flink's MergingWindowAssigner and
// MergingWindowSet). Merging needs a trigger that CanMerge and, for
// incremental aggregation, an Aggregator with Merge.
type MergingAssigner interface {
	Assigner
	// MergeWindows calls merge once for every group of two or more windows
	// that become one, with the windows of the group and their merge
	// result. It may reorder windows; merged is only valid during the call.
	MergeWindows(windows []TimeWindow, merge func(merged []TimeWindow, result TimeWindow))
}

// MergeOverlapping merges windows that intersect, transitively: it sorts
// windows by start (in place) and reports each run of intersecting windows
// with their cover. It is the merge of session windows.
func MergeOverlapping(windows []TimeWindow, merge func(merged []TimeWindow, result TimeWindow)) {
	if len(windows) < 2 {
		return
	}
	slices.SortFunc(windows, func(a, b TimeWindow) int {
		if a.Start != b.Start {
			if a.Start < b.Start {
				return -1
			}
			return 1
		}
		if a.End < b.End {
			return -1
		} else if a.End > b.End {
			return 1
		}
		return 0
	})
	first := 0
	cur := windows[0]
	for i := 1; i <= len(windows); i++ {
		if i < len(windows) && cur.Intersects(windows[i]) {
			cur = cur.Cover(windows[i])
			continue
		}
		if i-first > 1 {
			merge(windows[first:i], cur)
		}
		if i < len(windows) {
			first, cur = i, windows[i]
		}
	}
}

// wholeMillis records an error in bad (the first one wins) when d is not a
// whole number of milliseconds: window bounds are epoch milliseconds, and
// silently truncating 1.5s to 1s would put records in the wrong windows.
func wholeMillis(what string, d time.Duration, bad *error) int64 {
	if d%time.Millisecond != 0 && *bad == nil {
		*bad = fmt.Errorf("window: %s %v is not a whole number of milliseconds", what, d)
	}
	return d.Milliseconds()
}

// TumblingWindows assigns every record to exactly one window of a fixed
// size; windows are aligned to the epoch plus an optional offset.
type TumblingWindows struct {
	size, offset int64
	proc         bool
	bad          error
}

// Tumbling returns event-time tumbling windows of the given size (whole
// milliseconds): [k·size, (k+1)·size).
func Tumbling(size time.Duration) TumblingWindows {
	var t TumblingWindows
	t.size = wholeMillis("tumbling window size", size, &t.bad)
	return t
}

// TumblingProcessingTime returns tumbling windows on the wall clock: a
// record belongs to the window containing the processing time at which the
// window operator receives it.
func TumblingProcessingTime(size time.Duration) TumblingWindows {
	t := Tumbling(size)
	t.proc = true
	return t
}

// WithOffset shifts the windows by offset: they become
// [k·size + offset, (k+1)·size + offset). |offset| must be below size; a
// negative offset is fine (for example −8h for days in UTC+8).
func (t TumblingWindows) WithOffset(offset time.Duration) TumblingWindows {
	t.offset = wholeMillis("tumbling window offset", offset, &t.bad)
	return t
}

// Size is the window size in milliseconds.
func (t TumblingWindows) Size() int64 { return t.size }

// Offset is the window offset in milliseconds.
func (t TumblingWindows) Offset() int64 { return t.offset }

// Validate reports invalid parameters; the window operator calls it when the
// job is built.
func (t TumblingWindows) Validate() error {
	if t.bad != nil {
		return t.bad
	}
	if t.size <= 0 {
		return fmt.Errorf("window: tumbling window size must be at least 1ms, got %dms", t.size)
	}
	if t.offset >= t.size || -t.offset >= t.size {
		return fmt.Errorf("window: tumbling windows need |offset| < size, got offset %dms, size %dms", t.offset, t.size)
	}
	return nil
}

// AssignWindows implements Assigner.
func (t TumblingWindows) AssignWindows(ts int64, ctx AssignerContext, dst []TimeWindow) []TimeWindow {
	if t.proc {
		ts = ctx.CurrentProcessingTime()
	}
	start := StartWithOffset(ts, t.offset, t.size)
	return append(dst, TimeWindow{Start: start, End: start + t.size})
}

// DefaultTrigger implements Assigner.
func (t TumblingWindows) DefaultTrigger() Trigger {
	if t.proc {
		return ProcessingTimeTrigger()
	}
	return EventTimeTrigger()
}

// IsEventTime implements Assigner.
func (t TumblingWindows) IsEventTime() bool { return !t.proc }

func (t TumblingWindows) String() string {
	kind := "TumblingEventTimeWindows"
	if t.proc {
		kind = "TumblingProcessingTimeWindows"
	}
	return fmt.Sprintf("%s(%d)", kind, t.size)
}

// SlidingWindows assigns every record to the size/slide overlapping windows
// of a fixed size that start every slide milliseconds.
type SlidingWindows struct {
	size, slide, offset int64
	proc                bool
	bad                 error
}

// Sliding returns event-time sliding windows: windows of the given size
// starting at every multiple of slide. A record belongs to ⌈size/slide⌉
// windows (fewer when slide does not divide size).
func Sliding(size, slide time.Duration) SlidingWindows {
	var s SlidingWindows
	s.size = wholeMillis("sliding window size", size, &s.bad)
	s.slide = wholeMillis("sliding window slide", slide, &s.bad)
	return s
}

// SlidingProcessingTime returns sliding windows on the wall clock.
func SlidingProcessingTime(size, slide time.Duration) SlidingWindows {
	s := Sliding(size, slide)
	s.proc = true
	return s
}

// WithOffset shifts the windows by offset: they start at k·slide + offset.
// |offset| must be below slide.
func (s SlidingWindows) WithOffset(offset time.Duration) SlidingWindows {
	s.offset = wholeMillis("sliding window offset", offset, &s.bad)
	return s
}

// Size is the window size in milliseconds.
func (s SlidingWindows) Size() int64 { return s.size }

// Slide is the distance between window starts in milliseconds.
func (s SlidingWindows) Slide() int64 { return s.slide }

// Validate reports invalid parameters.
func (s SlidingWindows) Validate() error {
	if s.bad != nil {
		return s.bad
	}
	if s.size <= 0 || s.slide <= 0 {
		return fmt.Errorf("window: sliding windows need size and slide of at least 1ms, got size %dms, slide %dms", s.size, s.slide)
	}
	if s.offset >= s.slide || -s.offset >= s.slide {
		return fmt.Errorf("window: sliding windows need |offset| < slide, got offset %dms, slide %dms", s.offset, s.slide)
	}
	return nil
}

// AssignWindows implements Assigner: the windows are appended latest first.
func (s SlidingWindows) AssignWindows(ts int64, ctx AssignerContext, dst []TimeWindow) []TimeWindow {
	if s.proc {
		ts = ctx.CurrentProcessingTime()
	}
	for start := StartWithOffset(ts, s.offset, s.slide); start > ts-s.size; start -= s.slide {
		dst = append(dst, TimeWindow{Start: start, End: start + s.size})
	}
	return dst
}

// DefaultTrigger implements Assigner.
func (s SlidingWindows) DefaultTrigger() Trigger {
	if s.proc {
		return ProcessingTimeTrigger()
	}
	return EventTimeTrigger()
}

// IsEventTime implements Assigner.
func (s SlidingWindows) IsEventTime() bool { return !s.proc }

func (s SlidingWindows) String() string {
	kind := "SlidingEventTimeWindows"
	if s.proc {
		kind = "SlidingProcessingTimeWindows"
	}
	return fmt.Sprintf("%s(%d, %d)", kind, s.size, s.slide)
}

// SessionWindows groups a key's records into sessions separated by at least
// gap of inactivity: each record starts as the window [ts, ts+gap), and
// windows that intersect (or touch) merge into one.
type SessionWindows struct {
	gap  int64
	proc bool
	bad  error
}

// Session returns event-time session windows with the given gap.
func Session(gap time.Duration) SessionWindows {
	var s SessionWindows
	s.gap = wholeMillis("session gap", gap, &s.bad)
	return s
}

// SessionProcessingTime returns session windows on the wall clock.
func SessionProcessingTime(gap time.Duration) SessionWindows {
	s := Session(gap)
	s.proc = true
	return s
}

// Gap is the session gap in milliseconds.
func (s SessionWindows) Gap() int64 { return s.gap }

// Validate reports invalid parameters.
func (s SessionWindows) Validate() error {
	if s.bad != nil {
		return s.bad
	}
	if s.gap <= 0 {
		return fmt.Errorf("window: session gap must be at least 1ms, got %dms", s.gap)
	}
	return nil
}

// AssignWindows implements Assigner.
func (s SessionWindows) AssignWindows(ts int64, ctx AssignerContext, dst []TimeWindow) []TimeWindow {
	if s.proc {
		ts = ctx.CurrentProcessingTime()
	}
	return append(dst, TimeWindow{Start: ts, End: ts + s.gap})
}

// MergeWindows implements MergingAssigner with MergeOverlapping.
func (s SessionWindows) MergeWindows(windows []TimeWindow, merge func(merged []TimeWindow, result TimeWindow)) {
	MergeOverlapping(windows, merge)
}

// DefaultTrigger implements Assigner.
func (s SessionWindows) DefaultTrigger() Trigger {
	if s.proc {
		return ProcessingTimeTrigger()
	}
	return EventTimeTrigger()
}

// IsEventTime implements Assigner.
func (s SessionWindows) IsEventTime() bool { return !s.proc }

func (s SessionWindows) String() string {
	kind := "EventTimeSessionWindows"
	if s.proc {
		kind = "ProcessingTimeSessionWindows"
	}
	return fmt.Sprintf("%s(%d)", kind, s.gap)
}
