package runtime

import (
	"sync/atomic"
	"time"
)

// TaskTimes measures where a task's time goes, as Flink's
// busyTimeMsPerSecond, idleTimeMsPerSecond and backPressuredTimeMsPerSecond:
// idle is time the task loop sleeps waiting for input (or for mail, a
// timer), back-pressured is time it sleeps because an output has no free
// buffer, busy is the rest. The clock is read twice per wait, never per
// record or batch, so a task that never waits pays nothing. A wait that is
// still going on counts up to the moment of a Sample, so a task idle for
// minutes shows as idle, not as busy until it wakes.
//
// Not counted as back-pressured: a writer that spent its overdraft in the
// middle of a batch and blocks for a buffer (Writer.batch) — that wait is
// rare (one input batch fanned out into more than a buffer) and counts as
// busy.
//
// The task goroutine writes; any goroutine may Sample.
type TaskTimes struct {
	start atomic.Int64 // UnixNano when the task began measuring; 0: not yet
	// idle and backPressured are the nanoseconds of ended waits.
	idle, backPressured atomic.Int64
	// waitStart is UnixNano when the current wait began (0: not waiting),
	// waitKind what it waits for.
	waitStart atomic.Int64
	waitKind  atomic.Int32
	// watermarks are the chain's operators' input watermarks, by chain
	// index, as of the task's last publish.
	watermarks atomic.Pointer[[]atomic.Int64]
}

const (
	waitIdle int32 = iota
	waitBackPressure
)

// TimeSample is a reading of TaskTimes at one moment.
type TimeSample struct {
	At                  time.Time
	Elapsed             time.Duration // since the task began
	Idle, BackPressured time.Duration
}

func (tt *TaskTimes) begin(now time.Time) { tt.start.CompareAndSwap(0, now.UnixNano()) }

func (tt *TaskTimes) beginWait(kind int32) {
	tt.waitKind.Store(kind)
	tt.waitStart.Store(time.Now().UnixNano())
}

func (tt *TaskTimes) endWait() {
	ws := tt.waitStart.Load()
	if ws == 0 {
		return
	}
	d := time.Now().UnixNano() - ws
	// The wait is added before it is cleared: a Sample between the two
	// may count it twice, never zero times; Rates clamps the excess.
	if tt.waitKind.Load() == waitBackPressure {
		tt.backPressured.Add(d)
	} else {
		tt.idle.Add(d)
	}
	tt.waitStart.Store(0)
}

// Sample reads the times so far, counting a wait in progress up to now.
// A task that has not started yet samples as all zero.
func (tt *TaskTimes) Sample(now time.Time) TimeSample {
	s := TimeSample{At: now}
	start := tt.start.Load()
	if start == 0 {
		return s
	}
	s.Elapsed = time.Duration(now.UnixNano() - start)
	s.Idle = time.Duration(tt.idle.Load())
	s.BackPressured = time.Duration(tt.backPressured.Load())
	if ws := tt.waitStart.Load(); ws != 0 && now.UnixNano() > ws {
		if tt.waitKind.Load() == waitBackPressure {
			s.BackPressured += time.Duration(now.UnixNano() - ws)
		} else {
			s.Idle += time.Duration(now.UnixNano() - ws)
		}
	}
	return s
}

// Rates are the milliseconds per second spent busy, idle and
// back-pressured between two samples of the same task (prev the older; a
// zero prev means since the task began). They add up to 1000 unless no
// time passed, when all are 0.
func Rates(prev, cur TimeSample) (busy, idle, backPressured float64) {
	elapsed := cur.Elapsed - prev.Elapsed
	if elapsed <= 0 {
		return 0, 0, 0
	}
	id := max(cur.Idle-prev.Idle, 0)
	bp := max(cur.BackPressured-prev.BackPressured, 0)
	// A wait counted twice by a racing Sample (see endWait) or clock
	// steps must not push the total past the interval.
	if id+bp > elapsed {
		scale := float64(elapsed) / float64(id+bp)
		id = time.Duration(float64(id) * scale)
		bp = time.Duration(float64(bp) * scale)
	}
	per := 1000 / float64(elapsed)
	idle = float64(id) * per
	backPressured = float64(bp) * per
	busy = max(1000-idle-backPressured, 0)
	return busy, idle, backPressured
}

// Watermarks are the input watermarks of the task's chained operators (by
// chain index; MinWatermark for none yet), as of the last batch; nil
// before the task ran.
func (tt *TaskTimes) Watermarks() []int64 {
	p := tt.watermarks.Load()
	if p == nil {
		return nil
	}
	out := make([]int64, len(*p))
	for i := range *p {
		out[i] = (*p)[i].Load()
	}
	return out
}

// Times is the task's time accounting (see TaskTimes).
func (t *Task) Times() *TaskTimes { return &t.times }

// publishWatermarks stores the chain's operators' input watermarks for
// Watermarks: one atomic store per operator and batch, no allocation after
// the first.
func (t *Task) publishWatermarks() {
	p := t.times.watermarks.Load()
	if p == nil || len(*p) != len(t.Chain) {
		wms := make([]atomic.Int64, len(t.Chain))
		p = &wms
		defer t.times.watermarks.Store(p) // filled first
	}
	for i := range t.Chain {
		(*p)[i].Store(t.operatorWatermark(i))
	}
}
